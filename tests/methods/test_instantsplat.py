"""InstantSplat: pose and focal corrections trained through the rasterizer, test-time pose alignment."""

import math

import pytest
import torch

from splat.core.camera import Camera, look_at
from splat.core.gaussians import Gaussians
from splat.methods import fit, get_method
from splat.methods.base import MethodState
from splat.methods.instantsplat import (
    FOCAL_KEY, POSE_KEY, apply_pose_delta, corrected_cameras, refine_view_pose, scale_focal,
)

SIZE = 48


class _RenderedScene:
    """Views rendered from known Gaussians at true cameras; ``cameras`` holds the (perturbed) starting poses."""

    def __init__(self, cameras: Camera, true_viewmats, true_Ks, gaussians: Gaussians, test_ids=()):
        from splat.core.rasterization import rasterization

        self.cameras = cameras
        self.test_ids = list(test_ids)
        self.train_ids = [i for i in range(len(cameras)) if i not in self.test_ids]
        self.points = self.point_colors = None
        self.background = (0.0, 0.0, 0.0)
        self.extent = 1.0
        with torch.no_grad():
            self._images = torch.cat([
                rasterization(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                              gaussians.sh, true_viewmats[i : i + 1], true_Ks[i : i + 1], cameras.width,
                              cameras.height, sh_degree=0)[0]
                for i in range(len(cameras))
            ])

    def images(self, ids):
        return self._images[list(ids)]


def _truth(n=300, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    pts = 0.8 * (torch.rand(n, 3, generator=g) - 0.5)
    return Gaussians.from_points(pts, torch.rand(n, 3, generator=g), sh_degree=0, init_opacity=0.9, init_scale=0.8)


def _orbit(num_views=6) -> tuple[torch.Tensor, torch.Tensor]:
    viewmats = []
    for i in range(num_views):
        a = 2 * math.pi * i / num_views
        eye = torch.tensor([2.2 * math.cos(a), 2.2 * math.sin(a), 0.6 + 0.2 * (i % 2)])
        viewmats.append(look_at(eye, torch.zeros(3)))
    focal = SIZE / (2 * math.tan(math.radians(25)))
    K = torch.tensor([[focal, 0, SIZE / 2], [0, focal, SIZE / 2], [0, 0, 1.0]])
    return torch.stack(viewmats), K.expand(num_views, 3, 3).clone()


def _rotation_error_deg(a, b):  # [C, 4, 4] each
    rel = a[:, :3, :3].transpose(-1, -2) @ b[:, :3, :3]
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def test_pose_delta_gradient_is_finite_at_zero():
    viewmats, _ = _orbit(2)
    delta = torch.zeros(2, 6, requires_grad=True)
    point = torch.tensor([0.1, 0.2, 0.3, 1.0])
    (apply_pose_delta(viewmats, delta) @ point).sum().backward()
    assert torch.isfinite(delta.grad).all() and (delta.grad[:, 3:].abs().sum(-1) > 0).all()


def test_apply_pose_delta_and_scale_focal_shapes_and_errors():
    viewmats, Ks = _orbit(3)
    delta = torch.zeros(3, 6)
    torch.testing.assert_close(apply_pose_delta(viewmats, delta), viewmats)
    delta[1, 0] = 0.5
    moved = apply_pose_delta(viewmats, delta, translation_scale=2.0)
    torch.testing.assert_close(moved[1, 0, 3] - viewmats[1, 0, 3], torch.tensor(1.0))  # camera-frame x shift
    with pytest.raises(ValueError, match=r"delta must be \[3, 6\]"):
        apply_pose_delta(viewmats, torch.zeros(2, 6))
    K2 = scale_focal(Ks, torch.tensor([math.log(1.1)]))
    torch.testing.assert_close(K2[:, 0, 0], Ks[:, 0, 0] * 1.1)
    torch.testing.assert_close(K2[:, :2, 2], Ks[:, :2, 2])  # principal point kept


def test_hyperparameter_validation():
    with pytest.raises(ValueError, match="lr_pose must be >= 0"):
        get_method("instantsplat", lr_pose=-1.0)
    with pytest.raises(ValueError, match="must not exceed lr_pose"):
        get_method("instantsplat", lr_pose=1e-4, lr_pose_final=1e-3)


def _perturbed_scene(rot_deg=2.0, trans=0.05, focal_factor=1.0, seed=1, test_ids=()):
    truth = _truth()
    viewmats, Ks = _orbit(6)
    g = torch.Generator().manual_seed(seed)
    noise = torch.cat([trans * torch.randn(6, 3, generator=g),
                       math.radians(rot_deg) / math.sqrt(3) * torch.randn(6, 3, generator=g)], 1)
    noisy = apply_pose_delta(viewmats, noise)
    start_Ks = Ks.clone()
    start_Ks[:, 0, 0] *= focal_factor
    start_Ks[:, 1, 1] *= focal_factor
    scene = _RenderedScene(Camera(noisy, start_Ks, SIZE, SIZE), viewmats, Ks, truth, test_ids)
    return scene, truth, viewmats


def _reprojection_px(points, viewmats, true_viewmats, Ks):  # mean pixel displacement of the points
    from splat.core.camera import project_points

    return float((project_points(points, viewmats, Ks)[0] - project_points(points, true_viewmats, Ks)[0])
                 .norm(dim=-1).mean())


def test_pose_corrections_get_gradients_and_recover_a_perturbation():
    scene, truth, true_viewmats = _perturbed_scene()
    method = get_method("instantsplat", sh_degree=0, pose_warmup=0, lr_pose=1e-2, lr_pose_final=1e-3,
                        lr_focal=0.0, pose_reg=0.0, test_pose_steps=0, dense_min_points=0)
    result = fit(scene, method=method, steps=240, eval_every=0, show_progress=False, gaussians=truth.detached())
    assert result.state.params[POSE_KEY].abs().sum() > 0  # the deltas were trained
    cams = corrected_cameras(scene, result.state)
    pts, Ks = truth.means.detach(), scene.cameras.Ks
    px_before = _reprojection_px(pts, scene.cameras.viewmats, true_viewmats, Ks)
    px_after = _reprojection_px(pts, cams.viewmats, true_viewmats, Ks)
    assert px_after < px_before / 5, (px_before, px_after)
    # at 48 px a small orbit about the object is nearly invisible: the rotation error falls less
    before = _rotation_error_deg(scene.cameras.viewmats, true_viewmats).mean()
    after = _rotation_error_deg(cams.viewmats, true_viewmats).mean()
    assert after < before / 1.5, (float(before), float(after))


def test_shared_focal_correction_recovers_a_wrong_focal_length():
    scene, truth, _ = _perturbed_scene(rot_deg=0.0, trans=0.0, focal_factor=1.08)
    method = get_method("instantsplat", sh_degree=0, pose_warmup=0, lr_focal=3e-3, optimize_poses=False,
                        pose_reg=0.0, test_pose_steps=0, dense_min_points=0, lr_means=1e-6, lr_means_final=1e-7)
    result = fit(scene, method=method, steps=150, eval_every=0, show_progress=False, gaussians=truth.detached())
    factor = math.exp(float(result.state.params[FOCAL_KEY].detach()))
    assert abs(1.08 * factor - 1.0) < 0.25 * 0.08, factor  # most of the 8 % error is undone
    assert POSE_KEY in result.state.params and float(result.state.params[POSE_KEY].detach().abs().sum()) == 0.0


def test_regulariser_pulls_corrections_toward_the_initial_poses():
    scene, truth, _ = _perturbed_scene(seed=2)
    sizes = {}
    for reg in (0.0, 100.0):
        method = get_method("instantsplat", sh_degree=0, pose_warmup=0, lr_pose=1e-2, lr_pose_final=1e-3,
                            lr_focal=0.0, pose_reg=reg, test_pose_steps=0, dense_min_points=0)
        result = fit(scene, method=method, steps=60, eval_every=0, show_progress=False, gaussians=truth.detached())
        sizes[reg] = float(result.state.params[POSE_KEY].detach().norm(dim=-1).mean())
    assert sizes[100.0] < 0.5 * sizes[0.0], sizes


def test_refine_view_pose_aligns_a_held_out_view_with_frozen_gaussians():
    truth = _truth()
    viewmats, Ks = _orbit(6)
    scene = _RenderedScene(Camera(viewmats, Ks, SIZE, SIZE), viewmats, Ks, truth)
    noise = torch.tensor([0.04, -0.03, 0.02, 0.02, -0.015, 0.025])
    start = apply_pose_delta(viewmats[:1], noise[None])[0]
    before = {k: v.detach().clone() for k, v in truth.params.items()}
    delta, refined = refine_view_pose(truth, start, Ks[0], scene.images([0])[0], steps=150, lr=5e-3, sh_degree=0)
    for k, v in before.items():  # the Gaussians are untouched
        torch.testing.assert_close(truth.params[k], v, rtol=0, atol=0)
    err_before = float(_rotation_error_deg(start[None], viewmats[:1])[0])
    err_after = float(_rotation_error_deg(refined[None], viewmats[:1])[0])
    assert err_after < err_before / 4, (err_before, err_after)
    torch.testing.assert_close(apply_pose_delta(start[None], delta[None])[0], refined)
    with pytest.raises(ValueError, match=r"image must be \[H, W, 3\]"):
        refine_view_pose(truth, start, Ks[0], torch.zeros(SIZE, SIZE))


def test_fit_aligns_test_views_before_evaluation():
    scene, truth, _ = _perturbed_scene(rot_deg=1.5, trans=0.03, seed=3, test_ids=[0])
    kwargs = dict(sh_degree=0, pose_warmup=0, lr_pose=1e-2, lr_pose_final=1e-3, lr_focal=0.0, dense_min_points=0)
    psnr = {}
    for steps in (0, 120):
        method = get_method("instantsplat", test_pose_steps=steps, test_pose_lr=5e-3, **kwargs)
        result = fit(scene, method=method, steps=30, eval_every=0, show_progress=False, gaussians=truth.detached())
        psnr[steps] = result.metrics["psnr"]
        moved = float(result.state.params[POSE_KEY][0].detach().abs().sum())
        assert (moved > 0) == (steps > 0)  # only the alignment moves the held-out view
    assert psnr[120] > psnr[0] + 2.0, psnr


def test_cameras_stay_fixed_during_the_warm_up():
    scene, truth, _ = _perturbed_scene(seed=5)
    method = get_method("instantsplat", sh_degree=0, pose_warmup=15, lr_pose=1e-2, lr_pose_final=1e-3,
                        lr_focal=1e-3, test_pose_steps=0, dense_min_points=0)
    moved = []
    for steps in (15, 25):
        result = fit(scene, method=method, steps=steps, eval_every=0, show_progress=False,
                     gaussians=truth.detached())
        moved.append(float(result.state.params[POSE_KEY].detach().abs().sum()
                           + result.state.params[FOCAL_KEY].detach().abs().sum()))
    assert moved[0] == 0.0 and moved[1] > 0.0, moved


def test_densification_only_on_a_sparse_initial_cloud(tiny_scene):
    counts = {}
    for threshold in (0, 10**6):  # the 150-point cloud is dense for 0, sparse for 10**6
        method = get_method("instantsplat", sh_degree=0, pose_warmup=0, refine_start=5, refine_every=5,
                            refine_stop=30, dense_min_points=threshold, grow_grad2d=1e-6, test_pose_steps=0)
        result = fit(tiny_scene, method=method, steps=21, eval_every=0, show_progress=False)
        counts[threshold] = result.gaussians.num_gaussians
        assert result.state.data["densify"] == (threshold > 0)
    assert counts[0] == len(tiny_scene.points)
    assert counts[10**6] > len(tiny_scene.points)


def test_checkpoint_and_resume_carry_the_pose_state(tmp_path):
    scene, truth, _ = _perturbed_scene(seed=4)
    kwargs = dict(sh_degree=0, pose_warmup=0, lr_pose=1e-2, lr_pose_final=1e-3, test_pose_steps=0, dense_min_points=0)
    straight = fit(scene, method=get_method("instantsplat", **kwargs), steps=40, eval_every=0, show_progress=False,
                   gaussians=truth.detached())
    calls = []
    fit(scene, method=get_method("instantsplat", **kwargs), steps=40, out_dir=tmp_path, eval_every=0,
        show_progress=False, gaussians=truth.detached(), should_stop=lambda: len(calls.append(0) or calls) > 20)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 20
    assert set(ckpt["method_state"]["params"]) == {POSE_KEY, FOCAL_KEY}
    assert set(ckpt["optimizers"]) >= {POSE_KEY, FOCAL_KEY}
    assert ckpt["method_state"]["params"][POSE_KEY].abs().sum() > 0
    resumed = fit(scene, method=get_method("instantsplat", **kwargs), steps=40, out_dir=tmp_path, resume=True,
                  eval_every=0, show_progress=False)
    for key in (POSE_KEY, FOCAL_KEY):
        torch.testing.assert_close(resumed.state.params[key].detach(), straight.state.params[key].detach())
    torch.testing.assert_close(resumed.gaussians.means, straight.gaussians.means)


def test_corrected_cameras_needs_an_instantsplat_state(tiny_scene):
    with pytest.raises(ValueError, match="instantsplat fit's state"):
        corrected_cameras(tiny_scene, MethodState())
    state = MethodState(params=torch.nn.ParameterDict({POSE_KEY: torch.zeros(3, 6), FOCAL_KEY: torch.zeros(1)}))
    with pytest.raises(ValueError, match="3 pose corrections but the scene has 8 views"):
        corrected_cameras(tiny_scene, state)


def test_learns_a_background_beside_the_pose_state_when_the_scene_has_none():
    from types import SimpleNamespace

    from splat.methods.gs3d import BACKGROUND_KEY

    viewmats, Ks = _orbit(4)
    cams = Camera(viewmats, Ks, 48, 48)
    g = _truth(50)
    for background, keys in ((None, {POSE_KEY, FOCAL_KEY, BACKGROUND_KEY}), ((1.0, 1.0, 1.0), {POSE_KEY, FOCAL_KEY})):
        method = get_method("instantsplat", sh_degree=0)
        state = method.init(SimpleNamespace(cameras=cams, background=background), g)
        assert set(state.params) == keys
        assert set(method.trainable(g, state)) >= keys
