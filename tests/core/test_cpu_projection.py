"""The compiled projection + SH kernel (``cpu.project``) against the PyTorch specification.

Outputs and the gradient of every input (means, quats, scales, opacities, SH
coefficients, viewmats, Ks) are compared with ``project_gaussians`` and the SH
colours of ``rasterization``'s torch path, on scenes with Gaussians behind the
cameras, at the near plane and far off screen (clamped Jacobian). A float32
finite-difference check guards against a shared mistake in both, and the
kernel must be deterministic across thread counts.
"""

import math

import pytest
import torch

from splat.core.backends import cpu, torch_backend
from splat.core.camera import look_at
from splat.core.projection import project_gaussians
from splat.core.rasterization import _gaussian_colors, rasterization

pytestmark = pytest.mark.skipif(not cpu.is_available(), reason=f"cpu backend unavailable: {cpu.unavailable_reason()}")

GRAD_INPUTS = ("means", "quats", "scales", "opacities", "coeffs", "viewmats", "Ks")
OUTPUTS = ("means2d", "depths", "conics", "view_opacities", "colors")


def scene(seed: int, sh_degree, per_camera: bool = False, n: int = 300, width: int = 64, height: int = 48):
    """Three cameras around a cloud; a tenth of it far out (behind cameras, off screen)."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * 1.5
    means[: n // 10] *= 5.0
    means[n // 10] = torch.tensor([0.0, 0.0, 0.0])  # at the centre
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.2 + 0.01
    opacities = torch.rand(n, generator=g) * 0.99 + 0.005
    C = 3
    viewmats = torch.stack([
        look_at(torch.tensor([3.0 * math.cos(a), 3.0 * math.sin(a), 0.7]), torch.zeros(3)) for a in (0.3, 2.0, 4.1)
    ])  # fmt: skip
    viewmats[2, :3, 3] += torch.tensor([0.0, 0.0, -2.9])  # a camera inside the cloud: Gaussians behind it
    f = torch.tensor([1.1, 0.9, 1.3]) * width
    Ks = torch.zeros(C, 3, 3)
    Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 2, 2] = f, f * 1.05, 1.0
    Ks[:, 0, 2], Ks[:, 1, 2] = width / 2 + 1.5, height / 2 - 2.0
    coeffs = None
    if sh_degree is not None:
        K = (sh_degree + 1) ** 2 + 2  # more bases than the active degree uses
        coeffs = torch.randn(*((C,) if per_camera else ()), n, K, 3, generator=g) * 0.4
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, coeffs=coeffs, viewmats=viewmats,
                Ks=Ks), width, height


def reference(s, width, height, sh_degree, antialiased, tile_size=16, **planes):
    """The specification: torch projection, SH colours and tile counts."""
    radii, means2d, depths, conics, comp = project_gaussians(
        s["means"], s["quats"], s["scales"], s["viewmats"], s["Ks"], width, height,
        opacities=s["opacities"], calc_compensations=antialiased, **planes,
    )  # fmt: skip
    C, N = depths.shape
    view_opac = s["opacities"].expand(C, N) * (comp if comp is not None else 1.0)
    colors = _gaussian_colors(s["coeffs"], s["means"], s["viewmats"], sh_degree) if sh_degree is not None else None
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    lo, hi = torch_backend.tile_bounds(means2d, radii, tile_size, tw, th)
    tiles = ((hi - lo).clamp(min=0).prod(-1) * (radii > 0).all(-1)).to(torch.int32)
    return dict(radii=radii, means2d=means2d, depths=depths, conics=conics, view_opacities=view_opac,
                colors=colors, tiles=tiles)


def compiled(s, width, height, sh_degree, antialiased, tile_size=16, near_plane=0.01, far_plane=1e10,
             radius_clip=0.0):
    radii, means2d, depths, conics, view_opac, colors, tiles = cpu.project(
        s["means"], s["quats"], s["scales"], s["opacities"], s["coeffs"], s["viewmats"], s["Ks"], width, height,
        tile_size=tile_size, eps2d=0.3, near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
        antialiased=antialiased, sh_degree=sh_degree,
    )  # fmt: skip
    return dict(radii=radii, means2d=means2d, depths=depths, conics=conics, view_opacities=view_opac,
                colors=colors, tiles=tiles)


def outputs_and_grads(fn, s, *args, **kwargs):
    leaves = {k: (v.clone().requires_grad_() if v is not None else None) for k, v in s.items()}
    out = fn(leaves, *args, **kwargs)
    g = torch.Generator().manual_seed(7)
    loss = sum((out[k] * torch.randn(out[k].shape, generator=g)).sum() for k in OUTPUTS if out[k] is not None)
    keys = [k for k in GRAD_INPUTS if leaves[k] is not None]
    grads = torch.autograd.grad(loss, [leaves[k] for k in keys])
    return {k: v.detach() if torch.is_tensor(v) else v for k, v in out.items()}, dict(zip(keys, grads))


@pytest.mark.parametrize(
    "sh_degree, per_camera, antialiased",
    [(None, False, False), (0, False, False), (1, True, True), (2, False, True), (3, False, False), (3, True, True)],
)
def test_outputs_and_every_gradient_match_the_specification(sh_degree, per_camera, antialiased):
    s, W, H = scene(10 + (sh_degree or 0) + 5 * per_camera, sh_degree, per_camera)
    got, got_g = outputs_and_grads(compiled, s, W, H, sh_degree, antialiased)
    ref, ref_g = outputs_and_grads(reference, s, W, H, sh_degree, antialiased)
    # The scene exercises culling by depth and by the image border, and visible Gaussians.
    visible = (ref["radii"] > 0).all(-1)
    assert visible.float().mean() > 0.3 and (ref["depths"] < 0.01).any() and (~visible).sum() > 20
    assert (got["radii"] != ref["radii"]).sum() <= 2, "integer radii differ beyond float rounding at ceil edges"
    same = (got["radii"] == ref["radii"]).all(-1)
    assert torch.equal(got["tiles"][same], ref["tiles"][same])
    for k in OUTPUTS:
        if ref[k] is None:
            assert got[k] is None
            continue
        torch.testing.assert_close(got[k], ref[k], rtol=2e-5, atol=1e-5 * ref[k].abs().max().item(), msg=k)
    for k, r in ref_g.items():
        scale = r.abs().max().clamp(min=1e-6)
        err = ((got_g[k] - r).abs().max() / scale).item()
        assert err < 2e-4, f"d/d{k}: max error {err:.2e} relative to max |grad| {scale:.3g}"
        assert r.abs().max() > 0, f"d/d{k} is zero: the test would not see a wrong gradient"


def test_near_far_and_radius_clip_cull_as_the_specification():
    s, W, H = scene(3, 1)
    planes = dict(near_plane=2.5, far_plane=4.0, radius_clip=2.0)
    got = compiled(s, W, H, 1, False, **planes)
    ref = reference(s, W, H, 1, False, **planes)
    assert (ref["radii"] > 0).all(-1).sum() > 10 and (ref["radii"] == 0).all(-1).sum() > 100
    assert (got["radii"] != ref["radii"]).sum() <= 2


def test_gradients_match_float32_finite_differences():
    """Central differences on a smooth loss of every output, along random directions."""
    s, W, H = scene(4, 3, n=40)
    s["means"][:, 2] *= 0.3  # keep everything in front of the first two cameras
    s["coeffs"][:, 0] += 3.0  # colours well above the clamp at 0, where the loss has a kink
    for k in ("viewmats", "Ks"):
        s[k] = s[k][:2].contiguous()

    def loss_of(params):
        out = compiled(params, W, H, 3, True)
        g = torch.Generator().manual_seed(3)
        return sum((out[k].double() * torch.randn(out[k].shape, generator=g, dtype=torch.float64)).sum()
                   for k in OUTPUTS)

    leaves = {k: v.clone().requires_grad_() for k, v in s.items()}
    grads = dict(zip(GRAD_INPUTS, torch.autograd.grad(loss_of(leaves), [leaves[k] for k in GRAD_INPUTS])))
    g = torch.Generator().manual_seed(5)
    for k in GRAD_INPUTS:
        direction = torch.randn(s[k].shape, generator=g)
        if k == "Ks":  # only fx, fy, cx, cy enter the projection
            direction = direction * torch.tensor([[1.0, 0, 1], [0, 1, 1], [0, 0, 0]])
        eps = 1e-3 * s[k].abs().max().item()
        with torch.no_grad():
            plus = loss_of(dict(s, **{k: s[k] + eps * direction}))
            minus = loss_of(dict(s, **{k: s[k] - eps * direction}))
        numeric = ((plus - minus) / (2 * eps)).item()
        analytic = (grads[k].double() * direction.double()).sum().item()
        assert abs(numeric - analytic) <= 2e-2 * max(abs(analytic), 1e-3), f"{k}: {numeric} vs {analytic}"


def test_outputs_and_gradients_are_bitwise_deterministic_across_thread_counts():
    s, W, H = scene(8, 3, n=2000)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 2):
            torch.set_num_threads(threads)
            results.append(outputs_and_grads(compiled, s, W, H, 3, True))
    finally:
        torch.set_num_threads(before)
    (o1, g1), *rest = results
    for o, g in rest:
        for k in o1:
            assert torch.equal(o[k], o1[k]), k
        for k in g1:
            assert torch.equal(g[k], g1[k]), k


def test_ks_gradients_match_through_rasterization():
    s, W, H = scene(12, 2)
    args = dict(means=s["means"], quats=s["quats"], scales=s["scales"], opacities=s["opacities"],
                colors=s["coeffs"], viewmats=s["viewmats"])
    grads = {}
    for backend in ("cpu", "torch"):
        Ks = s["Ks"].clone().requires_grad_()
        img, alpha, _ = rasterization(**args, Ks=Ks, width=W, height=H, sh_degree=2, backend=backend)
        (img.square().sum() + alpha.sum()).backward()
        grads[backend] = Ks.grad
    assert grads["torch"].abs().max() > 0
    torch.testing.assert_close(grads["cpu"], grads["torch"], rtol=1e-3, atol=1e-3 * grads["torch"].abs().max().item())
