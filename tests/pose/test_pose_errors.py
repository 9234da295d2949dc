"""Bad input to estimate_pose / train_posenet: a clear error naming the file, nothing written."""

import json

import numpy as np
import pytest
import torch

from splat.pose.estimate import estimate_pose, parse_intrinsics, read_pose_file


def _written(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(("out", ".out")))


def test_good_input_writes_pose_and_overlay(box_ply, scene_files):
    folder, intrinsics, T = scene_files
    result = estimate_pose(box_ply, folder / "image.png", intrinsics, mask=folder / "mask.png",
                           init=folder / "init.json", out=folder / "out.json")
    assert _written(folder) == ["out.json", "out_overlay.png"]
    saved = read_pose_file(folder / "out.json")
    torch.testing.assert_close(saved, torch.from_numpy(result.object_to_camera))
    assert float((saved[:3, 3] - T[:3, 3]).norm()) < 0.02  # started at the truth, stays there
    history = json.loads((folder / "out.json").read_text())["refinement"]["history"]
    assert len(history) == result.iterations


def test_image_size_disagreeing_with_intrinsics(box_ply, scene_files):
    folder, _, _ = scene_files
    with pytest.raises(ValueError, match=r"image image.png is 96x96 but the intrinsics put the principal point"):
        estimate_pose(box_ply, folder / "image.png", "120,120,320,240", init=folder / "init.json",
                      out=folder / "out.json")
    assert _written(folder) == []


def test_empty_mask(box_ply, scene_files):
    from splat.io.images import save_png

    folder, intrinsics, _ = scene_files
    save_png(folder / "empty.png", np.zeros((96, 96, 3), np.float32))
    with pytest.raises(ValueError, match="mask empty.png is empty"):
        estimate_pose(box_ply, folder / "image.png", intrinsics, mask=folder / "empty.png",
                      init=folder / "init.json", out=folder / "out.json")
    assert _written(folder) == []


def test_mask_of_another_size(box_ply, scene_files):
    from splat.io.images import save_png

    folder, intrinsics, _ = scene_files
    save_png(folder / "small.png", np.ones((48, 48, 3), np.float32))
    with pytest.raises(ValueError, match="mask small.png is 48x48 but image image.png is 96x96"):
        estimate_pose(box_ply, folder / "image.png", intrinsics, mask=folder / "small.png",
                      init=folder / "init.json")


@pytest.mark.parametrize("case, message", [
    ("behind", "puts the object behind the camera"),
    ("aside", "puts the object out of view"),
])
def test_initial_pose_behind_or_out_of_view(box_ply, scene_files, case, message):
    folder, intrinsics, T = scene_files
    bad = T.clone()
    if case == "behind":
        bad[2, 3] = -bad[2, 3]
    else:
        bad[0, 3] += 5.0  # far to the right of the image
    (folder / "bad.json").write_text(json.dumps({"object_to_camera": bad.tolist()}))
    with pytest.raises(ValueError, match=message):
        estimate_pose(box_ply, folder / "image.png", intrinsics, init=folder / "bad.json", out=folder / "out.json")
    assert _written(folder) == []


def test_model_that_is_not_a_3dgs_ply(scene_files):
    from splat.io.pointcloud import write_points_ply

    folder, intrinsics, _ = scene_files
    write_points_ply(folder / "points.ply", np.random.rand(10, 3).astype(np.float32))
    with pytest.raises(ValueError, match=r"object model points.ply is not a 3DGS PLY \(.*missing"):
        estimate_pose(folder / "points.ply", folder / "image.png", intrinsics, init=folder / "init.json",
                      out=folder / "out.json")
    (folder / "text.ply").write_text("hello\n")
    with pytest.raises(ValueError, match="object model text.ply is not a 3DGS PLY"):
        estimate_pose(folder / "text.ply", folder / "image.png", intrinsics, init=folder / "init.json")
    assert _written(folder) == []


def test_posenet_trained_for_another_model(box_ply, box_object, scene_files):
    from splat.io.ply import save_ply
    from splat.pose.estimate import train_posenet
    from splat.pose.model import sample_object_gaussians

    folder, intrinsics, _ = scene_files
    other = save_ply(sample_object_gaussians(box_object, num=500, seed=1), folder / "other.ply")
    ckpt = train_posenet(other, folder / "other.posenet.pt", show_progress=False, input_size=16, width=4,
                         num_renders=2, steps=1, batch_size=1)
    with pytest.raises(ValueError, match="Pose-Net checkpoint other.posenet.pt was trained for another model"):
        estimate_pose(box_ply, folder / "image.png", intrinsics, posenet=ckpt, out=folder / "out.json")
    assert _written(folder) == []
    (folder / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt is not a Pose-Net checkpoint"):
        estimate_pose(box_ply, folder / "image.png", intrinsics, posenet=folder / "junk.pt")


def test_no_initial_pose_and_no_posenet(box_ply, scene_files):
    folder, intrinsics, _ = scene_files
    with pytest.raises(ValueError, match="no initial pose: give --init"):
        estimate_pose(box_ply, folder / "image.png", intrinsics)


def test_pose_file_and_intrinsics_checks(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"pose": [1, 2]}))
    with pytest.raises(ValueError, match="pose file p.json has no 'object_to_camera'"):
        read_pose_file(tmp_path / "p.json")
    (tmp_path / "q.json").write_text(json.dumps({"object_to_camera": (2 * np.eye(4)).tolist()}))
    with pytest.raises(ValueError, match="not a rotation"):
        read_pose_file(tmp_path / "q.json")
    with pytest.raises(ValueError, match="fx,fy,cx,cy"):
        parse_intrinsics("1,2,3")
    with pytest.raises(ValueError, match="positive finite focal"):
        parse_intrinsics("-1,2,3,4")
