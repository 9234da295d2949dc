import pytest
import torch

from splat.methods import fit, get_method
from splat.methods.gs3d import GS3D
from splat.methods.turbo_gs import TurboGS, error_at_means

SCHEDULE = dict(sh_degree=1, sh_degree_interval=50, refine_start=10, refine_every=10, reset_every=0)


def test_growth_cap_ramps_linearly_to_max():
    m = get_method("turbo-gs", refine_start=100, budget_ramp_stop=300, max_gaussians=1100)
    assert m.growth_cap(50, 100) == 100
    assert m.growth_cap(100, 100) == 100
    assert m.growth_cap(200, 100) == 600
    assert m.growth_cap(300, 100) == 1100
    assert m.growth_cap(900, 100) == 1100
    assert m.growth_cap(200, 5000) == 1100  # never above max_gaussians


def test_growth_budget_caps_n_as_scheduled(tiny_scene):
    method = TurboGS(grow_grad2d=1e-8, budget_ramp_stop=40, max_gaussians=700, refine_stop_fraction=1.0, **SCHEDULE)
    seen = []
    original = method.refine

    def recording_refine(ctx):
        n_before = ctx.gaussians.num_gaussians
        stats = original(ctx)
        seen.append(dict(step=ctx.step, cap=ctx.info["growth_cap"], n_init=ctx.state.data["n_init"],
                         before=n_before, after=ctx.gaussians.num_gaussians, **stats))
        return stats

    method.refine = recording_refine
    fit(tiny_scene, method, steps=45, eval_every=0, checkpoint_every=0, show_progress=False)
    assert [r["step"] for r in seen] == [20, 30, 40]
    for r in seen:
        assert r["cap"] == method.growth_cap(r["step"], r["n_init"])
        assert r["after"] <= r["cap"], r
        # growth wanted every visible Gaussian (tiny threshold) but stopped at the cap
        assert r["cloned"] + r["split"] <= max(r["cap"] - r["before"], 0), r
    assert any(r["after"] + r["pruned"] == r["cap"] for r in seen)  # the budget did bind
    caps = [r["cap"] for r in seen]
    assert caps == sorted(caps) and caps[0] < caps[-1] == 700 > seen[-1]["n_init"]


def test_error_at_means_reads_the_pixel_under_each_mean():
    err = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)  # [C, H, W]
    means2d = torch.tensor([[[0.5, 0.5], [3.9, 2.1], [-5.0, 1.5]], [[1.2, 2.7], [9.0, 9.0], [2.0, 0.0]]])
    cam = torch.tensor([0, 0, 0, 1, 1])
    gid = torch.tensor([0, 1, 2, 0, 1])
    got = error_at_means(err, means2d, cam, gid)
    expected = torch.tensor([err[0, 0, 0], err[0, 2, 3], err[0, 1, 0], err[1, 2, 1], err[1, 2, 3]])
    torch.testing.assert_close(got, expected)


def test_zero_error_weight_and_open_budget_match_3dgs(tiny_scene):
    common = dict(SCHEDULE, sh_degree_interval=250, refine_stop=2500, grow_grad2d=1e-5)
    turbo = fit(tiny_scene, "turbo-gs", steps=40, eval_every=0, checkpoint_every=0, show_progress=False,
                error_weight=0.0, budget_ramp_stop=11, **common)
    base = fit(tiny_scene, GS3D(**common), steps=40, eval_every=0, checkpoint_every=0, show_progress=False)
    assert turbo.gaussians.num_gaussians == base.gaussians.num_gaussians
    for key in base.gaussians.params:
        torch.testing.assert_close(turbo.gaussians.params[key], base.gaussians.params[key])


def test_error_weighting_changes_which_gaussians_grow(tiny_scene):
    kw = dict(eval_every=0, checkpoint_every=0, show_progress=False, budget_ramp_stop=11, grow_grad2d=1e-3,
              **SCHEDULE)
    plain = fit(tiny_scene, "turbo-gs", steps=40, error_weight=0.0, **kw)
    weighted = fit(tiny_scene, "turbo-gs", steps=40, error_weight=1.0, **kw)
    assert plain.gaussians.num_gaussians != weighted.gaussians.num_gaussians


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(error_weight=1.5), r"error_weight must be in \[0, 1\]"),
        (dict(error_weight=-0.1), r"error_weight must be in \[0, 1\]"),
        (dict(refine_start=100, budget_ramp_stop=100), "budget_ramp_stop must exceed refine_start=100"),
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
    result = fit(scene, "turbo-gs", steps=200, eval_every=0, checkpoint_every=0, show_progress=False,
                 sh_degree=0, refine_start=50, refine_every=50, budget_ramp_stop=150, reset_every=0, max_gaussians=8000)
    curve = result.metrics["curve"]
    assert result.metrics["eval_split"] == "test"
    assert result.metrics["psnr"] > curve[0]["psnr"] + 4.0, (curve[0]["psnr"], result.metrics["psnr"])
