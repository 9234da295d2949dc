"""Blender NeRF-synthetic layout: camera_angle_x, RGBA compositing, splits, errors."""

import json
import math

import numpy as np
import pytest
import torch

from io_fixtures import gl_pose
from splat.io import load_blender, load_scene
from splat.io.images import save_png


def write_blender(root, n_train=3, n_test=2, size=(20, 16), fov=0.7):
    for split, n in (("train", n_train), ("test", n_test)):
        frames = []
        for i in range(n):
            rgba = np.zeros((size[1], size[0], 4), np.uint8)
            rgba[4:12, 5:15] = (200, 40, 40, 255)  # an opaque red block on a transparent background
            rgba[0, 0] = (0, 0, 255, 128)  # one half-transparent blue pixel
            save_png(root / split / f"r_{i}.png", rgba)
            angle = 2 * math.pi * i / n + (0.3 if split == "test" else 0.0)
            frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.0,
                           "transform_matrix": gl_pose([4 * math.cos(angle), 4 * math.sin(angle), 2.0])})
        if n:
            (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": fov, "frames": frames}))
    return root


def test_blender_scene_loads_with_splits_and_focal(tmp_path):
    scene = load_scene(write_blender(tmp_path))
    assert len(scene) == 5 and scene.train_ids == [0, 1, 2] and scene.test_ids == [3, 4]
    assert (scene.width, scene.height) == (20, 16)
    focal = 0.5 * 20 / math.tan(0.7 / 2)
    torch.testing.assert_close(scene.cameras.Ks[0], torch.tensor([[focal, 0, 10], [0, focal, 8], [0, 0, 1]]))
    # The camera at (4, 0, 2) looks at the origin: the origin projects near the image centre.
    cam = scene.cameras.viewmats[0] @ torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert cam[2] > 0
    uv = scene.cameras.Ks[0] @ cam[:3]
    torch.testing.assert_close(uv[:2] / uv[2], torch.tensor([10.0, 8.0]), atol=1e-4, rtol=0)


def test_rgba_is_composited_on_white_or_black(tmp_path):
    root = write_blender(tmp_path)
    white = load_blender(root).images([0])[0]
    black = load_blender(root, background=(0.0, 0.0, 0.0)).images([0])[0]
    torch.testing.assert_close(white[8, 10], torch.tensor([200, 40, 40]) / 255.0)  # opaque: unchanged
    torch.testing.assert_close(black[8, 10], white[8, 10])
    torch.testing.assert_close(white[15, 19], torch.ones(3))  # transparent: background
    torch.testing.assert_close(black[15, 19], torch.zeros(3))
    a = 128 / 255
    torch.testing.assert_close(white[0, 0], torch.tensor([1 - a, 1 - a, a + (1 - a)]))
    torch.testing.assert_close(black[0, 0], torch.tensor([0.0, 0.0, a]))


def test_train_only_scene_and_val_split(tmp_path):
    root = write_blender(tmp_path, n_test=0)
    scene = load_blender(root)
    assert scene.test_ids == [] and len(scene.train_ids) == 3
    (root / "transforms_val.json").write_text((root / "transforms_train.json").read_text())
    assert len(load_blender(root, use_val=True).train_ids) == 6


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda d: d.pop("camera_angle_x"), ValueError, "missing 'camera_angle_x'"),
        (lambda d: d.update(camera_angle_x=4.0), ValueError, r"camera_angle_x must be in \(0, pi\)"),
        (lambda d: d.update(frames={}), ValueError, "'frames' must be a non-empty list"),
        (lambda d: d["frames"][0].update(file_path="./train/missing"), FileNotFoundError, "image './train/missing' not found"),
    ],
)
def test_bad_blender_files(tmp_path, edit, error, match):
    root = write_blender(tmp_path)
    data = json.loads((root / "transforms_train.json").read_text())
    edit(data)
    (root / "transforms_train.json").write_text(json.dumps(data))
    with pytest.raises(error, match=match):
        load_blender(root)


def test_mixed_sizes_and_bad_background(tmp_path):
    root = write_blender(tmp_path)
    save_png(root / "test" / "r_1.png", np.zeros((16, 24, 4), np.uint8))
    with pytest.raises(ValueError, match=r"images of mixed sizes are unsupported: .*r_1\.png is 24x16"):
        load_blender(root)
    with pytest.raises(ValueError, match="background must be 3 floats"):
        load_blender(root, background=(1.0, 1.0))
    with pytest.raises(FileNotFoundError, match="Blender scene folder not found"):
        load_blender(tmp_path / "missing")
