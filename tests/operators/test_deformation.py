"""Motion fields of moving points: kNN interpolation plans, local deformation gradients and the
locally affine motion they carry (operators.deformation)."""

import pytest
import torch

from operators.deformation import (deformation_gradients, gradient_plan, interpolate_motion, interpolation_plan,
                                   local_deformation_gradients)


def test_local_gradients_and_interpolation_reproduce_an_affine_motion():
    gen = torch.Generator().manual_seed(3)
    X = torch.rand(300, 3, generator=gen, dtype=torch.float64)
    A = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, generator=gen, dtype=torch.float64)
    b = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    x = X @ A.T + b
    F = local_deformation_gradients(X, x)
    assert torch.allclose(F, A.expand_as(F), atol=1e-8)
    Y = torch.rand(500, 3, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    y, Fy = interpolate_motion(interpolation_plan(X, Y), x, F)
    assert torch.allclose(y.double(), Y @ A.T + b, atol=1e-5)
    assert torch.allclose(Fy.double(), A.expand_as(Fy), atol=1e-5)


def test_rotation_is_carried_exactly_beyond_the_points():
    gen = torch.Generator().manual_seed(4)
    X = torch.rand(200, 3, generator=gen, dtype=torch.float64)
    c, s = torch.cos(torch.tensor(0.7, dtype=torch.float64)), torch.sin(torch.tensor(0.7, dtype=torch.float64))
    R = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
    x = X @ R.T
    Y = torch.rand(100, 3, generator=gen, dtype=torch.float64) * 1.4 - 0.2  # partly outside the points' hull
    y, _ = interpolate_motion(interpolation_plan(X, Y), x, local_deformation_gradients(X, x))
    assert torch.allclose(y.double(), Y @ R.T, atol=1e-5)


def test_bad_point_sets_are_refused():
    with pytest.raises(ValueError, match="source must be"):
        interpolation_plan(torch.rand(5, 2), torch.rand(3, 3))
    with pytest.raises(ValueError, match="NaN"):
        interpolation_plan(torch.rand(5, 3), torch.tensor([[float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 4 points"):
        local_deformation_gradients(torch.rand(3, 3), torch.rand(3, 3))
    with pytest.raises(ValueError, match="current must be"):
        local_deformation_gradients(torch.rand(10, 3), torch.rand(9, 3))


def test_a_gradient_plan_serves_every_motion_of_its_reference():
    gen = torch.Generator().manual_seed(5)
    X = torch.rand(150, 3, generator=gen, dtype=torch.float64)
    plan = gradient_plan(X)
    for scale in (0.1, 0.4):
        x = X + scale * torch.sin(3 * X)
        assert torch.allclose(deformation_gradients(plan, x), local_deformation_gradients(X, x))
    # of a displacement field, the gradients are F - I
    u = 0.2 * X[:, [1, 2, 0]]
    grad_u = deformation_gradients(plan, u)
    assert torch.allclose(grad_u + torch.eye(3, dtype=torch.float64), deformation_gradients(plan, X + u))
    with pytest.raises(ValueError, match="current must be"):
        deformation_gradients(plan, X[:10])
