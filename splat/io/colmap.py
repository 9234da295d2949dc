"""COLMAP sparse models (text and binary) read into :class:`Scene`, and written back.

A model folder holds ``cameras``, ``images`` and ``points3D`` as ``.bin`` or
``.txt``. Poses are world-to-camera (``qvec`` wxyz, ``tvec``) in the OpenCV
frame, which is the convention :class:`Scene` keeps. Only pinhole models are
read; the distorted ones (SIMPLE_RADIAL, RADIAL, OPENCV) only with zero
distortion, since undistortion is out of scope (run ``colmap image_undistorter``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from splat.core.camera import Camera, quat_to_rotmat, rotmat_to_quat
from splat.io.atomic import atomic_path
from splat.io.common import check_image_sizes
from splat.io.scene import Scene

#: COLMAP camera models: id -> (name, number of parameters).
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
_MODEL_IDS = {name: (i, n) for i, (name, n) in CAMERA_MODELS.items()}


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [num_params] float64


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # [4] wxyz, world-to-camera rotation
    tvec: np.ndarray  # [3] world-to-camera translation
    camera_id: int
    name: str


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: np.ndarray  # [P, 3] float64
    colors: np.ndarray  # [P, 3] uint8


def _pinhole(camera: ColmapCamera, source: Path) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` of a camera, or a ``ValueError`` for distortion or other models."""
    p = camera.params
    if camera.model == "SIMPLE_PINHOLE":
        return p[0], p[0], p[1], p[2]
    if camera.model == "PINHOLE":
        return p[0], p[1], p[2], p[3]
    if camera.model in ("SIMPLE_RADIAL", "RADIAL", "OPENCV"):
        distortion = p[3:] if camera.model != "OPENCV" else p[4:]
        if np.any(distortion != 0):
            raise ValueError(
                f"{source}: camera {camera.id} ({camera.model}) has non-zero distortion "
                f"{distortion.tolist()}; undistortion is unsupported, run colmap image_undistorter first"
            )
        return (p[0], p[0], p[1], p[2]) if camera.model != "OPENCV" else (p[0], p[1], p[2], p[3])
    raise ValueError(
        f"{source}: camera {camera.id} uses model {camera.model}, unsupported; expected SIMPLE_PINHOLE, "
        "PINHOLE, or SIMPLE_RADIAL/RADIAL/OPENCV with zero distortion"
    )


# ---------------------------------------------------------------- binary


class _Reader:
    """Little-endian struct reads from a file's bytes that fail with its name on truncation."""

    def __init__(self, f: BinaryIO, path: Path):
        self.data, self.pos, self.path = f.read(), 0, path

    def read(self, fmt: str):
        fmt = "<" + fmt
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"{self.path} is truncated or malformed")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, nbytes: int) -> None:
        if self.pos + nbytes > len(self.data):
            raise ValueError(f"{self.path} is truncated or malformed")
        self.pos += nbytes

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ValueError(f"{self.path} is truncated or malformed (unterminated image name)")
        text = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return text


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    with open(path, "rb") as f:
        r = _Reader(f, path)
        (count,) = r.read("Q")
        for _ in range(count):
            cam_id, model_id, width, height = r.read("iiQQ")
            if model_id not in CAMERA_MODELS:
                raise ValueError(f"{path}: camera {cam_id} has unknown camera model id {model_id}")
            name, n = CAMERA_MODELS[model_id]
            cameras[cam_id] = ColmapCamera(cam_id, name, width, height, np.array(r.read("d" * n)))
    return cameras


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    images = {}
    with open(path, "rb") as f:
        r = _Reader(f, path)
        (count,) = r.read("Q")
        for _ in range(count):
            image_id, *pose, cam_id = r.read("i7di")
            name = r.string()
            (num_points2d,) = r.read("Q")
            r.skip(num_points2d * 24)  # x, y (double) and point3D id (int64)
            images[image_id] = ColmapImage(image_id, np.array(pose[:4]), np.array(pose[4:]), cam_id, name)
    return images


_POINT_RECORD = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("error", "<f8"), ("track", "<u8")])


def _read_points_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # Records have variable-length tracks: walk the offsets, then gather the fixed parts at once.
    with open(path, "rb") as f:
        r = _Reader(f, path)
    (count,) = r.read("Q")
    offsets = np.empty(count, np.int64)
    pos, size, unpack = r.pos, _POINT_RECORD.itemsize, struct.Struct("<Q").unpack_from
    for k in range(count):
        if pos + size > len(r.data):
            raise ValueError(f"{path} is truncated or malformed")
        offsets[k] = pos
        pos += size + 8 * unpack(r.data, pos + size - 8)[0]
    if pos > len(r.data):
        raise ValueError(f"{path} is truncated or malformed")
    raw = np.frombuffer(r.data, np.uint8)
    records = raw[offsets[:, None] + np.arange(size)].copy().view(_POINT_RECORD).reshape(count)
    return records["xyz"].astype(np.float64).reshape(-1, 3), records["rgb"].reshape(-1, 3).copy()


# ---------------------------------------------------------------- text


def _data_lines(path: Path, keep_blank: bool = False) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        lines = [(i + 1, line.strip()) for i, line in enumerate(f) if not line.lstrip().startswith("#")]
    return lines if keep_blank else [(i, l) for i, l in lines if l]


def _parse(path: Path, lineno: int, tokens: list[str], types: str):
    try:
        return [int(t) if k == "i" else float(t) for t, k in zip(tokens, types)]
    except ValueError as exc:
        raise ValueError(f"{path}:{lineno}: malformed line: {exc}") from exc


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for lineno, line in _data_lines(path):
        tokens = line.split()
        if len(tokens) < 4:
            raise ValueError(f"{path}:{lineno}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'")
        model = tokens[1]
        if model not in _MODEL_IDS:
            raise ValueError(f"{path}:{lineno}: unknown camera model {model!r}")
        n = _MODEL_IDS[model][1]
        if len(tokens) != 4 + n:
            raise ValueError(f"{path}:{lineno}: model {model} needs {n} parameters, got {len(tokens) - 4}")
        cam_id, width, height = _parse(path, lineno, [tokens[0], tokens[2], tokens[3]], "iii")
        params = np.array(_parse(path, lineno, tokens[4:], "d" * n))
        cameras[cam_id] = ColmapCamera(cam_id, model, width, height, params)
    return cameras


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    images = {}
    lines = _data_lines(path, keep_blank=True)
    i = 0
    while i < len(lines):
        lineno, line = lines[i]
        if not line:
            i += 1
            continue
        tokens = line.split(maxsplit=9)
        if len(tokens) != 10:
            raise ValueError(f"{path}:{lineno}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        values = _parse(path, lineno, tokens[:9], "i" + "d" * 7 + "i")
        pose = np.array(values[1:8])
        images[values[0]] = ColmapImage(values[0], pose[:4], pose[4:], values[8], tokens[9])
        i += 2  # the next line lists the image's 2D points (possibly empty)
    return images


def _read_points_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = [], []
    for lineno, line in _data_lines(path):
        tokens = line.split(maxsplit=8)  # the track (tokens 8...) is not needed
        if len(tokens) < 8:
            raise ValueError(f"{path}:{lineno}: expected 'POINT3D_ID X Y Z R G B ERROR TRACK...'")
        try:
            xyz.append((float(tokens[1]), float(tokens[2]), float(tokens[3])))
            rgb.append((int(tokens[4]), int(tokens[5]), int(tokens[6])))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: malformed line: {exc}") from exc
    return np.array(xyz, np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3)


# ---------------------------------------------------------------- model


def find_colmap_model(root: str | os.PathLike) -> Path | None:
    """The sparse model folder under ``root`` (``sparse/0``, ``sparse`` or ``root`` itself), if any."""
    root = Path(root)
    for folder in (root / "sparse" / "0", root / "sparse", root):
        if any((folder / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return folder
    return None


def read_colmap_model(folder: str | os.PathLike) -> ColmapModel:
    """Reads ``cameras``, ``images`` and ``points3D`` from a model folder (binary preferred).

    Raises:
        FileNotFoundError: a model file is missing.
        ValueError: a file is malformed or names an unknown camera model.
    """
    folder = Path(folder)
    ext = ".bin" if (folder / "cameras.bin").is_file() else ".txt"
    for stem in ("cameras", "images"):
        if not (folder / f"{stem}{ext}").is_file():
            raise FileNotFoundError(f"COLMAP model file not found: {folder / (stem + ext)}")
    try:
        if ext == ".bin":
            cameras = _read_cameras_bin(folder / "cameras.bin")
            images = _read_images_bin(folder / "images.bin")
        else:
            cameras = _read_cameras_txt(folder / "cameras.txt")
            images = _read_images_txt(folder / "images.txt")
    except UnicodeDecodeError as exc:
        raise ValueError(f"COLMAP model in {folder} is malformed: {exc}") from exc
    points_file = folder / f"points3D{ext}"
    if points_file.is_file():
        points, colors = (_read_points_bin if ext == ".bin" else _read_points_txt)(points_file)
    else:
        points, colors = np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    return ColmapModel(cameras, images, points, colors)


def load_colmap(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    verify_images: bool = True,
    name: str | None = None,
) -> Scene:
    """Loads a COLMAP scene: a sparse model plus its images.

    Args:
        path: scene folder with ``sparse/0`` (or ``sparse``) and ``images/``, or a model folder.
        images_dir: folder of the images (default: ``<scene>/images``).
        verify_images: decode every image once to catch corrupt files early.
        name: scene name (default: the scene folder's name).

    Returns:
        The scene, views sorted by image name; every 8th is a test view.

    Raises:
        FileNotFoundError: no model, a model file, or an image is missing.
        ValueError: malformed files, unsupported camera models or distortion, an image
            whose size contradicts its camera, or cameras of different sizes.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"COLMAP scene not found: {path}")
    folder = find_colmap_model(path)
    if folder is None:
        raise FileNotFoundError(f"no COLMAP model (cameras.bin/.txt) in {path}, {path / 'sparse'} or {path / 'sparse/0'}")
    root = path
    if folder == path:  # a model folder was given: its scene is above sparse/ (or sparse/0)
        if path.name == "sparse":
            root = path.parent
        elif path.parent.name == "sparse":
            root = path.parent.parent
    model = read_colmap_model(folder)
    if not model.images:
        raise ValueError(f"COLMAP model {folder} has no registered images")
    image_root = Path(images_dir) if images_dir is not None else root / "images"
    if not image_root.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_root}")

    images = sorted(model.images.values(), key=lambda im: im.name)
    sizes, paths, Ks, viewmats = set(), [], [], []
    for im in images:
        if im.camera_id not in model.cameras:
            raise ValueError(f"{folder}: image {im.name!r} refers to unknown camera {im.camera_id}")
        cam = model.cameras[im.camera_id]
        fx, fy, cx, cy = _pinhole(cam, folder)
        sizes.add((cam.width, cam.height))
        Ks.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        viewmat = np.eye(4)
        viewmat[:3, :3] = quat_to_rotmat(torch.from_numpy(im.qvec)).numpy()
        viewmat[:3, 3] = im.tvec
        viewmats.append(viewmat)
        image_path = image_root / im.name
        if not image_path.is_file():
            raise FileNotFoundError(f"{folder}: image {im.name!r} not found in {image_root}")
        paths.append(image_path)
    if len(sizes) > 1:
        raise ValueError(f"{folder}: cameras of mixed image sizes are unsupported: {sorted(sizes)}")
    (w, h), = sizes
    # Each image must match its own camera's size.
    check_image_sizes(paths, w, h, verify=verify_images)
    points = torch.from_numpy(model.points.astype(np.float32)) if len(model.points) else None
    colors = torch.from_numpy(model.colors.astype(np.float32) / 255.0) if len(model.points) else None
    return Scene(
        name=name or root.name,
        root=root,
        cameras=Camera(torch.tensor(np.stack(viewmats), dtype=torch.float32),
                       torch.tensor(Ks, dtype=torch.float32), int(w), int(h)),
        image_paths=paths,
        points=points,
        point_colors=colors,
    )


# ---------------------------------------------------------------- writing


def save_colmap(scene_like: Scene, folder: str | os.PathLike, binary: bool = True) -> Path:
    """Writes a scene's cameras, poses and points as a COLMAP model (PINHOLE cameras).

    Each view gets its own camera; image names are the file names of
    ``scene_like.image_paths``. Points get empty tracks. Files are written atomically.

    Args:
        scene_like: a :class:`Scene` or an object with ``cameras`` and ``image_paths``
            (optionally ``points`` and ``point_colors``).
        folder: model folder to write (e.g. ``<scene>/sparse/0``).
        binary: write ``.bin`` files, else ``.txt``.

    Returns:
        ``folder``.
    """
    cameras = getattr(scene_like, "cameras", None)
    image_paths = getattr(scene_like, "image_paths", None)
    if not isinstance(cameras, Camera) or image_paths is None:
        raise TypeError(f"scene_like must have 'cameras' (Camera) and 'image_paths', got {type(scene_like).__name__}")
    folder = Path(folder)
    Ks = cameras.Ks.double().numpy()
    viewmats = cameras.viewmats.double()
    quats = rotmat_to_quat(viewmats[:, :3, :3]).numpy()
    tvecs = viewmats[:, :3, 3].numpy()
    names = [Path(p).name for p in image_paths]
    w, h = int(cameras.width), int(cameras.height)
    pts = getattr(scene_like, "points", None)
    pts = np.zeros((0, 3)) if pts is None else np.asarray(pts, dtype=np.float64)
    cols = getattr(scene_like, "point_colors", None)
    cols8 = (np.full_like(pts, 128) if cols is None else np.clip(np.asarray(cols) * 255 + 0.5, 0, 255)).astype(np.uint8)
    params = [(K[0, 0], K[1, 1], K[0, 2], K[1, 2]) for K in Ks]
    if binary:
        cam_bytes = struct.pack("<Q", len(names)) + b"".join(
            struct.pack("<iiQQ4d", i + 1, 1, w, h, *p) for i, p in enumerate(params))
        img_bytes = struct.pack("<Q", len(names)) + b"".join(
            struct.pack("<i7di", i + 1, *quats[i], *tvecs[i], i + 1) + names[i].encode() + b"\x00"
            + struct.pack("<Q", 0) for i in range(len(names)))
        pt_bytes = struct.pack("<Q", len(pts)) + b"".join(
            struct.pack("<Q3d3BdQ", i + 1, *pts[i], *cols8[i], 0.0, 0) for i in range(len(pts)))
        files = {"cameras.bin": cam_bytes, "images.bin": img_bytes, "points3D.bin": pt_bytes}
    else:
        cam_txt = "# Camera list: CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n" + "".join(
            f"{i + 1} PINHOLE {w} {h} {' '.join(repr(float(v)) for v in p)}\n" for i, p in enumerate(params))
        img_txt = "# Image list: IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then POINTS2D[]\n" + "".join(
            f"{i + 1} {' '.join(repr(float(v)) for v in quats[i])} {' '.join(repr(float(v)) for v in tvecs[i])} "
            f"{i + 1} {names[i]}\n\n" for i in range(len(names)))
        pt_txt = "# 3D point list: POINT3D_ID X Y Z R G B ERROR TRACK[]\n" + "".join(
            f"{i + 1} {' '.join(repr(float(v)) for v in pts[i])} {' '.join(str(int(c)) for c in cols8[i])} 0.0\n"
            for i in range(len(pts)))
        files = {"cameras.txt": cam_txt.encode(), "images.txt": img_txt.encode(), "points3D.txt": pt_txt.encode()}
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        with atomic_path(folder / fname) as tmp:
            tmp.write_bytes(data)
    return folder
