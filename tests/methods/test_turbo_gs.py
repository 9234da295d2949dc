import math

import pytest
import torch

from splat.core.gaussians import Gaussians
from splat.core.rasterization import rasterization
from splat.methods import fit, get_method
from splat.methods.base import StepContext
from splat.methods.gs3d import GS3D
from splat.methods.turbo import (
    add_error_channel,
    budget_decision,
    relative_error,
    dilated_intrinsics,
    dilation_offset,
    fit_power_law,
    kd_midpoints,
    release_or_hold_gradients,
    splatted_error,
    subsample,
)
from splat.methods.turbo_gs import TurboGS

SCHEDULE = dict(sh_degree=1, sh_degree_interval=50, refine_start=10, refine_every=10, reset_every=0)
ALL_OFF = dict(appearance_weight=0.0, min_views=0, budget=False, kd_densify=False, dilation=False, accum_views=1)
QUIET = dict(eval_every=0, checkpoint_every=0, show_progress=False)


def _blobs(n=6, seed=0):
    """A few Gaussians in front of an identity camera, and a 20x16 pinhole."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.cat([torch.rand(n, 2, generator=gen) - 0.5, 2.5 + torch.rand(n, 1, generator=gen)], dim=1)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1)
    scales = 0.05 + 0.15 * torch.rand(n, 3, generator=gen)
    opacities = 0.3 + 0.6 * torch.rand(n, generator=gen)
    K = torch.tensor([[[24.0, 0.0, 10.0], [0.0, 24.0, 8.0], [0.0, 0.0, 1.0]]])
    return means, quats, scales, opacities, K


# ------------------------------------------------------------ power-law budget
def test_power_law_fit_recovers_exponent_and_scale():
    steps = [50.0, 100.0, 200.0, 400.0, 800.0]
    a, b = fit_power_law(steps, [3.0 * s ** -0.4 for s in steps])
    assert a == pytest.approx(3.0, rel=1e-9) and b == pytest.approx(0.4, rel=1e-9)


@pytest.mark.parametrize("steps, losses, match", [
    ([1.0], [1.0], "at least two"),
    ([0.0, 2.0], [1.0, 1.0], "positive"),
    ([5.0, 5.0], [1.0, 2.0], "not all be equal"),
])
def test_power_law_fit_rejects_bad_input(steps, losses, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(steps, losses)


def test_budget_raised_on_the_curve_cut_off_it_and_bounded():
    bins = [(s, 2.0 * s ** -0.5) for s in (50, 100, 150, 200, 250, 300)]
    on = budget_decision(bins, 0.2, up=1.5, down=0.5)
    assert on.rate == pytest.approx(0.3) and abs(on.deviation) < 1e-9 and on.exponent == pytest.approx(0.5)
    below = budget_decision(bins[:-1] + [(300, 0.5 * bins[-1][1])], 0.2)  # faster than predicted: still follows
    assert below.rate > 0.2
    bent = budget_decision(bins[:-1] + [(300, 1.2 * bins[-1][1])], 0.2, tolerance=0.05)
    assert bent.rate == pytest.approx(0.1) and bent.deviation == pytest.approx(0.2)
    assert budget_decision(bins, 0.9, rate_max=1.0).rate == 1.0
    assert budget_decision(bins[:-1] + [(300, 10.0)], 0.03, rate_min=0.02).rate == 0.02
    # only the last `window` bins before the newest are fitted: an old outlier does not matter
    assert budget_decision([(10, 100.0)] + bins, 0.2, window=4).rate == pytest.approx(0.3)


def test_budget_keeps_rate_without_enough_points_and_detects_convergence():
    few = budget_decision([(50, 1.0), (100, 0.9), (150, 0.85)], 0.2, min_points=3)
    assert few.rate == 0.2 and few.deviation is None and not few.converged
    flat = [(s, 0.1 * s ** -0.001) for s in (50, 100, 150, 200, 250)]
    assert budget_decision(flat, 0.2, converge_exponent=0.01).converged
    assert not budget_decision(flat, 0.2, converge_exponent=0.0).converged
    steep = [(s, 0.1 * s ** -0.3) for s in (50, 100, 150, 200, 250)]
    assert not budget_decision(steep, 0.2, converge_exponent=0.01).converged


def test_budget_caps_growth_at_each_refinement(tiny_scene):
    method = TurboGS(grow_grad2d=1e-8, budget_rate=0.1, budget_rate_max=0.1, budget_rate_min=0.1,
                     refine_stop_fraction=1.0, **dict(ALL_OFF, budget=True), **SCHEDULE)
    seen = []
    original = method.refine

    def recording_refine(ctx):
        before = ctx.gaussians.num_gaussians
        stats = original(ctx)
        seen.append(dict(before=before, cap=ctx.info["growth_cap"], **stats))
        return stats

    method.refine = recording_refine
    fit(tiny_scene, method, steps=45, **QUIET)
    assert len(seen) == 3
    for r in seen:
        assert r["cap"] == r["before"] + round(0.1 * r["before"])
        assert r["cloned"] + r["split"] == r["cap"] - r["before"]  # everything wanted to grow: the cap binds


# ------------------------------------------------------------ eligibility
def _refine_ctx(method, n=4, views_seen=(0, 1, 3, 5)):
    g = Gaussians.from_points(torch.rand(n, 3) * 0.01, sh_degree=0)
    scene = type("S", (), {"points": None, "point_colors": None, "train_ids": list(range(6))})()
    state = method.init(scene, g)
    state.data["grad2d"] = torch.ones(n)
    state.data["count"] = torch.ones(n)
    for i, k in enumerate(views_seen):
        state.data["views"][i, :k] = True
    return StepContext(step=20, total_steps=100, scene=scene, gaussians=g, optimizers={}, state=state,
                       camera_ids=[0], viewmats=torch.eye(4)[None], Ks=torch.eye(3)[None], width=8, height=8,
                       gt_images=torch.zeros(1, 8, 8, 3), background=torch.zeros(1, 3), sh_degree=0, extent=1.0)


def test_only_gaussians_seen_in_enough_views_grow():
    method = TurboGS(**dict(ALL_OFF, min_views=3), sh_degree=0, prune_opa=1e-6)
    ctx = _refine_ctx(method)
    means = ctx.gaussians.means.detach().clone()
    stats = method.refine(ctx)
    assert stats["cloned"] == 2 and ctx.info["ineligible"] == 2
    torch.testing.assert_close(ctx.gaussians.means[4:].detach(), means[2:])  # the clones are of views 3 and 5
    assert ctx.state.data["views"].shape == (6, 6) and not ctx.state.data["views"].any()  # counting restarts


def test_without_view_condition_every_gaussian_grows():
    method = TurboGS(**ALL_OFF, sh_degree=0, prune_opa=1e-6)
    ctx = _refine_ctx(method)
    assert method.refine(ctx)["cloned"] == 4


def test_fit_counts_distinct_views_per_gaussian(tiny_scene):
    method = TurboGS(**dict(ALL_OFF, min_views=2), refine_stop_fraction=1.0, **dict(SCHEDULE, refine_start=1000))
    result = fit(tiny_scene, method, steps=len(tiny_scene.train_ids) + 3, **QUIET)
    views = result.state.data["views"]
    assert views.shape == (result.gaussians.num_gaussians, len(tiny_scene.train_ids))
    assert bool(views.any(dim=0).all())  # an epoch renders every training view
    assert int(views.sum(dim=1).max()) > 1  # and Gaussians are seen from several of them


# ------------------------------------------------------------ splatted appearance error
@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_splatted_error_matches_brute_force_weights(backend):
    means, quats, scales, opacities, K = _blobs()
    n, w, h = means.shape[0], 20, 16
    sh = torch.randn(n, 4, 3) * 0.3
    inputs = dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=sh,
                  viewmats=torch.eye(4)[None], Ks=K, width=w, height=h, sh_degree=1,
                  backgrounds=torch.full((1, 3), 0.25))
    plain, _, _ = rasterization(**inputs, backend=backend)
    extended, z = add_error_channel(inputs)
    render, _, _ = rasterization(**extended, backend=backend)
    torch.testing.assert_close(render[..., :3], plain, atol=1e-5, rtol=1e-5)  # colours unchanged
    assert render.shape[-1] == 5 and float(render[..., 3:].detach().abs().max()) == 0.0
    err = torch.rand(1, h, w, generator=torch.Generator().manual_seed(1))
    term = splatted_error(render[..., 3:], err)
    assert float(term.detach()) == 0.0
    term.backward()
    # brute force: one-hot colours make channel i the blending weight w_ip of Gaussian i
    weights, _, _ = rasterization(means, quats, scales, opacities, torch.eye(n), torch.eye(4)[None], K, w, h,
                                  backgrounds=torch.zeros(1, n), backend=backend)
    expected = (weights[0] * err[0, :, :, None]).sum(dim=(0, 1))
    footprint = weights[0].sum(dim=(0, 1))
    assert float(expected.min()) >= 0 and float(expected.max()) > 0
    torch.testing.assert_close(z.grad[0, :, 0], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(z.grad[0, :, 1], footprint, atol=1e-5, rtol=1e-4)
    rel = relative_error(z.grad[0], err.mean())
    torch.testing.assert_close(rel, expected / footprint / err.mean(), atol=1e-5, rtol=1e-4)


def test_relative_error_is_zero_for_an_empty_footprint():
    rel = relative_error(torch.tensor([[2.0, 4.0], [0.0, 0.0], [1.0, 1.0]]), torch.tensor(0.25))
    torch.testing.assert_close(rel, torch.tensor([2.0, 0.0, 4.0]))


def test_error_term_leaves_other_gradients_unchanged():
    means, quats, scales, opacities, K = _blobs()
    means.requires_grad_(True)
    colors = torch.rand(means.shape[0], 3)
    inputs = dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
                  viewmats=torch.eye(4)[None], Ks=K, width=20, height=16, sh_degree=None)
    gt = torch.rand(1, 16, 20, 3)
    render, _, _ = rasterization(**inputs, backend="torch")
    (grad_plain,) = torch.autograd.grad((render - gt).abs().mean(), means)
    extended, _ = add_error_channel(inputs)
    render, _, _ = rasterization(**extended, backend="torch")
    loss = (render[..., :3] - gt).abs().mean() + splatted_error(render[..., 3:], (render[..., :3] - gt).abs().mean(-1))
    (grad_ext,) = torch.autograd.grad(loss, means)
    torch.testing.assert_close(grad_ext, grad_plain)


def test_appearance_weighting_scales_the_position_score(tiny_scene):
    method = TurboGS(**dict(ALL_OFF, appearance_weight=0.5), appearance_mode="scale", refine_stop_fraction=1.0,
                     **SCHEDULE)
    seen = []

    def spy(ctx, cam, gid, grads):
        score = TurboGS.densify_scores(method, ctx, cam, gid, grads)
        plain = grads.norm(dim=-1)
        z = ctx.info["error_colors"].grad[cam, gid]
        rel = torch.where(z[:, 1] > 1e-8, (z[:, 0] / z[:, 1]) / ctx.info["error_map"].mean(), torch.zeros_like(z[:, 0]))
        seen.append((score, plain * (0.5 + 0.5 * rel), plain))
        return score

    method.densify_scores = spy
    fit(tiny_scene, method, steps=12, **QUIET)
    assert len(seen) == 12
    for got, expected, _ in seen:
        torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-4)
    assert any(not torch.allclose(got, plain) for got, _, plain in seen)  # the weighting did something


def test_additive_appearance_mode_adds_the_relative_integrated_error(tiny_scene):
    method = TurboGS(**dict(ALL_OFF, appearance_weight=0.5), appearance_mode="add", grow_grad2d=1e-3,
                     refine_stop_fraction=1.0, **SCHEDULE)
    seen = []

    def spy(ctx, cam, gid, grads):
        score = TurboGS.densify_scores(method, ctx, cam, gid, grads)
        e = ctx.info["error_colors"].grad[cam, gid, 0]
        seen.append((score, grads.norm(dim=-1) + 0.5 * 1e-3 * e / e.mean()))
        return score

    method.densify_scores = spy
    fit(tiny_scene, method, steps=5, **QUIET)
    assert len(seen) == 5
    for got, expected in seen:
        torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-4)


# ------------------------------------------------------------ dilation
@pytest.mark.parametrize("size", [(20, 16), (21, 15)])
def test_dilated_render_hits_the_subset_pixels(size):
    means, quats, scales, opacities, K = _blobs()
    w, h = size
    colors = torch.rand(means.shape[0], 3, generator=torch.Generator().manual_seed(2))
    common = dict(viewmats=torch.eye(4)[None], backgrounds=torch.full((1, 3), 0.1), backend="torch")
    full, _, _ = rasterization(means, quats, scales, opacities, colors, Ks=K, width=w, height=h, **common)
    covered = torch.zeros(h, w, dtype=torch.bool)
    for step in range(4):
        offset = dilation_offset(step)
        k, dw, dh = dilated_intrinsics(K, w, h, offset)
        part, _, _ = rasterization(means, quats, scales, opacities, colors, Ks=k, width=dw, height=dh,
                                   eps2d=0.3 / 4, **common)
        expected = subsample(full, offset)
        assert part.shape == expected.shape
        torch.testing.assert_close(part, expected, atol=2e-5, rtol=1e-4)
        covered[offset[1]::2, offset[0]::2] = True
    assert covered.all()
    assert {dilation_offset(0), dilation_offset(1)} == {(0, 0), (1, 1)}  # two steps: both chessboard colours


def test_dilation_only_above_threshold_and_only_in_training(tiny_scene):
    method = TurboGS(**dict(ALL_OFF, dilation=True), dilation_min_pixels=32 * 32, **SCHEDULE)
    sizes = []
    original = method.loss

    def recording_loss(ctx):
        sizes.append((ctx.render.shape[1:3], ctx.gt_images.shape[1:3], ctx.info.get("dilation_offset")))
        return original(ctx)

    method.loss = recording_loss
    fit(tiny_scene, method, steps=4, **QUIET)
    assert [s[0] for s in sizes] == [(16, 16)] * 4 and all(a == b for a, b, _ in sizes)
    assert [s[2] for s in sizes] == [(0, 0), (1, 1), (1, 0), (0, 1)]
    method = TurboGS(**dict(ALL_OFF, dilation=True), dilation_min_pixels=32 * 32 + 1, **SCHEDULE)
    result = fit(tiny_scene, method, steps=2, **QUIET)
    assert result.metrics["width"] == 32  # evaluation at full size either way


# ------------------------------------------------------------ KD-tree densification
def test_kd_midpoints_fill_a_sparse_grid_without_bridging_gaps():
    xs = torch.arange(5, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    far = torch.tensor([[100.0, 100.0]])
    points = torch.cat([torch.cat([grid, torch.zeros(25, 1)], 1), torch.cat([far, torch.zeros(1, 1)], 1)])
    colors = torch.rand(26, 3)
    mids, mid_colors = kd_midpoints(points, colors, k=4, max_ratio=1.2)
    assert len(mids) == 40  # every edge of the 5x5 grid once, nothing towards the far point
    frac = mids[:, :2] - mids[:, :2].floor()
    assert bool(((frac == 0.5).sum(1) == 1).all()) and float(mids[:, :2].max()) <= 4
    assert mid_colors.shape == (40, 3) and float(mid_colors.max()) <= float(colors.max())


def test_kd_densify_adds_midpoints_to_a_sparse_initial_cloud(tiny_scene):
    on = fit(tiny_scene, "turbo-gs", steps=1, **QUIET, **SCHEDULE)
    added = on.state.data["kd_added"]
    assert added > 0 and on.state.data["n_init"] == len(tiny_scene.points) + added
    off = fit(tiny_scene, "turbo-gs", steps=1, kd_densify=False, **QUIET, **SCHEDULE)
    assert off.state.data["kd_added"] == 0 and off.state.data["n_init"] == len(tiny_scene.points)
    dense = fit(tiny_scene, "turbo-gs", steps=1, kd_sparse_below=len(tiny_scene.points), **QUIET, **SCHEDULE)
    assert dense.state.data["kd_added"] == 0  # not sparse by that threshold


# ------------------------------------------------------------ gradient accumulation
def test_gradients_held_then_released_as_their_mean():
    p = torch.nn.Parameter(torch.zeros(3))
    opts = {"p": torch.optim.Adam([p], lr=0.1)}
    buffer = {}
    for k, release in enumerate([False, False, True]):
        p.grad = torch.full((3,), float(k + 1))
        stepped = release_or_hold_gradients(opts, buffer, release)
        assert stepped == release
        if not release:
            assert p.grad is None
            opts["p"].step()
            assert float(p.abs().max()) == 0.0  # Adam skips a parameter without gradient
    torch.testing.assert_close(p.grad, torch.full((3,), 2.0))
    assert buffer == {}


def test_late_accumulation_steps_the_optimizer_once_per_group(tiny_scene):
    method = TurboGS(**dict(ALL_OFF, accum_views=3), accum_start_fraction=0.5, **SCHEDULE)
    steps_taken = []  # whether the optimizers get a gradient after each step's hooks
    original = method.step_post_backward

    def probe(ctx):
        original(ctx)
        steps_taken.append(ctx.gaussians.params["means"].grad is not None)

    method.step_post_backward = probe
    fit(tiny_scene, method, steps=20, **QUIET)
    # density control stops at 0.75 * 20 = 15 > 0.5 * 20: accumulation starts there; the last step releases
    assert steps_taken == [True] * 15 + [False, False, True, False, True]


# ------------------------------------------------------------ switches and errors
def test_all_switches_off_is_3dgs_with_the_turbo_schedule(tiny_scene):
    # 3DGS on the plain position gradient and without its own growth budget, as Turbo-GS's scores and budget
    common = dict(SCHEDULE, sh_degree_interval=250, refine_stop=2500, grow_grad2d=1e-5)
    turbo = fit(tiny_scene, "turbo-gs", steps=40, **QUIET, **ALL_OFF, **common)
    base = fit(tiny_scene, GS3D(absgrad=False, growth_rate=0.0, **common), steps=40, **QUIET)
    assert turbo.gaussians.num_gaussians == base.gaussians.num_gaussians
    for key in base.gaussians.params:
        torch.testing.assert_close(turbo.gaussians.params[key], base.gaussians.params[key])


def test_every_ablation_is_a_valid_setting():
    table = TurboGS.ablations()
    assert {"appearance", "views", "budget", "kdtree", "dilation"} <= set(table)
    defaults = TurboGS()
    for overrides in table.values():
        m = get_method("turbo-gs", **overrides)
        assert any(getattr(m, k) != getattr(defaults, k) for k in overrides)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(appearance_weight=-0.1), r"appearance_weight must be in \[0, 1\]"),
        (dict(appearance_weight=1.5), r"appearance_weight must be in \[0, 1\]"),
        (dict(min_views=-1), "min_views must be >= 0"),
        (dict(appearance_mode="mul"), "appearance_mode must be 'scale' or 'add'"),
        (dict(accum_views=0), "accum_views must be >= 1"),
        (dict(budget_rate=2.0), "budget rates must satisfy"),
        (dict(budget_down=1.5), "budget_down in"),
        (dict(accum_start_fraction=1.5), r"accum_start_fraction must be in \[0, 1\]"),
        (dict(refine_every=0), "refine_every must be >= 1"),
    ],
)
def test_bad_hyperparameters_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        get_method("turbo-gs", **kw)


@pytest.mark.slow
def test_short_fit_on_bundled_crop_raises_heldout_psnr():
    from splat.io import load_bundled_scene

    scene = load_bundled_scene().downscaled(8)
    result = fit(scene, "turbo-gs", steps=200, **QUIET, sh_degree=0, refine_start=50, refine_every=50,
                 reset_every=0, max_gaussians=8000)
    curve = result.metrics["curve"]
    assert result.metrics["eval_split"] == "test"
    assert result.metrics["psnr"] > curve[0]["psnr"] + 4.0, (curve[0]["psnr"], result.metrics["psnr"])
    assert not math.isnan(result.metrics["ssim"])
