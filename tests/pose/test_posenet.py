import json

import numpy as np
import pytest
import torch

from splat.pose.posenet import PoseNet, PoseNetConfig, load_posenet, nocs_box, pnp_from_nocs, render_nocs
from splat.pose.se3 import rotation_error_deg


def _ray_box_nocs(T, K, size, lo, hi):
    """Exact NOCS of every pixel centre's ray hitting the box [lo, hi] (slab method)."""
    v, u = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    rays = torch.stack([u + 0.5, v + 0.5, torch.ones_like(u)], -1) @ torch.linalg.inv(K.double()).T
    R, t = T[:3, :3], T[:3, 3]
    origin = -R.T @ t
    dirs = rays @ R  # R^T d for each ray
    with np.errstate(divide="ignore"):
        t1 = (lo - origin) / dirs
        t2 = (hi - origin) / dirs
    near = torch.minimum(t1, t2).max(-1).values
    far = torch.maximum(t1, t2).min(-1).values
    hit = (near < far) & (far > 0)
    points = origin + near[..., None] * dirs
    return ((points - lo) / (hi - lo)).clamp(0, 1), hit


def test_pnp_on_perfect_nocs_recovers_the_pose(box_object, pose_and_K):
    T_gt, K = pose_and_K
    verts = torch.from_numpy(box_object.vertices()).double()
    lo, hi = verts.min(0).values, verts.max(0).values
    nocs, hit = _ray_box_nocs(T_gt, K, 96, lo, hi)
    assert int(hit.sum()) > 500
    T, inliers = pnp_from_nocs(nocs, hit, (lo, hi), K, (96, 96))
    assert inliers == int(hit.sum())
    torch.testing.assert_close(T, T_gt, atol=1e-6, rtol=0)


def test_pnp_on_half_resolution_nocs_maps_pixels_back_to_the_image(box_object, pose_and_K):
    T_gt, K = pose_and_K
    verts = torch.from_numpy(box_object.vertices()).double()
    lo, hi = verts.min(0).values, verts.max(0).values
    K_half = K.double().clone()
    K_half[:2] /= 2  # the map is made at 48 px; PnP gets the 96 px intrinsics
    nocs, hit = _ray_box_nocs(T_gt, K_half, 48, lo, hi)
    T, _ = pnp_from_nocs(nocs, hit, (lo, hi), K, (96, 96))
    torch.testing.assert_close(T, T_gt, atol=1e-6, rtol=0)


def test_pnp_on_a_zoomed_crop_maps_crop_pixels_back_to_the_image(box_object, pose_and_K):
    from splat.pose.posenet import crop_square

    T_gt, K = pose_and_K
    verts = torch.from_numpy(box_object.vertices()).double()
    lo, hi = verts.min(0).values, verts.max(0).values
    crop = (20.0, 14.0, 56.0, 56.0)  # x0, y0, side, side in image pixels; the network sees 32 px
    scale = 32 / 56.0
    K_crop = K.double().clone()
    K_crop[0, 2] -= crop[0]
    K_crop[1, 2] -= crop[1]
    K_crop[:2] *= scale
    nocs, hit = _ray_box_nocs(T_gt, K_crop, 32, lo, hi)
    T, _ = pnp_from_nocs(nocs, hit, (lo, hi), K, (96, 96), crop=crop)
    torch.testing.assert_close(T, T_gt, atol=1e-6, rtol=0)
    # crop_square samples the same pixel centres: a linear ramp comes back exactly.
    ramp = torch.arange(96.0)[None, :, None].expand(96, 96, 3) + 0.5
    sampled = crop_square(ramp, crop, 32)
    expected = crop[0] + (torch.arange(32.0) + 0.5) * 56.0 / 32
    torch.testing.assert_close(sampled[5, :, 0], expected, atol=1e-4, rtol=0)


def test_pnp_on_rendered_nocs_is_close(box_model, pose_and_K):
    T_gt, K = pose_and_K
    box = nocs_box(box_model)
    _, nocs, alpha = render_nocs(box_model, T_gt, K, 96, 96, box)
    T, _ = pnp_from_nocs(nocs, alpha > 0.9, box, K, (96, 96))
    assert float(rotation_error_deg(T[:3, :3], T_gt[:3, :3])) < 2.0
    assert float((T[:3, 3] - T_gt[:3, 3]).norm()) < 0.08  # 3 % of the distance: blended NOCS at edges


def test_unet_shapes():
    out = PoseNet(width=8)(torch.rand(2, 3, 40, 40))
    assert out.shape == (2, 4, 40, 40)


def test_tiny_training_budget_gives_a_working_pipeline(box_ply, box_model, pose_and_K, tmp_path):
    from splat.pose.estimate import estimate_pose, train_posenet

    path = train_posenet(box_ply, tmp_path / "box.posenet.pt", show_progress=False, input_size=32, width=8,
                         num_renders=12, steps=25, batch_size=4)
    net, payload = load_posenet(path, box_model)
    losses = [h["loss"] for h in payload["history"]]
    assert losses[-1] < losses[0]
    assert payload["steps_done"] == 25 and not list(tmp_path.glob(".*tmp"))
    # Estimation from an image with a mask and no --init goes through the coarse stage.
    T_gt, K = pose_and_K
    from splat.pose.refiner import render_model

    with torch.no_grad():
        rgb, alpha, _ = render_model(box_model, T_gt, K, 96, 96)
    image = (rgb + 0.5 * (1 - alpha)).numpy()
    try:
        result = estimate_pose(box_ply, image, K.numpy(), mask=(alpha[..., 0] > 0.5).numpy(), posenet=path,
                               out=tmp_path / "pose.json")
    except ValueError as exc:  # an untrained network may find no pose; it must say so clearly
        assert "Pose-Net" in str(exc)
        print("coarse stage found no pose:", exc)
        return
    assert result.source == "posenet"
    T = torch.from_numpy(result.object_to_camera)
    torch.testing.assert_close(T[:3, :3] @ T[:3, :3].T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
    saved = json.loads((tmp_path / "pose.json").read_text())
    assert saved["initial"]["source"] == "posenet" and saved["coarse"]["inliers"] >= 6
    assert (tmp_path / saved["overlay"]).is_file()


def test_config_checks():
    with pytest.raises(ValueError, match="input_size must be a multiple of 8"):
        PoseNetConfig(input_size=30)
