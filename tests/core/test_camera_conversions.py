"""Camera convention helpers: fov/focal, quaternions, projection, OpenGL/OpenCV round trips."""

import math

import pytest
import torch

from splat.core.camera import (
    c2w_to_w2c,
    focal_to_fov,
    fov_to_focal,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
    project_points,
    quat_to_rotmat,
    rotmat_to_quat,
)


def test_fov_focal_round_trip():
    assert fov_to_focal(math.pi / 2, 200.0) == pytest.approx(100.0)
    assert focal_to_fov(fov_to_focal(0.69, 800.0), 800.0) == pytest.approx(0.69)
    t = fov_to_focal(torch.tensor([0.5, 1.0]), 64.0)
    torch.testing.assert_close(focal_to_fov(t, 64.0), torch.tensor([0.5, 1.0]))


def test_quaternion_round_trip_and_orthonormality():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(200, 4, dtype=torch.float64), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    R = quat_to_rotmat(q)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(200, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=torch.float64))
    torch.testing.assert_close(rotmat_to_quat(R), q)
    # 180-degree rotations (trace -1) are the numerically hard case.
    flips = torch.diag_embed(torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64))
    torch.testing.assert_close(quat_to_rotmat(rotmat_to_quat(flips)), flips)


def test_known_quaternion():
    # 90 degrees about z: x -> y.
    q = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
    torch.testing.assert_close(quat_to_rotmat(q) @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))


def test_opengl_opencv_round_trip_and_projection():
    torch.manual_seed(0)
    w2c = look_at(torch.tensor([3.0, -2.0, 1.5]), torch.zeros(3))
    c2w_cv = c2w_to_w2c(w2c)
    c2w_gl = opencv_to_opengl(c2w_cv)
    torch.testing.assert_close(opengl_to_opencv(c2w_gl), c2w_cv)
    # In OpenGL the camera looks down its -z axis: the target is in front along -z.
    target_cam_gl = c2w_to_w2c(c2w_gl) @ torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert target_cam_gl[2] < 0 and abs(target_cam_gl[0]) < 1e-6 and abs(target_cam_gl[1]) < 1e-6
    K = torch.tensor([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    uv, depth = project_points(torch.zeros(1, 3), w2c[None], K[None])
    torch.testing.assert_close(uv[0, 0], torch.tensor([32.0, 24.0]))
    assert depth.item() == pytest.approx(math.sqrt(9 + 4 + 2.25), rel=1e-6)
    # World up (+z) appears above the target: smaller row index.
    uv_up, _ = project_points(torch.tensor([[0.0, 0.0, 0.5]]), w2c[None], K[None])
    assert uv_up[0, 0, 1] < 24.0
