"""The dependencies in pyproject.toml are honest: each is imported by the product, each import is listed."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["splat", "operators", "graph", "splatops", "assets"]
OURS = {"splat", "operators", "graph", "splatops", "splatops_assets"}
# distribution name -> the module the product imports
IMPORT_NAME = {"torch-geometric": "torch_geometric", "imageio-ffmpeg": "imageio_ffmpeg",
               "scikit-image": "skimage", "pillow": "PIL", "vtk": "vtkmodules",
               "opencv-python-headless": "cv2"}
# optional backends that are not on PyPI: imported only when asked for, with an ImportError
# that says how to install them (splat.posefree.dust3r)
OPTIONAL = {"dust3r", "mast3r"}
# a build tool, not a module: torch.utils.cpp_extension runs it to build the CPU kernel
BUILD_TOOLS = {"ninja": ("splat/core/backends/cpu.py", "cpp_extension.load")}


def _imports() -> dict[str, set[str]]:
    """Top-level module -> files of the library that import it."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _declared() -> list[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps]


def test_every_listed_dependency_is_used():
    imports = _imports()
    for dist in _declared():
        if dist in BUILD_TOOLS:
            path, use = BUILD_TOOLS[dist]
            assert use in (REPO / path).read_text(), f"{dist} is listed for {path}, which no longer uses it"
            continue
        module = IMPORT_NAME.get(dist, dist.replace("-", "_"))
        assert module in imports, f"{dist} is listed in pyproject.toml but nothing imports {module}"


def test_every_third_party_import_is_listed():
    declared = {IMPORT_NAME.get(d, d.replace("-", "_")) for d in _declared()}
    for module, files in sorted(_imports().items()):
        if module in sys.stdlib_module_names or module in OURS | OPTIONAL or module == "__future__":
            continue
        assert module in declared, f"{module} is imported by {sorted(files)} but not listed"


def test_every_bundled_asset_is_package_data():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    suffixes = {g.rsplit("*", 1)[-1] for g in globs["splatops_assets"]}  # "**/*.png" -> ".png"
    missing = sorted(str(p.relative_to(REPO)) for p in (REPO / "assets").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix not in suffixes | {".py"})
    assert missing == [], f"not installed with the wheel (add to package-data): {missing}"
