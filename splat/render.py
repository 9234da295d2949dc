"""Rendering fitted Gaussians: a scene's views, and an orbit video around them.

``render_views(ply_or_gaussians, scene, "out/views")`` writes one PNG per view,
``render_orbit(ply_or_gaussians, scene, "out/orbit.mp4")`` a turn around the scene.

>>> import tempfile
>>> from splat.core.gaussians import Gaussians
>>> from splat.io import make_synthetic_scene
>>> scene = make_synthetic_scene(num_views=4, size=16, num_points=50)
>>> g = Gaussians.from_points(scene.points, scene.point_colors, sh_degree=0)
>>> cams = scene.cameras
>>> render_images(g, cams.viewmats[:2], cams.Ks[:2], cams.width, cams.height).shape
torch.Size([2, 16, 16, 3])
>>> paths = render_views(g, scene, tempfile.mkdtemp(), ids=[1], show_progress=False)
>>> paths[0].name == scene.image_paths[1].stem + ".png"
True
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from splat.core.camera import look_at
from splat.core.gaussians import Gaussians
from splat.io.atomic import atomic_path, write_bytes_atomic
from splat.io.ply import load_ply

__all__ = ["render_views", "render_orbit", "render_images", "orbit_viewmats", "view_file_names", "LAYOUTS"]

#: How :func:`render_views` lays out each file: the render alone, or render | ground truth.
LAYOUTS = ("render", "side-by-side")


def _as_gaussians(gaussians) -> Gaussians:
    if isinstance(gaussians, (str, os.PathLike)):
        return load_ply(gaussians)
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be Gaussians or a PLY path, got {type(gaussians).__name__}")
    return gaussians


def _background(scene) -> Tensor:  # [1, 3]
    bg = getattr(scene, "background", None) or (0.0, 0.0, 0.0)
    return torch.tensor([bg], dtype=torch.float32)


@torch.no_grad()
def render_images(
    gaussians: Gaussians,
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    background: Tensor | None = None,  # [1, 3]
    backend: str = "auto",
    show_progress: bool = False,
    environment: tuple[Tensor, int] | None = None,
) -> Tensor:
    """Renders one image per camera, ``[C, H, W, 3]`` in ``[0, 1]``.

    ``environment`` (``(coeffs [K, 3], degree)``, see
    :func:`splat.methods.background.load_environment`) replaces ``background``:
    each pixel shows the learned environment of its ray where the Gaussians
    leave it uncovered (:func:`splat.core.environment.over_environment`).
    """
    from splat.core.environment import over_environment
    from splat.core.rasterization import rasterization

    out = []
    for i in tqdm(range(viewmats.shape[0]), disable=not show_progress, desc="render", unit="view"):
        vm, K = viewmats[i : i + 1], Ks[i : i + 1]
        img, alphas, _ = rasterization(
            gaussians.means, gaussians.params["quats"], gaussians.scales, gaussians.opacities, gaussians.sh,
            vm, K, width, height, sh_degree=gaussians.sh_degree,
            backgrounds=None if environment is not None else background, backend=backend,
        )
        if environment is not None:
            coeffs, degree = environment
            img = over_environment(img, alphas, coeffs.to(img), degree, vm.to(img), K.to(img))
        out.append(img[0].clamp(0, 1))
    return torch.stack(out) if out else torch.zeros(0, height, width, 3)


def _to_uint8(img: Tensor) -> np.ndarray:
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def view_file_names(image_paths: Sequence[str | os.PathLike]) -> list[str]:
    """PNG file names for renders of these views, named after their source images.

    ``images/frame_0003.jpg`` -> ``frame_0003.png``. Views whose image stems
    collide (the same name in two folders) are prefixed with their index.

    >>> view_file_names(["images/frame_0003.jpg", "images/frame_0004.png"])
    ['frame_0003.png', 'frame_0004.png']
    >>> view_file_names(["a/x.png", "b/x.png"])
    ['0000_x.png', '0001_x.png']
    """
    stems = [Path(p).stem for p in image_paths]
    if len(set(stems)) == len(stems):
        return [f"{s}.png" for s in stems]
    return [f"{i:04d}_{s}.png" for i, s in enumerate(stems)]


def render_views(
    gaussians,
    scene,
    out_dir: str | os.PathLike,
    ids: Sequence[int] | None = None,
    backend: str = "auto",
    layout: str = "render",
    show_progress: bool = True,
    environment: tuple[Tensor, int] | None = None,
) -> list[Path]:
    """Renders a scene's views into ``out_dir``, one PNG per view named after its source image.

    Args:
        gaussians: :class:`Gaussians` or a path to a 3DGS PLY.
        scene: the :class:`~splat.io.scene.Scene` whose cameras (and images) are used.
        out_dir: destination folder (created).
        ids: views to render (default: all).
        backend: rasterization backend.
        layout: ``"render"`` writes the render alone; ``"side-by-side"`` puts the
            ground-truth image to its right.
        show_progress: show a progress bar.
        environment: a learned environment drawn instead of the scene's
            background (see :func:`render_images`).

    Returns:
        The written PNG paths (see :func:`view_file_names`).
    """
    import imageio.v3 as iio

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    g = _as_gaussians(gaussians)
    n = len(scene.cameras)
    ids = list(range(n)) if ids is None else [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise ValueError(f"ids must index the scene's {n} views, got {bad}")
    cams = scene.cameras
    renders = render_images(g, cams.viewmats[ids], cams.Ks[ids], cams.width, cams.height,
                            _background(scene), backend, show_progress, environment)
    out_dir = Path(out_dir)
    names = view_file_names(scene.image_paths)
    paths = []
    for k, cid in enumerate(ids):
        img = renders[k]
        if layout == "side-by-side":
            img = torch.cat([img, scene.images([cid])[0]], dim=1)
        path = out_dir / names[cid]
        write_bytes_atomic(path, iio.imwrite("<bytes>", _to_uint8(img), extension=".png"))
        paths.append(path)
    return paths


def orbit_viewmats(viewmats: Tensor, num_frames: int = 60) -> Tensor:
    """World-to-camera matrices on a circle fitted to the given cameras, ``[num_frames, 4, 4]``.

    The orbit looks at the point closest to all optical axes, turns about the
    cameras' mean up direction at their mean distance and mean height.
    """
    c2w = torch.linalg.inv(viewmats.double())
    centers, forward = c2w[:, :3, 3], c2w[:, :3, 2]
    cam_up = -c2w[:, :3, 1].mean(0)  # OpenCV y points down
    up = cam_up / cam_up.norm().clamp_min(1e-12)
    if centers.shape[0] >= 3:  # normal of the plane through the camera centres, facing the cameras' up
        _, sv, vh = torch.linalg.svd(centers - centers.mean(0))
        if sv[1] > 1e-6 * sv[0].clamp_min(1e-12):
            up = vh[2] if float(vh[2] @ cam_up) >= 0 else -vh[2]
    # least-squares point nearest every optical axis
    eye3 = torch.eye(3, dtype=torch.float64)
    proj = eye3 - forward[:, :, None] * forward[:, None, :]  # [C, 3, 3]
    A, b = proj.sum(0), (proj @ centers[:, :, None]).sum(0)[:, 0]
    target = torch.linalg.lstsq(A, b).solution if torch.linalg.matrix_rank(A) == 3 else centers.mean(0)
    rel = centers - target
    height = float((rel @ up).mean())
    planar = rel - (rel @ up)[:, None] * up
    radius = float(planar.norm(dim=-1).mean())
    e1 = planar[0] / planar[0].norm().clamp_min(1e-12) if radius > 1e-9 else torch.linalg.svd(up[None])[2][1]
    e2 = torch.linalg.cross(up, e1)
    radius = radius if radius > 1e-9 else float(rel.norm(dim=-1).mean()) or 1.0
    mats = []
    for t in range(num_frames):
        a = 2 * math.pi * t / num_frames
        eye = target + height * up + radius * (math.cos(a) * e1 + math.sin(a) * e2)
        mats.append(look_at(eye, target, up))
    return torch.stack(mats).to(viewmats.dtype)


def render_orbit(
    gaussians,
    scene,
    path: str | os.PathLike,
    num_frames: int = 60,
    fps: int = 20,
    backend: str = "auto",
    show_progress: bool = True,
    environment: tuple[Tensor, int] | None = None,
) -> Path:
    """Renders a turn around the scene into a video (``.mp4`` through imageio-ffmpeg, or ``.gif``).

    Args:
        gaussians: :class:`Gaussians` or a path to a 3DGS PLY.
        scene: a scene (its cameras define the orbit and the intrinsics).
        path: destination ``.mp4`` or ``.gif``; the suffix picks the format.
        num_frames: frames in the turn.
        fps: frames per second.
        backend: rasterization backend.
        show_progress: show a progress bar.
        environment: a learned environment drawn instead of the scene's
            background (see :func:`render_images`).

    Returns:
        The written video path (``path``).

    Raises:
        RuntimeError: an ``.mp4`` was asked for and the ffmpeg encoder
            (imageio-ffmpeg, a dependency) cannot write it.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"path must end in .mp4 or .gif, got {path.name!r}")
    g = _as_gaussians(gaussians)
    cams = scene.cameras
    viewmats = orbit_viewmats(cams.viewmats, num_frames)
    Ks = cams.Ks[:1].expand(num_frames, 3, 3)
    frames = [_to_uint8(f) for f in render_images(g, viewmats, Ks, cams.width, cams.height,
                                                    _background(scene), backend, show_progress,
                                                    environment)]
    return _write_video(path, frames, fps)


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    import imageio.v2 as imageio

    with atomic_path(path, suffix=path.suffix) as tmp:
        if path.suffix.lower() == ".gif":
            imageio.mimwrite(tmp, frames, duration=1000.0 / fps, loop=0, format="GIF")
            return path
        try:
            import imageio_ffmpeg  # noqa: F401  (the FFMPEG plugin's encoder binary)
        except ImportError as exc:
            raise RuntimeError(f"cannot write {path.name}: mp4 needs the imageio-ffmpeg package "
                               f"(pip install imageio-ffmpeg), or ask for a .gif") from exc
        h, w = frames[0].shape[:2]
        frames = [f[: h - h % 2, : w - w % 2] for f in frames]  # yuv420p needs even sizes
        imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", macro_block_size=1, format="FFMPEG")
    return path
