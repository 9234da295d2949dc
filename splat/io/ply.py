"""Gaussian splat files: the standard 3DGS PLY layout and the compact ``.splat``.

PLY (binary little-endian, float32 properties, one ``vertex`` element), as the
reference 3DGS implementation writes it and splat viewers read it::

    x y z  nx ny nz  f_dc_0..2  f_rest_0..(3K-1)  opacity  scale_0..2  rot_0..3

``f_rest`` is channel-major (all red coefficients, then green, then blue),
``opacity`` is a logit, ``scale_*`` are logs and ``rot_*`` a ``wxyz`` quaternion:
exactly the pre-activation storage of :class:`~splat.core.gaussians.Gaussians`.

``.splat`` (antimatter15's web viewer) stores 32 bytes per Gaussian: position
``f32 x3``, activated scale ``f32 x3``, RGBA ``u8 x4`` (degree-0 colour and
sigmoid opacity), rotation ``u8 x4`` (unit ``wxyz`` mapped by ``q * 128 + 128``),
sorted by decreasing ``volume * opacity``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from splat.core.gaussians import Gaussians, SH_C0
from splat.io.atomic import write_bytes_atomic

__all__ = ["save_ply", "load_ply", "save_splat", "ply_property_names"]


def ply_property_names(num_rest: int) -> list[str]:
    """Vertex property names in the 3DGS order, for ``num_rest`` = ``3 K`` f_rest values."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def _check_gaussians(gaussians) -> None:
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be splat.core.gaussians.Gaussians, got {type(gaussians).__name__}")
    gaussians.validate()


def _ply_table(gaussians: Gaussians) -> tuple[list[str], np.ndarray]:
    p = {k: v.detach().cpu().float() for k, v in gaussians.params.items()}
    n = p["means"].shape[0]
    rest = p["shN"].transpose(1, 2).reshape(n, -1)  # [N, 3K] channel-major, as Inria
    cols = [
        p["means"],
        torch.zeros(n, 3),
        p["sh0"].reshape(n, 3),
        rest,
        p["opacities"][:, None],
        p["scales"],
        p["quats"],
    ]
    table = torch.cat(cols, dim=1).numpy().astype("<f4")
    return ply_property_names(rest.shape[1]), table


def save_ply(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Writes Gaussians as a standard 3DGS PLY file (atomically).

    Args:
        gaussians: the Gaussians to save (extra per-Gaussian parameters are not written).
        path: destination ``.ply`` file; parent folders are created.

    Returns:
        The written path.
    """
    _check_gaussians(gaussians)
    names, table = _ply_table(gaussians)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {table.shape[0]}"]
    header += [f"property float {name}" for name in names]
    header += ["end_header"]
    data = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(table).tobytes()
    return write_bytes_atomic(path, data)


_PLY_TYPES = {
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
    "uchar": "u1", "uint8": "u1", "char": "i1", "int8": "i1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
}


def _read_header(f, path: Path) -> tuple[str, int, list[tuple[str, str]]]:
    if f.readline().strip() != b"ply":
        raise ValueError(f"{path}: not a PLY file (missing 'ply' magic)")
    fmt, count, props, element = None, None, [], None
    while True:
        line = f.readline()
        if not line:
            raise ValueError(f"{path}: PLY header has no end_header")
        tokens = line.decode("ascii", errors="replace").split()
        if not tokens or tokens[0] in ("comment", "obj_info"):
            continue
        if tokens[0] == "end_header":
            break
        if tokens[0] == "format":
            fmt = tokens[1]
        elif tokens[0] == "element":
            element = tokens[1]
            if element == "vertex":
                count = int(tokens[2])
        elif tokens[0] == "property" and element == "vertex":
            if tokens[1] == "list":
                raise ValueError(f"{path}: list properties on vertices are not supported")
            if tokens[1] not in _PLY_TYPES:
                raise ValueError(f"{path}: unknown PLY property type {tokens[1]!r}")
            props.append((tokens[2], _PLY_TYPES[tokens[1]]))
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise ValueError(f"{path}: only binary PLY is supported, got format {fmt!r}")
    if count is None:
        raise ValueError(f"{path}: PLY has no vertex element")
    return fmt, count, props


def load_ply(path: str | os.PathLike) -> Gaussians:
    """Reads a 3DGS PLY file (as written by :func:`save_ply` or the reference code).

    Args:
        path: a binary PLY with the 3DGS vertex properties.

    Returns:
        Gaussians with the stored (pre-activation) values; the SH degree is
        inferred from the number of ``f_rest_*`` properties.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a 3DGS PLY (naming what is missing).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY file not found: {path}")
    with open(path, "rb") as f:
        fmt, count, props = _read_header(f, path)
        endian = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(name, endian + t) for name, t in props])
        raw = f.read(dtype.itemsize * count)
    if len(raw) < dtype.itemsize * count:
        raise ValueError(f"{path}: truncated, expected {count} vertices of {dtype.itemsize} bytes")
    data = np.frombuffer(raw, dtype=dtype, count=count)
    names = set(dtype.names)
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    required += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    missing = [r for r in required if r not in names]
    if missing:
        raise ValueError(f"{path}: not a 3DGS PLY, missing vertex properties {missing}")
    rest_names = sorted((n for n in names if n.startswith("f_rest_")), key=lambda s: int(s.split("_")[-1]))
    if len(rest_names) % 3 or len(rest_names) // 3 + 1 not in (1, 4, 9, 16):
        raise ValueError(f"{path}: {len(rest_names)} f_rest properties do not match an SH degree 0..3")

    def cols(keys):
        return torch.from_numpy(np.stack([data[k].astype(np.float32) for k in keys], axis=1))

    k = len(rest_names) // 3
    shn = cols(rest_names).reshape(count, 3, k).transpose(1, 2) if k else torch.zeros(count, 0, 3)
    return Gaussians(
        {
            "means": cols(["x", "y", "z"]),
            "quats": cols([f"rot_{i}" for i in range(4)]),
            "scales": cols([f"scale_{i}" for i in range(3)]),
            "opacities": cols(["opacity"])[:, 0],
            "sh0": cols(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :],
            "shN": shn.contiguous(),
        }
    )


def save_splat(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Writes Gaussians in antimatter15's 32-byte ``.splat`` layout (atomically).

    Args:
        gaussians: the Gaussians to save (only degree-0 colour is kept).
        path: destination ``.splat`` file.

    Returns:
        The written path.
    """
    _check_gaussians(gaussians)
    with torch.no_grad():
        scales = gaussians.scales.cpu().float()
        opac = gaussians.opacities.cpu().float()
        order = torch.argsort(-(scales.prod(dim=-1) * opac), stable=True)
        n = gaussians.num_gaussians
        rgba = torch.cat([gaussians.params["sh0"].cpu().float().reshape(n, 3) * SH_C0 + 0.5, opac[:, None]], dim=1)
        rgba = (rgba.clamp(0, 1) * 255).round().to(torch.uint8)
        rot = (gaussians.quats.cpu().float() * 128 + 128).round().clamp(0, 255).to(torch.uint8)
        record = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
        out = np.empty(n, dtype=record)
        out["pos"] = gaussians.means.detach().cpu().float().numpy()[order.numpy()]
        out["scale"] = scales.numpy()[order.numpy()]
        out["rgba"] = rgba.numpy()[order.numpy()]
        out["rot"] = rot.numpy()[order.numpy()]
    assert out.dtype.itemsize == 32
    return write_bytes_atomic(path, out.tobytes())
