"""The method interface admits what the coming methods need (Turbo-GS, GES, InstantSplat, GS2Pose)."""

from dataclasses import dataclass

import pytest
import torch

from splat.core.camera import Camera
from splat.core.gaussians import Gaussians
from splat.methods import Method, MethodState, fit, registry
from splat.methods.densify import clone_gaussians, replace_gaussians, split_gaussians
from splat.methods.gs3d import GS3D


class _RenderedScene:
    """A scene whose images are renders of known Gaussians from the true cameras."""

    def __init__(self, cameras: Camera, true_viewmats, gaussians: Gaussians):
        from splat.core.rasterization import rasterization

        self.cameras = cameras
        self.train_ids = list(range(1, len(cameras)))
        self.test_ids = [0]
        self.points, self.point_colors, self.background = None, None, (0.0, 0.0, 0.0)
        self.extent = 1.0
        with torch.no_grad():
            self._images = torch.cat([
                rasterization(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                              gaussians.sh, true_viewmats[i : i + 1], cameras.Ks[i : i + 1], cameras.width,
                              cameras.height, sh_degree=0)[0]
                for i in range(len(cameras))
            ])

    def images(self, ids):
        return self._images[list(ids)]


@dataclass
class PoseOnly(Method):
    """GS2Pose/InstantSplat-like: frozen Gaussians, per-camera translation deltas applied to viewmats."""

    sh_degree: int = 0
    lr_pose: float = 3e-3

    def init(self, scene, gaussians):
        return MethodState(params=torch.nn.ParameterDict({"pose_delta": torch.zeros(len(scene.cameras), 3)}))

    def trainable(self, gaussians, state):
        return {"pose_delta": self.lr_pose}

    def render_inputs(self, ctx):
        inputs = super().render_inputs(ctx)
        delta = ctx.state.params["pose_delta"][ctx.camera_ids]  # [C, 3]
        inputs["viewmats"] = torch.cat(
            [torch.cat([ctx.viewmats[:, :3, :3], ctx.viewmats[:, :3, 3:] + delta[:, :, None]], dim=2),
             ctx.viewmats[:, 3:]], dim=1)
        return inputs


def test_trainable_camera_poses_with_a_frozen_scene(tiny_scene):
    g = torch.Generator().manual_seed(0)
    truth = Gaussians.from_points(0.6 * (torch.rand(60, 3, generator=g) - 0.5), torch.rand(60, 3, generator=g),
                                  sh_degree=0, init_opacity=0.8, init_scale=1.5)
    true_viewmats = tiny_scene.cameras.viewmats
    offsets = 0.04 * torch.randn(len(tiny_scene.cameras), 3, generator=g)
    noisy = true_viewmats.clone()
    noisy[:, :3, 3] += offsets
    scene = _RenderedScene(Camera(noisy, tiny_scene.cameras.Ks, tiny_scene.cameras.width,
                                  tiny_scene.cameras.height), true_viewmats, truth)
    before = {k: v.detach().clone() for k, v in truth.params.items()}
    result = fit(scene, method=PoseOnly(), steps=210, eval_every=0, show_progress=False, gaussians=truth)
    # the scene stayed frozen
    for k, v in before.items():
        torch.testing.assert_close(result.gaussians.params[k], v, rtol=0, atol=0)
    # the learned deltas undo the perturbation of the training cameras
    delta = result.state.params["pose_delta"].detach()
    ids = scene.train_ids
    err_before = offsets[ids].norm(dim=-1).mean()
    err_after = (offsets[ids] + delta[ids]).norm(dim=-1).mean()
    assert err_after < 0.1 * err_before, (float(err_before), float(err_after))


def test_extra_per_gaussian_parameter_follows_densification():
    """GES-like: an extra per-Gaussian parameter and its optimizer state stay aligned when N changes."""
    gs = Gaussians.from_points(torch.rand(6, 3), sh_degree=0)
    gs.params["shape"] = torch.nn.Parameter(torch.arange(6.0))
    opt = {"shape": torch.optim.Adam([gs.params["shape"]], lr=0.1)}
    gs.params["shape"].grad = torch.ones(6)
    opt["shape"].step()
    mask = torch.tensor([True, False, False, True, False, False])
    clone_gaussians(gs, opt, mask)
    split_gaussians(gs, opt, torch.tensor([False, True] + [False] * 6))
    gs.validate()
    assert gs.num_gaussians == 9
    shape = gs.params["shape"].detach()
    # originals 0, 2..5 (1 was split), clones of 0 and 3, then two children of 1
    expected = torch.tensor([0.0, 2, 3, 4, 5, 0, 3, 1, 1]) - 0.1
    torch.testing.assert_close(shape, expected)
    assert opt["shape"].state[gs.params["shape"]]["exp_avg"].shape == (9,)


def test_replace_gaussians_swaps_every_entry_and_restarts_optimizer_moments():
    gs = Gaussians.from_points(torch.rand(6, 3), sh_degree=0)
    opt = {"opacities": torch.optim.Adam([gs.params["opacities"]], lr=0.1)}
    gs.params["opacities"].grad = torch.ones(6)
    opt["opacities"].step()
    new = Gaussians.from_points(torch.rand(10, 3), sh_degree=0)
    replace_gaussians(gs, opt, {k: v.detach() for k, v in new.params.items()})
    gs.validate()
    assert gs.num_gaussians == 10
    torch.testing.assert_close(gs.params["means"].detach(), new.params["means"].detach())
    state = opt["opacities"].state[gs.params["opacities"]]
    assert opt["opacities"].param_groups[0]["params"][0] is gs.params["opacities"]
    assert state["exp_avg"].shape == (10,) and not state["exp_avg"].any()


def test_replace_gaussians_works_without_reading_values():
    """No boolean indexing: it runs on the meta device, where values are unknown."""
    gs = Gaussians.from_points(torch.rand(6, 3), sh_degree=0).to("meta")
    new = Gaussians.from_points(torch.rand(4, 3), sh_degree=0)
    replace_gaussians(gs, {}, {k: v.detach() for k, v in new.params.items()})
    assert gs.num_gaussians == 4 and gs.params["means"].device.type == "meta"


def test_error_maps_and_visibility_are_available_to_hooks(tiny_scene):
    """Turbo-GS-like: per-pixel error maps in ctx.info and per-Gaussian visibility from meta."""
    seen = {}

    @dataclass
    class Probe(GS3D):
        def loss(self, ctx):
            error = (ctx.render - ctx.gt_images).abs().mean(-1)  # [C, H, W]
            ctx.info["error_map"] = error.detach()
            return error.mean()

        def step_post_backward(self, ctx):
            visible = (ctx.meta["radii"] > 0).all(-1).any(0)  # [N]
            counts = ctx.state.data.setdefault("visible_count", torch.zeros(ctx.gaussians.num_gaussians))
            counts += visible.float()
            seen["error_shape"] = tuple(ctx.info["error_map"].shape)
            seen["visible"] = int((counts > 0).sum())
            super().step_post_backward(ctx)

    fit(tiny_scene, method=Probe(sh_degree=0, refine_start=10**6), steps=8, eval_every=0, show_progress=False)
    assert seen["error_shape"] == (1, 32, 32)
    assert seen["visible"] > 0


def test_method_asking_for_an_unknown_parameter_is_rejected(tiny_scene):
    @dataclass
    class Bad(Method):
        def trainable(self, gaussians, state):
            return {"nonexistent": 1e-3}

    with pytest.raises(ValueError, match="asks to train 'nonexistent'"):
        fit(tiny_scene, method=Bad(), steps=1, show_progress=False)
    assert "Bad" not in registry.available_methods()
