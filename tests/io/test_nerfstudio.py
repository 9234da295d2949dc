"""nerfstudio transforms.json: conventions, round trips and every error path."""

import json

import numpy as np
import pytest
import torch

from io_fixtures import write_nerfstudio
from splat.core.camera import project_points
from splat.io import load_nerfstudio, make_synthetic_scene, save_nerfstudio


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_scene(num_views=9, size=24, root=tmp_path_factory.mktemp("syn"))


def test_opengl_pose_projects_like_a_camera_looking_down_minus_z(tmp_path):
    root = write_nerfstudio(tmp_path, num_frames=1, camera_model="PINHOLE")
    data = json.loads((root / "transforms.json").read_text())
    # Camera at z=5 with identity rotation: OpenGL looks down -z with y up.
    data["frames"][0]["transform_matrix"] = np.diag([1.0, 1.0, 1.0, 1.0]).tolist()
    data["frames"][0]["transform_matrix"][2][3] = 5.0
    (root / "transforms.json").write_text(json.dumps(data))
    scene = load_nerfstudio(root)
    world = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    uv, depth = project_points(world, scene.cameras.viewmats, scene.cameras.Ks)
    torch.testing.assert_close(depth[0], torch.full((3,), 5.0))
    torch.testing.assert_close(uv[0, 0], torch.tensor([12.0, 8.0]))  # principal point
    torch.testing.assert_close(uv[0, 1], torch.tensor([12.0 + 20.0 / 5, 8.0]))  # +x is right
    torch.testing.assert_close(uv[0, 2], torch.tensor([12.0, 8.0 - 21.0 / 5]))  # +y (up) is up the image


def test_round_trip_keeps_cameras_images_points_and_split(synthetic, tmp_path):
    out = save_nerfstudio(synthetic, tmp_path / "ns")
    assert out == tmp_path / "ns" / "transforms.json"
    loaded = load_nerfstudio(out)
    torch.testing.assert_close(loaded.cameras.viewmats, synthetic.cameras.viewmats, atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded.cameras.Ks, synthetic.cameras.Ks)
    assert (loaded.train_ids, loaded.test_ids) == (synthetic.train_ids, synthetic.test_ids)
    assert loaded.background == synthetic.background
    torch.testing.assert_close(loaded.images(), synthetic.images(), atol=0, rtol=0)
    torch.testing.assert_close(loaded.points, synthetic.points)
    torch.testing.assert_close(loaded.point_colors, synthetic.point_colors, atol=0.5 / 255 + 1e-6, rtol=0)


def test_explicit_split_is_honoured(synthetic, tmp_path):
    custom = synthetic.subset(list(range(9)))
    custom.train_ids, custom.test_ids = [0, 1, 2], [5, 6]
    loaded = load_nerfstudio(save_nerfstudio(custom, tmp_path))
    assert (loaded.train_ids, loaded.test_ids) == ([0, 1, 2], [5, 6])


def test_per_frame_intrinsics_override_global(tmp_path):
    root = write_nerfstudio(tmp_path, num_frames=2)
    data = json.loads((root / "transforms.json").read_text())
    data["frames"][1].update(fl_x=30.0, fl_y=31.0, cx=11.0, cy=7.5)
    (root / "transforms.json").write_text(json.dumps(data))
    Ks = load_nerfstudio(root).cameras.Ks
    torch.testing.assert_close(Ks[0, :2], torch.tensor([[20.0, 0.0, 12.0], [0.0, 21.0, 8.0]]))
    torch.testing.assert_close(Ks[1, :2], torch.tensor([[30.0, 0.0, 11.0], [0.0, 31.0, 7.5]]))
    # ...and a scene with per-frame intrinsics round-trips through the writer.
    again = load_nerfstudio(save_nerfstudio(load_nerfstudio(root), tmp_path / "again"))
    torch.testing.assert_close(again.cameras.Ks, Ks)


def test_downscaled_scene_is_written_with_resized_images(synthetic, tmp_path):
    half = synthetic.downscaled(2)
    with pytest.raises(ValueError, match="copy_images=True"):
        save_nerfstudio(half, tmp_path / "a")
    loaded = load_nerfstudio(save_nerfstudio(half, tmp_path / "b", copy_images=True))
    assert (loaded.width, loaded.height) == (12, 12)
    torch.testing.assert_close(loaded.images([1]), half.images([1]), atol=0.5 / 255 + 1e-6, rtol=0)


def test_save_rejects_objects_without_cameras(tmp_path):
    with pytest.raises(TypeError, match="scene_like must have 'cameras'"):
        save_nerfstudio(object(), tmp_path)


def _edit(root, fn):
    data = json.loads((root / "transforms.json").read_text())
    fn(data)
    (root / "transforms.json").write_text(json.dumps(data))
    return root


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda d: d.update(camera_model="OPENCV_FISHEYE"), ValueError, "camera_model 'OPENCV_FISHEYE' is unsupported"),
        (lambda d: d.update(k1=0.1), ValueError, "non-zero distortion k1=0.1; undistortion is unsupported"),
        (lambda d: d.update(frames=[]), ValueError, "'frames' must be a non-empty list"),
        (lambda d: d["frames"][0].pop("transform_matrix"), ValueError, "frame 0 needs 'file_path' and 'transform_matrix'"),
        (lambda d: d["frames"][0].update(transform_matrix=[[1, 2], [3, 4]]), ValueError, "must be a finite 4x4"),
        (lambda d: d.pop("fl_x"), ValueError, "has no focal length"),
        (lambda d: d.update(fl_x="wide"), ValueError, "fl_x must be a finite number"),
        (lambda d: d.update(w=30), ValueError, r"f00\.png is 24x16 but its camera expects 30x16"),
        (lambda d: d["frames"][1].update(w=30), ValueError, "frames of mixed image sizes"),
        (lambda d: d["frames"][1].update(file_path="images/missing.png"), FileNotFoundError, "image 'images/missing.png' not found"),
        (lambda d: d.update(ply_file_path="nope.ply"), FileNotFoundError, "ply_file_path 'nope.ply' not found"),
        (lambda d: d.update(train_filenames=["x.png"], test_filenames=[]), ValueError, "train_filenames names files that are not frames"),
    ],
)
def test_bad_transforms_raise_naming_the_problem(tmp_path, edit, error, match):
    root = _edit(write_nerfstudio(tmp_path), edit)
    with pytest.raises(error, match=match):
        load_nerfstudio(root)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="file not found: .*transforms.json"):
        load_nerfstudio(tmp_path)
    (tmp_path / "transforms.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"transforms\.json is not valid JSON"):
        load_nerfstudio(tmp_path)
    (tmp_path / "transforms.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object, got list"):
        load_nerfstudio(tmp_path)


def test_corrupt_image_is_named(tmp_path):
    root = write_nerfstudio(tmp_path)
    (root / "images" / "f01.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"f01\.png is corrupt or not an image"):
        load_nerfstudio(root)


def test_truncated_image_is_caught_when_verifying(tmp_path):
    root = write_nerfstudio(tmp_path, width=64, height=64)
    path = root / "images" / "f02.png"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"f02\.png is corrupt"):
        load_nerfstudio(root)
    scene = load_nerfstudio(root, verify_images=False)  # header only: caught on first read
    with pytest.raises(ValueError, match=r"f02\.png is corrupt"):
        scene.images([2])


def test_camera_angle_x_and_missing_principal_point(tmp_path):
    root = write_nerfstudio(tmp_path, fl_x=None, fl_y=None, cx=None, cy=None, camera_angle_x=np.pi / 2)
    K = load_nerfstudio(root).cameras.Ks[0]
    torch.testing.assert_close(K[:2], torch.tensor([[12.0, 0.0, 12.0], [0.0, 12.0, 8.0]]))


def test_rgba_frames_are_composited_on_the_recorded_background(tmp_path):
    root = write_nerfstudio(tmp_path, num_frames=1, background=[0.0, 1.0, 0.0])
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    from splat.io.images import save_png

    save_png(root / "images" / "f00.png", rgba)
    torch.testing.assert_close(load_nerfstudio(root).images()[0, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
