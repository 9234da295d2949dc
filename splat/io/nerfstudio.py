"""nerfstudio ``transforms.json`` scenes: loading into :class:`Scene` and writing.

The file holds OpenGL camera-to-world matrices (x right, y up, z backward) per
frame and pinhole intrinsics, global or per frame (``fl_x fl_y cx cy w h``).
Scenes keep world-to-camera OpenCV matrices, so loading flips the camera axes
and inverts; writing does the reverse. Besides nerfstudio's own keys, an
optional ``"background": [r, g, b]`` records a known constant background.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splat.core.camera import (
    Camera,
    c2w_to_w2c,
    fov_to_focal,
    opencv_to_opengl,
    opengl_to_opencv,
    w2c_to_c2w,
)
from splat.io.atomic import write_text_atomic
from splat.io.common import as_float, check_image_sizes, read_json, resolve_image, transform_frames
from splat.io.images import read_image, save_png
from splat.io.pointcloud import read_points_ply, write_points_ply
from splat.io.scene import Scene

#: Camera models read as pinholes (the distorted ones only when their distortion is zero).
PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2")


def _intrinsics(frame: dict, meta: dict, source: Path, where: str) -> tuple[float, ...]:
    """``(fx, fy, cx, cy, w, h)`` for one frame; per-frame keys override global ones."""

    def get(key):
        return frame.get(key, meta.get(key))

    w, h = get("w"), get("h")
    w = None if w is None else int(as_float(w, f"{where} w", source))
    h = None if h is None else int(as_float(h, f"{where} h", source))
    fx, fy = get("fl_x"), get("fl_y")
    if fx is None and get("camera_angle_x") is not None:
        if w is None:
            raise ValueError(f"{source}: camera_angle_x needs the image width 'w'")
        fx = fov_to_focal(as_float(get("camera_angle_x"), "camera_angle_x", source), w)
    if fx is None:
        raise ValueError(f"{source}: {where} has no focal length (fl_x or camera_angle_x)")
    fx = as_float(fx, f"{where} fl_x", source)
    fy = fx if fy is None else as_float(fy, f"{where} fl_y", source)
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{source}: {where} focal lengths must be positive, got {fx}, {fy}")
    cx, cy = get("cx"), get("cy")
    if cx is not None:
        cx = as_float(cx, f"{where} cx", source)
    if cy is not None:
        cy = as_float(cy, f"{where} cy", source)
    for key in DISTORTION_KEYS:
        value = get(key)
        if value is not None and as_float(value, f"{where} {key}", source) != 0.0:
            raise ValueError(
                f"{source}: {where} has non-zero distortion {key}={value}; undistortion is "
                "unsupported, undistort the images first (e.g. colmap image_undistorter)"
            )
    return fx, fy, cx, cy, w, h


def _matrix(value: Any, source: Path, where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {where} transform_matrix is not numeric") from exc
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]])
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise ValueError(f"{source}: {where} transform_matrix must be a finite 4x4, got shape {m.shape}")
    return m


def load_nerfstudio(
    path: str | os.PathLike, verify_images: bool = True, name: str | None = None
) -> Scene:
    """Loads a nerfstudio scene.

    Args:
        path: a ``transforms.json`` file or the folder holding it.
        verify_images: decode every image once to catch corrupt files early.
        name: scene name (default: the folder name).

    Returns:
        The scene; frames sorted by file path (as nerfstudio), split by
        ``train_filenames``/``test_filenames`` when given, else every 8th view is a test view.

    Raises:
        FileNotFoundError: the JSON, an image, or the point cloud is missing.
        ValueError: malformed JSON, unsupported camera model or distortion, images
            that contradict the camera or each other.
    """
    path = Path(path)
    source = path / "transforms.json" if path.is_dir() else path
    meta = read_json(source)
    root = source.parent
    model = meta.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS:
        raise ValueError(
            f"{source}: camera_model {model!r} is unsupported; expected one of {', '.join(PINHOLE_MODELS)}"
        )
    frames = sorted(transform_frames(meta, source), key=lambda f: str(f["file_path"]))

    paths, c2ws, intr = [], [], []
    for i, frame in enumerate(frames):
        where = f"frame {i} ({frame['file_path']})"
        paths.append(resolve_image(root, frame["file_path"], source, suffixes=(".png", ".jpg")))
        c2ws.append(_matrix(frame["transform_matrix"], source, where))
        intr.append(_intrinsics(frame, meta, source, where))
    sizes = {(w, h) for *_, w, h in intr}
    if len(sizes) > 1:
        raise ValueError(f"{source}: frames of mixed image sizes are unsupported: {sorted(sizes, key=str)}")
    (w, h), = sizes
    w, h = check_image_sizes(paths, w, h, verify=verify_images)

    Ks = torch.zeros(len(frames), 3, 3, dtype=torch.float32)
    for i, (fx, fy, cx, cy, *_) in enumerate(intr):
        Ks[i] = torch.tensor([[fx, 0, w / 2 if cx is None else cx], [0, fy, h / 2 if cy is None else cy], [0, 0, 1]])
    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws)))
    cameras = Camera(c2w_to_w2c(c2w).float(), Ks, w, h)

    train_ids = test_ids = None
    split_keys = ("train_filenames", "test_filenames")
    if all(k in meta for k in split_keys):
        index = {}
        for i, f in enumerate(frames):
            index[os.path.normpath(f["file_path"])] = i
            index[os.path.normpath(str(paths[i].relative_to(root) if paths[i].is_relative_to(root) else paths[i]))] = i
        ids = {}
        for key in split_keys:
            names = meta[key]
            if not isinstance(names, list):
                raise ValueError(f"{source}: {key} must be a list of file paths")
            missing = [n for n in names if os.path.normpath(str(n)) not in index]
            if missing:
                raise ValueError(f"{source}: {key} names files that are not frames: {missing[:3]}")
            ids[key] = sorted(index[os.path.normpath(str(n))] for n in names)
        train_ids, test_ids = ids["train_filenames"], ids["test_filenames"]

    points = colors = None
    if meta.get("ply_file_path"):
        ply = root / str(meta["ply_file_path"])
        if not ply.is_file():
            raise FileNotFoundError(f"{source}: ply_file_path {meta['ply_file_path']!r} not found ({ply})")
        xyz, rgb = read_points_ply(ply)
        points = torch.from_numpy(xyz)
        colors = None if rgb is None else torch.from_numpy(rgb)
    background = meta.get("background")
    if background is not None:
        if not isinstance(background, list) or len(background) != 3:
            raise ValueError(f"{source}: background must be [r, g, b] in [0, 1], got {background!r}")
        background = tuple(as_float(v, "background", source) for v in background)
    return Scene(
        name=name or root.name,
        root=root,
        cameras=cameras,
        image_paths=paths,
        train_ids=train_ids,
        test_ids=test_ids,
        points=points,
        point_colors=colors,
        background=background,
    )


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)


def save_nerfstudio(scene_like: Scene, path: str | os.PathLike, copy_images: bool = False) -> Path:
    """Writes a scene as nerfstudio ``transforms.json`` (atomically).

    Args:
        scene_like: a :class:`Scene`, or any object with ``cameras`` and ``image_paths``
            (and optionally ``points``, ``point_colors``, ``train_ids``, ``test_ids``,
            ``background``).
        path: output folder, or the ``.json`` file to write.
        copy_images: copy the images into ``images/`` next to the JSON (written at the
            scene's resolution, so a downscaled scene writes downscaled images);
            otherwise frames refer to the existing files by relative path.

    Returns:
        Path of the written JSON file.

    Raises:
        TypeError: ``scene_like`` lacks cameras or image paths.
        ValueError: a downscaled scene without ``copy_images``.
    """
    cameras = getattr(scene_like, "cameras", None)
    image_paths = getattr(scene_like, "image_paths", None)
    if not isinstance(cameras, Camera) or image_paths is None:
        raise TypeError(
            f"scene_like must have 'cameras' (Camera) and 'image_paths', got {type(scene_like).__name__}"
        )
    if len(image_paths) != len(cameras):
        raise ValueError(f"scene_like has {len(cameras)} cameras but {len(image_paths)} image paths")
    path = Path(path)
    out = path if path.suffix.lower() == ".json" else path / "transforms.json"
    root = out.parent
    root.mkdir(parents=True, exist_ok=True)
    factor = getattr(scene_like, "_factor", 1)
    if factor != 1 and not copy_images:
        raise ValueError(
            f"scene_like is downscaled by {factor}; its image files do not match its cameras, "
            "pass copy_images=True to write resized images"
        )

    names = []
    for i, src in enumerate(image_paths):
        src = Path(src)
        if copy_images:
            dst = root / "images" / f"{i:05d}_{src.stem}.png"
            if isinstance(scene_like, Scene):
                save_png(dst, scene_like.image(i).numpy())
            else:
                save_png(dst, read_image(src))
            names.append(_rel(dst, root))
        else:
            names.append(_rel(src.resolve(), root.resolve()))

    Ks = cameras.Ks.double()
    c2w = opencv_to_opengl(w2c_to_c2w(cameras.viewmats.double()))
    shared = bool((Ks == Ks[:1]).all())
    meta: dict[str, Any] = {"camera_model": "PINHOLE", "w": int(cameras.width), "h": int(cameras.height)}
    if shared:
        meta.update(fl_x=float(Ks[0, 0, 0]), fl_y=float(Ks[0, 1, 1]), cx=float(Ks[0, 0, 2]), cy=float(Ks[0, 1, 2]))
    frames = []
    for i, name in enumerate(names):
        frame: dict[str, Any] = {"file_path": name, "transform_matrix": c2w[i].tolist()}
        if not shared:
            frame.update(fl_x=float(Ks[i, 0, 0]), fl_y=float(Ks[i, 1, 1]), cx=float(Ks[i, 0, 2]), cy=float(Ks[i, 1, 2]))
        frames.append(frame)
    meta["frames"] = frames
    train_ids, test_ids = getattr(scene_like, "train_ids", None), getattr(scene_like, "test_ids", None)
    if train_ids is not None and test_ids is not None:
        meta["train_filenames"] = [names[i] for i in train_ids]
        meta["test_filenames"] = [names[i] for i in test_ids]
    background = getattr(scene_like, "background", None)
    if background is not None:
        meta["background"] = [float(v) for v in background]
    points = getattr(scene_like, "points", None)
    if points is not None:
        ply = root / (out.stem + "_points.ply" if out.name != "transforms.json" else "sparse_pc.ply")
        write_points_ply(ply, np.asarray(points), None if getattr(scene_like, "point_colors", None) is None
                         else np.asarray(scene_like.point_colors))
        meta["ply_file_path"] = ply.name
    write_text_atomic(out, json.dumps(meta, indent=2) + "\n")
    return out
