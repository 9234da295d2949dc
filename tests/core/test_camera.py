"""Camera type and convention conversions."""

import math

import pytest
import torch

from splat.core.camera import (
    Camera,
    c2w_to_w2c,
    intrinsics_matrix,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
    w2c_to_c2w,
)


def _random_rigid(n):
    q = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).view(n, 3, 3)
    T = torch.eye(4).repeat(n, 1, 1)
    T[:, :3, :3] = R
    T[:, :3, 3] = torch.randn(n, 3)
    return T


def test_inverse_round_trip():
    c2w = _random_rigid(5)
    w2c = c2w_to_w2c(c2w)
    assert torch.allclose(w2c @ c2w, torch.eye(4).expand(5, 4, 4), atol=1e-5)
    assert torch.allclose(w2c_to_c2w(w2c), c2w, atol=1e-5)


def test_opengl_opencv_round_trip_and_axes():
    c2w = _random_rigid(3)
    assert torch.allclose(opencv_to_opengl(opengl_to_opencv(c2w)), c2w)
    cv = opengl_to_opencv(c2w)
    # OpenGL looks down -z: that axis is OpenCV's +z.
    assert torch.allclose(cv[:, :3, 2], -c2w[:, :3, 2])
    assert torch.allclose(cv[:, :3, 1], -c2w[:, :3, 1])
    assert torch.allclose(cv[:, :3, 0], c2w[:, :3, 0])


def test_look_at_projects_target_to_principal_point():
    eye = torch.tensor([3.0, -2.0, 1.5])
    target = torch.tensor([0.2, 0.1, -0.3])
    w2c = look_at(eye, target)
    K = intrinsics_matrix(100.0, 100.0, 64.0, 48.0)
    p = w2c @ torch.cat([target, torch.ones(1)])
    assert p[2] > 0
    uv = (K @ p[:3]) / p[2]
    assert torch.allclose(uv[:2], torch.tensor([64.0, 48.0]), atol=1e-4)
    # world up (+z) appears upward in the image (smaller v)
    above = w2c @ torch.cat([target + torch.tensor([0, 0, 0.5]), torch.ones(1)])
    assert (K @ above[:3])[1] / above[2] < 48.0
    assert math.isclose(float(torch.linalg.det(w2c[:3, :3])), 1.0, rel_tol=1e-5)


def test_camera_indexing_and_centres():
    c2w = _random_rigid(4)
    cam = Camera(c2w_to_w2c(c2w), intrinsics_matrix(50, 50, 16, 16).repeat(4, 1, 1), 32, 32)
    assert len(cam) == 4 and len(cam[1]) == 1 and len(cam[1:3]) == 2
    assert torch.allclose(cam.centers, c2w[:, :3, 3], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(viewmats=torch.eye(4), Ks=torch.eye(3)[None], width=4, height=4), r"viewmats must be \[C, 4, 4\]"),
        (dict(viewmats=torch.eye(4)[None], Ks=torch.eye(3).repeat(2, 1, 1), width=4, height=4), r"Ks must be \[C, 3, 3\]"),
        (dict(viewmats=torch.eye(4)[None], Ks=torch.eye(3)[None], width=0, height=4), "must be positive"),
    ],
)
def test_camera_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Camera(**kwargs)
