"""Training-loop integration: gsplat's DefaultStrategy densifies on our meta; camera poses optimise."""

import sys

import pytest
import torch

from raster_helpers import random_scene
from splat.core.rasterization import rasterization

strategy_module = pytest.importorskip("gsplat.strategy")


def _cpu_available() -> bool:
    module, _ = sys.modules["splat.core.rasterization"]._load_cpu_backend()
    return module is not None


BACKENDS = ["torch", pytest.param("cpu", marks=pytest.mark.skipif(not _cpu_available(), reason="cpu backend unavailable"))]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_default_strategy_densifies_from_our_meta(backend):
    target_scene, W, H = random_scene(n=60, n_cameras=2, width=32, height=32, seed=0, scale=0.1)
    with torch.no_grad():
        target = rasterization(**target_scene, width=W, height=H, backend=backend)[0]
    init, _, _ = random_scene(n=8, seed=1, scale=0.3)
    params = torch.nn.ParameterDict({
        "means": init["means"], "scales": torch.log(init["scales"]), "quats": init["quats"],
        "opacities": torch.logit(init["opacities"]), "colors": init["colors"],
    })
    optimizers = {k: torch.optim.Adam([p], lr=0.01) for k, p in params.items()}
    strategy = strategy_module.DefaultStrategy(
        refine_start_iter=0, refine_every=4, grow_grad2d=1e-6, reset_every=10_000, prune_opa=1e-4
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    n_start, losses = len(params["means"]), []
    for step in range(13):
        img, _, meta = rasterization(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
            params["colors"], target_scene["viewmats"], target_scene["Ks"], W, H, backend=backend,
        )
        strategy.step_pre_backward(params, optimizers, state, step, meta)
        loss = (img - target).abs().mean()
        loss.backward()
        losses.append(loss.item())
        strategy.step_post_backward(params, optimizers, state, step, meta, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
    assert len(params["means"]) > 2 * n_start
    assert all(len(p) == len(params["means"]) for p in params.values())
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_viewmat_gradients_recover_a_perturbed_camera():
    backend = "cpu" if _cpu_available() else "torch"
    scene, W, H = random_scene(n=60, width=32, height=32, seed=2, spread=1.2, scale=0.12)
    scene["opacities"] = torch.full_like(scene["opacities"], 0.9)
    gauss = {k: scene[k] for k in ("means", "quats", "scales", "opacities", "colors")}
    true_view = scene["viewmats"]
    with torch.no_grad():
        target = rasterization(**gauss, viewmats=true_view, Ks=scene["Ks"], width=W, height=H, backend=backend)[0]
    offset = torch.tensor([0.12, -0.1, 0.15])
    start = true_view.clone()
    start[0, :3, 3] += offset
    delta = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=0.03)
    decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.93)
    for _ in range(40):
        viewmats = torch.cat([start[:, :3, :3], (start[:, :3, 3] + delta)[..., None]], -1)
        viewmats = torch.cat([viewmats, start[:, 3:, :]], 1)
        img = rasterization(**gauss, viewmats=viewmats, Ks=scene["Ks"], width=W, height=H, backend=backend)[0]
        loss = ((img - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    error_before = float(offset.norm())
    error_after = float((offset + delta.detach()).norm())
    assert error_after < error_before / 10
