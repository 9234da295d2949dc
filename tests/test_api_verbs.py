"""splatops.api: one layer under the CLI and the app, and its verbs through the CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

import splatops.api as api
from splatops.cli import main

PACKAGE = Path(api.__file__).parent
HELPERS = {"open_scene"}  # shared steps, not verbs


def _verb_calls(path: Path) -> dict[str, set[str]]:
    """Function name -> the ``api.<verb>`` names it uses, for every top-level function of a module."""
    tree = ast.parse(path.read_text())
    out = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            used = {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name) and n.value.id == "api"}
            if used - HELPERS:
                out[f"{path.stem}.{fn.name}"] = used - HELPERS
    return out


def _no_library_imports(path: Path) -> list[str]:
    """Imports of the library packages (splat/operators/graph) that bypass the api, outside helpers."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                "operators", "graph") and not node.module.endswith(("datasets", "mpm")):
            bad.append(f"{path.name}: from {node.module} import ...")
    return bad


def test_every_verb_is_listed_and_documented():
    assert set(api.VERBS) <= set(api.__all__)
    for name in api.VERBS:
        fn = getattr(api, name)
        assert callable(fn) and fn.__doc__ and "Args:" in fn.__doc__ or name == "render_demo", name


def test_each_cli_command_calls_exactly_one_verb_and_each_verb_has_one_command():
    calls = {}
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        calls.update(_verb_calls(path))
    for fn, verbs in calls.items():
        assert len(verbs) == 1, f"{fn} calls {sorted(verbs)}"
    verbs = [v for used in calls.values() for v in used]
    assert sorted(verbs) == sorted(api.VERBS), "every verb has exactly one CLI command"


def test_each_app_callback_calls_exactly_one_verb_the_cli_calls_too():
    calls = {}
    for path in sorted((PACKAGE / "app").glob("*_tab.py")):
        calls.update(_verb_calls(path))
        assert _no_library_imports(path) == []
    assert calls, "the app's callbacks go through splatops.api"
    for fn, verbs in calls.items():
        assert len(verbs) == 1, f"{fn} calls {sorted(verbs)}"
    used = [v for vs in calls.values() for v in vs]
    assert len(used) == len(set(used)), "one app callback per verb"
    assert set(used) == {"fit", "fit_images", "simulate_preview", "simulate_splats", "forwardgnn", "forwardgnn_large",
                         "cgs_demo", "pose_estimate"}


def test_importing_the_api_and_the_cli_loads_no_heavy_library():
    code = ("import sys, splatops.api, splatops.cli; splatops.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'gradio', 'torch_geometric', 'splat', 'operators') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    from splat.io import make_synthetic_scene, save_nerfstudio

    root = tmp_path_factory.mktemp("api_scene")
    scene = make_synthetic_scene(num_views=6, size=32, num_points=120, root=root / "images")
    save_nerfstudio(scene, root)
    return root, scene


def test_render_names_views_after_images_with_both_layouts(scene_dir, tmp_path, capsys):
    from splat.core.gaussians import Gaussians
    from splat.io.ply import save_ply

    root, scene = scene_dir
    ply = save_ply(Gaussians.from_points(scene.points, scene.point_colors, sh_degree=0), tmp_path / "g.ply")
    assert main(["render", "--ply", str(ply), "--data", str(root), "--out", str(tmp_path / "a"),
                 "--no-video"]) == 0
    names = sorted(p.name for p in (tmp_path / "a" / "views").iterdir())
    assert names == sorted(Path(p).stem + ".png" for p in scene.image_paths)
    assert iio.imread(tmp_path / "a" / "views" / names[0]).shape == (32, 32, 3)
    assert main(["render", "--ply", str(ply), "--data", str(root), "--out", str(tmp_path / "b"),
                 "--no-video", "--layout", "side-by-side"]) == 0
    assert iio.imread(tmp_path / "b" / "views" / names[0]).shape == (32, 64, 3)
    assert main(["render", "--ply", str(tmp_path / "none.ply"), "--out", str(tmp_path / "c")]) == 2
    assert "PLY file not found" in capsys.readouterr().err


def test_open_scene_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="scene path not found: .*nowhere"):
        api.open_scene(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="data must be None, a path or a Scene, got int"):
        api.open_scene(3)
    with pytest.raises(ValueError, match="downscale must be >= 1, got 0"):
        api.open_scene(None, downscale=0)
    with pytest.raises(ValueError, match="orbit_video=True needs an out_dir"):
        api.fit(None, out_dir=None, steps=1, orbit_video=True)


def test_cgs_demo_command_writes_the_figure_the_app_shows(tmp_path, capsys):
    assert main(["graph", "cgs-demo", "--pores", "120", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    mae = float(text.split("Mean absolute error ")[1].split()[0])
    assert mae < 0.1, text
    assert (tmp_path / "pressure.png").read_bytes()[:4] == b"\x89PNG"


def test_preview_command_runs_mpm_and_the_learned_simulator(tmp_path, capsys):
    assert main(["preview", "--material", "water", "--particles", "300", "--frames", "12",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "MPM (ground truth)" in text and "GIOROM" in text
    assert (tmp_path / "simulation.gif").read_bytes()[:3] == b"GIF"
    res = api.simulate_preview("jelly", particles=200, frames=8)  # no bundled jelly checkpoint
    assert res.learned is None and "no bundled giorom checkpoint" in res.note and len(res.rows) == 1
    with pytest.raises(ValueError, match="frames must be >= 7"):
        api.simulate_preview(frames=3)
