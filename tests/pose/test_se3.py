import math

import pytest
import torch

from splat.pose.se3 import (
    adjoint, exp_se3, exp_so3, hat, inverse, log_se3, log_so3, perturb, rotation_error_deg, twist_matrix,
)


def _random_twists(n, max_angle=3.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    w = torch.nn.functional.normalize(xi[:, 3:], dim=-1)
    angle = torch.rand(n, 1, generator=gen, dtype=torch.float64) * max_angle
    return torch.cat([xi[:, :3], w * angle], dim=-1)


def test_exp_matches_matrix_exponential():
    xi = _random_twists(64)
    expected = torch.linalg.matrix_exp(twist_matrix(xi))
    torch.testing.assert_close(exp_se3(xi), expected, atol=1e-12, rtol=0)


def test_exp_matches_matrix_exponential_near_identity():
    xi = _random_twists(16, max_angle=1e-6) * torch.tensor([1e-5] * 3 + [1.0] * 3, dtype=torch.float64)
    torch.testing.assert_close(exp_se3(xi), torch.linalg.matrix_exp(twist_matrix(xi)), atol=1e-15, rtol=0)


def test_closed_forms_pure_translation_and_rotation_about_z():
    T = exp_se3(torch.tensor([1.0, -2.0, 0.5, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(T[:3, :3], torch.eye(3, dtype=torch.float64))
    assert T[:3, 3].tolist() == [1.0, -2.0, 0.5]
    th = 0.7
    R = exp_so3(torch.tensor([0.0, 0.0, th], dtype=torch.float64))
    Rz = torch.tensor([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]],
                      dtype=torch.float64)
    torch.testing.assert_close(R, Rz, atol=1e-15, rtol=0)
    # A screw motion: rotation by pi/2 about z with velocity along x gives t = V v in closed form.
    T = exp_se3(torch.tensor([1.0, 0, 0, 0, 0, math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(T[:3, 3], torch.tensor([2 / math.pi, 2 / math.pi, 0.0], dtype=torch.float64))


def test_log_inverts_exp_and_exp_inverts_log():
    xi = _random_twists(64, max_angle=3.1)
    torch.testing.assert_close(log_se3(exp_se3(xi)), xi, atol=1e-10, rtol=0)
    T = exp_se3(_random_twists(16, max_angle=math.pi, seed=3))
    torch.testing.assert_close(exp_se3(log_se3(T)), T, atol=1e-10, rtol=0)


def test_log_near_pi_and_identity():
    for angle in (math.pi - 1e-7, 1e-9, 0.0):
        w = torch.tensor([0.0, angle, 0.0], dtype=torch.float64)
        torch.testing.assert_close(log_so3(exp_so3(w)), w, atol=1e-7, rtol=0)


def test_group_properties():
    a, b = exp_se3(_random_twists(8, seed=1)), exp_se3(_random_twists(8, seed=2))
    eye = torch.eye(4, dtype=torch.float64).expand(8, 4, 4)
    torch.testing.assert_close(a @ inverse(a), eye, atol=1e-12, rtol=0)
    xi = _random_twists(8, seed=4)
    torch.testing.assert_close(a @ exp_se3(xi) @ inverse(a), exp_se3((adjoint(a) @ xi[..., None])[..., 0]),
                               atol=1e-10, rtol=0)
    w, u = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(hat(w) @ u, torch.linalg.cross(w, u))


def test_gradient_at_identity_is_the_generators():
    xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    J = torch.autograd.functional.jacobian(exp_se3, xi)  # [4, 4, 6]
    for k in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[k] = 1.0
        torch.testing.assert_close(J[..., k], twist_matrix(e))
    assert torch.autograd.gradcheck(exp_se3, (torch.randn(6, dtype=torch.float64, requires_grad=True),))


def test_perturb_has_exact_errors():
    T = exp_se3(_random_twists(1, seed=5))[0]
    P = perturb(T, 17.0, 0.25, torch.Generator().manual_seed(0))
    assert float(rotation_error_deg(P[:3, :3], T[:3, :3])) == pytest.approx(17.0, abs=1e-6)
    assert float((P[:3, 3] - T[:3, 3]).norm()) == pytest.approx(0.25)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"xi must be \[\.\.\., 6\]"):
        exp_se3(torch.zeros(5))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        log_se3([[1.0]])
