"""Random init in the views' frusta, the step-scaled refinement schedule, and the densification hooks."""

import pytest
import torch

from splat.core.camera import Camera, look_at
from splat.methods import get_method
from splat.methods.fit import focus_point, init_gaussians, random_in_views


def _orbit_cameras(n=12, radius=4.0, target=(0.5, -0.2, 0.3), size=64):
    target = torch.tensor(target)
    eyes = [target + radius * torch.tensor([torch.cos(torch.tensor(a)), torch.sin(torch.tensor(a)), 0.4])
            for a in torch.linspace(0, 6.0, n).tolist()]
    viewmats = torch.stack([look_at(e, target) for e in eyes])
    K = torch.tensor([[60.0, 0, size / 2], [0, 60.0, size / 2], [0, 0, 1]]).expand(n, 3, 3)
    return Camera(viewmats, K.clone(), size, size), target


def test_focus_point_of_an_orbit_is_its_target():
    cams, target = _orbit_cameras()
    point, dist = focus_point(cams)
    assert torch.allclose(point, target, atol=1e-4)
    assert torch.allclose(dist, (cams.centers - target).norm(dim=-1), atol=1e-4)


def test_random_init_lies_inside_the_views_not_between_cameras():
    cams, target = _orbit_cameras()
    g = random_in_views(cams, 2000, sh_degree=0, seed=3)
    means = g.means.detach()
    # every point projects inside the image of the camera it was drawn for, so at least one sees it
    from splat.core.camera import project_points

    uv, z = project_points(means, cams.viewmats, cams.Ks)  # [C, N, 2], [C, N]
    inside = (z > 0) & (uv >= 0).all(-1) & (uv[..., 0] < 64) & (uv[..., 1] < 64)
    assert bool(inside.any(dim=0).all())
    # the old box init puts most points far from what the cameras look at
    radius = float((cams.centers - target).norm(dim=-1).mean())
    near_focus = float(((means - target).norm(dim=-1) < 0.6 * radius).float().mean())
    scene = type("S", (), {"points": None, "cameras": cams, "extent": 1.1 * radius * 1.08})()
    box = init_gaussians(scene, 0, 2000, seed=3, random_init="box").means.detach()
    near_focus_box = float(((box - target).norm(dim=-1) < 0.6 * radius).float().mean())
    assert near_focus > 2 * near_focus_box


def test_random_init_is_seeded_and_checked():
    cams, _ = _orbit_cameras()
    a = random_in_views(cams, 100, sh_degree=1, seed=5).means
    b = random_in_views(cams, 100, sh_degree=1, seed=5).means
    assert torch.equal(a, b)
    scene = type("S", (), {"points": None, "cameras": cams, "extent": 4.0})()
    with pytest.raises(ValueError, match="random_init must be one of"):
        init_gaussians(scene, 0, 10, random_init="sphere")


def test_refinement_stops_at_a_fraction_of_the_run():
    m = get_method("3dgs")
    assert m.refine_stop_at(1000) == 750 and m.refine_stop_at(3000) == 2250
    assert m.refine_stop_at(100_000) == m.refine_stop  # the absolute cap still holds
    assert get_method("3dgs", refine_stop_fraction=1.0).refine_stop_at(3000) == 3000
    with pytest.raises(ValueError, match="refine_stop_fraction must be in"):
        get_method("3dgs", refine_stop_fraction=0.0)


def _count_events(method, steps, tiny_scene):
    from splat.methods import fit

    resets, refines = [], []
    original_refine = method.refine

    def spy_refine(ctx):
        refines.append(ctx.step)
        return original_refine(ctx)

    method.refine = spy_refine
    original_post = method.step_post_backward

    def spy_post(ctx):
        original_post(ctx)
        if ctx.info.get("reset"):
            resets.append(ctx.step)

    method.step_post_backward = spy_post
    fit(tiny_scene, method=method, steps=steps, eval_every=0, checkpoint_every=0, show_progress=False)
    return refines, resets


@pytest.mark.slow
def test_schedule_leaves_time_to_converge(tiny_scene):
    method = get_method("3dgs", sh_degree=0, refine_start=10, refine_every=10, reset_every=40)
    refines, resets = _count_events(method, 120, tiny_scene)
    assert refines and max(refines) < 90  # 0.75 * 120
    assert resets == [40]  # 80 is within half a reset period of the stop


def test_turbo_gs_keeps_its_budget_and_scores_through_the_hook(tiny_scene):
    from splat.methods import fit

    method = get_method("turbo-gs", sh_degree=0, refine_start=5, refine_every=5, max_gaussians=400,
                        kd_densify=False)
    calls = []
    original = type(method).densify_scores

    def spy(self, ctx, cam, gid, grads):
        score = original(self, ctx, cam, gid, grads)
        calls.append((score.shape, grads.shape))
        return score

    type(method).densify_scores = spy
    try:
        result = fit(tiny_scene, method=method, steps=25, eval_every=0, checkpoint_every=0, show_progress=False)
    finally:
        type(method).densify_scores = original
    assert calls and all(s[0] == g[0] and g[1] == 2 for s, g in calls)
    assert method.max_gaussians == 400  # never overwritten by refine
    assert result.gaussians.num_gaussians <= 400
