import math

import pytest
import torch

from splat.core.gaussians import Gaussians
from splat.core.rasterization import rasterization
from splat.io.ply import load_ply, save_ply
from splat.methods import fit, get_method
from splat.methods.base import MethodState, StepContext
from splat.methods.densify import split_gaussians
from splat.methods.ges import GES, baked_gaussians, load_ges_ply, save_ges_ply
from splat.methods.ges_shape import (
    beta_to_shape,
    collapsed,
    effective_scales,
    folded_scales,
    gef_scale_factor,
    reset_shapes,
    shape_factor,
    shape_to_beta,
)

FAST = dict(sh_degree=1, sh_degree_interval=50, refine_start=20, refine_every=20, reset_every=0)


def _gaussians(n: int, seed: int = 0, shape=None) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    g = Gaussians.from_points(torch.rand(n, 3, generator=gen), torch.rand(n, 3, generator=gen), sh_degree=1)
    params = dict(g.params)
    params["shape"] = torch.randn(n, generator=gen) if shape is None else torch.as_tensor(shape, dtype=torch.float32)
    return Gaussians(params)


def _single_gaussian(shape: float) -> Gaussians:
    return Gaussians(
        {
            "means": torch.zeros(1, 3),
            "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
            "scales": torch.full((1, 3), math.log(0.1)),
            "opacities": torch.tensor([4.0]),
            "sh0": torch.ones(1, 1, 3),
            "shN": torch.zeros(1, 0, 3),
            "shape": torch.tensor([shape]),
        }
    )


def _ctx(g: Gaussians, size: int = 64, optimizers=None, state=None) -> StepContext:
    viewmat = torch.eye(4)
    viewmat[2, 3] = 3.0  # camera 3 units in front of the origin, looking down +z
    K = torch.tensor([[[80.0, 0.0, size / 2], [0.0, 80.0, size / 2], [0.0, 0.0, 1.0]]])
    return StepContext(step=0, total_steps=1, scene=None, gaussians=g, optimizers=optimizers or {},
                       state=state or MethodState(), camera_ids=[0], viewmats=viewmat[None], Ks=K, width=size,
                       height=size, gt_images=torch.zeros(1, size, size, 3), background=torch.zeros(1, 3),
                       sh_degree=0, extent=1.0)


def _render(method: GES, g: Gaussians):  # ([H, W, 3], [H, W])
    colors, alphas, _ = rasterization(**method.render_inputs(_ctx(g)), backend="torch")
    return colors[0], alphas[0, ..., 0]


def _radial_std(alpha: torch.Tensor) -> float:
    h, w = alpha.shape
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    wgt = alpha / alpha.sum()
    cx, cy = (wgt * xx).sum(), (wgt * yy).sum()
    return float(((wgt * ((xx - cx) ** 2 + (yy - cy) ** 2)).sum() / 2).sqrt())


# ------------------------------------------------------------- shape mapping
def test_gef_scale_factor_is_the_moment_matched_std():
    beta = torch.tensor([0.5, 1.0, 2.0, 4.0, 16.0, 1e4])
    rho = gef_scale_factor(beta)
    # closed forms: Laplacian 2 sqrt(2), Gaussian 1, box of half-width 1 -> 1 / sqrt(3)
    assert float(rho[2]) == 1.0  # exactly: beta = 2 is plain 3DGS
    assert float(rho[1]) == pytest.approx(2 * math.sqrt(2), rel=1e-5)
    assert float(rho[-1]) == pytest.approx(1 / math.sqrt(3), rel=1e-3)
    assert bool((rho[1:] < rho[:-1]).all())  # decreasing in beta
    assert float(rho[0]) > 40  # heavy tails widen far beyond 2x
    # numerical second moment of exp(-|x|^beta / 2) at beta = 4
    x = torch.linspace(-6, 6, 200_001, dtype=torch.float64)
    p = torch.exp(-0.5 * x.abs() ** 4)
    std = float(((x**2 * p).sum() / p.sum()).sqrt())
    assert float(rho[3]) == pytest.approx(std, rel=1e-4)


def test_shape_factor_range_clamp_and_gradients():
    assert float(shape_to_beta(torch.tensor(0.0))) == 2.0
    assert float(shape_to_beta(torch.tensor(beta_to_shape(5.0)))) == pytest.approx(5.0)
    s = torch.tensor([-50.0, -1.0, 0.0, 1.0, 50.0], requires_grad=True)
    f = shape_factor(s, beta_min=0.5, beta_max=16.0)
    lo, hi = gef_scale_factor(torch.tensor([16.0, 0.5]))
    fd = f.detach()
    assert float(fd[0]) == pytest.approx(float(hi)) and float(fd[-1]) == pytest.approx(float(lo))
    assert bool(((fd >= lo - 1e-6) & (fd <= hi + 1e-6)).all())
    f.sum().backward()
    g = s.grad
    assert bool(torch.isfinite(g).all())
    assert float(g[0]) == 0 and float(g[-1]) == 0  # clamped: no gradient beyond the range
    assert bool((g[1:4] < 0).all())  # a larger beta narrows the footprint
    # autograd against central differences inside the range
    eps = 1e-3
    for v in (-1.0, 0.0, 1.0):
        num = (shape_factor(torch.tensor(v + eps)) - shape_factor(torch.tensor(v - eps))) / (2 * eps)
        x = torch.tensor(v, requires_grad=True)
        shape_factor(x).backward()
        assert float(x.grad) == pytest.approx(float(num), rel=1e-2)
    with pytest.raises(ValueError, match="beta must be > 0"):
        beta_to_shape(0.0)


def test_shape_modulates_rendered_footprint_as_the_formula_says():
    method = get_method("ges")
    sigma_px = 80.0 * 0.1 / 3.0  # focal * scale / depth
    for s in (0.0, beta_to_shape(1.5), beta_to_shape(6.0)):
        g = _single_gaussian(s)
        factor = float(shape_factor(torch.tensor(s)))
        assert float(effective_scales(g).detach()[0, 0]) == pytest.approx(0.1 * factor, rel=1e-6)
        std = _radial_std(_render(method, g)[1].detach())
        # screen-space std = projected effective scale, widened by the rasterizer's 0.3 px^2 low-pass
        assert std == pytest.approx(math.sqrt((factor * sigma_px) ** 2 + 0.3), rel=0.03), (s, std)


def test_shape_gradient_is_nonzero_after_one_backward():
    method = get_method("ges")
    g = _single_gaussian(0.0)
    (_render(method, g)[1] ** 2).sum().backward()
    grad = g.params["shape"].grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_shape_receives_gradients_and_is_trained(tiny_scene):
    result = fit(tiny_scene, "ges", steps=30, eval_every=0, checkpoint_every=0, show_progress=False,
                 lr_shape=0.05, **FAST)
    shape = result.gaussians.params["shape"].detach()
    assert shape.shape == (result.gaussians.num_gaussians,)
    assert float(shape.abs().max()) > 1e-2  # started at exactly 0 everywhere


# ------------------------------------------------------- reset and collapse
def _adam_after_one_step(g: Gaussians) -> dict:
    opts = {k: torch.optim.Adam([g.params[k]], lr=0.1) for k in ("scales", "shape")}
    for p in g.params.values():
        p.requires_grad_(True)
    (effective_scales(g) ** 2).sum().backward()
    for o in opts.values():
        o.step()
    return opts


@pytest.mark.parametrize("keep", [True, False])
def test_shape_reset_returns_to_gaussians(keep):
    g = _gaussians(12)
    opts = _adam_after_one_step(g)
    before_eff = effective_scales(g).detach().clone()
    before_raw = g.scales.detach().clone()
    reset_shapes(g, opts, keep_footprint=keep)
    assert float(g.params["shape"].detach().abs().max()) == 0.0
    state = opts["shape"].state[g.params["shape"]]
    assert float(state["exp_avg"].abs().max()) == 0 and float(state["exp_avg_sq"].abs().max()) == 0
    if keep:  # the rendered footprint is unchanged
        torch.testing.assert_close(effective_scales(g).detach(), before_eff, rtol=1e-5, atol=1e-7)
    else:  # the factor is dropped: back to the raw scales
        torch.testing.assert_close(g.scales.detach(), before_raw)


def test_fit_resets_shapes_on_schedule(tiny_scene):
    result = fit(tiny_scene, "ges", steps=60, eval_every=0, checkpoint_every=0, show_progress=False,
                 lr_shape=0.05, shape_reset_every=20, **FAST)
    assert result.state.data["shape_resets"] == 2  # steps 20 and 40 (density control stops at 45)


def test_collapse_pruning_removes_spiky_primitives_and_keeps_optimizers_aligned():
    shape = torch.tensor([0.0, beta_to_shape(0.5), 0.3, beta_to_shape(0.52), -0.2, beta_to_shape(0.6)])
    assert collapsed(shape, 0.55).tolist() == [False, True, False, True, False, False]
    g = _gaussians(6, shape=shape)
    opts = {k: torch.optim.Adam([v], lr=0.01) for k, v in g.params.items()}
    for v in g.params.values():
        v.grad = torch.ones_like(v)
    for o in opts.values():
        o.step()
    state = MethodState(data={"grad2d": torch.arange(6.0), "count": torch.ones(6), "collapse_pruned": 0})
    ctx = _ctx(g, optimizers=opts, state=state)
    kept_means = g.means.detach()[[0, 2, 4, 5]].clone()
    assert GES(beta_collapse=0.0).prune_collapsed(ctx) == 0
    assert GES(beta_collapse=0.55).prune_collapsed(ctx) == 2
    assert g.num_gaussians == 4 and state.data["collapse_pruned"] == 2
    torch.testing.assert_close(g.means.detach(), kept_means)
    assert state.data["grad2d"].tolist() == [0.0, 2.0, 4.0, 5.0]
    for name, opt in opts.items():
        p = opt.param_groups[0]["params"][0]
        assert p is g.params[name] and opt.state[p]["exp_avg"].shape[0] == 4


def test_final_prune_removes_weak_primitives_at_the_last_density_control_step():
    m = GES(refine_every=100, final_prune_opa=0.05)  # density control stops at 0.75 * 1000
    assert [s for s in range(100, 1000, 100) if m.is_last_refine_step(s, 1000)] == [700]
    g = _gaussians(4)
    with torch.no_grad():
        g.params["opacities"].copy_(torch.logit(torch.tensor([0.01, 0.04, 0.06, 0.5])))
    ctx = _ctx(g, state=MethodState(data={"grad2d": torch.zeros(4), "count": torch.zeros(4)}))
    ctx.total_steps = 1000
    for step, expected in ((600, 0), (700, 2)):
        ctx.step = step
        assert m.prune_final(ctx) == expected
    assert g.num_gaussians == 2 and float(g.opacities.detach().min()) > 0.05
    assert GES(final_prune_opa=0.0).prune_final(ctx) == 0
    short = GES(refine_every=100, final_prune_opa=0.05)  # a 400-step run: last density control at 200
    ctx.total_steps, ctx.step = 400, 200
    with torch.no_grad():
        g.params["opacities"].copy_(torch.tensor([-5.0, 3.0]))
    assert short.is_last_refine_step(200, 400) and short.prune_final(ctx) == 0  # before final_prune_after
    assert GES(refine_every=100, final_prune_opa=0.05, final_prune_after=0).prune_final(ctx) == 1


def test_density_control_acts_on_the_rendered_footprint():
    # a raw scale that is small but a heavy-tailed shape that makes the footprint large: split, not cloned
    g = _gaussians(1, shape=[beta_to_shape(1.0)])
    with torch.no_grad():
        g.params["scales"].fill_(math.log(0.005))
    eff = effective_scales(g).detach().clone()  # 0.005 * 2 sqrt(2) > grow_scale3d * extent = 0.01
    with folded_scales(g):
        torch.testing.assert_close(g.scales.detach(), eff)
        split_gaussians(g, {}, torch.ones(1, dtype=torch.bool))
    assert g.num_gaussians == 2
    torch.testing.assert_close(effective_scales(g).detach(), (eff / 1.6).expand(2, 3), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(g.params["shape"].detach(), torch.full((2,), beta_to_shape(1.0)))


# ---------------------------------------------------------- frequency loss
def test_frequency_band_moves_from_coarse_to_fine():
    m = GES(freq_band_coarse=0.05, freq_band_fine=0.5)
    sigmas = [m.band_sigma(s, 101, 320, 240) for s in range(0, 101, 10)]
    assert sigmas[0] == pytest.approx(0.05 * 240) and sigmas[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))  # monotone: low to high frequency
    assert sigmas[5] == pytest.approx(math.sqrt(12.0 * 0.5))  # geometric: the midpoint is the geometric mean


def test_dog_mask_follows_the_band():
    from splat.methods.ges_freq import dog_mask

    img = torch.zeros(1, 64, 64, 3)
    img[:, 16:48, 16:48] = 0.5  # one large square
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    fine = ((yy + xx) % 2).float() * 0.5  # a one-pixel checkerboard on the right quarter
    img[:, :, 52:] = fine[:, 52:, None]
    coarse_mask, fine_mask = dog_mask(img, 4.0)[0], dog_mask(img, 0.5)[0]
    for mask in (coarse_mask, fine_mask):
        assert float(mask.min()) >= 0 and float(mask.max()) == pytest.approx(1.0)
    checker, square_edge = (slice(8, 56), slice(54, 62)), (slice(20, 44), slice(14, 18))
    # the fine band sees the checkerboard about as much as the square's outline, the coarse band hardly
    assert float(fine_mask[checker].mean()) > float(fine_mask[square_edge].mean())
    assert float(coarse_mask[square_edge].mean()) > 2 * float(coarse_mask[checker].mean())
    with pytest.raises(ValueError, match=r"images must be a \[C, H, W, 3\] tensor"):
        dog_mask(torch.zeros(16, 16), 1.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        dog_mask(img, 0.0)


def test_frequency_loss_is_the_band_weighted_l1():
    from splat.methods.ges_freq import masked_l1

    gen = torch.Generator().manual_seed(0)
    render, target = torch.rand(1, 8, 8, 3, generator=gen), torch.rand(1, 8, 8, 3, generator=gen)
    assert float(masked_l1(render, target, torch.ones(1, 8, 8))) == pytest.approx(
        float((render - target).abs().mean()), rel=1e-6)
    mask = torch.zeros(1, 8, 8)
    mask[0, 2, 3] = 1.0
    assert float(masked_l1(render, target, mask)) == pytest.approx(float((render - target)[0, 2, 3].abs().mean()))
    g = _single_gaussian(0.0)
    ctx = _ctx(g)
    ctx.render = torch.rand(1, 64, 64, 3, generator=gen)
    ctx.gt_images = torch.rand(1, 64, 64, 3, generator=gen)
    on, off = GES(freq_lambda=0.3), GES(freq_lambda=0.0)
    l_on, l_off = on.loss(ctx), off.loss(ctx)
    l1 = (ctx.render - ctx.gt_images).abs().mean()
    assert float(l_on) == pytest.approx(float(l_off) + 0.3 * (ctx.info["freq_loss"] - float(l1)), rel=1e-5)


# ------------------------------------------------------------------ export
def test_export_is_a_standard_3dgs_ply_drawing_the_fitted_footprint(tiny_scene, tmp_path):
    result = fit(tiny_scene, "ges", steps=25, out_dir=tmp_path, eval_every=0, show_progress=False,
                 lr_shape=0.05, **FAST)
    path = result.paths["ply"]
    header = path.read_bytes()[:3000]
    assert b"property float shape" not in header
    plain = load_ply(path)
    g = result.gaussians
    assert plain.num_gaussians == g.num_gaussians and set(plain.params) == set(g.params) - {"shape"}
    torch.testing.assert_close(plain.scales, effective_scales(g).detach(), rtol=1e-5, atol=1e-7)
    method = get_method("ges")
    ges_image, _ = _render(method, g)
    plain_image = rasterization(**get_method("3dgs").render_inputs(_ctx(plain)), backend="torch")[0][0]
    torch.testing.assert_close(plain_image, ges_image.detach(), rtol=1e-4, atol=1e-5)
    plyfile = pytest.importorskip("plyfile")
    names = [p.name for p in plyfile.PlyData.read(str(path))["vertex"].properties]
    assert names[:6] == ["x", "y", "z", "nx", "ny", "nz"] and "shape" not in names and len(names) == 17 + 9


def test_ges_ply_with_shape_round_trips(tmp_path):
    g = _gaussians(20)
    path = save_ges_ply(g, tmp_path / "ges.ply")
    back = load_ges_ply(path)
    for key in g.params:
        torch.testing.assert_close(back.params[key], g.params[key], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(load_ply(path).scales, effective_scales(g).detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(baked_gaussians(g).scales, effective_scales(g).detach())
    assert not list(tmp_path.glob(".*tmp"))


def test_ply_errors_name_the_problem(tmp_path):
    g = Gaussians.from_points(torch.rand(5, 3), torch.rand(5, 3), sh_degree=0)
    path = save_ply(g, tmp_path / "plain.ply")
    with pytest.raises(ValueError, match="plain.ply: no 'shape' vertex property"):
        load_ges_ply(path)
    with pytest.raises(ValueError, match="gaussians have no 'shape' parameter"):
        save_ges_ply(g, tmp_path / "x.ply")
    with pytest.raises(TypeError, match="gaussians must be"):
        baked_gaussians("nope")
    with pytest.raises(ValueError, match="gaussians have no 'shape' parameter"):
        effective_scales(g)


# ------------------------------------------------------------- the method
def test_checkpoint_resume_keeps_shape(tiny_scene, tmp_path):
    kw = dict(eval_every=0, show_progress=False, lr_shape=0.05, **FAST)
    full = fit(tiny_scene, "ges", steps=30, out_dir=tmp_path / "full", checkpoint_every=0, **kw)
    calls = []
    fit(tiny_scene, "ges", steps=30, out_dir=tmp_path / "resumed",
        should_stop=lambda: len(calls.append(0) or calls) > 15, **kw)
    ckpt = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 15 and "params.shape" in ckpt["gaussians"]
    resumed = fit(tiny_scene, "ges", steps=30, out_dir=tmp_path / "resumed", resume=True, **kw)
    assert resumed.gaussians.num_gaussians == full.gaussians.num_gaussians
    torch.testing.assert_close(resumed.gaussians.params["shape"], full.gaussians.params["shape"])
    torch.testing.assert_close(resumed.gaussians.params["means"], full.gaussians.params["means"])


def test_with_every_mechanism_off_ges_is_3dgs(tiny_scene):
    off = {k: v for ov in GES.ablations().values() for k, v in ov.items()}
    kw = dict(steps=60, eval_every=0, checkpoint_every=0, show_progress=False, **FAST)
    ges = fit(tiny_scene, "ges", **off, **kw)
    gs = fit(tiny_scene, "3dgs", **kw)
    assert ges.gaussians.num_gaussians == gs.gaussians.num_gaussians
    torch.testing.assert_close(ges.gaussians.params["means"], gs.gaussians.params["means"])
    assert ges.metrics["psnr"] == pytest.approx(gs.metrics["psnr"], abs=1e-4)


def test_ges_densification_grows_fewer_primitives_than_3dgs(tiny_scene):
    kw = dict(steps=200, eval_every=0, checkpoint_every=0, show_progress=False, **FAST)
    ges = fit(tiny_scene, "ges", final_prune_after=0, **kw)  # a short run: let the final prune act
    gs = fit(tiny_scene, "3dgs", **kw)
    assert ges.gaussians.num_gaussians < 0.9 * gs.gaussians.num_gaussians, (
        ges.gaussians.num_gaussians, gs.gaussians.num_gaussians)
    assert ges.metrics["psnr"] > ges.metrics["curve"][0]["psnr"] + 3.0  # and it still fits


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(lr_shape=-1.0), "lr_shape must be >= 0"),
        (dict(shape_init=float("nan")), "shape_init must be finite"),
        (dict(beta_min=2.5), "need 0 < beta_min <= 2 <= beta_max"),
        (dict(beta_max=1.0), "need 0 < beta_min <= 2 <= beta_max"),
        (dict(beta_collapse=2.0), r"beta_collapse must be in \[0, 2\)"),
        (dict(shape_reset_every=-1), "shape_reset_every must be >= 0"),
        (dict(freq_lambda=0.9), r"freq_lambda must be in \[0, 1 - ssim_lambda\]"),
        (dict(freq_band_coarse=0.0), r"freq_band_coarse must be in \(0, 0.5\]"),
        (dict(freq_band_fine=0.0), "freq_band_fine must be > 0"),
        (dict(final_prune_opa=1.0), r"final_prune_opa must be in \[0, 1\)"),
        (dict(final_prune_after=-1), "final_prune_after must be >= 0"),
        (dict(sh_degree=4), "sh_degree must be in 0..3"),
    ],
)
def test_bad_hyperparameters_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        get_method("ges", **kw)


@pytest.mark.slow
def test_short_fit_on_bundled_crop_raises_heldout_psnr():
    from splat.io import load_bundled_scene

    scene = load_bundled_scene().downscaled(8)  # 40x30 pixels, held-out test views
    result = fit(scene, "ges", steps=200, eval_every=0, checkpoint_every=0, show_progress=False,
                 sh_degree=0, refine_start=50, refine_every=50, reset_every=0)
    curve = result.metrics["curve"]
    assert result.metrics["eval_split"] == "test"
    assert result.metrics["psnr"] > curve[0]["psnr"] + 4.0, (curve[0]["psnr"], result.metrics["psnr"])
    assert float(result.gaussians.params["shape"].detach().abs().max()) > 0  # the shapes moved
