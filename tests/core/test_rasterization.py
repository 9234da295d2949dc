"""Rasterizer behaviour: reference parity, hand-computed pixels, modes, cameras, culling, gradients."""

import math
import sys
import warnings

import pytest
import torch

from raster_helpers import random_scene, reference_composite
from splat.core.backends import torch_backend
from splat.core.projection import project_gaussians
from splat.core.rasterization import rasterization, resolve_backend

raster_module = sys.modules["splat.core.rasterization"]


def _cpu_available() -> bool:
    module, _ = raster_module._load_cpu_backend()
    return module is not None


BACKENDS = ["torch", pytest.param("cpu", marks=pytest.mark.skipif(not _cpu_available(), reason="cpu backend unavailable"))]


def _render(scene, width, height, **kwargs):
    return rasterization(**scene, width=width, height=height, **kwargs)


@pytest.mark.parametrize("opaque", [False, True])
def test_torch_composite_matches_per_pixel_reference(opaque):
    scene, W, H = random_scene(n=30, n_cameras=2, width=21, height=18, seed=1, scale=0.3 if opaque else 0.15)
    if opaque:  # dense, nearly opaque layers exercise the 1e-4 transmittance stop
        scene["opacities"] = torch.full_like(scene["opacities"], 0.99)
        scene["means"] = scene["means"] * 0.3
    p = project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], W, H)
    colors = scene["colors"].expand(2, -1, -1)
    opacities = scene["opacities"].expand(2, -1)
    bg = torch.rand(2, 3)
    got_c, got_a = torch_backend.composite(p.means2d, p.conics, colors, opacities, p.depths, p.radii, W, H, 8, bg)
    ref_c, ref_a = reference_composite(p.means2d, p.conics, colors, opacities, p.depths, p.radii, W, H, 8, bg)
    assert got_c.shape == (2, H, W, 3) and got_a.shape == (2, H, W, 1)
    torch.testing.assert_close(got_c.double(), ref_c, atol=2e-5, rtol=0)
    torch.testing.assert_close(got_a.double(), ref_a, atol=2e-5, rtol=0)
    if opaque:
        assert float(ref_a.max()) > 0.999  # the stop rule was reached somewhere


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_gaussian_pixel_value_by_hand(backend):
    z, f, s, op = 4.0, 40.0, 0.05, 0.7
    W, H = 32, 24
    means = torch.tensor([[0.0, 0.0, z]])
    Ks = torch.tensor([[[f, 0.0, 15.5], [0.0, f, 11.5], [0.0, 0.0, 1.0]]])
    color, bg = torch.tensor([[0.9, 0.2, 0.4]]), torch.tensor([[0.1, 0.3, 0.5]])
    img, alpha, meta = rasterization(
        means, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.full((1, 3), s), torch.tensor([op]), color,
        torch.eye(4)[None], Ks, W, H, backgrounds=bg, backend=backend,
    )
    var = (f * s / z) ** 2 + 0.3  # projected variance plus eps2d
    for x, y in [(15, 11), (17, 12), (14, 9)]:
        d2 = (x + 0.5 - 15.5) ** 2 + (y + 0.5 - 11.5) ** 2
        a = op * math.exp(-0.5 * d2 / var)
        expected = a * color[0] + (1 - a) * bg[0]
        torch.testing.assert_close(img[0, y, x], expected, atol=1e-5, rtol=0)
        assert alpha[0, y, x, 0].item() == pytest.approx(a, abs=1e-6)
    assert meta["radii"][0, 0].tolist() == [math.ceil(math.sqrt(2 * math.log(op * 255)) * math.sqrt(var))] * 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_modes_shapes_and_depth_channels(backend):
    scene, W, H = random_scene(n=50, n_cameras=2, seed=2)
    rgb, alpha, _ = _render(scene, W, H, backend=backend)
    outputs = {m: _render(scene, W, H, render_mode=m, backend=backend)[0] for m in ("D", "ED", "RGB+D", "RGB+ED")}
    assert rgb.shape == (2, H, W, 3) and alpha.shape == (2, H, W, 1)
    assert outputs["D"].shape == outputs["ED"].shape == (2, H, W, 1)
    assert outputs["RGB+D"].shape == outputs["RGB+ED"].shape == (2, H, W, 4)
    torch.testing.assert_close(outputs["RGB+D"][..., :3], rgb)
    torch.testing.assert_close(outputs["RGB+D"][..., 3:], outputs["D"])
    torch.testing.assert_close(outputs["ED"], outputs["D"] / alpha.clamp(min=1e-10))
    torch.testing.assert_close(outputs["RGB+ED"][..., 3:], outputs["ED"])
    # The expected depth lies between the nearest and farthest camera-space depth.
    covered = alpha[..., 0] > 0.5
    _, _, meta = _render(scene, W, H, backend=backend)
    ed = outputs["ED"][..., 0][covered]
    assert float(ed.min()) >= float(meta["depths"].min()) - 1e-4
    assert float(ed.max()) <= float(meta["depths"].max()) + 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_backgrounds_fill_the_transmittance(backend):
    scene, W, H = random_scene(n=30, n_cameras=2, seed=3)
    bg = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]])
    plain, alpha, _ = _render(scene, W, H, backend=backend)
    with_bg, alpha_bg, _ = _render(scene, W, H, backgrounds=bg, backend=backend)
    torch.testing.assert_close(alpha_bg, alpha)
    torch.testing.assert_close(with_bg, plain + (1 - alpha) * bg[:, None, None, :], atol=1e-6, rtol=0)
    assert bool((alpha == 0).any())  # some pixels show pure background
    torch.testing.assert_close(with_bg[alpha[..., 0] == 0], bg[:, None, None, :].expand_as(with_bg)[alpha[..., 0] == 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_cameras_batch_equals_cameras_one_by_one(backend):
    scene, W, H = random_scene(n=40, n_cameras=3, seed=4)
    together, alphas, meta = _render(scene, W, H, backend=backend)
    assert meta["n_cameras"] == 3 and meta["radii"].shape == (3, 40, 2)
    for c in range(3):
        one = dict(scene, viewmats=scene["viewmats"][c : c + 1], Ks=scene["Ks"][c : c + 1])
        img, alpha, _ = _render(one, W, H, backend=backend)
        torch.testing.assert_close(img[0], together[c])
        torch.testing.assert_close(alpha[0], alphas[c])


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_camera_colors_with_many_channels(backend):
    scene, W, H = random_scene(n=30, n_cameras=2, seed=5)
    feats = torch.rand(2, 30, 5)
    img, _, _ = _render(dict(scene, colors=feats), W, H, backend=backend)
    assert img.shape == (2, H, W, 5)
    for c in range(2):
        single = dict(scene, colors=feats[c], viewmats=scene["viewmats"][c : c + 1], Ks=scene["Ks"][c : c + 1])
        torch.testing.assert_close(_render(single, W, H, backend=backend)[0][0], img[c])


def test_sh_colors_follow_gsplat_offset_and_clamp():
    scene, W, H = random_scene(n=30, n_cameras=2, seed=6)
    sh = torch.randn(30, 16, 3) * 0.3
    dc_only = _render(dict(scene, colors=sh), W, H, sh_degree=0, backend="torch")[0]
    direct = _render(dict(scene, colors=torch.clamp_min(sh[:, 0] * 0.28209479177387814 + 0.5, 0.0)), W, H, backend="torch")[0]
    torch.testing.assert_close(dc_only, direct)
    per_camera = _render(dict(scene, colors=sh.expand(2, -1, -1, -1)), W, H, sh_degree=3, backend="torch")[0]
    shared = _render(dict(scene, colors=sh), W, H, sh_degree=3, backend="torch")[0]
    torch.testing.assert_close(per_camera, shared)
    assert not torch.allclose(shared, dc_only)  # higher bands change the colours


@pytest.mark.parametrize("backend", BACKENDS)
def test_antialiased_mode_scales_opacities_by_compensation(backend):
    scene, W, H = random_scene(n=40, seed=7)
    classic, a_classic, m_classic = _render(scene, W, H, backend=backend)
    anti, a_anti, m_anti = _render(scene, W, H, rasterize_mode="antialiased", backend=backend)
    comp = m_anti["opacities"] / m_classic["opacities"]
    assert bool((comp < 1).all()) and bool((comp > 0).all())
    assert float(a_anti.sum()) < float(a_classic.sum())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["empty", "behind", "radius_clip"])
def test_nothing_drawn_gives_background_and_zero_gradients(backend, case):
    scene, W, H = random_scene(n=20, n_cameras=2, seed=8)
    kwargs = {}
    if case == "empty":
        scene = {k: (v[:0] if k not in ("viewmats", "Ks") else v) for k, v in scene.items()}
    elif case == "behind":
        scene["viewmats"] = scene["viewmats"].clone()
        scene["viewmats"][:, 2, 3] -= 100.0  # every Gaussian behind both cameras
    else:
        kwargs["radius_clip"] = 1e6
    params = {k: v.clone().requires_grad_() for k, v in scene.items() if k not in ("Ks",)}
    bg = torch.tensor([[0.2, 0.4, 0.6], [1.0, 1.0, 0.0]])
    img, alpha, meta = rasterization(**params, Ks=scene["Ks"], width=W, height=H, backgrounds=bg, backend=backend, **kwargs)
    torch.testing.assert_close(img, bg[:, None, None, :].expand(2, H, W, 3))
    assert float(alpha.detach().abs().sum()) == 0.0
    assert int((meta["radii"] > 0).sum()) == 0
    (img.sum() + alpha.sum()).backward()
    for name in ("means", "quats", "scales", "opacities", "colors"):
        assert params[name].grad is not None and float(params[name].grad.abs().sum()) == 0.0, name


@pytest.mark.parametrize("backend", BACKENDS)
def test_means2d_grad_and_absgrad_are_filled(backend):
    scene, W, H = random_scene(n=40, n_cameras=2, seed=9)
    params = {k: v.clone().requires_grad_() for k, v in scene.items() if k != "Ks"}
    img, _, meta = rasterization(**params, Ks=scene["Ks"], width=W, height=H, absgrad=True, backend=backend)
    target = torch.rand_like(img)
    ((img - target) ** 2).mean().backward()
    grad, absgrad = meta["means2d"].grad, meta["means2d"].absgrad
    assert grad.shape == absgrad.shape == (2, 40, 2)
    visible = (meta["radii"] > 0).all(-1)
    assert float(grad[visible].abs().sum()) > 0
    assert float(grad[~visible].abs().sum()) == 0
    # A sum of per-pixel absolute values bounds the absolute value of the sum.
    assert bool((absgrad >= grad.abs() - 1e-9).all())
    assert float(absgrad.sum()) > float(grad.abs().sum())
    for name, value in params.items():
        assert value.grad is not None and bool(torch.isfinite(value.grad).all()), name
    assert float(params["viewmats"].grad.abs().sum()) > 0


@pytest.mark.skipif(not _cpu_available(), reason="cpu backend unavailable")
def test_torch_and_cpu_backends_agree_with_gradients():
    scene, W, H = random_scene(n=200, n_cameras=2, width=50, height=37, seed=10)
    results = {}
    for backend in ("torch", "cpu"):
        params = {k: v.clone().requires_grad_() for k, v in scene.items() if k != "Ks"}
        bg = torch.rand(2, 3, generator=torch.Generator().manual_seed(0))
        img, alpha, meta = rasterization(**params, Ks=scene["Ks"], width=W, height=H, backgrounds=bg,
                                         render_mode="RGB+ED", sh_degree=None, absgrad=True, backend=backend)
        (img * torch.linspace(-1, 1, 4)).sum().backward()
        grads = {k: v.grad for k, v in params.items()}
        grads["means2d"], grads["absgrad"] = meta["means2d"].grad, meta["means2d"].absgrad
        results[backend] = (img.detach(), alpha.detach(), grads)
    (ti, ta, tg), (ci, ca, cg) = results["torch"], results["cpu"]
    torch.testing.assert_close(ti, ci, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ta, ca, atol=1e-5, rtol=0)
    for name in tg:
        scale = float(cg[name].abs().max()) + 1e-12
        assert float((tg[name] - cg[name]).abs().max()) / scale < 1e-3, name


def test_gaussian_on_camera_plane_keeps_gradients_finite():
    scene, W, H = random_scene(n=10, seed=11)
    w2c = scene["viewmats"][0]
    # Put Gaussian 0 exactly at camera-space z = 0.
    c2w = torch.linalg.inv(w2c)
    scene["means"][0] = (c2w @ torch.tensor([0.3, 0.2, 0.0, 1.0]))[:3]
    params = {k: v.clone().requires_grad_() for k, v in scene.items() if k != "Ks"}
    img, _, meta = rasterization(**params, Ks=scene["Ks"], width=W, height=H, backend="torch")
    img.sum().backward()
    assert int(meta["radii"][0, 0].max()) == 0
    for name, value in params.items():
        assert bool(torch.isfinite(value.grad).all()), name


def test_meta_has_the_strategy_keys():
    scene, W, H = random_scene(n=10, seed=12)
    _, _, meta = _render(scene, W, H, backend="torch")
    for key in ("means2d", "radii", "depths", "conics", "opacities", "gaussian_ids", "camera_ids",
                "width", "height", "n_cameras", "tile_size", "tiles_per_gauss"):
        assert key in meta, key
    assert meta["gaussian_ids"] is None and meta["backend"] == "torch"
    assert meta["tiles_per_gauss"].shape == (1, 10)
    assert bool(((meta["tiles_per_gauss"] > 0) == (meta["radii"] > 0).all(-1)).all())


def test_auto_falls_back_to_torch_with_one_warning(monkeypatch):
    monkeypatch.setattr(raster_module, "_load_cpu_backend", lambda: (None, "no compiler here"))
    monkeypatch.setattr(raster_module, "_warned_cpu_fallback", False)
    scene, W, H = random_scene(n=10, seed=13)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        img_auto, _, meta = _render(scene, W, H)
    assert meta["backend"] == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _render(scene, W, H)  # no second warning
    torch.testing.assert_close(img_auto, _render(scene, W, H, backend="torch")[0])
    with pytest.raises(RuntimeError, match="backend='cpu' is unavailable: no compiler here"):
        _render(scene, W, H, backend="cpu")


def test_auto_picks_cpu_when_available():
    expected = "cpu" if _cpu_available() else "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert resolve_backend("auto", torch.device("cpu")) == expected


def test_torch_backend_gradcheck_float64():
    scene, W, H = random_scene(n=4, width=10, height=8, seed=14, dtype=torch.float64, spread=0.4, scale=0.3)
    sh = torch.randn(4, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.3
    names = ("means", "quats", "scales", "opacities", "colors", "viewmats", "backgrounds")
    inputs = [scene["means"], scene["quats"], scene["scales"], scene["opacities"], sh, scene["viewmats"],
              torch.tensor([[0.3, 0.6, 0.9]], dtype=torch.float64)]
    inputs = [t.clone().requires_grad_() for t in inputs]

    def render(means, quats, scales, opacities, colors, viewmats, backgrounds):
        img, alpha, _ = rasterization(means, quats, scales, opacities, colors, viewmats, scene["Ks"], W, H,
                                      sh_degree=1, backgrounds=backgrounds, render_mode="RGB+ED",
                                      rasterize_mode="antialiased", tile_size=4, backend="torch")
        return img, alpha

    # Fast mode checks random projections of the Jacobian, which keeps this cheap.
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    img, _ = render(*inputs)
    img.sum().backward()
    for name, t in zip(names, inputs):
        assert float(t.grad.abs().sum()) > 0, name


def test_checkpointed_batches_give_the_same_values_and_gradients():
    scene, W, H = random_scene(n=60, n_cameras=2, width=30, height=20, seed=15)
    p = project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"], W, H)
    results = []
    for checkpoint in (False, True):
        inputs = [p.means2d.detach().clone().requires_grad_(), p.conics.detach().clone().requires_grad_(),
                  scene["colors"].expand(2, -1, -1).clone().requires_grad_(),
                  scene["opacities"].expand(2, -1).clone().requires_grad_()]
        img, alpha = torch_backend.composite(*inputs, p.depths, p.radii, W, H, 8, None, absgrad=True,
                                             batch_size=8, checkpoint=checkpoint)
        (img.square().sum() + alpha.sum()).backward()
        results.append([img.detach(), alpha.detach(), inputs[0].absgrad] + [t.grad for t in inputs])
    for plain, recomputed in zip(*results):
        torch.testing.assert_close(recomputed, plain)
    assert float(results[0][2].sum()) > 0
