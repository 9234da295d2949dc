import json

import pytest

from splatops.cli import main


@pytest.mark.slow
def test_cli_train_then_estimate_with_init(box_ply, scene_files, capsys):
    folder, intrinsics, T = scene_files
    ckpt = folder / "box.posenet.pt"
    assert main(["pose", "train", "--model", str(box_ply), "--out", str(ckpt), "--steps", "2",
                 "--input-size", "16"]) == 0
    assert ckpt.is_file()
    code = main(["pose", "estimate", "--model", str(box_ply), "--image", str(folder / "image.png"),
                 "--intrinsics", intrinsics, "--init", str(folder / "init.json"), "--mask", str(folder / "mask.png"),
                 "--out", str(folder / "out.json"), "--max-iters", "8"])
    assert code == 0
    saved = json.loads((folder / "out.json").read_text())
    assert len(saved["object_to_camera"]) == 4 and saved["refinement"]["iterations"] == 8
    assert (folder / "out_overlay.png").is_file()
    assert "refined in 8 iterations" in capsys.readouterr().out


def test_cli_reports_bad_input_without_writing(box_ply, scene_files, capsys):
    folder, _, _ = scene_files
    code = main(["pose", "estimate", "--model", str(box_ply), "--image", str(folder / "image.png"),
                 "--intrinsics", "100,100,400,300", "--init", str(folder / "init.json"),
                 "--out", str(folder / "out.json")])
    assert code == 2
    assert "principal point" in capsys.readouterr().err
    assert not (folder / "out.json").exists()
