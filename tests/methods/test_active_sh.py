"""3DGS renders with only the active SH coefficients: same images and gradients as with all of them."""

import torch

from splat.core.gaussians import Gaussians
from splat.core.rasterization import rasterization
from splat.methods import get_method
from splat.methods.base import Method, StepContext
from splat.methods.fit import _make_optimizers


def _ctx(method, g, sh_degree):
    state = method.init(None, g)
    f = 40.0
    return StepContext(
        step=0, total_steps=10, scene=None, gaussians=g, optimizers=_make_optimizers(method, g, state), state=state,
        camera_ids=[0], viewmats=torch.eye(4)[None], Ks=torch.tensor([[[f, 0, 24.0], [0, f, 16.0], [0, 0, 1]]]),
        width=48, height=32, gt_images=torch.zeros(1, 32, 48, 3), background=torch.full((1, 3), 0.3),
        sh_degree=sh_degree, extent=1.0,
    )


def _gaussians():
    gen = torch.Generator().manual_seed(0)
    pts = torch.stack([torch.rand(60, generator=gen) - 0.5, torch.rand(60, generator=gen) - 0.5,
                       2 + torch.rand(60, generator=gen)], -1)
    g = Gaussians.from_points(pts, torch.rand(60, 3, generator=gen), sh_degree=3, init_opacity=0.6)
    with torch.no_grad():
        g.params["shN"].copy_(0.3 * torch.randn(g.params["shN"].shape, generator=gen))
    return g


def _render_and_grads(inputs, g):
    img, _, _ = rasterization(**inputs, backend="cpu")
    (img * torch.linspace(0, 1, img.numel()).reshape(img.shape)).sum().backward()
    grads = {k: g.params[k].grad.clone() for k in ("sh0", "shN", "means")}
    for p in g.params.values():
        p.grad = None
    return img.detach(), grads


def test_active_coefficients_only_and_identical_results():
    method = get_method("3dgs")
    for degree in range(4):
        g = _gaussians()
        ctx = _ctx(method, g, degree)
        inputs = method.render_inputs(ctx)
        base = Method.render_inputs(method, ctx)
        assert set(inputs) - {"absgrad"} == set(base)
        assert inputs["colors"].shape == (60, (degree + 1) ** 2, 3)
        img, grads = _render_and_grads(inputs, g)
        full = dict(method.render_inputs(ctx), colors=g.sh)  # all 16 coefficients, everything else the same
        img_all, grads_all = _render_and_grads(full, g)
        torch.testing.assert_close(img, img_all, atol=0, rtol=0)
        for name in grads:
            torch.testing.assert_close(grads[name], grads_all[name], atol=0, rtol=0)
        assert grads["shN"].shape == (60, 15, 3)  # shN takes part even at degree 0 (zero gradient there)
        assert bool((grads["shN"][:, (degree + 1) ** 2 - 1:] == 0).all())
