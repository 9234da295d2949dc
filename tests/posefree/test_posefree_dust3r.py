"""DUSt3R/MASt3R adapter: the conversion of synthetic point maps (no network or weights here)."""

import importlib.util
import math

import numpy as np
import pytest
import torch
from PIL import Image

from splat.core.camera import look_at, w2c_to_c2w
from splat.io import load_colmap
from splat.posefree.dust3r import pointmaps_to_reconstruction, reconstruct_dust3r

IMG_W, IMG_H = 64, 48          # normalised images
MAP_W, MAP_H = 32, 16          # network resolution: resized by 1/2, then 4 px cropped top and bottom
MAP_F = 30.0                   # focal of the point maps, map pixels


def _synthetic(tmp_path, n=4):
    """Point maps of a unit sphere seen from an orbit, as a global alignment would give them."""
    c2w, pts, cols, confs, paths = [], [], [], [], []
    images = tmp_path / "images"
    images.mkdir()
    u, v = np.meshgrid(np.arange(MAP_W) + 0.5, np.arange(MAP_H) + 0.5)
    rays_cam = np.stack([(u - MAP_W / 2) / MAP_F, (v - MAP_H / 2) / MAP_F, np.ones_like(u)], -1)
    for k in range(n):
        a = 2 * math.pi * k / n
        eye = torch.tensor([3.0 * math.cos(a), 3.0 * math.sin(a), 0.5], dtype=torch.float64)
        pose = w2c_to_c2w(look_at(eye, torch.zeros(3, dtype=torch.float64))).numpy()
        d = rays_cam @ pose[:3, :3].T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        o = pose[:3, 3]
        b = d @ o
        disc = b**2 - (o @ o - 1.0)
        hit = disc > 0
        t = np.where(hit, -b - np.sqrt(np.clip(disc, 0, None)), 10.0)
        p = o + t[..., None] * d
        col = np.where(hit[..., None], (p + 1) / 2, 0.0)
        c2w.append(pose)
        pts.append(p)
        cols.append(col)
        confs.append(np.where(hit, 5.0, 1.0))
        path = images / f"view{k}.png"
        Image.fromarray(np.zeros((IMG_H, IMG_W, 3), np.uint8)).save(path)
        paths.append(path)
    return paths, np.stack(c2w), pts, cols, confs


def test_pointmaps_convert_to_a_consistent_reconstruction(tmp_path):
    paths, c2w, pts, cols, confs = _synthetic(tmp_path)
    rec = pointmaps_to_reconstruction(
        paths, [p.name for p in paths], tmp_path, c2w=torch.tensor(c2w), focals=np.full((4, 1), MAP_F),
        pts3d=pts, colors=cols, confidence=confs, pointmap_size=(MAP_W, MAP_H), min_confidence=2.0,
    )
    scene = rec.scene
    assert len(scene) == 4 and scene.width == IMG_W and scene.height == IMG_H
    assert scene.train_ids == [0, 1, 2, 3] and scene.test_ids == []
    np.testing.assert_allclose(scene.cameras.c2w.double().numpy(), c2w, atol=1e-5)
    K = scene.cameras.Ks[0].double().numpy()
    assert K[0, 0] == pytest.approx(2 * MAP_F) and K[1, 1] == pytest.approx(2 * MAP_F)
    assert (K[0, 2], K[1, 2]) == pytest.approx((IMG_W / 2, IMG_H / 2))
    # Confident points only (the sphere), each on the unit sphere with its colour.
    radii = scene.points.double().norm(dim=-1)
    assert torch.allclose(radii, torch.ones_like(radii), atol=1e-4)
    np.testing.assert_allclose(scene.point_colors.numpy(), (scene.points.numpy() + 1) / 2, atol=1e-5)
    # A map pixel's point projects to that pixel's place in the full image: x = (u + 0.5 + crop) / s.
    cam = scene.cameras.viewmats[1].double().numpy()
    p = np.append(pts[1][5, 7], 1.0)
    x = K @ (cam @ p)[:3]
    assert x[:2] / x[2] == pytest.approx(((7 + 0.5 + 0) / 0.5, (5 + 0.5 + 4) / 0.5), abs=1e-6)
    # The COLMAP model loads back with the same cameras.
    loaded = load_colmap(tmp_path)
    np.testing.assert_allclose(loaded.cameras.viewmats.numpy(), scene.cameras.viewmats.numpy(), atol=1e-5)
    assert rec.report.registered == ["view0.png", "view1.png", "view2.png", "view3.png"]
    assert rec.report.mapper == "dust3r" and rec.report.num_points == len(scene.points)


def test_boolean_masks_and_bad_shapes(tmp_path):
    paths, c2w, pts, cols, confs = _synthetic(tmp_path, n=3)
    masks = [c > 2 for c in confs]
    rec = pointmaps_to_reconstruction(paths, ["a", "b", "c"], tmp_path, c2w=c2w, focals=[MAP_F] * 3, pts3d=pts,
                                      colors=cols, confidence=masks, pointmap_size=(MAP_W, MAP_H))
    assert rec.report.num_points > 0
    kw = dict(focals=[MAP_F] * 3, pts3d=pts, colors=cols, pointmap_size=(MAP_W, MAP_H))
    with pytest.raises(ValueError, match=r"c2w must be \[3, 4, 4\]"):
        pointmaps_to_reconstruction(paths, ["a", "b", "c"], tmp_path, c2w=c2w[:2], **kw)
    with pytest.raises(ValueError, match=r"image_names has 2 entries for 3 images"):
        pointmaps_to_reconstruction(paths, ["a", "b"], tmp_path, c2w=c2w, **kw)
    with pytest.raises(ValueError, match=r"focals must be 3 positive values"):
        pointmaps_to_reconstruction(paths, ["a", "b", "c"], tmp_path, c2w=c2w, **{**kw, "focals": [1, -1, 1]})
    with pytest.raises(ValueError, match=r"point map 0 must have 8x8 points and colours, got 512"):
        pointmaps_to_reconstruction(paths, ["a", "b", "c"], tmp_path, c2w=c2w, **{**kw, "pointmap_size": (8, 8)})
    with pytest.raises(ValueError, match=r"no point map pixel has confidence >= 9"):
        pointmaps_to_reconstruction(paths, ["a", "b", "c"], tmp_path, c2w=c2w, confidence=confs,
                                    min_confidence=9.0, **kw)


@pytest.mark.skipif(importlib.util.find_spec("dust3r") is not None, reason="dust3r is installed here")
def test_reconstruct_dust3r_explains_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weights not found: none.pth \(weights are never downloaded\)"):
        reconstruct_dust3r(tmp_path, tmp_path / "work", weights=tmp_path / "none.pth")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    with pytest.raises(ImportError, match=r"the dust3r package is not installed"):
        reconstruct_dust3r(tmp_path, tmp_path / "work", weights=weights)
    with pytest.raises(ValueError, match=r"model must be 'dust3r' or 'mast3r'"):
        reconstruct_dust3r(tmp_path, tmp_path / "work", weights=weights, model="vggt")
    assert not (tmp_path / "work").exists()
