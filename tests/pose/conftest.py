"""Fixtures for the GS2Pose tests: a small surface-sampled object model and one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one intra-op thread (``one_thread`` in tests/conftest.py)."""


@pytest.fixture(scope="session")
def box_object():
    from splat.pose.dataset import make_object

    return make_object("photo_box")


@pytest.fixture(scope="session")
def box_model(box_object):
    from splat.pose.model import sample_object_gaussians

    return sample_object_gaussians(box_object, num=3000, seed=0)


@pytest.fixture(scope="session")
def box_ply(box_model, tmp_path_factory):
    from splat.io.ply import save_ply

    return save_ply(box_model, tmp_path_factory.mktemp("model") / "box.ply")


@pytest.fixture
def pose_and_K():
    """A ground-truth pose 2.4 units in front of a 96x96 camera, and its intrinsics."""
    from splat.pose.dataset import default_intrinsics, look_at_pose
    import numpy as np

    T = torch.from_numpy(look_at_pose(np.array([0.8, -0.6, 0.5]), 2.4, roll_deg=20.0))
    K = torch.from_numpy(default_intrinsics(96)).float()
    return T, K


@pytest.fixture
def scene_files(box_model, pose_and_K, tmp_path):
    """An image of the box model, its mask, the true pose as a pose file, and the intrinsics string."""
    import json

    import numpy as np

    from splat.io.images import save_png
    from splat.pose.refiner import render_model

    T, K = pose_and_K
    with torch.no_grad():
        rgb, alpha, _ = render_model(box_model, T, K, 96, 96)
    save_png(tmp_path / "image.png", (rgb + 0.5 * (1 - alpha)).numpy())
    save_png(tmp_path / "mask.png", np.repeat((alpha > 0.5).float().numpy(), 3, -1))
    (tmp_path / "init.json").write_text(json.dumps({"object_to_camera": T.tolist()}))
    intrinsics = f"{K[0, 0]:.6f},{K[1, 1]:.6f},{K[0, 2]:.6f},{K[1, 2]:.6f}"
    return tmp_path, intrinsics, T
