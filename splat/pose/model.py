"""Object models for pose estimation: loading, fingerprints, extent, and a surface-sampled model.

An object model is a 3DGS PLY whose frame is the object frame: the pose
``object_to_camera`` maps its means into the camera (OpenCV axes), so it is
exactly the rasterizer's ``viewmats``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from splat.core.camera import rotmat_to_quat
from splat.core.gaussians import Gaussians, rgb_to_sh

#: Gaussians at least this opaque count as the object's surface (diameter, ICP, NOCS box).
SURFACE_OPACITY = 0.3


def load_object_model(path: str | os.PathLike) -> Gaussians:
    """Reads an object model (a 3DGS PLY) with errors that name the user's file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a 3DGS PLY, or holds no Gaussians.
    """
    from splat.io.ply import load_ply

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"model must be a path to a 3DGS .ply file, got {type(path).__name__}")
    name = Path(path).name
    if not Path(path).is_file():
        raise FileNotFoundError(f"object model {name} not found")
    try:
        gaussians = load_ply(path)
    except ValueError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise ValueError(f"object model {name} is not a 3DGS PLY ({reason})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"object model {name} is not a 3DGS PLY ({exc.__class__.__name__})") from None
    if gaussians.num_gaussians == 0:
        raise ValueError(f"object model {name} holds no Gaussians")
    return gaussians


def model_fingerprint(gaussians: Gaussians) -> str:
    """A short SHA-256 of the model's parameters (stable across re-saving the same values)."""
    h = hashlib.sha256()
    for key in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        h.update(key.encode())
        h.update(np.ascontiguousarray(gaussians.params[key].detach().cpu().float().numpy()).tobytes())
    return h.hexdigest()[:16]


def surface_points(gaussians: Gaussians, max_points: int = 4000, seed: int = 0) -> Tensor:
    """``[P, 3]`` means of the opaque Gaussians (at most ``max_points``, a seeded subset)."""
    with torch.no_grad():
        keep = gaussians.opacities > SURFACE_OPACITY
        pts = gaussians.means[keep] if bool(keep.any()) else gaussians.means
        pts = pts.detach().float().cpu()
    if pts.shape[0] > max_points:
        gen = torch.Generator().manual_seed(seed)
        pts = pts[torch.randperm(pts.shape[0], generator=gen)[:max_points]]
    return pts


def model_diameter(points: Tensor) -> float:
    """Largest distance between two points ``[P, 3]`` (BOP's object diameter), via the convex hull."""
    from scipy.spatial import ConvexHull, QhullError

    pts = points.detach().double().cpu().numpy()
    try:
        pts = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        pass  # degenerate (flat or tiny) sets: brute force over all points
    d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=-1)
    return float(d.max())


def box_corners(points: Tensor) -> Tensor:
    """``[8, 3]`` corners of the axis-aligned bounding box of ``points [P, 3]``."""
    lo, hi = points.min(0).values, points.max(0).values
    idx = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=torch.bool)
    return torch.where(idx, hi, lo)


def sample_object_gaussians(obj, num: int = 6000, seed: int = 0, thickness: float = 0.15) -> Gaussians:
    """Flat Gaussians on the surface of a generated object, coloured by its texture and training lights.

    A fast stand-in for a fitted model (tests, benchmarks of the pose stages
    without a fit): area-weighted samples, each a disc tangent to its triangle
    with the Lambertian shade of :data:`~splat.pose.dataset.TRAIN_LIGHTS`.

    Args:
        obj: a :class:`~splat.pose.dataset.GeneratedObject`.
        num: number of Gaussians.
        seed: sampling seed.
        thickness: normal scale as a fraction of the tangential scale.
    """
    from splat.pose.dataset import AMBIENT, DIFFUSE, TRAIN_LIGHTS

    rng = np.random.default_rng(seed)
    tris, uvs, textures, part_of = [], [], [], []
    for k, part in enumerate(obj.parts):
        faces = np.asarray(part.mesh.faces).reshape(-1, 4)[:, 1:]
        tris.append(np.asarray(part.mesh.points, np.float64)[faces])
        uvs.append(np.asarray(part.mesh.active_texture_coordinates, np.float64)[faces])
        part_of.append(np.full(len(faces), k))
        textures.append(part.texture.astype(np.float64) / 255.0)
    tris, uvs, part_of = np.concatenate(tris), np.concatenate(uvs), np.concatenate(part_of)
    cross = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    chosen = rng.choice(len(tris), size=num, p=area / area.sum())
    r1, r2 = rng.random(num), rng.random(num)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    points = np.einsum("nk,nkd->nd", bary, tris[chosen])
    uv = np.einsum("nk,nkd->nd", bary, uvs[chosen])
    albedo = np.zeros((num, 3))
    for k, tex in enumerate(textures):
        sel = part_of[chosen] == k
        h, w = tex.shape[:2]
        x = np.clip((uv[sel, 0] % 1.0) * w, 0, w - 1).astype(int)
        y = np.clip((1.0 - uv[sel, 1] % 1.0) * h, 0, h - 1).astype(int)
        albedo[sel] = tex[y, x]
    normals = cross[chosen] / np.maximum(np.linalg.norm(cross[chosen], axis=1, keepdims=True), 1e-12)
    shade = np.full(num, AMBIENT)
    for position, intensity, _ in TRAIN_LIGHTS:
        light = np.asarray(position) / np.linalg.norm(position)
        shade += DIFFUSE * intensity * np.abs(normals @ light)  # two-sided, as VTK
    colors = np.clip(albedo * shade[:, None], 0.0, 1.0)
    # Discs: tangent axes t1, t2 and the normal as the rotation's columns.
    helper = np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    R = torch.from_numpy(np.stack([t1, t2, normals], axis=-1)).float()
    spacing = np.sqrt(area.sum() / num)
    scales = torch.tensor([spacing * 0.4, spacing * 0.4, spacing * 0.4 * thickness], dtype=torch.float32)
    scales = scales.log().expand(num, 3)
    return Gaussians({
        "means": torch.from_numpy(points).float(),
        "quats": rotmat_to_quat(R),
        "scales": scales.clone(),
        "opacities": torch.full((num,), 2.5),  # sigmoid(2.5) ~ 0.92
        "sh0": rgb_to_sh(torch.from_numpy(colors).float())[:, None, :],
        "shN": torch.zeros(num, 3, 3),
    })
