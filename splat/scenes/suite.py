"""The fitting scene suite: scenes made differently from the bundled ``globe``.

Each builder returns the parts, the cameras and the render settings of one
scene for a given image size, view count and random generator. The scenes
cover what users bring: 360-degree orbits and forward-facing captures,
random init (no points) and SfM-like sparse clouds, a large textured ground,
uniform and gradient backgrounds, thin structures and high-frequency photos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from splat.scenes.assets import (
    bundled_mesh,
    earth_texture,
    gradient_dome,
    photo,
    textured_box,
    textured_cylinder,
    textured_plane,
    textured_quad,
    textured_sphere,
)
from splat.scenes.render import Part, RenderSettings, View

__all__ = ["SceneSpec", "SUITE", "orbit_views", "forward_views"]


@dataclass(frozen=True)
class SceneSpec:
    """One suite scene.

    Attributes:
        name: the suite key.
        description: one line for tables and docs.
        build: ``(width, height, num_views, rng) -> (parts, views, settings)``.
        size: default ``(width, height)``.
        num_views: default number of views (every 8th is held out).
        num_points: size of its SfM-like sparse cloud (0: none, fits start from random points).
        point_noise: positional noise of the cloud, world units.
        point_radius: cloud points farther than this from the origin are dropped.
        layout: ``"orbit"`` (360 degrees) or ``"forward"`` (forward-facing).
    """

    name: str
    description: str
    build: Callable
    size: tuple[int, int]
    num_views: int
    num_points: int = 0
    point_noise: float = 0.0
    point_radius: float = math.inf
    layout: str = "orbit"


def orbit_views(num_views: int, radius: float, target, elev_min: float, elev_max: float,
                turns: float = 1.0, phase: float = 0.0) -> list[View]:
    """Cameras on a spiral around ``target``: azimuth over ``turns`` turns, elevation rising (degrees)."""
    target = np.asarray(target, float)
    views = []
    for i in range(num_views):
        azim = phase + 2.0 * math.pi * turns * i / num_views
        elev = math.radians(elev_min + (elev_max - elev_min) * i / max(1, num_views - 1))
        eye = target + radius * np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim),
                                          math.sin(elev)])
        views.append(View(tuple(eye), tuple(target)))
    return views


def forward_views(num_views: int, centre, target, half_width: float, half_height: float,
                  rng: np.random.Generator, jitter: float = 0.15) -> list[View]:
    """Forward-facing cameras on a jittered grid in a plane around ``centre``, looking near ``target``.

    The grid is spanned by the horizontal axis perpendicular to the viewing
    direction and the world z axis (LLFF-like captures).
    """
    centre, target = np.asarray(centre, float), np.asarray(target, float)
    forward = target - centre
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    cols = math.ceil(math.sqrt(num_views * half_width / max(half_height, 1e-9)))
    rows = math.ceil(num_views / cols)
    views = []
    for i in range(num_views):
        r, c = divmod(i, cols)
        u = (c + 0.5) / cols * 2 - 1 + rng.uniform(-jitter, jitter) / cols
        v = (r + 0.5) / rows * 2 - 1 + rng.uniform(-jitter, jitter) / rows
        eye = centre + right * u * half_width + np.array([0.0, 0.0, 1.0]) * v * half_height
        look = target + rng.normal(scale=0.05, size=3) * np.linalg.norm(forward)
        views.append(View(tuple(eye), tuple(look)))
    return views


def _box_parts(centre, size, names, tint=None) -> list[Part]:
    return [Part(plane, texture=tex) for plane, tex in textured_box(centre, size, [photo(n, tint) for n in names])]


# ---------------------------------------------------------------- builders
def _tabletop(width, height, num_views, rng):
    """Textured boxes and meshes on a large photo-textured table, 360 orbit, uniform sky."""
    parts = [Part(textured_plane((0, 0, 0), (0, 0, 1), 12.0, 12.0, resolution=16, tiles=6.0),
                  texture=photo("gravel", (1.0, 0.85, 0.65)), repeat=True)]
    parts += _box_parts((0.55, 0.35, 0.35), (0.7, 0.7, 0.7), ["astronaut", "coffee", "chelsea", "rocket", "horse"])
    parts += _box_parts((-0.7, -0.45, 0.22), (1.0, 0.5, 0.44), ["page", "hubble_deep_field", "coins", "camera"])
    parts.append(Part(textured_sphere((-0.45, 0.75, 0.4), 0.4), texture=earth_texture()))
    parts.append(Part(bundled_mesh("nut.ply", 0.6, centre=(0.6, -0.8, 0.0), rest_on=0.0), color=(0.75, 0.6, 0.3)))
    parts.append(Part(bundled_mesh("ant.ply", 0.8, centre=(-0.1, 0.0, 0.0), rotate_x=90.0, rotate_z=40.0,
                                   rest_on=0.0), color=(0.8, 0.3, 0.15)))
    views = orbit_views(num_views, 3.6, (0.0, 0.0, 0.25), 22.0, 42.0, turns=1.0)
    settings = RenderSettings(width, height, view_angle=50.0, background=(0.62, 0.76, 0.92))
    return parts, views, settings


def _ground(width, height, num_views, rng):
    """A large grass ground with trunks and crates, low forward-facing cameras, uniform sky."""
    parts = [Part(textured_plane((0.37, 4.21, 0), (0, 0, 1), 30.0, 30.0, resolution=24, tiles=12.0),
                  texture=photo("grass", (0.55, 0.85, 0.4)), repeat=True)]
    bark = photo("gravel", (0.6, 0.45, 0.3))
    for x, y, r, hgt in [(-2.0, 3.0, 0.22, 2.4), (1.6, 4.5, 0.3, 3.0), (-0.4, 7.0, 0.25, 2.8), (3.0, 8.0, 0.2, 2.2)]:
        parts.append(Part(textured_cylinder((x, y, hgt / 2), r, hgt), texture=bark))
    parts += _box_parts((0.3, 2.2, 0.3), (0.6, 0.6, 0.6), ["brick", "coffee", "chelsea"], None)
    parts += _box_parts((-1.0, 5.0, 0.4), (0.8, 0.8, 0.8), ["rocket", "astronaut", "horse"])
    views = forward_views(num_views, (0.13, -1.5, 0.9), (0.1, 5.0, 0.6), 1.2, 0.35, rng)
    settings = RenderSettings(width, height, view_angle=55.0, background=(0.7, 0.8, 0.95),
                              lights=[((6.0, -8.0, 12.0), 0.8), ((-8.0, 6.0, 6.0), 0.3)])
    return parts, views, settings


def _gradient_bg(width, height, num_views, rng):
    """Meshes inside a sky dome whose colour changes with elevation, spiral orbit."""
    parts = [Part(gradient_dome(25.0, top=(0.15, 0.3, 0.7), horizon=(0.95, 0.75, 0.55), bottom=(0.3, 0.25, 0.2)),
                  scalars="rgb", unlit=True)]
    parts.append(Part(bundled_mesh("airplane.ply", 1.8, centre=(0, 0, 0.1)), color=(0.85, 0.85, 0.9)))
    parts.append(Part(textured_sphere((0.0, 0.0, -0.55), 0.35), texture=photo("moon", (1.0, 0.95, 0.85))))
    parts += _box_parts((0.0, 0.0, -1.05), (1.2, 1.2, 0.3), ["brick", "coins"], (0.9, 0.7, 0.6))
    views = orbit_views(num_views, 3.5, (0.0, 0.0, -0.2), -10.0, 40.0, turns=1.5)
    settings = RenderSettings(width, height, view_angle=45.0, background=(0.0, 0.0, 0.0))
    return parts, views, settings


def _thin(width, height, num_views, rng):
    """Thin structures: a wire fence, a stem with leaf-like textured quads, on a pale background."""
    import pyvista as pv

    parts = [Part(textured_plane((0, 0, 0), (0, 0, 1), 3.0, 3.0, resolution=8, tiles=2.0),
                  texture=photo("brick", (0.9, 0.85, 0.8)), repeat=True)]
    for k in range(7):  # fence posts and two wires
        x = -1.2 + 0.4 * k
        parts.append(Part(pv.Cylinder(center=(x, -0.9, 0.35), direction=(0, 0, 1), radius=0.018, height=0.7,
                                      resolution=12).triangulate(), color=(0.35, 0.25, 0.2)))
    for z in (0.3, 0.6):
        parts.append(Part(pv.Cylinder(center=(0.0, -0.9, z), direction=(1, 0, 0), radius=0.006, height=2.5,
                                      resolution=8).triangulate(), color=(0.15, 0.15, 0.18)))
    parts.append(Part(pv.Cylinder(center=(0.2, 0.3, 0.6), direction=(0, 0, 1), radius=0.025, height=1.2,
                                  resolution=16).triangulate(), color=(0.3, 0.45, 0.2)))
    leaf = photo("grass", (0.5, 0.9, 0.35))
    for k in range(14):  # leaves spiralling up the stem
        angle, z = 2.4 * k, 0.25 + 0.065 * k
        d = np.array([math.cos(angle), math.sin(angle), 0.0])
        normal = np.array([-d[1] * 0.6, d[0] * 0.6, 0.8])
        plane = textured_plane(np.array([0.2, 0.3, z]) + d * 0.18, normal, 0.3, 0.1, resolution=2)
        parts.append(Part(plane, texture=leaf))
    parts.append(Part(pv.Tube(pointa=(-0.9, 0.6, 0.02), pointb=(-0.4, 0.9, 1.1), radius=0.012, n_sides=10)
                      .triangulate(), color=(0.8, 0.2, 0.2)))
    views = orbit_views(num_views, 3.0, (0.0, 0.0, 0.45), 15.0, 45.0, turns=1.0, phase=0.3)
    settings = RenderSettings(width, height, view_angle=45.0, background=(0.93, 0.93, 0.9))
    return parts, views, settings


def _photo_wall(width, height, num_views, rng):
    """Forward-facing: high-frequency photos at several depths before a brick wall."""
    parts = [Part(textured_plane((0, 3.0, 0), (0, -1, 0), 9.0, 6.0, resolution=8, tiles=3.0),
                  texture=photo("brick", (0.95, 0.75, 0.65)), repeat=True)]
    panels = [("astronaut", (-1.6, 2.4, 0.6), 1.2), ("hubble_deep_field", (0.2, 2.0, 0.9), 1.1),
              ("text", (1.5, 1.6, -0.2), 1.0), ("coins", (-0.9, 1.2, -0.7), 0.9),
              ("page", (0.6, 0.8, -1.0), 0.8), ("chelsea", (1.7, 2.6, 1.3), 0.9)]
    for name, centre, size in panels:
        img = photo(name)
        aspect = img.shape[1] / img.shape[0]
        # u along +x, v along +z: the front face looks down -y, at the cameras, the photo upright
        parts.append(Part(textured_quad(centre, (size * aspect, 0, 0), (0, 0, size)), texture=img))
    views = forward_views(num_views, (0.0, -3.5, 0.0), (0.0, 2.0, 0.0), 0.8, 0.5, rng)
    settings = RenderSettings(width, height, view_angle=50.0, background=(0.2, 0.2, 0.2),
                              lights=[((0.0, -6.0, 4.0), 0.9), ((4.0, -3.0, -2.0), 0.25)])
    return parts, views, settings


SUITE: dict[str, SceneSpec] = {
    spec.name: spec
    for spec in [
        SceneSpec("tabletop", "boxes, meshes and a globe on a photo-textured table; 360 orbit; uniform sky; "
                  "no points", _tabletop, (256, 192), 35),
        SceneSpec("ground", "large grass ground, trunks and crates; low forward-facing cameras; sparse cloud",
                  _ground, (256, 192), 30, num_points=4000, point_noise=0.01, point_radius=12.0,
                  layout="forward"),
        SceneSpec("gradient_bg", "airplane, moon and plinth in a gradient sky dome; spiral orbit; sparse cloud",
                  _gradient_bg, (256, 192), 32, num_points=3000, point_noise=0.005, point_radius=5.0),
        SceneSpec("thin", "wire fence, stem with leaves, a thin rod; 360 orbit; no points", _thin, (256, 192), 32),
        SceneSpec("photo_wall", "high-frequency photos at several depths before a brick wall; forward-facing; "
                  "sparse cloud", _photo_wall, (256, 192), 24, num_points=3000, point_noise=0.01,
                  layout="forward"),
        SceneSpec("tabletop_hd", "the tabletop scene at 800x600 (the large-image case); no points",
                  _tabletop, (800, 600), 35),
    ]
}
