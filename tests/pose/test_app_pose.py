import json

import pytest

gr = pytest.importorskip("gradio")
pytestmark = pytest.mark.slow  # imports and builds the Gradio app


def test_pose_tab_callback_shows_before_and_after(box_ply, scene_files):
    from PIL import Image

    from splatops.app.pose_tab import run_pose

    folder, intrinsics, _ = scene_files
    overlay, summary, pose, pose_file = run_pose(str(box_ply), str(folder / "image.png"), intrinsics,
                                                 str(folder / "mask.png"), str(folder / "init.json"), None, 10,
                                                 None)
    assert Image.open(overlay).size == (2 * 96, 96)  # before | after
    assert "refined in 10 iterations" in summary
    assert len(json.loads(pose)["object_to_camera"]) == 4
    assert json.loads(open(pose_file).read())["refinement"]["iterations"] == 10


def test_pose_tab_shows_input_errors(box_ply, scene_files):
    from splatops.app.pose_tab import run_pose

    folder, _, _ = scene_files
    with pytest.raises(gr.Error, match="principal point"):
        run_pose(str(box_ply), str(folder / "image.png"), "100,100,400,300", None, str(folder / "init.json"),
                 None, 10, None)
    with pytest.raises(gr.Error, match="initial pose"):
        run_pose(str(box_ply), str(folder / "image.png"), "100,100,48,48", None, None, None, 10, None)


def test_app_has_a_pose_tab():
    from splatops.app import build_app

    demo = build_app()
    assert "pose_estimate" in {d.api_name for d in demo.fns.values()}
