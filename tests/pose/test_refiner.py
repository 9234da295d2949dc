import math

import numpy as np
import pytest
import torch

from splat.pose.model import model_diameter, surface_points
from splat.pose.refiner import Observation, RefinerConfig, refine_pose, render_model
from splat.pose.se3 import perturb, rotation_error_deg

FAST = RefinerConfig(max_iters=40, min_iters=20, sh_start=30)


def add_error(T, T_gt, points):
    """Mean distance of the model points under the two poses (BOP's ADD)."""
    diff = points.double() @ (T[:3, :3] - T_gt[:3, :3]).T + (T[:3, 3] - T_gt[:3, 3])
    return float(diff.norm(dim=-1).mean())


def _observation(model, T, K, size, mask=True, gain=1.0):
    with torch.no_grad():
        rgb, alpha, depth = render_model(model, T, K, size, size, with_depth=True)
    image = (rgb * gain + 0.3 * (1 - alpha)).clamp(0, 1)  # a grey background
    m = alpha[..., 0] > 0.5
    return Observation(image, K, m if mask else None, None), depth[..., 0] * m


@pytest.mark.parametrize("use_mask", [True, False])
def test_refiner_recovers_a_perturbed_pose(box_model, pose_and_K, use_mask):
    T_gt, K = pose_and_K
    points = surface_points(box_model)
    d = model_diameter(points)
    obs, _ = _observation(box_model, T_gt, K, 96, mask=use_mask)
    T0 = perturb(T_gt, 15.0, 0.08 * d, torch.Generator().manual_seed(1))
    before = add_error(T0, T_gt, points)
    result = refine_pose(box_model, obs, T0, FAST)
    after = add_error(result.object_to_camera, T_gt, points)
    assert before > 0.1 * d
    # Without a mask only the model's own footprint is compared: slower, so a looser bound.
    assert after < (0.03 if use_mask else 0.05) * d, (before / d, after / d)
    assert float(rotation_error_deg(result.object_to_camera[:3, :3], T_gt[:3, :3])) < 3.0
    assert len(result.history) == result.iterations
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_refiner_absorbs_a_brightness_change_and_leaves_the_model_untouched(box_model, pose_and_K):
    T_gt, K = pose_and_K
    points = surface_points(box_model)
    d = model_diameter(points)
    snapshot = {k: v.detach().clone() for k, v in box_model.params.items()}
    obs, _ = _observation(box_model, T_gt, K, 96, gain=0.6)
    T0 = perturb(T_gt, 10.0, 0.05 * d, torch.Generator().manual_seed(2))
    result = refine_pose(box_model, obs, T0, FAST)
    assert add_error(result.object_to_camera, T_gt, points) < 0.03 * d
    assert np.mean(result.color["gain"]) < 0.85  # the affine correction learnt the darker image
    for k, v in box_model.params.items():
        assert torch.equal(v.detach(), snapshot[k]), k


def test_depth_term_and_icp_fix_the_translation(box_model, pose_and_K):
    T_gt, K = pose_and_K
    points = surface_points(box_model)
    d = model_diameter(points)
    obs, depth = _observation(box_model, T_gt, K, 96)
    obs = Observation(obs.image, K, obs.mask, depth)
    T0 = T_gt.clone()
    T0[2, 3] += 0.12 * d  # too far along the optical axis: the hardest direction for photometry
    config = RefinerConfig(max_iters=25, min_iters=10, sh_start=-1, icp=True)
    result = refine_pose(box_model, obs, T0, config)
    assert result.icp_shift is not None
    assert abs(float(result.object_to_camera[2, 3] - T_gt[2, 3])) < 0.02 * d


def test_refiner_on_a_vtk_render_with_changed_lighting(box_object, box_model):
    """A VTK image under other lights: rotation and the image-plane translation are recovered.

    The surface-sampled model renders about 2 % larger than the mesh (splat
    footprints overhang the edges), which biases the depth; fitted models do
    not have this bias (see the benchmark), so depth is not asserted here.
    """
    from splat.pose.dataset import make_test_samples

    sample = make_test_samples("photo_box", 1, size=128, seed=3, lighting_change=True)[0]
    points = surface_points(box_model)
    d = model_diameter(points)
    T_gt = torch.from_numpy(sample.object_to_camera)
    obs = Observation(torch.from_numpy(sample.image), torch.from_numpy(sample.K).float(),
                      torch.from_numpy(sample.mask), None)
    T0 = perturb(T_gt, 12.0, 0.06 * d, torch.Generator().manual_seed(4))
    T = refine_pose(box_model, obs, T0, FAST).object_to_camera
    assert float(rotation_error_deg(T[:3, :3], T_gt[:3, :3])) < 3.0
    lateral = lambda P: float((P[:2, 3] / P[2, 3] - T_gt[:2, 3] / T_gt[2, 3]).norm()) * float(T_gt[2, 3])  # noqa: E731
    assert lateral(T) < min(0.02 * d, lateral(T0) / 2), (lateral(T0) / d, lateral(T) / d)
