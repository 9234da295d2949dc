"""Projection parity with gsplat's pure-torch reference and direct formulas."""

import math

import pytest
import torch

from raster_helpers import random_scene
from splat.core.projection import ALPHA_THRESHOLD, covariance_3d, project_gaussians, quat_to_rotmat

gsplat_torch = pytest.importorskip("gsplat.cuda._torch_impl")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("antialiased", [False, True])
def test_matches_gsplat_fully_fused_projection(seed, antialiased):
    # Spread wide so some Gaussians fall off screen or behind the cameras.
    scene, W, H = random_scene(n=300, n_cameras=3, width=64, height=48, seed=seed, spread=4.0, scale=0.4)
    s = scene
    ours = project_gaussians(s["means"], s["quats"], s["scales"], s["viewmats"], s["Ks"], W, H,
                             calc_compensations=antialiased)
    covars, _ = gsplat_torch._quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False)
    radii, means2d, depths, conics, comps = gsplat_torch._fully_fused_projection(
        s["means"], covars, s["viewmats"], s["Ks"], W, H, calc_compensations=antialiased)
    assert torch.equal(ours.radii, radii)
    visible = (radii > 0).all(-1)
    assert 0 < int(visible.sum()) < visible.numel()  # both kinds are present
    torch.testing.assert_close(ours.means2d[visible], means2d[visible], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.depths, depths)
    torch.testing.assert_close(ours.conics[visible], conics[visible], rtol=1e-4, atol=1e-6)
    if antialiased:
        torch.testing.assert_close(ours.compensations[visible], comps[visible], rtol=1e-5, atol=1e-6)
    else:
        assert ours.compensations is None


def test_axis_aligned_gaussian_direct_formula():
    z, f, s = 5.0, 80.0, 0.1
    K = torch.tensor([[[f, 0.0, 32.0], [0.0, f, 24.0], [0.0, 0.0, 1.0]]])
    p = project_gaussians(torch.tensor([[0.5, -0.25, z]]), torch.tensor([[2.0, 0.0, 0.0, 0.0]]),
                          torch.tensor([[s, 2 * s, 3 * s]]), torch.eye(4)[None], K, 64, 48,
                          calc_compensations=True)
    x, y = 0.5 / z, -0.25 / z
    # EWA: J = [[f/z, 0, -f x/z], [0, f/z, -f y/z]], Sigma = diag(s^2, 4s^2, 9s^2).
    J = torch.tensor([[f / z, 0, -f * x / z], [0, f / z, -f * y / z]])
    cov = J @ torch.diag(torch.tensor([s, 2 * s, 3 * s]) ** 2) @ J.T
    blurred = cov + 0.3 * torch.eye(2)
    inv = torch.linalg.inv(blurred)
    torch.testing.assert_close(p.means2d[0, 0], torch.tensor([f * x + 32, f * y + 24]))
    torch.testing.assert_close(p.conics[0, 0], torch.stack([inv[0, 0], inv[0, 1], inv[1, 1]]))
    torch.testing.assert_close(p.compensations[0, 0], torch.sqrt(torch.det(cov) / torch.det(blurred)))
    expected_radii = torch.ceil(3.33 * torch.sqrt(torch.diagonal(blurred))).int()
    assert p.radii[0, 0].tolist() == expected_radii.tolist()


def test_rotation_matrices_are_proper_and_scale_free():
    q = torch.randn(100, 4)
    R = quat_to_rotmat(q)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(100, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.det(R), torch.ones(100), atol=1e-5, rtol=0)
    torch.testing.assert_close(quat_to_rotmat(q * 3.7), R)
    cov = covariance_3d(q, torch.rand(100, 3))
    assert bool((torch.linalg.eigvalsh(cov) > -1e-6).all())


def test_near_and_far_planes_cull():
    K = torch.tensor([[[50.0, 0.0, 16.0], [0.0, 50.0, 16.0], [0.0, 0.0, 1.0]]])
    means = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 2.0], [0.0, 0.0, 20.0], [0.0, 0.0, -2.0]])
    p = project_gaussians(means, torch.tensor([[1.0, 0, 0, 0]]).expand(4, 4), torch.full((4, 3), 0.1),
                          torch.eye(4)[None], K, 32, 32, near_plane=1.0, far_plane=10.0)
    assert ((p.radii[0] > 0).all(-1)).tolist() == [False, True, False, False]
    assert bool(torch.isfinite(p.means2d).all())


def test_opacity_aware_radii_bound_the_visible_footprint():
    scene, W, H = random_scene(n=200, width=64, height=48, seed=3, scale=0.3)
    s = scene
    s["opacities"][:5] = 0.5 / 255  # too faint to ever reach the 1/255 threshold
    plain = project_gaussians(s["means"], s["quats"], s["scales"], s["viewmats"], s["Ks"], W, H)
    tight = project_gaussians(s["means"], s["quats"], s["scales"], s["viewmats"], s["Ks"], W, H,
                              opacities=s["opacities"])
    assert bool((tight.radii <= plain.radii).all())
    assert int((tight.radii[0, :5] > 0).sum()) == 0
    # Every point whose alpha reaches 1/255 lies inside the tightened box.
    g = torch.Generator().manual_seed(0)
    for n in torch.nonzero((tight.radii[0] > 0).all(-1)).flatten()[:50].tolist():
        a, b, c = tight.conics[0, n].tolist()
        offsets = (torch.rand(4000, 2, generator=g) * 2 - 1) * plain.radii[0, n] * 1.5
        sigma = 0.5 * (a * offsets[:, 0] ** 2 + c * offsets[:, 1] ** 2) + b * offsets[:, 0] * offsets[:, 1]
        reach = float(s["opacities"][n]) * torch.exp(-sigma) >= ALPHA_THRESHOLD
        inside = (offsets.abs() <= tight.radii[0, n]).all(-1)
        assert bool(inside[reach].all())


def test_gradients_reach_viewmats_through_projection():
    scene, W, H = random_scene(n=20, seed=4)
    viewmats = scene["viewmats"].clone().requires_grad_()
    p = project_gaussians(scene["means"], scene["quats"], scene["scales"], viewmats, scene["Ks"], W, H)
    (p.means2d.sum() + p.conics.sum() + p.depths.sum()).backward()
    assert float(viewmats.grad[:, :3, :].abs().sum()) > 0
    assert math.isfinite(float(viewmats.grad.sum()))


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(means=torch.zeros(4, 2)), ValueError, r"means must have shape \[N, 3\], got \[4, 2\]"),
        (dict(quats=torch.zeros(3, 4)), ValueError, r"quats must have shape \[N, 4\] with N=4 \(from means\), got \[3, 4\]"),
        (dict(scales=torch.zeros(4, 3, dtype=torch.int32)), TypeError, "scales must be a floating-point tensor, got dtype torch.int32"),
        (dict(viewmats=torch.zeros(4, 4)), ValueError, r"viewmats must have shape \[C, 4, 4\], got \[4, 4\]"),
        (dict(Ks=torch.zeros(2, 3, 3)), ValueError, r"Ks must have shape \[C, 3, 3\] with C=1 \(from viewmats\), got \[2, 3, 3\]"),
        (dict(opacities=torch.zeros(5)), ValueError, r"opacities must have shape \[N\] with N=4 \(from means\), got \[5\]"),
        (dict(width=0), ValueError, "width must be > 0, got 0"),
        (dict(height="8"), TypeError, "height must be an int, got str"),
    ],
)
def test_project_gaussians_invalid_arguments_raise(overrides, error, match):
    args = dict(means=torch.zeros(4, 3), quats=torch.zeros(4, 4), scales=torch.zeros(4, 3), viewmats=torch.eye(4)[None],
                Ks=torch.eye(3)[None], width=8, height=8)
    opacities = overrides.pop("opacities", None)
    args.update(overrides)
    with pytest.raises(error, match=match):
        project_gaussians(**args, opacities=opacities)
