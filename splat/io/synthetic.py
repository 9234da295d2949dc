"""A tiny procedural scene for tests: shaded, striped spheres ray-cast in torch."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from splat.core.camera import Camera, look_at
from splat.io.images import save_png
from splat.io.scene import Scene

# Sphere centres, radii and base colours of the procedural scene.
_CENTERS = torch.tensor([[0.0, 0.0, 0.0], [0.55, 0.35, 0.15], [-0.5, 0.4, -0.1], [0.1, -0.6, 0.25]])
_RADII = torch.tensor([0.45, 0.25, 0.3, 0.2])
_COLORS = torch.tensor([[0.85, 0.25, 0.2], [0.2, 0.7, 0.3], [0.25, 0.35, 0.9], [0.9, 0.8, 0.2]])
_LIGHT = torch.nn.functional.normalize(torch.tensor([0.4, -0.3, 0.85]), dim=0)


def _albedo(points: torch.Tensor, sphere: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` surface colour: base colour modulated by latitude stripes (some texture)."""
    local = (points - _CENTERS[sphere]) / _RADII[sphere, None]
    stripes = 0.75 + 0.25 * torch.sign(torch.sin(6.0 * torch.asin(local[:, 2].clamp(-1, 1))))
    return _COLORS[sphere] * stripes[:, None]


def _shade(points: torch.Tensor, sphere: torch.Tensor) -> torch.Tensor:
    normals = (points - _CENTERS[sphere]) / _RADII[sphere, None]
    lambert = (normals @ _LIGHT).clamp(min=0.0)
    return (_albedo(points, sphere) * (0.35 + 0.65 * lambert[:, None])).clamp(0, 1)


def _render(viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int, background) -> np.ndarray:
    c2w = torch.linalg.inv(viewmat)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    dirs_cam = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1)
    dirs = torch.nn.functional.normalize(dirs_cam.reshape(-1, 3) @ c2w[:3, :3].T, dim=-1)  # [HW, 3]
    origin = c2w[:3, 3]
    oc = origin - _CENTERS  # [S, 3]
    b = dirs @ oc.T  # [HW, S]
    disc = b**2 - ((oc**2).sum(-1) - _RADII**2)
    t = -b - disc.clamp(min=0).sqrt()
    t = torch.where((disc > 0) & (t > 0), t, torch.full_like(t, math.inf))
    t_min, sphere = t.min(-1)
    hit = torch.isfinite(t_min)
    image = torch.tensor(background, dtype=torch.float32).expand(width * height, 3).clone()
    points = origin + dirs[hit] * t_min[hit, None]
    image[hit] = _shade(points, sphere[hit])
    return image.reshape(height, width, 3).numpy()


def make_synthetic_scene(
    num_views: int = 8,
    size: int = 32,
    root: str | os.PathLike | None = None,
    num_points: int = 400,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    seed: int = 0,
) -> Scene:
    """Renders a few striped, shaded spheres from an orbit of cameras and writes the PNGs.

    Args:
        num_views: number of cameras on a ring around the origin (elevation alternating).
        size: image width and height in pixels.
        root: folder for the PNG files (default: a new temporary folder).
        num_points: surface points sampled (with their colours) as the initial cloud.
        background: constant background RGB in ``[0, 1]``.
        seed: seed of the point sampling.

    Returns:
        A :class:`Scene` whose images are already cached (8-bit quantised like the files).
    """
    for arg, value, low in (("num_views", num_views, 1), ("size", size, 4), ("num_points", num_points, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{arg} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{arg} must be >= {low}, got {value}")
    if len(background) != 3:
        raise ValueError(f"background must be 3 floats in [0, 1], got {background!r}")
    root = Path(tempfile.mkdtemp(prefix="splatops_synthetic_") if root is None else root)
    root.mkdir(parents=True, exist_ok=True)

    # Tiny tensors: one thread avoids the thread pool's stalls on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _make(num_views, size, root, num_points, background, seed)
    finally:
        torch.set_num_threads(threads)


def _make(num_views, size, root, num_points, background, seed) -> Scene:
    focal = size / (2.0 * math.tan(math.radians(40.0) / 2.0))
    K = torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    viewmats, paths, cache = [], [], {}
    for i in range(num_views):
        azim = 2 * math.pi * i / num_views
        elev = math.radians(25.0 if i % 2 == 0 else 45.0)
        eye = 3.2 * torch.tensor([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)])
        viewmat = look_at(eye, torch.zeros(3))
        image = _render(viewmat, K, size, size, background)
        image8 = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        path = root / f"view_{i:03d}.png"
        save_png(path, image8)
        viewmats.append(viewmat)
        paths.append(path)
        cache[i] = torch.from_numpy(image8.astype(np.float32) / 255.0)

    gen = torch.Generator().manual_seed(seed)
    sphere = torch.randint(len(_RADII), (num_points,), generator=gen)
    dirs = torch.nn.functional.normalize(torch.randn(num_points, 3, generator=gen), dim=-1)
    points = _CENTERS[sphere] + dirs * _RADII[sphere, None]
    # Hidden surface between touching spheres is harmless for an initial cloud.
    colors = _albedo(points, sphere) if num_points else torch.zeros(0, 3)
    cameras = Camera(torch.stack(viewmats), K.expand(num_views, 3, 3).clone(), size, size)
    return Scene(
        name="synthetic",
        root=root,
        cameras=cameras,
        image_paths=paths,
        points=points,
        point_colors=colors,
        background=tuple(float(v) for v in background),
        _cache=cache,
    )
