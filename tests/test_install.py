"""``pip install .`` (a wheel, not editable) gives a working CLI and app outside the checkout.

The wheel is built from a copy of the sources, installed into a fresh virtual
environment that reuses this interpreter's packages (torch and the other
dependencies), and run from a folder outside the repository, so nothing can
be found through the checkout: the bundled scene and checkpoints must come
from package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "splat", "operators", "graph", "splatops", "assets"]


def _run(cmd, cwd, env=None, timeout=600):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(root / "dist"), str(src)], cwd=root)
    wheel = next((root / "dist").glob("splatops-*.whl"))
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")], cwd=root)
    bin_dir = root / "venv" / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=root)
    work = root / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return bin_dir, work, env


def test_the_installed_package_is_used_not_the_checkout(venv):
    bin_dir, work, env = venv
    out = _run([str(bin_dir / "python"), "-c",
                "import splatops, splat, operators, graph, splatops_assets; "
                "from splat.core.backends import cpu; "
                "print(splatops.__file__, splat.__file__, operators.__file__, graph.__file__, "
                "splatops_assets.asset_path('scenes', 'globe', 'transforms.json').is_file(), "
                "all((cpu._CSRC / n).is_file() for n in cpu._SOURCES))"],
               cwd=work, env=env)
    *files, bundled, kernel_sources = out.split()
    site = str(bin_dir.parent)
    assert all(f.startswith(site) for f in files), files
    assert bundled == "True" and kernel_sources == "True"


def test_render_demo_and_a_short_fit_run_from_the_wheel(venv):
    # The torch backend: the compiled kernel would be rebuilt for the new install path (about
    # two minutes); the rest of the suite tests it, and the test above that its sources ship.
    bin_dir, work, env = venv
    _run([str(bin_dir / "splatops"), "render-demo", "--out", "demo.png", "--backend", "torch"],
         cwd=work, env=env)
    assert (work / "demo.png").read_bytes()[:4] == b"\x89PNG"
    out = _run([str(bin_dir / "splatops"), "fit", "--steps", "20", "--out", "fit", "--threads", "1",
                "--eval-every", "0", "--backend", "torch"], cwd=work, env=env)
    assert "held-out PSNR" in out
    assert (work / "fit" / "point_cloud.ply").read_bytes()[:3] == b"ply"
    assert str(bin_dir.parent) in _run([str(bin_dir / "splatops"), "scene", "bundled"], cwd=work, env=env)


def test_bundled_checkpoints_and_the_app_load_from_the_wheel(venv):
    bin_dir, work, env = venv
    out = _run([str(bin_dir / "splatops"), "graph", "cgs-demo", "--pores", "60"], cwd=work, env=env)
    assert "Mean absolute error" in out
    _run([str(bin_dir / "python"), "-c",
          "from operators.checkpoints import bundled_checkpoint; "
          "assert bundled_checkpoint('water', 2).is_file(); "
          "from splatops.app import build_app; build_app()"], cwd=work, env=env)
