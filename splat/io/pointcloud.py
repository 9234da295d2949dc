"""Coloured point clouds as PLY files (``x y z`` + optional ``red green blue``).

This is the small reader/writer for initial point clouds (nerfstudio's
``ply_file_path``); Gaussian PLY files are handled by :mod:`splat.io.ply`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from splat.io.atomic import atomic_path

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _parse_header(f, path: Path):
    if f.readline().strip() != b"ply":
        raise ValueError(f"{path} is not a PLY file (missing 'ply' magic)")
    fmt, elements = None, []  # elements: [name, count, [(prop, dtype)] or None when it has lists]
    while True:
        line = f.readline()
        if not line:
            raise ValueError(f"{path}: PLY header has no 'end_header'")
        words = line.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append([words[1], int(words[2]), []])
        elif words[0] == "property":
            if not elements:
                raise ValueError(f"{path}: PLY property before any element")
            if words[1] == "list":
                elements[-1][2] = None
            elif elements[-1][2] is not None:
                if words[1] not in _PLY_TYPES:
                    raise ValueError(f"{path}: unknown PLY property type {words[1]!r}")
                elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"{path}: unsupported PLY format {fmt!r}")
    return fmt, elements


def read_points_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads the vertices of a PLY file.

    Returns:
        ``([P, 3]`` float32 positions, ``[P, 3]`` float32 colours in ``[0, 1]`` or ``None)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a PLY point cloud this reader understands.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud file not found: {path}")
    with open(path, "rb") as f:
        fmt, elements = _parse_header(f, path)
        names = [e[0] for e in elements]
        if "vertex" not in names:
            raise ValueError(f"{path}: PLY file has no 'vertex' element")
        offset_rows = 0
        for name, count, props in elements[: names.index("vertex")]:
            if props is None:
                raise ValueError(f"{path}: PLY elements with lists before 'vertex' are unsupported")
            offset_rows += count
            if fmt != "ascii":
                f.seek(count * np.dtype([(p, t) for p, t in props]).itemsize, os.SEEK_CUR)
        _, count, props = elements[names.index("vertex")]
        if props is None:
            raise ValueError(f"{path}: PLY 'vertex' element with list properties is unsupported")
        endian = ">" if fmt == "binary_big_endian" else "<"
        dtype = np.dtype([(p, endian + t) for p, t in props])
        try:
            if fmt == "ascii":
                rows = [f.readline() for _ in range(offset_rows + count)][offset_rows:]
                table = np.loadtxt(rows, dtype=np.float64, ndmin=2) if count else np.zeros((0, len(props)))
                data = {p: table[:, i] for i, (p, _) in enumerate(props)}
            else:
                raw = f.read(count * dtype.itemsize)
                if len(raw) != count * dtype.itemsize:
                    raise ValueError("file is shorter than its header says")
                rec = np.frombuffer(raw, dtype=dtype, count=count)
                data = {p: rec[p] for p, _ in props}
        except ValueError as exc:
            raise ValueError(f"{path}: malformed PLY vertex data: {exc}") from exc
    if not all(k in data for k in "xyz"):
        raise ValueError(f"{path}: PLY vertices lack x, y, z properties")
    xyz = np.stack([data["x"], data["y"], data["z"]], -1).astype(np.float32)
    colors = None
    for keys in (("red", "green", "blue"), ("r", "g", "b")):
        if all(k in data for k in keys):
            rgb = np.stack([data[k] for k in keys], -1)
            kinds = {t for p, t in props if p in keys}
            scale = 255.0 if kinds <= {"u1"} else 65535.0 if kinds <= {"u2"} else 1.0
            colors = np.clip(rgb.astype(np.float32) / scale, 0.0, 1.0)
            break
    return xyz, colors


def write_points_ply(path: str | os.PathLike, points, colors=None) -> None:
    """Writes ``points [P, 3]`` (and ``colors [P, 3]`` in ``[0, 1]``) as binary PLY, atomically."""
    xyz = np.asarray(points, dtype=np.float32)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points must be [P, 3], got {xyz.shape}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        rgb = np.asarray(colors, dtype=np.float32)
        if rgb.shape != xyz.shape:
            raise ValueError(f"colors must be [P, 3] with P={xyz.shape[0]}, got {rgb.shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(xyz.shape[0], dtype=fields)
    rec["x"], rec["y"], rec["z"] = xyz.T
    if colors is not None:
        rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        rec["red"], rec["green"], rec["blue"] = rgb8.T
    types = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {xyz.shape[0]}"]
    header += [f"property {types[t]} {n}" for n, t in fields] + ["end_header"]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(rec.tobytes())
