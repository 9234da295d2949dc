"""Off-screen VTK renders of textured meshes into a nerfstudio scene folder.

A scene is a list of :class:`Part` (a mesh with texture coordinates and a
photo texture, or a solid/per-vertex colour), a background colour, world-fixed
lights and a list of camera eyes/targets. Each view is rendered at
``supersample`` times the image size and box-filtered down (antialiasing
with exact intrinsics: VTK's vertical view angle gives ``fy``, pixels are
square, the principal point is the image centre). The camera-to-world
matrices are read back from VTK's view transform (OpenGL convention, as
nerfstudio stores them).

Besides the images, a render records *reference points*: surface points
under a few pixel centres, unprojected through VTK's own depth buffer, so a
test can check that our camera model puts them back on the same pixel; and,
when asked, an SfM-like sparse cloud: surface points under random pixels of
every view, coloured as seen, with a little positional noise.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Part", "View", "RenderSettings", "render_views", "depth_buffer", "unproject"]


@dataclass
class Part:
    """One mesh of a scene.

    Attributes:
        mesh: a triangulated ``pyvista.PolyData`` (with texture coordinates when ``texture`` is set).
        texture: ``[H, W, 3]`` uint8 photo, or None.
        color: solid RGB in ``[0, 1]`` when there is no texture and no ``scalars``.
        scalars: name of a per-vertex ``[N, 3]`` uint8 RGB array of ``mesh`` to colour it with.
        repeat: tile the texture (texture coordinates beyond ``[0, 1]``).
        unlit: flat colour, no shading (sky domes, emissive panels).
    """

    mesh: object
    texture: np.ndarray | None = None
    color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    scalars: str | None = None
    repeat: bool = False
    unlit: bool = False


@dataclass
class View:
    """One camera: eye, look-at target and up vector in world coordinates."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass
class RenderSettings:
    """How a scene is rendered.

    Attributes:
        width, height: image size in pixels.
        view_angle: vertical field of view in degrees.
        background: RGB in ``[0, 1]`` behind every part.
        lights: ``((x, y, z), intensity)`` world-fixed scene lights (view-independent shading).
        supersample: render at this factor and box-filter down.
        ambient, diffuse: material coefficients of lit parts (no specular: Lambertian scenes).
    """

    width: int
    height: int
    view_angle: float = 50.0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lights: list = field(default_factory=lambda: [((4.0, -3.0, 6.0), 0.75), ((-5.0, 4.0, 3.0), 0.35)])
    supersample: int = 2
    ambient: float = 0.35
    diffuse: float = 0.75


def _focal(settings: RenderSettings) -> float:
    return (settings.height / 2.0) / math.tan(math.radians(settings.view_angle) / 2.0)


def depth_buffer(plotter) -> np.ndarray:
    """The render window's depth buffer ``[H, W]`` in ``[0, 1]``, row 0 at the bottom."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkFloatArray

    w, h = plotter.ren_win.GetSize()
    data = vtkFloatArray()
    plotter.ren_win.GetZbufferData(0, 0, w - 1, h - 1, data)
    return vtk_to_numpy(data).reshape(h, w)


def unproject(renderer, x: float, y: float, z: float) -> np.ndarray:
    """World point at VTK display coordinates ``(x, y)`` (origin bottom left), depth-buffer ``z``."""
    renderer.SetDisplayPoint(x, y, z)
    renderer.DisplayToWorld()
    p = np.array(renderer.GetWorldPoint())
    return p[:3] / p[3]


def _build_plotter(parts: list[Part], settings: RenderSettings):
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    import pyvista as pv

    s = settings.supersample
    plotter = pv.Plotter(off_screen=True, window_size=(settings.width * s, settings.height * s), lighting="none")
    plotter.set_background(settings.background)
    for position, intensity in settings.lights:
        plotter.add_light(pv.Light(position=position, focal_point=(0, 0, 0), intensity=intensity,
                                   light_type="scene light"))
    for part in parts:
        kwargs = dict(specular=0.0, smooth_shading=True)
        if part.unlit:
            kwargs.update(ambient=1.0, diffuse=0.0, lighting=False)
        else:
            kwargs.update(ambient=settings.ambient, diffuse=settings.diffuse)
        if part.texture is not None:
            tex = pv.Texture(np.ascontiguousarray(part.texture))
            tex.interpolate, tex.mipmap, tex.repeat = True, True, part.repeat
            plotter.add_mesh(part.mesh, texture=tex, **kwargs)
        elif part.scalars is not None:
            plotter.add_mesh(part.mesh, scalars=part.scalars, rgb=True, **kwargs)
        else:
            plotter.add_mesh(part.mesh, color=part.color, **kwargs)
    plotter.show(auto_close=False)
    return plotter


def render_views(
    parts: list[Part],
    views: list[View],
    settings: RenderSettings,
    rng: np.random.Generator,
    num_points: int = 0,
    point_noise: float = 0.0,
    point_radius: float = math.inf,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
    references_per_view: int = 3,
) -> dict:
    """Renders every view.

    Args:
        parts: the meshes.
        views: the cameras.
        settings: image size, field of view, background, lights.
        rng: draws reference pixels and cloud pixels (deterministic renders for a fixed seed).
        num_points: size of the SfM-like cloud (0: none).
        point_noise: standard deviation of the positional noise added to cloud points (world units).
        point_radius: cloud points farther than this from ``centre`` are dropped (sky domes).
        centre: centre of ``point_radius``.
        references_per_view: reference points recorded per view.

    Returns:
        ``{"images": [H, W, 3] uint8 list, "c2w": [4, 4] OpenGL list, "references":
        [(view index, world xyz, pixel uv)], "points": [P, 3] float32 or None,
        "colors": [P, 3] float32 or None, "focal": fy}``.
    """
    w, h, s = settings.width, settings.height, settings.supersample
    plotter = _build_plotter(parts, settings)
    renderer, camera = plotter.renderer, plotter.camera
    images, c2ws, references, points, colors = [], [], [], [], []
    per_view = math.ceil(num_points / len(views)) if num_points else 0
    try:
        for i, view in enumerate(views):
            camera.position, camera.focal_point, camera.up = view.eye, view.target, view.up
            camera.view_angle = settings.view_angle
            camera.OrthogonalizeViewUp()
            renderer.ResetCameraClippingRange()
            plotter.render()
            big = plotter.screenshot(return_img=True)[..., :3].astype(np.float64) / 255.0
            image = big.reshape(h, s, w, s, 3).mean(axis=(1, 3))
            image8 = (image * 255.0 + 0.5).astype(np.uint8)
            images.append(image8)
            # VTK's view transform is world-to-camera in the OpenGL frame (camera looks down -z).
            vt = camera.GetViewTransformMatrix()
            w2c_gl = np.array([[vt.GetElement(r, c) for c in range(4)] for r in range(4)])
            c2ws.append(np.linalg.inv(w2c_gl))

            zbuf = depth_buffer(plotter)
            ys, xs = np.nonzero(zbuf < 0.999999)
            if not len(xs):
                continue
            for k in rng.choice(len(xs), size=min(references_per_view, len(xs)), replace=False):
                x_ss, y_ss = int(xs[k]), int(ys[k])  # supersampled pixel, y from the bottom
                world = unproject(renderer, x_ss + 0.5, y_ss + 0.5, float(zbuf[y_ss, x_ss]))
                references.append((i, world, ((x_ss + 0.5) / s, h - (y_ss + 0.5) / s)))
            for k in rng.choice(len(xs), size=min(per_view, len(xs)), replace=False):
                x_ss, y_ss = int(xs[k]), int(ys[k])
                world = unproject(renderer, x_ss + 0.5, y_ss + 0.5, float(zbuf[y_ss, x_ss]))
                if np.linalg.norm(world - np.asarray(centre)) > point_radius:
                    continue
                row, col = min(h - 1, int((h * s - 1 - y_ss) / s)), min(w - 1, x_ss // s)
                points.append(world)
                colors.append(image[row, col])
    finally:
        plotter.close()
    cloud = cloud_colors = None
    if num_points:
        if not points:
            raise RuntimeError("no surface pixel was seen: the SfM-like cloud would be empty")
        cloud = np.asarray(points, dtype=np.float64)
        cloud += rng.normal(scale=point_noise, size=cloud.shape) if point_noise > 0 else 0.0
        cloud, cloud_colors = cloud.astype(np.float32), np.asarray(colors, dtype=np.float32)
    return {"images": images, "c2w": c2ws, "references": references, "points": cloud,
            "colors": cloud_colors, "focal": _focal(settings)}
