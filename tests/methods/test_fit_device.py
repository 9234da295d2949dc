"""Fits follow the device of the data: method state lives beside the Gaussians; on a GPU,
every registered method fits through gsplat and matches the cpu backend (``cuda`` tests)."""

import math

import pytest
import torch

from splat.core.gaussians import Gaussians
from splat.methods import available_methods, fit, get_method


def _state_tensors(state):
    tensors = [v for v in state.data.values() if torch.is_tensor(v)]
    return tensors + list(state.params.values())


def test_fit_runs_on_the_cpu_here_when_auto(tiny_scene):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: auto may pick it")
    result = fit(tiny_scene, method="3dgs", steps=3, eval_every=0, show_progress=False, device="auto")
    assert result.gaussians.device == torch.device("cpu")


def test_fit_refuses_a_device_it_cannot_use(tiny_scene):
    with pytest.raises(ValueError, match="backend='gsplat' needs device='cuda', got device='cpu'"):
        fit(tiny_scene, method="3dgs", steps=1, show_progress=False, backend="gsplat", device="cpu")


@pytest.mark.parametrize("name", ["3dgs", "turbo-gs", "ges", "object", "instantsplat"])
def test_density_control_state_lives_on_the_gaussians_device(tiny_scene, name):
    """The gradient accumulators are made where the Gaussians are ('meta' stands in for a GPU here)."""
    if name not in available_methods():
        pytest.skip(f"{name} is not registered")
    method = get_method(name)
    gaussians = Gaussians.from_points(tiny_scene.points, tiny_scene.point_colors, sh_degree=0).to("meta")
    state = method.init(tiny_scene, gaussians)
    tensors = _state_tensors(state)
    assert tensors and all(t.device.type == "meta" for t in tensors)


def test_density_control_accumulates_on_the_gaussians_device(tiny_scene):
    """One step of 3DGS statistics: accumulators keep the device and gather the projected gradients."""
    from splat.core.rasterization import rasterization
    from splat.methods.base import StepContext

    method = get_method("3dgs")
    gaussians = Gaussians.from_points(tiny_scene.points, tiny_scene.point_colors, sh_degree=0)
    state = method.init(tiny_scene, gaussians)
    cams = tiny_scene.cameras
    img, _, meta = rasterization(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                                 gaussians.sh, cams.viewmats[:1], cams.Ks[:1], cams.width, cams.height, sh_degree=0)
    img.sum().backward()
    ctx = StepContext(step=0, total_steps=10, scene=tiny_scene, gaussians=gaussians, optimizers={}, state=state,
                      camera_ids=[0], viewmats=cams.viewmats[:1], Ks=cams.Ks[:1], width=cams.width,
                      height=cams.height, gt_images=img.detach(), background=torch.zeros(1, 3), sh_degree=0,
                      extent=1.0, meta=meta)
    method._accumulate_gradients(ctx)
    visible = (meta["radii"][0] > 0).all(-1)
    assert state.data["count"].device == gaussians.device
    assert torch.equal(state.data["count"] > 0, visible) and state.data["grad2d"][visible].gt(0).any()


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize("name", available_methods())
def test_every_method_fits_through_gsplat_on_cuda_like_the_cpu_backend(tiny_scene, name):
    """A short fit on the GPU (gsplat) and on the CPU (compiled kernel) reach about the same PSNR."""
    from splat.core.backends import gsplat_backend
    from splat.core.rasterization import resolve_backend

    assert gsplat_backend.is_available(), gsplat_backend.unavailable_reason()
    assert resolve_backend("auto", torch.device("cuda")) == "gsplat"
    start = Gaussians.from_points(tiny_scene.points, tiny_scene.point_colors, sh_degree=3)
    results = {}
    for device, backend in (("cuda", "auto"), ("cpu", "cpu")):
        results[device] = fit(tiny_scene, method=name, steps=150, eval_every=0, show_progress=False,
                              gaussians=start.detached(), device=device, backend=backend, seed=0)
    gpu, cpu = results["cuda"], results["cpu"]
    assert gpu.gaussians.device.type == "cuda" and cpu.gaussians.device.type == "cpu"
    for r in (gpu, cpu):
        assert math.isfinite(r.metrics["psnr"]) and r.metrics["psnr"] > r.metrics["curve"][0]["psnr"] + 1.0
    # Same loop, same seed; only the rasterizer (and float reduction orders) differ.
    assert abs(gpu.metrics["psnr"] - cpu.metrics["psnr"]) < 1.5, (gpu.metrics["psnr"], cpu.metrics["psnr"])


@pytest.mark.cuda
def test_one_render_on_cuda_matches_the_cpu_backend(tiny_scene):
    """gsplat and the compiled CPU kernel draw the same image and the same means2d gradients."""
    from splat.core.rasterization import rasterization

    g = Gaussians.from_points(tiny_scene.points, tiny_scene.point_colors, sh_degree=1)
    cams = tiny_scene.cameras
    outs = {}
    for device, backend in (("cuda", "gsplat"), ("cpu", "cpu")):
        gd = g.detached().to(device)
        means = gd.means.detach().requires_grad_()
        img, alpha, meta = rasterization(means, gd.quats, gd.scales, gd.opacities, gd.sh,
                                         cams.viewmats[:2].to(device), cams.Ks[:2].to(device), cams.width,
                                         cams.height, sh_degree=1, backend=backend)
        (img.sum() + alpha.sum()).backward()
        outs[device] = (img.detach().cpu(), meta["means2d"].grad.cpu(), means.grad.cpu())
    (gi, gm, gg), (ci, cm, cg) = outs["cuda"], outs["cpu"]
    torch.testing.assert_close(gi, ci, atol=2e-3, rtol=0)
    torch.testing.assert_close(gm, cm, atol=1e-3 * cm.abs().max().item(), rtol=1e-2)
    torch.testing.assert_close(gg, cg, atol=1e-3 * cg.abs().max().item(), rtol=1e-2)
