"""The learned background (an SH environment of the ray direction) and absolute-gradient growth.

The compositing maths is tested in ``tests/core/test_environment.py``."""

from dataclasses import replace

import pytest
import torch

from splat.methods import fit, get_method
from splat.methods.background import environment_colors, init_environment
from splat.methods.gs3d import BACKGROUND_KEY


def test_init_environment_is_that_colour_in_every_direction():
    dirs = torch.nn.functional.normalize(torch.randn(40, 3), dim=-1)
    for degree in (0, 2):
        coeffs = init_environment(degree, (0.2, 0.6, 0.9))
        assert coeffs.shape == ((degree + 1) ** 2, 3)
        torch.testing.assert_close(environment_colors(coeffs, dirs, degree), torch.tensor([0.2, 0.6, 0.9]).expand(40, 3))


def test_fit_learns_a_background_only_when_the_scene_has_none(tiny_scene):
    known = fit(tiny_scene, steps=20, eval_every=0, checkpoint_every=0, show_progress=False)
    assert BACKGROUND_KEY not in known.state.params
    unknown = replace(tiny_scene, background=None)
    learned = fit(unknown, steps=20, eval_every=0, checkpoint_every=0, show_progress=False)
    coeffs = learned.state.params[BACKGROUND_KEY].detach()
    assert coeffs.shape == (9, 3) and not torch.equal(coeffs, init_environment(2))  # it was trained
    off = fit(unknown, steps=5, eval_every=0, checkpoint_every=0, show_progress=False, learn_background="off")
    assert BACKGROUND_KEY not in off.state.params
    forced = fit(tiny_scene, steps=5, eval_every=0, checkpoint_every=0, show_progress=False,
                 learn_background="on", background_sh_degree=0)
    assert forced.state.params[BACKGROUND_KEY].shape == (1, 3)


def test_background_options_are_checked():
    with pytest.raises(ValueError, match="learn_background"):
        get_method("3dgs", learn_background="yes")
    with pytest.raises(ValueError, match="background_sh_degree"):
        get_method("3dgs", background_sh_degree=4)


def test_absgrad_growth_reads_the_absolute_gradients(tiny_scene):
    """With ``absgrad`` the statistics come from ``means2d.absgrad``, at least the plain gradient's norm."""
    plain = get_method("3dgs", absgrad=False, refine_start=10_000)
    absm = get_method("3dgs", absgrad=True, refine_start=10_000)
    r_plain = fit(tiny_scene, method=plain, steps=8, eval_every=0, checkpoint_every=0, show_progress=False)
    r_abs = fit(tiny_scene, method=absm, steps=8, eval_every=0, checkpoint_every=0, show_progress=False)
    g_plain = r_plain.state.data["grad2d"]
    g_abs = r_abs.state.data["grad2d"]
    # identical fits (the growth statistics do not change the optimisation before refinement)
    assert torch.equal(r_plain.gaussians.means, r_abs.gaussians.means)
    assert bool((g_abs >= g_plain - 1e-9).all()) and float(g_abs.sum()) > float(g_plain.sum())


def test_growth_budget_follows_the_remaining_error():
    from types import SimpleNamespace

    def ctx(n, data, size=10):
        return SimpleNamespace(gaussians=SimpleNamespace(num_gaussians=n), state=SimpleNamespace(data=data),
                               width=size, height=size)

    capped = get_method("3dgs", max_gaussians=5000, growth_rate=0.0)
    assert capped.growth_limit(ctx(1000, {"l1_sum": 1.0, "l1_count": 10})) == 5000  # off: the cap only
    m = get_method("3dgs", growth_rate=0.5, max_gaussians=5000, growth_free_per_pixel=1.0)  # free below 100
    data = {"l1_sum": 2.0, "l1_count": 10}  # first pass: mean L1 0.2 becomes the reference
    assert m.growth_limit(ctx(1000, data)) == 1500 and data["l1_first"] == pytest.approx(0.2)
    data.update(l1_sum=1.0, l1_count=10)  # the error has halved: a quarter of the rate
    assert m.growth_limit(ctx(2000, data)) == 2250
    data.update(l1_sum=4.0, l1_count=10)  # never more than the full rate, never past the cap
    assert m.growth_limit(ctx(4000, data)) == 5000
    assert m.growth_limit(ctx(1000, {})) == 5000  # no error measured yet
    data.update(l1_sum=0.01, l1_count=10)  # error all but gone, yet free growth up to 1 per pixel
    assert m.growth_limit(ctx(1000, data, size=50)) == 2500 and m.growth_limit(ctx(1000, data)) == 1000
    with pytest.raises(ValueError, match="growth_rate"):
        get_method("3dgs", growth_rate=-1.0)
    with pytest.raises(ValueError, match="growth_free_per_pixel"):
        get_method("3dgs", growth_free_per_pixel=float("nan"))


def test_absgrad_is_on_by_default_unless_the_score_is_overridden():
    from splat.methods.gs3d import GS3D

    assert get_method("3dgs").uses_absgrad() and not get_method("3dgs", absgrad=False).uses_absgrad()

    class OwnScore(GS3D):
        def densify_scores(self, ctx, cam, gid, grads):
            return 2.0 * grads.norm(dim=-1)

    assert not OwnScore().uses_absgrad() and OwnScore(absgrad=True).uses_absgrad()


def test_fit_writes_the_environment_and_renders_of_the_ply_draw_it(tiny_scene, tmp_path):
    """``environment.json`` beside the PLY: ``api.render`` reproduces the fit's own held-out render."""
    import imageio.v3 as iio

    from splat.methods.background import ENVIRONMENT_FILE, load_environment
    from splatops import api

    unknown = replace(tiny_scene, background=None)
    res = fit(unknown, steps=30, eval_every=0, checkpoint_every=0, show_progress=False, out_dir=tmp_path / "fit")
    env_file = tmp_path / "fit" / ENVIRONMENT_FILE
    assert res.paths["environment"] == env_file
    coeffs, degree = load_environment(env_file)
    assert degree == 2
    torch.testing.assert_close(coeffs, res.state.params[BACKGROUND_KEY].detach())

    cid = res.metrics["eval_views"][0]
    fit_render = iio.imread(tmp_path / "fit" / "renders" / f"{cid:04d}.png")[:, : unknown.cameras.width]
    with_env = api.render(res.paths["ply"], unknown, out_dir=tmp_path / "env", video=False, show_progress=False)
    without = api.render(res.paths["ply"], unknown, out_dir=tmp_path / "black", video=False, show_progress=False,
                         environment=False)
    ours = iio.imread(with_env.views[cid]).astype(int)
    assert abs(ours - fit_render.astype(int)).max() <= 1  # the same image up to rounding
    assert abs(iio.imread(without.views[cid]).astype(int) - fit_render.astype(int)).max() > 10


def test_a_bad_environment_file_is_named(tmp_path):
    from splat.methods.background import load_environment, save_environment

    bad = tmp_path / "sky.json"
    bad.write_text('{"kind": "sh_environment", "degree": 2, "coeffs": [[0, 0, 0]]}')
    with pytest.raises(ValueError, match="sky.json"):
        load_environment(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="sky.json is not a readable environment"):
        load_environment(bad)
    with pytest.raises(ValueError, match="coefficients"):
        save_environment(tmp_path / "x.json", torch.zeros(5, 3))
