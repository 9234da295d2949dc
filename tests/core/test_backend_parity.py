"""End-to-end parity of ``splat.rasterization``: the compiled ``cpu`` backend against the
pure-PyTorch ``torch`` specification, outputs and the gradients of every input."""

import math

import pytest
import torch

from splat.core.backends import cpu
from splat.core.camera import look_at
from splat.core.rasterization import rasterization

pytestmark = pytest.mark.skipif(not cpu.is_available(), reason=f"cpu backend unavailable: {cpu.unavailable_reason()}")

RENDER_MODES = ["RGB", "D", "ED", "RGB+D", "RGB+ED"]


def scene(seed: int, sh_degree: int, n: int = 160, width: int = 48, height: int = 40):
    """Two cameras around a cloud that also reaches behind them and past the image borders."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * 1.6
    means[: n // 10] *= 4.0  # far out: behind a camera or off-screen for some views
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.15 + 0.02
    opacities = torch.rand(n, generator=g) * 0.98 + 0.01
    K = (sh_degree + 1) ** 2
    colors = torch.randn(n, K, 3, generator=g) * 0.5
    viewmats = torch.stack([
        look_at(torch.tensor([3.0 * math.cos(a), 3.0 * math.sin(a), 0.8]), torch.zeros(3))
        for a in (0.4, 2.2)
    ])  # fmt: skip
    f = 1.1 * width
    Ks = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]).expand(2, 3, 3).contiguous()
    backgrounds = torch.rand(2, 3, generator=g)
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors, viewmats=viewmats,
                Ks=Ks, backgrounds=backgrounds, width=width, height=height)


GRAD_INPUTS = ("means", "quats", "scales", "opacities", "colors", "backgrounds", "viewmats")


def render(s: dict, backend: str, sh_degree: int, render_mode: str, rasterize_mode: str, absgrad: bool = False):
    leaves = {k: (v.clone().requires_grad_() if k in GRAD_INPUTS else v) for k, v in s.items()}
    img, alpha, meta = rasterization(**leaves, sh_degree=sh_degree, render_mode=render_mode,
                                     rasterize_mode=rasterize_mode, absgrad=absgrad, backend=backend)
    g = torch.Generator().manual_seed(123)
    loss = (img * torch.randn(img.shape, generator=g)).sum() + (alpha * torch.randn(alpha.shape, generator=g)).sum()
    grads = torch.autograd.grad(loss, [leaves[k] for k in GRAD_INPUTS], allow_unused=True)
    return img.detach(), alpha.detach(), meta, dict(zip(GRAD_INPUTS, grads))


def assert_grads_match(cg: dict, tg: dict, rtol: float):
    for k in GRAD_INPUTS:
        if tg[k] is None:
            assert cg[k] is None or not cg[k].any(), k
            continue
        scale = tg[k].abs().max().clamp(min=1e-6)
        err = ((cg[k] - tg[k]).abs().max() / scale).item()
        assert err < rtol, f"d/d{k}: max error {err:.2e} relative to max |grad| {scale:.3g}"


@pytest.mark.parametrize("rasterize_mode", ["classic", "antialiased"])
@pytest.mark.parametrize("sh_degree", [0, 3])
@pytest.mark.parametrize("render_mode", RENDER_MODES)
def test_cpu_matches_torch_backend(render_mode, sh_degree, rasterize_mode):
    seed = RENDER_MODES.index(render_mode) * 4 + sh_degree + (rasterize_mode == "antialiased")
    s = scene(seed, sh_degree)
    ci, ca, cmeta, cg = render(s, "cpu", sh_degree, render_mode, rasterize_mode)
    ti, ta, tmeta, tg = render(s, "torch", sh_degree, render_mode, rasterize_mode)
    assert cmeta["backend"] == "cpu" and tmeta["backend"] == "torch"
    # The scene exercises culling: some Gaussians are behind a camera or off-screen.
    assert (cmeta["radii"] <= 0).any(-1).any() and (cmeta["radii"] > 0).all(-1).any()
    assert ca.max() > 0.5 and ca.min() < 0.05
    # Colours and (expected) depths; ED divides by alpha, so compare it where alpha is not tiny.
    if render_mode.endswith("ED"):
        solid = ta[..., 0] > 1e-3
        torch.testing.assert_close(ci[..., :-1], ti[..., :-1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ci[..., -1][solid], ti[..., -1][solid], rtol=1e-4, atol=1e-4)
    else:
        torch.testing.assert_close(ci, ti, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ca, ta, rtol=1e-5, atol=1e-6)
    assert_grads_match(cg, tg, 5e-4 if render_mode.endswith("ED") else 2e-4)


def test_absgrad_and_means2d_grad_match_through_rasterization():
    s = scene(21, 3)
    outs = {}
    for backend in ("cpu", "torch"):
        leaves = {k: (v.clone().requires_grad_() if k in GRAD_INPUTS else v) for k, v in s.items()}
        img, alpha, meta = rasterization(**leaves, sh_degree=3, absgrad=True, backend=backend)
        (img.square().sum() + alpha.sum()).backward()
        outs[backend] = (meta["means2d"].grad, meta["means2d"].absgrad)
    (cg, ca), (tg, ta) = outs["cpu"], outs["torch"]
    assert ca.shape == (2, 160, 2) and ta.abs().sum() > 0
    torch.testing.assert_close(cg, tg, rtol=1e-4, atol=1e-4 * tg.abs().max().item())
    torch.testing.assert_close(ca, ta, rtol=1e-4, atol=1e-4 * ta.abs().max().item())
    assert (ca >= cg.abs() - 1e-4).all()


def test_fresh_scenes_with_many_gaussians_agree():
    for seed in (100, 101):
        s = scene(seed, 0, n=400, width=56, height=44)
        ci, ca, _, cg = render(s, "cpu", 0, "RGB", "classic")
        ti, ta, _, tg = render(s, "torch", 0, "RGB", "classic")
        torch.testing.assert_close(ci, ti, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ca, ta, rtol=1e-5, atol=1e-6)
        assert_grads_match(cg, tg, 5e-4)
