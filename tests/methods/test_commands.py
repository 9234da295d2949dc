import json

import pytest

from splatops.cli import main
from splatops.commands.fit import parse_overrides


@pytest.mark.slow
def test_fit_then_render_commands(tiny_scene, tmp_path, capsys):
    from splat.io import save_nerfstudio

    data = tmp_path / "scene"
    save_nerfstudio(tiny_scene, data, copy_images=True)
    out = tmp_path / "fit"
    code = main(["fit", "--data", str(data), "--steps", "20", "--out", str(out), "--eval-every", "0",
                 "--threads", "1", "--set", "sh_degree=0", "--set", "refine_start=5"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["hyperparameters"]["sh_degree"] == 0
    code = main(["fit", "--data", str(data), "--steps", "30", "--out", str(out), "--resume",
                 "--eval-every", "0", "--set", "sh_degree=0", "--set", "refine_start=5"])
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 30
    code = main(["render", "--ply", str(out / "point_cloud.ply"), "--data", str(data),
                 "--out", str(tmp_path / "render"), "--frames", "4"])
    assert code == 0
    assert len(list((tmp_path / "render" / "views").glob("*.png"))) == len(tiny_scene.cameras)
    assert list((tmp_path / "render").glob("orbit.*"))


def test_command_errors(tmp_path, capsys):
    assert main(["fit", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "--data path not found" in capsys.readouterr().err
    assert main(["fit", "--data", str(tmp_path), "--method", "nope", "--out", str(tmp_path / "o")]) == 2
    capsys.readouterr()
    assert main(["render", "--ply", str(tmp_path / "none.ply"), "--data", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "PLY file not found" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--set expects KEY=VALUE"):
        parse_overrides(["novalue"])
    assert parse_overrides(["a=1", "b=x", "c=0.5"]) == {"a": 1, "b": "x", "c": 0.5}
