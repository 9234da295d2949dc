"""Pruning of oversized Gaussians after the first opacity reset: off by default, by world size or by angular size."""

import math
from types import SimpleNamespace

import pytest
import torch

from splat.core.gaussians import Gaussians
from splat.methods import get_method
from splat.methods.base import StepContext
from splat.methods.fit import _make_optimizers


def _scene():
    """Two training cameras near the origin (a third, held out, far away must not count)."""
    centers = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [100.0, 0.0, 0.0]])
    return SimpleNamespace(cameras=SimpleNamespace(centers=centers), train_ids=[0, 1], test_ids=[2])


def _refine(method, g, scene, extent=1.0):
    state = method.init(None, g)
    state.data["n_reset"] = 1  # after the first reset: the scale test applies
    state.data["count"] = torch.ones(g.num_gaussians)
    ctx = StepContext(
        step=0, total_steps=1000, scene=scene, gaussians=g, optimizers=_make_optimizers(method, g, state),
        state=state, camera_ids=[0], viewmats=torch.eye(4)[None], Ks=torch.eye(3)[None], width=32, height=32,
        gt_images=torch.zeros(1, 32, 32, 3), background=torch.zeros(1, 3), sh_degree=0, extent=extent,
    )
    return method.refine(ctx)


def _gaussians():
    # 0: near the cameras, scale 0.5 (5 x the limit 0.1 there); 1: 20 units away, same scale
    # (0.5 < 0.1 * 20); 2: 20 units away, scale 3 (> 2); 3: small, near.
    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 20.0], [0.0, 20.0, 0.0], [0.2, 0.0, 1.0]])
    g = Gaussians.from_points(means, sh_degree=0, init_opacity=0.5)
    with torch.no_grad():
        g.params["scales"][:] = math.log(0.01)
        g.params["scales"][0, 0] = math.log(0.5)
        g.params["scales"][1, 2] = math.log(0.5)
        g.params["scales"][2, 1] = math.log(3.0)
    return g


def test_no_scale_pruning_by_default():
    g = _gaussians()
    stats = _refine(get_method("3dgs", sh_degree=0), g, _scene())
    assert stats["pruned"] == 0 and g.num_gaussians == 4
    with pytest.raises(ValueError, match="prune_scale3d must be >= 0"):
        get_method("3dgs", prune_scale3d=-0.1)


def test_limit_grows_with_the_distance_to_the_nearest_training_camera():
    g = _gaussians()
    method = get_method("3dgs", sh_degree=0, prune_scale3d=0.1)
    stats = _refine(method, g, _scene())
    assert stats["pruned"] == 2
    kept = g.means.detach()
    torch.testing.assert_close(kept, torch.tensor([[0.0, 0.0, 20.0], [0.2, 0.0, 1.0]]))


def test_limit_by_extent_only_prunes_everything_large():
    g = _gaussians()
    method = get_method("3dgs", sh_degree=0, prune_scale3d=0.1, prune_scale_by_distance=False)
    stats = _refine(method, g, _scene())
    assert stats["pruned"] == 3 and g.num_gaussians == 1


def test_limit_values_and_no_cameras_fall_back_to_the_extent():
    g = _gaussians()
    method = get_method("3dgs", sh_degree=0, prune_scale3d=0.1)
    ctx = SimpleNamespace(gaussians=g, scene=_scene(), extent=2.0)
    limit = method.scale_prune_limit(ctx)
    # nearest training camera: 1, 20, ~20.0, 1.02 (clamped to the extent 2)
    torch.testing.assert_close(limit, 0.1 * torch.tensor([2.0, 20.0, 20.0, 2.0]), atol=1e-4, rtol=0)
    assert method.scale_prune_limit(SimpleNamespace(gaussians=g, scene=None, extent=2.0)) == 0.2
