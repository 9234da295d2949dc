"""Make the small splat objects shipped in ``assets/objects`` (the Simulate tab's choices).

Each object is a splat model built from the surface of an open3d primitive
mesh: points sampled evenly on the surface (Poisson-disk), coloured by a
pattern that makes deformation visible, turned into opaque Gaussians sized by
their neighbours (:meth:`splat.core.gaussians.Gaussians.from_points`), SH
degree 0. Surface-only like a fitted object; the particle fill makes it solid.

    python scripts/make_splat_objects.py            # writes assets/objects/*.ply (< 1 MB each)
"""

from __future__ import annotations

import colorsys
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splat.core.gaussians import Gaussians  # noqa: E402
from splat.io.ply import save_ply  # noqa: E402

N_POINTS = 12000


def _hue(h: np.ndarray, s: float = 0.75, v: float = 0.95) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(float(x) % 1.0, s, v) for x in h])


def _surface(mesh, n: int, seed: int) -> np.ndarray:
    import open3d as o3d

    o3d.utility.random.seed(seed)
    mesh.compute_vertex_normals()
    return np.asarray(mesh.sample_points_poisson_disk(n).points)


def ball() -> tuple[np.ndarray, np.ndarray]:
    """A sphere with eight coloured meridian segments and a white equator band."""
    import open3d as o3d

    p = _surface(o3d.geometry.TriangleMesh.create_sphere(radius=0.5, resolution=40), N_POINTS, 0)
    lon = np.arctan2(p[:, 2], p[:, 0]) / (2 * np.pi)
    col = _hue(np.floor(lon * 8) / 8)
    col[np.abs(p[:, 1]) < 0.06] = 0.97
    return p, col


def ring() -> tuple[np.ndarray, np.ndarray]:
    """A torus lying flat, hue around the ring, darker on the inside."""
    import open3d as o3d

    p = _surface(o3d.geometry.TriangleMesh.create_torus(torus_radius=0.36, tube_radius=0.16,
                                                        radial_resolution=48, tubular_resolution=24),
                 N_POINTS, 1)
    p = p[:, [0, 2, 1]]  # open3d's torus lies in the xy plane; lay it flat (y up)
    col = _hue(np.arctan2(p[:, 2], p[:, 0]) / (2 * np.pi))
    col *= np.where(np.hypot(p[:, 0], p[:, 2]) < 0.36, 0.6, 1.0)[:, None]
    return p, col


def crate() -> tuple[np.ndarray, np.ndarray]:
    """A box with a checkerboard on every face."""
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_box(0.8, 0.6, 0.6).translate((-0.4, -0.3, -0.3))
    mesh = mesh.subdivide_midpoint(3)
    p = _surface(mesh, N_POINTS, 2)
    check = (np.floor(p[:, 0] * 6.0) + np.floor(p[:, 1] * 6.0) + np.floor(p[:, 2] * 6.0)) % 2
    col = np.where(check[:, None] > 0, [[0.85, 0.45, 0.15]], [[0.98, 0.9, 0.7]])
    return p, col


OBJECTS = {"ball": ball, "ring": ring, "crate": crate}


def main() -> int:
    out = ROOT / "assets" / "objects"
    for name, make in OBJECTS.items():
        points, colors = make()
        g = Gaussians.from_points(points.astype(np.float32), np.clip(colors, 0, 1).astype(np.float32),
                                  sh_degree=0, init_opacity=0.95, init_scale=0.7)
        path = save_ply(g, out / f"{name}.ply")
        print(f"{path.relative_to(ROOT)}: {g.num_gaussians} Gaussians, {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
