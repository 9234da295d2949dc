"""The SH environment behind the Gaussians (``splat.core.environment``): ray directions,
colours and compositing (renders with an environment: ``tests/test_render.py``)."""

import math

import torch

from splat.core.camera import look_at
from splat.core.environment import environment_colors, over_environment, pixel_directions
from splat.core.sh import SH_C0, spherical_harmonics


def _camera(eye=(3.0, 0.5, 1.0), target=(0.0, 0.0, 0.0), size=16):
    viewmat = look_at(torch.tensor(eye), torch.tensor(target))[None]
    K = torch.tensor([[[20.0, 0, size / 2], [0, 20.0, size / 2], [0, 0, 1]]])
    return viewmat, K


def _uniform(degree, color):
    coeffs = torch.zeros((degree + 1) ** 2, 3)
    coeffs[0] = (torch.tensor(color) - 0.5) / SH_C0
    return coeffs


def test_pixel_directions_are_unit_rays_through_the_pixels():
    viewmat, K = _camera()
    dirs = pixel_directions(viewmat, K, 16, 16)  # [1, 16, 16, 3]
    assert dirs.shape == (1, 16, 16, 3)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(1, 16, 16))
    # a point along each ray projects back onto its pixel centre
    c2w = torch.linalg.inv(viewmat[0])
    points = c2w[:3, 3] + 2.5 * dirs[0]  # [16, 16, 3]
    cam = points @ viewmat[0, :3, :3].T + viewmat[0, :3, 3]
    uv = (cam[..., :2] / cam[..., 2:]) * 20.0 + 8.0
    v, u = torch.meshgrid(torch.arange(16.0) + 0.5, torch.arange(16.0) + 0.5, indexing="ij")
    torch.testing.assert_close(uv, torch.stack([u, v], dim=-1), atol=1e-4, rtol=0)


def test_uniform_environment_and_compositing():
    viewmat, K = _camera()
    coeffs = _uniform(2, (0.2, 0.6, 0.9))
    dirs = pixel_directions(viewmat, K, 16, 16)
    torch.testing.assert_close(environment_colors(coeffs, dirs, 2), torch.tensor([0.2, 0.6, 0.9]).expand(1, 16, 16, 3))
    render = torch.full((1, 16, 16, 3), 0.25)
    alphas = torch.full((1, 16, 16, 1), 0.5)
    out = over_environment(render, alphas, coeffs, 2, viewmat, K)
    torch.testing.assert_close(out, 0.25 + 0.5 * torch.tensor([0.2, 0.6, 0.9]).expand(1, 16, 16, 3))


def test_environment_colours_are_clamped_at_zero_not_one():
    dirs = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    coeffs = 4.0 * torch.randn(9, 3)
    col = environment_colors(coeffs, dirs, 2)
    raw = spherical_harmonics(2, dirs, coeffs) + 0.5
    assert bool((raw < 0).any()) and bool((raw > 1).any())
    assert torch.equal(col, raw.clamp_min(0.0))


def test_an_elevation_gradient_sky_is_recovered_from_views():
    """Coefficients fitted to several views of a sky that brightens upwards predict an unseen view."""
    cams = [_camera(eye=(3 * math.cos(a), 3 * math.sin(a), 0.5)) for a in (0.0, 1.5, 3.0, 4.5)]
    held_out = _camera(eye=(3 * math.cos(2.2), 3 * math.sin(2.2), 1.5))

    def sky(viewmat, K):
        z = pixel_directions(viewmat, K, 16, 16)[..., 2:]
        return torch.cat([0.3 + 0.4 * z, 0.5 + 0.3 * z, 0.9 - 0.1 * z], dim=-1).clamp(0, 1)

    coeffs = torch.nn.Parameter(_uniform(2, (0.5, 0.5, 0.5)))
    opt = torch.optim.Adam([coeffs], lr=0.05)
    empty = torch.zeros(1, 16, 16, 3), torch.zeros(1, 16, 16, 1)
    for step in range(300):
        vm, K = cams[step % len(cams)]
        loss = (over_environment(*empty, coeffs, 2, vm, K) - sky(vm, K)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = (over_environment(*empty, coeffs, 2, *held_out) - sky(*held_out)).abs().mean()
    assert float(err) < 0.02


def test_the_methods_module_re_exports_the_same_functions():
    from splat.methods import background

    assert background.over_environment is over_environment
    assert background.environment_colors is environment_colors
    assert background.pixel_directions is pixel_directions
