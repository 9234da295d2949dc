"""Blender NeRF-synthetic scenes: ``transforms_{train,val,test}.json`` with RGBA PNGs.

Each file holds ``camera_angle_x`` (horizontal field of view, radians) and frames
with an OpenGL camera-to-world ``transform_matrix`` and a ``file_path`` given
without its ``.png`` suffix. Images are composited on a white (default) or black
background, as the NeRF papers do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from splat.core.camera import Camera, c2w_to_w2c, fov_to_focal, opengl_to_opencv
from splat.io.common import as_float, check_image_sizes, read_json, resolve_image, transform_frames
from splat.io.nerfstudio import _matrix
from splat.io.scene import Scene

SPLITS = ("train", "val", "test")


def load_blender(
    path: str | os.PathLike,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    use_val: bool = False,
    verify_images: bool = True,
) -> Scene:
    """Loads a Blender NeRF-synthetic scene.

    Args:
        path: the folder holding ``transforms_train.json`` (and ``transforms_test.json``).
        background: RGB the RGBA images are composited on (white as in NeRF; black also common).
        use_val: also load ``transforms_val.json`` frames as training views.
        verify_images: decode every image once to catch corrupt files early.

    Returns:
        A scene whose ``train_ids`` are the train (and val) frames and ``test_ids`` the test frames.

    Raises:
        FileNotFoundError: ``transforms_train.json`` or an image is missing.
        ValueError: malformed JSON, or images that contradict the camera or each other.
    """
    root = Path(path)
    if root.is_file():
        root = root.parent
    if not root.is_dir():
        raise FileNotFoundError(f"Blender scene folder not found: {root}")
    bg = tuple(float(v) for v in background)
    if len(bg) != 3 or not all(0.0 <= v <= 1.0 for v in bg):
        raise ValueError(f"background must be 3 floats in [0, 1], got {background!r}")
    splits = ["train"] + (["val"] if use_val else []) + ["test"]
    frames, roles = [], []  # (json path, frame dict, fov); role is train/test
    for split in splits:
        source = root / f"transforms_{split}.json"
        if split != "train" and not source.is_file():
            continue
        meta = read_json(source)
        if "camera_angle_x" not in meta:
            raise ValueError(f"{source}: missing 'camera_angle_x'")
        fov = as_float(meta["camera_angle_x"], "camera_angle_x", source)
        if not 0.0 < fov < np.pi:
            raise ValueError(f"{source}: camera_angle_x must be in (0, pi) radians, got {fov}")
        for frame in transform_frames(meta, source):
            frames.append((source, frame, fov))
            roles.append("test" if split == "test" else "train")

    paths, c2ws = [], []
    for i, (source, frame, _) in enumerate(frames):
        paths.append(resolve_image(root, frame["file_path"], source, suffixes=(".png",)))
        c2ws.append(_matrix(frame["transform_matrix"], source, f"frame {frame['file_path']}"))
    w, h = check_image_sizes(paths, None, None, verify=verify_images)
    focals = torch.tensor([fov_to_focal(fov, w) for _, _, fov in frames], dtype=torch.float32)
    Ks = torch.zeros(len(frames), 3, 3)
    Ks[:, 0, 0] = Ks[:, 1, 1] = focals
    Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = w / 2, h / 2, 1.0
    c2w = opengl_to_opencv(torch.from_numpy(np.stack(c2ws)))
    return Scene(
        name=root.name,
        root=root,
        cameras=Camera(c2w_to_w2c(c2w).float(), Ks, w, h),
        image_paths=paths,
        train_ids=[i for i, r in enumerate(roles) if r == "train"],
        test_ids=[i for i, r in enumerate(roles) if r == "test"],
        background=bg,
    )
