"""Small scene folders written by the tests (shared by tests/io)."""

import json
from pathlib import Path

import numpy as np

from splat.io.images import save_png


def write_image(path: Path, width: int, height: int, channels: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    save_png(path, rng.integers(0, 256, (height, width, channels), dtype=np.uint8))
    return path


def gl_pose(eye) -> list:
    """OpenGL camera-to-world of a camera at ``eye`` looking at the origin, z up."""
    eye = np.asarray(eye, dtype=np.float64)
    back = eye / np.linalg.norm(eye)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, back, eye
    return c2w.tolist()


def write_nerfstudio(root: Path, num_frames: int = 3, width: int = 24, height: int = 16, **meta) -> Path:
    """A minimal nerfstudio folder; ``meta`` overrides top-level keys (``None`` removes one)."""
    root.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(num_frames):
        write_image(root / "images" / f"f{i:02d}.png", width, height, seed=i)
        angle = 2 * np.pi * i / num_frames
        frames.append({"file_path": f"images/f{i:02d}.png", "transform_matrix": gl_pose([4 * np.cos(angle), 4 * np.sin(angle), 1.0])})
    data = {"camera_model": "OPENCV", "fl_x": 20.0, "fl_y": 21.0, "cx": 12.0, "cy": 8.0, "w": width, "h": height,
            "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames}
    data.update(meta)
    data = {k: v for k, v in data.items() if v is not None}
    (root / "transforms.json").write_text(json.dumps(data))
    return root
