"""Meshes and photographs that installed packages ship (nothing is downloaded).

Photos come from scikit-image's bundled data images; meshes from the files
bundled in pyvista's wheel (``pyvista/examples/*.ply``), plus pyvista's
procedural shapes. Every helper returns geometry in scene units, triangulated,
with texture coordinates where a photo is mapped onto it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: scikit-image data images stored in its wheel (no pooch download).
PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "horse",
          "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text")
#: pyvista example meshes stored in its wheel.
MESHES = ("airplane.ply", "ant.ply", "nut.ply")


def _pv():
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    import pyvista as pv

    return pv


def photo(name: str, tint: tuple[float, float, float] | None = None) -> np.ndarray:
    """A scikit-image data photo as ``[H, W, 3]`` uint8 (grey photos tinted by ``tint``)."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {PHOTOS}, got {name!r}")
    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3].astype(np.float64)
    if tint is not None:
        img = img * np.asarray(tint, dtype=np.float64)
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def earth_texture() -> np.ndarray:
    """pyvista's bundled 2k Earth daymap, ``[H, W, 3]`` uint8."""
    from PIL import Image
    from pyvista import examples

    return np.asarray(Image.open(examples.mapfile).convert("RGB"))


def bundled_mesh(name: str, size: float, centre=(0.0, 0.0, 0.0), rotate_x: float = 0.0,
                 rotate_z: float = 0.0, rest_on: float | None = None):
    """A pyvista wheel mesh scaled so its largest side is ``size``, centred at ``centre``.

    ``rest_on``: move it vertically so its lowest point sits at this height.
    """
    pv = _pv()
    from pyvista import examples

    if name not in MESHES:
        raise ValueError(f"mesh must be one of {MESHES}, got {name!r}")
    mesh = pv.read(Path(examples.__file__).parent / name).triangulate()
    b = np.asarray(mesh.bounds).reshape(3, 2)
    mesh.points = (mesh.points - b.mean(axis=1)) / (b[:, 1] - b[:, 0]).max() * size
    mesh.rotate_x(rotate_x, inplace=True)
    mesh.rotate_z(rotate_z, inplace=True)
    mesh.translate(centre, inplace=True)
    if rest_on is not None:
        mesh.translate((0.0, 0.0, rest_on - mesh.bounds[4]), inplace=True)
    return mesh


def textured_plane(centre, normal, i_size: float, j_size: float, resolution: int = 8, tiles: float = 1.0):
    """A triangulated rectangle with texture coordinates, repeated ``tiles`` times."""
    pv = _pv()
    plane = pv.Plane(center=centre, direction=normal, i_size=i_size, j_size=j_size,
                     i_resolution=resolution, j_resolution=resolution).triangulate()
    if tiles != 1.0:
        plane.active_texture_coordinates = plane.active_texture_coordinates * tiles
    return plane


def textured_quad(centre, u_axis, v_axis, resolution: int = 4):
    """A rectangle ``centre + s * u_axis + t * v_axis`` (s, t in [-1/2, 1/2]), triangulated.

    The texture's u runs along ``u_axis``, its v (up in the photo) along
    ``v_axis``; the front face (normal ``u_axis x v_axis``) shows the photo unmirrored.
    """
    pv = _pv()
    centre, u_axis, v_axis = (np.asarray(x, float) for x in (centre, u_axis, v_axis))
    st = np.linspace(0.0, 1.0, resolution + 1)
    s_grid, t_grid = np.meshgrid(st, st, indexing="xy")
    s_flat, t_flat = s_grid.ravel(), t_grid.ravel()
    points = centre + (s_flat[:, None] - 0.5) * u_axis + (t_flat[:, None] - 0.5) * v_axis
    n = resolution + 1
    faces = []
    for r in range(resolution):
        for c in range(resolution):
            i = r * n + c
            faces += [3, i, i + 1, i + n + 1, 3, i, i + n + 1, i + n]
    quad = pv.PolyData(points, faces=np.asarray(faces))
    quad.active_texture_coordinates = np.stack([s_flat, t_flat], axis=1).astype(np.float32)
    return quad


def textured_box(centre, size, photos: list[np.ndarray]) -> list[tuple[object, np.ndarray]]:
    """Six textured faces of an axis-aligned box ``size = (sx, sy, sz)``: ``[(quad, photo)]``.

    ``photos`` are used in turn for the faces +x, -x, +y, -y, +z, -z; side
    faces show their photo upright (v along +z).
    """
    centre, size = np.asarray(centre, float), np.asarray(size, float)
    ex, ey, ez = np.eye(3) * size[:, None]
    axes = [(ey, ez), (-ey, ez), (-ex, ez), (ex, ez), (ex, ey), (ex, -ey)]  # (u, v) with u x v outward
    faces = []
    for k, ((u, v), normal) in enumerate(zip(axes, [ex, -ex, ey, -ey, ez, -ez])):
        quad = textured_quad(centre + normal / 2, u, v)
        faces.append((quad, photos[k % len(photos)]))
    return faces


def textured_cylinder(centre, radius: float, height: float, resolution: int = 48):
    """An upright cylinder (no caps) with its texture wrapped once around."""
    pv = _pv()
    cyl = pv.CylinderStructured(center=centre, direction=(0, 0, 1), radius=radius, height=height,
                                theta_resolution=resolution, z_resolution=4).extract_surface(algorithm="dataset_surface").triangulate()
    rel = cyl.points - np.asarray(centre)
    u = (np.arctan2(rel[:, 1], rel[:, 0]) / (2 * np.pi)) % 1.0
    v = rel[:, 2] / height + 0.5
    cyl.active_texture_coordinates = np.stack([u, v], axis=1).astype(np.float32)
    return cyl


def textured_sphere(centre, radius: float, resolution: int = 64):
    """A UV sphere with equirectangular texture coordinates (no seam stretching across the map)."""
    pv = _pv()
    sphere = pv.Sphere(radius=radius, center=centre, theta_resolution=resolution, phi_resolution=resolution // 2)
    sphere.texture_map_to_sphere(center=centre, prevent_seam=False, inplace=True)
    return sphere.triangulate()


def gradient_dome(radius: float, top: tuple, horizon: tuple, bottom: tuple, centre=(0.0, 0.0, 0.0)):
    """A sphere around the scene coloured by elevation: ``horizon`` at z=0 to ``top`` / ``bottom``.

    Returns:
        The mesh, with a per-vertex uint8 RGB array named ``"rgb"``.
    """
    pv = _pv()
    dome = pv.Sphere(radius=radius, center=centre, theta_resolution=96, phi_resolution=48).triangulate()
    t = (dome.points[:, 2] - centre[2]) / radius  # -1..1
    up, down = np.clip(t, 0, 1)[:, None], np.clip(-t, 0, 1)[:, None]
    rgb = np.asarray(horizon) * (1 - up - down) + np.asarray(top) * up + np.asarray(bottom) * down
    dome.point_data["rgb"] = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return dome
