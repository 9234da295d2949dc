"""GS2Pose entry points: ``train_posenet`` and ``estimate_pose``, pose files and input checks.

A pose file is JSON with an ``"object_to_camera"`` 4x4 matrix in the OpenCV
convention (x right, y down, z forward): it maps object (model) coordinates
to camera coordinates, exactly the rasterizer's ``viewmats``. The same file
is read by ``--init`` and written by ``--out``; the written one also holds the
initial and coarse poses, the refinement history and the name of an overlay
image (the model drawn over the image before and after refinement).

>>> from splat.pose import estimate_pose                             # doctest: +SKIP
>>> result = estimate_pose("obj.ply", "image.png", "320,320,128,128",
...                        init="init.json", out="pose.json")         # doctest: +SKIP
>>> result.object_to_camera                                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from splat.pose.model import load_object_model, model_diameter, surface_points
from splat.pose.refiner import Observation, RefinerConfig, refine_pose, render_model

__all__ = ["PoseResult", "estimate_pose", "train_posenet", "parse_intrinsics", "read_pose_file",
           "write_pose_file", "default_posenet_path", "check_initial_pose", "make_observation"]


@dataclass
class PoseResult:
    """What :func:`estimate_pose` returns.

    Attributes:
        object_to_camera: ``[4, 4]`` float64 estimated pose (OpenCV).
        initial: ``[4, 4]`` the pose refinement started from.
        source: where ``initial`` came from: ``"init"`` or ``"posenet"``.
        coarse: Pose-Net details (inliers, mask pixels) or None.
        iterations: refinement iterations.
        converged: whether the refinement met its convergence test.
        seconds: refinement wall time.
        history: per-iteration loss and pose update.
        paths: written files (``pose``, ``overlay``).
    """

    object_to_camera: np.ndarray
    initial: np.ndarray
    source: str
    coarse: dict | None = None
    iterations: int = 0
    converged: bool = False
    seconds: float = 0.0
    history: list = field(default_factory=list)
    icp_shift: list | None = None
    paths: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- input parsing and checks
def _name(x) -> str:
    return Path(x).name if isinstance(x, (str, os.PathLike)) else "image"


def parse_intrinsics(intrinsics) -> Tensor:
    """``[3, 3]`` intrinsics from ``"fx,fy,cx,cy"``, four numbers or a 3x3 matrix.

    Raises:
        ValueError: wrong count, non-numbers, or non-positive focal lengths.
    """
    if isinstance(intrinsics, str):
        parts = [p for p in intrinsics.replace(" ", "").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"intrinsics must be 'fx,fy,cx,cy' numbers, got {intrinsics!r}") from None
        intrinsics = values
    K = torch.as_tensor(np.asarray(intrinsics, dtype=np.float64))
    if K.shape == (4,):
        fx, fy, cx, cy = K.tolist()
        K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)
    if K.shape != (3, 3):
        raise ValueError(f"intrinsics must be fx,fy,cx,cy or a 3x3 matrix, got shape {tuple(K.shape)}")
    if not torch.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"intrinsics need positive finite focal lengths, got fx={float(K[0, 0])}, fy={float(K[1, 1])}")
    return K


def _read_image(image) -> tuple[Tensor, str]:
    from splat.io.images import read_image

    if isinstance(image, (str, os.PathLike)):
        name = Path(image).name
        if not Path(image).is_file():
            raise FileNotFoundError(f"image {name} not found")
        try:
            arr = read_image(image)
        except ValueError:
            raise ValueError(f"image {name} is corrupt or not an image") from None
        return torch.from_numpy(np.ascontiguousarray(arr[..., :3])), name
    arr = torch.as_tensor(np.asarray(image))
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"image must be [H, W, 3] (or RGBA), got shape {tuple(arr.shape)}")
    arr = arr[..., :3]
    if arr.dtype == torch.uint8:
        arr = arr.float() / 255.0
    return arr.float().clamp(0, 1), "image"


def _read_mask(mask, shape: tuple[int, int], image_name: str) -> Tensor:
    from splat.io.images import read_image

    name = _name(mask) if isinstance(mask, (str, os.PathLike)) else "mask"
    if isinstance(mask, (str, os.PathLike)):
        if not Path(mask).is_file():
            raise FileNotFoundError(f"mask {name} not found")
        arr = read_image(mask)
        m = torch.from_numpy(arr[..., 3] if arr.shape[-1] == 4 else arr.max(-1)) > 0.5
    else:
        m = torch.as_tensor(np.asarray(mask))
        m = m > 0.5 if m.is_floating_point() else m.bool()
    if tuple(m.shape) != shape:
        raise ValueError(f"mask {name} is {m.shape[-1]}x{m.shape[0]} but image {image_name} is {shape[1]}x{shape[0]}")
    if not bool(m.any()):
        raise ValueError(f"mask {name} is empty: it marks no object pixel")
    return m


def _read_depth(depth, shape: tuple[int, int], image_name: str, depth_scale: float) -> Tensor:
    name = _name(depth) if isinstance(depth, (str, os.PathLike)) else "depth"
    if isinstance(depth, (str, os.PathLike)):
        path = Path(depth)
        if not path.is_file():
            raise FileNotFoundError(f"depth image {name} not found")
        if path.suffix.lower() == ".npy":
            arr = np.load(path).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(path) as img:
                arr = np.asarray(img, dtype=np.float32) * depth_scale
    else:
        arr = np.asarray(depth, dtype=np.float32)
    d = torch.from_numpy(np.ascontiguousarray(arr))
    if tuple(d.shape) != shape:
        raise ValueError(f"depth {name} is {d.shape[-1]}x{d.shape[0]} but image {image_name} is {shape[1]}x{shape[0]}")
    if not torch.isfinite(d).all() or bool((d < 0).any()):
        raise ValueError(f"depth {name} must hold finite values >= 0 (0 = unknown)")
    return d


def make_observation(image, intrinsics, mask=None, depth=None, depth_scale: float = 0.001) -> Observation:
    """Reads and checks an observation.

    Raises:
        ValueError: an image whose size disagrees with the intrinsics (principal
            point outside the middle half of the image), a mask or depth of
            another size, an empty mask, negative depth.
    """
    img, name = _read_image(image)
    K = parse_intrinsics(intrinsics)
    H, W = img.shape[:2]
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if not (0.25 * W <= cx <= 0.75 * W and 0.25 * H <= cy <= 0.75 * H):
        raise ValueError(
            f"image {name} is {W}x{H} but the intrinsics put the principal point at ({cx:g}, {cy:g}), "
            f"far from its centre: the intrinsics belong to an image of about {2 * cx:.0f}x{2 * cy:.0f}"
        )
    m = None if mask is None else _read_mask(mask, (H, W), name)
    d = None if depth is None else _read_depth(depth, (H, W), name, depth_scale)
    return Observation(img.float(), K.float(), m, d)


def check_initial_pose(T: Tensor, points: Tensor, obs: Observation, what: str = "initial pose") -> None:
    """Raises ValueError when ``T`` puts the object behind the camera or out of the image."""
    from splat.core.camera import project_points

    T = T.double()
    cam = points.double() @ T[:3, :3].T + T[:3, 3]
    centre = cam.mean(0)
    if float(centre[2]) <= 0 or float((cam[:, 2] > 0).float().mean()) < 0.5:
        raise ValueError(f"the {what} puts the object behind the camera (its centre at z = {float(centre[2]):.3g})")
    uv, _ = project_points(points.float(), T[None].float(), obs.K[None].float())
    uv = uv[0]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < obs.width) & (uv[:, 1] >= 0) & (uv[:, 1] < obs.height)
    if float(inside.float().mean()) < 0.1:
        u, v = (float(x) for x in uv.mean(0))
        raise ValueError(
            f"the {what} puts the object out of view (it projects around pixel ({u:.0f}, {v:.0f}) "
            f"of a {obs.width}x{obs.height} image)"
        )


def read_pose_file(path) -> Tensor:
    """The ``object_to_camera`` 4x4 of a pose JSON file.

    Raises:
        ValueError: not JSON, no ``object_to_camera`` key, not a 4x4 rigid transform.
    """
    name = _name(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"pose file {name} not found")
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"pose file {name} is not JSON") from None
    if not isinstance(data, dict) or "object_to_camera" not in data:
        raise ValueError(f"pose file {name} has no 'object_to_camera' 4x4 matrix")
    return as_pose(data["object_to_camera"], f"'object_to_camera' of {name}")


def as_pose(value, what: str = "pose") -> Tensor:
    """Checks a 4x4 rigid transform (rotation orthonormal within 1e-3, last row 0 0 0 1)."""
    try:
        T = torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a 4x4 matrix of numbers") from None
    if T.shape != (4, 4) or not torch.isfinite(T).all():
        raise ValueError(f"{what} must be a finite 4x4 matrix, got shape {tuple(T.shape)}")
    R = T[:3, :3]
    if (R @ R.T - torch.eye(3, dtype=torch.float64)).abs().max() > 1e-3 or float(torch.det(R)) < 0:
        raise ValueError(f"{what} must be a rigid transform (its 3x3 block is not a rotation)")
    if (T[3] - torch.tensor([0.0, 0, 0, 1], dtype=torch.float64)).abs().max() > 1e-6:
        raise ValueError(f"{what} must have last row 0 0 0 1, got {T[3].tolist()}")
    return T


def write_pose_file(path, payload: dict) -> Path:
    """Writes a pose JSON atomically."""
    from splat.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return Path(path)


def default_posenet_path(model_ply) -> Path:
    """Where a model's Pose-Net lives by default: ``MODEL.posenet.pt`` beside ``MODEL.ply``."""
    p = Path(model_ply)
    return p.with_name(p.stem + ".posenet.pt")


# ---------------------------------------------------------------------- entry points
def train_posenet(model_ply, out=None, *, config=None, show_progress: bool = True, progress=None,
                  **overrides) -> Path:
    """Trains the coarse Pose-Net of an object model and saves it (default: beside the model).

    Args:
        model_ply: the object model (3DGS PLY).
        out: checkpoint path (default :func:`default_posenet_path`).
        config: a :class:`~splat.pose.posenet.PoseNetConfig` (or fields in ``overrides``).
        show_progress: show a progress bar.
        progress: optional callable ``(step, steps, loss)``.

    Returns:
        The written checkpoint path.
    """
    from splat.pose.posenet import PoseNetConfig, save_posenet, train_posenet_model

    gaussians = load_object_model(model_ply)
    if config is None:
        config = PoseNetConfig(**overrides)
    elif overrides:
        raise ValueError(f"give either config or overrides {sorted(overrides)}, not both")
    out = default_posenet_path(model_ply) if out is None else Path(out)
    payload = train_posenet_model(gaussians, config, progress=progress, show_progress=show_progress)
    return save_posenet(payload, out)


def _overlay(image: Tensor, rendered: list[tuple[Tensor, Tensor]]) -> np.ndarray:
    """Side by side: the image with each render blended in (60 %) and its silhouette edge in green."""
    panels = []
    for rgb, alpha in rendered:
        a = alpha[..., 0].clamp(0, 1)
        mix = image * (1 - 0.6 * a[..., None]) + 0.6 * rgb
        edge = (a > 0.5).float()
        grown = torch.nn.functional.max_pool2d(edge[None, None], 3, 1, 1)[0, 0]
        border = (grown - edge) > 0
        mix[border] = torch.tensor([0.1, 1.0, 0.2])
        panels.append(mix.clamp(0, 1))
    return torch.cat(panels, dim=1).numpy()


def estimate_pose(
    model_ply,
    image,
    intrinsics,
    *,
    depth=None,
    mask=None,
    init=None,
    posenet=None,
    out=None,
    config: RefinerConfig | None = None,
    depth_scale: float = 0.001,
) -> PoseResult:
    """Estimates the 6D pose of an object model in an image (coarse stage if needed, then GS-Refiner).

    Args:
        model_ply: the object model (3DGS PLY).
        image: image file or ``[H, W, 3]`` array.
        intrinsics: ``"fx,fy,cx,cy"``, four numbers or a 3x3 matrix (pixels).
        depth: optional depth image (``.npy`` in model units, or a 16-bit PNG times ``depth_scale``).
        mask: optional object mask (file or ``[H, W]`` array; non-zero = object).
        init: initial pose (pose JSON file or 4x4); else the Pose-Net gives one.
        posenet: Pose-Net checkpoint (default: beside the model, if there).
        out: pose JSON to write (and ``<out stem>_overlay.png`` beside it).
        config: refiner settings.
        depth_scale: metres (model units) per unit of a PNG depth image.

    Returns:
        A :class:`PoseResult`.

    Raises:
        ValueError: bad model, image, intrinsics, mask, depth, initial pose or
            checkpoint (each naming the file); no ``init`` and no Pose-Net.
    """
    from splat.pose.posenet import coarse_pose, load_posenet

    gaussians = load_object_model(model_ply)
    obs = make_observation(image, intrinsics, mask, depth, depth_scale)
    points = surface_points(gaussians)
    diameter = model_diameter(points)
    coarse = None
    if init is not None:
        T0 = read_pose_file(init) if isinstance(init, (str, os.PathLike)) else as_pose(init, "init")
        check_initial_pose(T0, points, obs)
        source = "init"
    else:
        ckpt = Path(posenet) if posenet is not None else default_posenet_path(model_ply)
        if posenet is None and not ckpt.is_file():
            raise ValueError(
                f"no initial pose: give --init POSE.json or a Pose-Net (none at {ckpt.name}; "
                "train one with `splatops pose train`)"
            )
        net, payload = load_posenet(ckpt, gaussians)
        T0, coarse = coarse_pose(net, payload, obs.image, obs.K.double(), obs.mask)
        if T0 is None:
            raise ValueError(f"the Pose-Net found no object in image {_name(image)} ({coarse['mask_pixels']} mask pixels)")
        check_initial_pose(T0, points, obs, "coarse pose from the Pose-Net")
        source = "posenet"
    refined = refine_pose(gaussians, obs, T0, config, points=points, diameter=diameter)
    T = refined.object_to_camera
    result = PoseResult(
        object_to_camera=T.numpy(), initial=T0.numpy(), source=source, coarse=coarse,
        iterations=refined.iterations, converged=refined.converged, seconds=refined.seconds,
        history=refined.history, icp_shift=refined.icp_shift,
    )
    if out is not None:
        from splat.io.images import save_png

        out = Path(out)
        overlay_path = out.with_name(out.stem + "_overlay.png")
        with torch.no_grad():
            renders = [render_model(gaussians, P, obs.K, obs.width, obs.height)[:2] for P in (T0, T)]
        save_png(overlay_path, _overlay(obs.image, renders))
        payload: dict[str, Any] = {
            "object_to_camera": T.tolist(),
            "convention": "OpenCV object_to_camera (x right, y down, z forward)",
            "model": Path(model_ply).name,
            "image": _name(image),
            "intrinsics": [float(obs.K[0, 0]), float(obs.K[1, 1]), float(obs.K[0, 2]), float(obs.K[1, 2])],
            "initial": {"source": source, "object_to_camera": T0.tolist()},
            "coarse": coarse,
            "refinement": {"iterations": refined.iterations, "converged": refined.converged,
                           "seconds": round(refined.seconds, 3), "color": refined.color,
                           "icp_shift": refined.icp_shift, "history": refined.history},
            "diameter": diameter,
            "overlay": overlay_path.name,
        }
        write_pose_file(out, payload)
        result.paths = {"pose": out, "overlay": overlay_path}
    return result
