"""Generated object data for GS2Pose: real meshes with photo textures, rendered by VTK.

Everything comes from installed packages, nothing is downloaded: pyvista's
bundled ``airplane.ply`` and ``ant.ply`` meshes and a box whose six faces are
scikit-image photographs, textured with scikit-image photographs. Each object
is centred on its bounding box and scaled to a bounding radius of 0.5 (so its
diameter is close to 1), in its own frame, which is also the world frame of the
training views.

Views are rendered off-screen by VTK (supersampled 2x, box-filtered) with
exact pinhole intrinsics (principal point at the image centre, ``fx == fy``),
and give an RGB image, a soft alpha mask and a metric depth image (camera z,
0 off the object). Training views (for fitting an object model) are lit by
lights fixed in the object frame; test views may change the lights (position,
intensity, colour), sit on a photographic background and be partly occluded
by a photo patch.

Poses are ``object_to_camera`` 4x4 matrices in the OpenCV convention (x right,
y down, z forward), as gsplat's ``viewmats``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

OBJECTS = ("photo_box", "airplane", "ant")
SUPERSAMPLE = 2
AMBIENT, DIFFUSE = 0.35, 0.7
#: Lights ``(position, intensity, colour)`` in the object frame: those of the training views.
TRAIN_LIGHTS = (((3.0, -2.0, 4.0), 0.7, (1.0, 1.0, 1.0)), ((-3.0, 3.0, -1.0), 0.35, (1.0, 1.0, 1.0)))


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


@dataclass
class ObjectPart:
    """One textured triangle mesh of an object (points in the object frame)."""

    mesh: object  # pyvista.PolyData with active texture coordinates
    texture: np.ndarray  # [H, W, 3] uint8


@dataclass
class GeneratedObject:
    """A textured object in its own frame.

    Attributes:
        name: one of :data:`OBJECTS`.
        parts: the textured meshes.
        symmetric: whether the object has a visual symmetry (ADD-S applies).
    """

    name: str
    parts: list[ObjectPart] = field(default_factory=list)
    symmetric: bool = False

    def vertices(self) -> np.ndarray:
        """``[V, 3]`` mesh vertices of all parts."""
        return np.concatenate([np.asarray(p.mesh.points) for p in self.parts])


def _normalise(meshes: list) -> None:
    """Centres the meshes on their joint bounding box and scales them to a bounding radius of 0.5."""
    pts = np.concatenate([np.asarray(m.points) for m in meshes])
    centre = (pts.min(0) + pts.max(0)) / 2
    radius = np.linalg.norm(pts - centre, axis=1).max()
    for m in meshes:
        m.points = ((np.asarray(m.points) - centre) / radius * 0.5).astype(np.float32)


def make_object(name: str) -> GeneratedObject:
    """Builds one of the :data:`OBJECTS` (a box of photographs, pyvista's airplane or ant).

    Raises:
        ValueError: unknown ``name``.
    """
    import pyvista as pv
    from pyvista import examples

    if name not in OBJECTS:
        raise ValueError(f"unknown object {name!r}; available: {', '.join(OBJECTS)}")
    if name == "photo_box":
        size = np.array([0.8, 0.55, 0.35])
        faces = [("astronaut", 0, 1), ("chelsea", 1, -1), ("coffee", 0, -1),
                 ("rocket", 1, 1), ("immunohistochemistry", 2, 1), ("colorwheel", 2, -1)]
        parts = []
        for photo, axis, sign in faces:
            u_axis, v_axis = [a for a in range(3) if a != axis]
            corners = []
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                c = np.zeros(3)
                c[axis], c[u_axis], c[v_axis] = sign, du * sign, dv
                corners.append(c * size / 2)
            quad = pv.PolyData(np.array(corners), faces=[4, 0, 1, 2, 3]).triangulate()
            quad.active_texture_coordinates = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
            parts.append(ObjectPart(quad, _photo(photo)))
        _normalise([p.mesh for p in parts])
        return GeneratedObject(name, parts)
    mesh = (examples.load_airplane() if name == "airplane" else examples.load_ant()).triangulate()
    _normalise([mesh])
    mesh = mesh.texture_map_to_plane(inplace=False)
    photo = "astronaut" if name == "airplane" else "chelsea"
    return GeneratedObject(name, [ObjectPart(mesh, _photo(photo))])


# ---------------------------------------------------------------------- VTK rendering
@dataclass
class RenderedView:
    """One rendered view.

    Attributes:
        image: ``[H, W, 3]`` float32 RGB in ``[0, 1]`` (object over the background).
        alpha: ``[H, W]`` float32 coverage of the object in ``[0, 1]``.
        depth: ``[H, W]`` float32 camera-space z of the object, 0 where it is absent.
    """

    image: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray


def _check_intrinsics_for_vtk(K: np.ndarray, width: int, height: int) -> None:
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if abs(fx - fy) > 1e-6 * fx or abs(cx - width / 2) > 1e-6 or abs(cy - height / 2) > 1e-6:
        raise ValueError(
            f"the VTK renderer needs fx == fy and the principal point at the image centre "
            f"({width / 2}, {height / 2}); got fx={fx}, fy={fy}, cx={cx}, cy={cy}"
        )


class ObjectRenderer:
    """Renders a :class:`GeneratedObject` at given poses with VTK (off-screen).

    Args:
        obj: the object.
        width: image width in pixels.
        height: image height in pixels.
    """

    def __init__(self, obj: GeneratedObject, width: int, height: int):
        os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
        import pyvista as pv

        self.width, self.height = int(width), int(height)
        self.plotter = pv.Plotter(off_screen=True, window_size=(self.width * SUPERSAMPLE, self.height * SUPERSAMPLE),
                                  lighting="none")
        self.plotter.set_background((0.0, 0.0, 0.0))
        for part in obj.parts:
            tex = pv.Texture(part.texture)
            tex.interpolate, tex.mipmap = True, True
            self.plotter.add_mesh(part.mesh, texture=tex, ambient=AMBIENT, diffuse=DIFFUSE, specular=0.0,
                                  smooth_shading=False)
        self._lights: list = []
        self.set_lights(TRAIN_LIGHTS)
        self.plotter.show(auto_close=False)

    def set_lights(self, lights) -> None:
        """Replaces the lights by ``[(position, intensity, colour), ...]`` (object frame)."""
        import pyvista as pv

        self.plotter.remove_all_lights()
        for position, intensity, colour in lights:
            self.plotter.add_light(pv.Light(position=position, focal_point=(0, 0, 0), intensity=intensity,
                                            color=colour, light_type="scene light"))

    def close(self) -> None:
        self.plotter.close()

    def __enter__(self) -> "ObjectRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self, object_to_camera: np.ndarray, K: np.ndarray) -> RenderedView:
        """Renders the object at ``object_to_camera [4, 4]`` (OpenCV) through ``K [3, 3]`` on black."""
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkCommonCore import vtkFloatArray

        T = np.asarray(object_to_camera, dtype=np.float64)
        K = np.asarray(K, dtype=np.float64)
        _check_intrinsics_for_vtk(K, self.width, self.height)
        R, t = T[:3, :3], T[:3, 3]
        centre = -R.T @ t
        forward, down = R[2], R[1]
        camera = self.plotter.camera
        camera.position = tuple(centre)
        camera.focal_point = tuple(centre + forward * max(np.linalg.norm(t), 1e-3))
        camera.up = tuple(-down)
        camera.view_angle = math.degrees(2.0 * math.atan(self.height / 2.0 / K[1, 1]))
        distance = float(np.linalg.norm(t))
        camera.clipping_range = (max(distance - 1.5, 0.01), distance + 1.5)
        self.plotter.render()
        big = self.plotter.screenshot(return_img=True)[..., :3].astype(np.float32) / 255.0
        w, h = self.plotter.ren_win.GetSize()
        data = vtkFloatArray()
        self.plotter.ren_win.GetZbufferData(0, 0, w - 1, h - 1, data)
        zbuf = np.flipud(vtk_to_numpy(data).reshape(h, w)).astype(np.float64)  # row 0 at the top
        near, far = camera.clipping_range
        covered = zbuf < 1.0
        z_ndc = 2.0 * zbuf - 1.0
        depth_big = np.where(covered, 2.0 * near * far / ((far + near) - z_ndc * (far - near)), 0.0)
        s, H, W = SUPERSAMPLE, self.height, self.width
        image = big.reshape(H, s, W, s, 3).mean(axis=(1, 3))
        alpha = covered.reshape(H, s, W, s).mean(axis=(1, 3))
        depth_sum = depth_big.reshape(H, s, W, s).sum(axis=(1, 3))
        depth = np.where(alpha > 0, depth_sum / np.maximum(alpha * s * s, 1), 0.0)
        # The image was rendered on black: un-premultiply so that it composites on any background.
        straight = np.where(alpha[..., None] > 0, image / np.maximum(alpha[..., None], 1e-6), 0.0)
        return RenderedView(np.clip(straight, 0, 1).astype(np.float32), alpha.astype(np.float32),
                            depth.astype(np.float32))


# ---------------------------------------------------------------------- poses
def look_at_pose(direction: np.ndarray, distance: float, roll_deg: float = 0.0) -> np.ndarray:
    """``object_to_camera [4, 4]`` of a camera at ``distance * direction`` (object frame) looking at the origin."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    forward = -d
    up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.95 else np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera axes in the object frame
    roll = math.radians(roll_deg)
    Rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    R = Rz @ R
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ (d * distance)
    return T


def sphere_directions(n: int) -> np.ndarray:
    """``[n, 3]`` unit vectors spread evenly on the sphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = i * math.pi * (3 - math.sqrt(5))
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def random_pose(rng: np.random.Generator, distance: tuple[float, float] = (2.2, 3.0),
                offset: float = 0.15) -> np.ndarray:
    """A uniformly random rotation at a random distance, shifted slightly off the optical axis."""
    from splat.pose.se3 import random_rotation

    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    T = np.eye(4)
    T[:3, :3] = random_rotation(gen).numpy()
    z = rng.uniform(*distance)
    T[:3, 3] = [rng.uniform(-offset, offset) * z, rng.uniform(-offset, offset) * z, z]
    return T


def default_intrinsics(size: int, focal_factor: float = 1.25) -> np.ndarray:
    """``[3, 3]`` intrinsics of a square ``size`` image, focal ``focal_factor * size``, centred."""
    f = focal_factor * size
    return np.array([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------- training views
def write_object_views(name: str, root: str | os.PathLike, num_views: int = 48, size: int = 160,
                       distance: float = 2.6) -> Path:
    """Renders ``num_views`` views of an object around a sphere as a nerfstudio scene of RGBA images.

    The alpha channel is the object mask, so an object model can be fitted from
    it with the ``object`` method (background excluded); ``depth/*.npy`` hold
    the depth images.

    Returns:
        The folder holding ``transforms.json``.
    """
    from splat.io.atomic import write_text_atomic
    from splat.io.images import save_png

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    K = default_intrinsics(size)
    frames = []
    obj = make_object(name)
    gl_flip = np.diag([1.0, -1.0, -1.0, 1.0])
    with ObjectRenderer(obj, size, size) as renderer:
        for i, d in enumerate(sphere_directions(num_views)):
            T = look_at_pose(d, distance, roll_deg=(37.0 * i) % 360)
            view = renderer.render(T, K)
            rgba = np.concatenate([view.image * (view.alpha[..., None] > 0), view.alpha[..., None]], axis=-1)
            file = f"images/view_{i:03d}.png"
            save_png(root / file, rgba)
            np.save(root / "depth" / f"view_{i:03d}.npy", view.depth)
            frames.append({"file_path": file, "transform_matrix": (np.linalg.inv(T) @ gl_flip).tolist()})
    meta = {"camera_model": "PINHOLE", "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
            "w": size, "h": size, "background": [0.0, 0.0, 0.0], "object": name, "frames": frames}
    write_text_atomic(root / "transforms.json", json.dumps(meta, indent=1) + "\n")
    return root


# ---------------------------------------------------------------------- test views
@dataclass
class PoseSample:
    """One test image with its ground truth.

    Attributes:
        image: ``[H, W, 3]`` float32 observed image.
        mask: ``[H, W]`` bool visible object mask (occluded pixels excluded).
        depth: ``[H, W]`` float32 depth of the visible object (0 elsewhere).
        K: ``[3, 3]`` intrinsics.
        object_to_camera: ``[4, 4]`` ground-truth pose (OpenCV).
        lighting_changed: whether the lights differ from the training views'.
        occluded_fraction: fraction of the object's pixels hidden by the occluder.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    object_to_camera: np.ndarray
    lighting_changed: bool = False
    occluded_fraction: float = 0.0


def _changed_lights(rng: np.random.Generator):
    """Lights moved, dimmed or brightened and tinted relative to :data:`TRAIN_LIGHTS`."""
    lights = []
    for position, intensity, _ in TRAIN_LIGHTS:
        p = np.asarray(position) + rng.normal(0, 1.5, 3)
        tint = tuple(np.clip(1.0 - rng.uniform(0, 0.3, 3), 0, 1))
        lights.append((tuple(p), intensity * rng.uniform(0.6, 1.4), tint))
    return lights


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A photographic background crop ``[H, W, 3]`` in ``[0, 1]`` (brick, grass or gravel)."""
    photo = _photo(str(rng.choice(["brick", "grass", "gravel"]))).astype(np.float32) / 255.0
    h, w = size
    y, x = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    return photo[y:y + h, x:x + w] * tint


def _occluder(rng: np.random.Generator, alpha: np.ndarray, fraction: float) -> np.ndarray:
    """A rectangle ``[H, W]`` bool entering the object's bounding box from one side, covering ``fraction`` of it."""
    ys, xs = np.nonzero(alpha > 0.5)
    occ = np.zeros_like(alpha, dtype=bool)
    if len(xs) == 0:
        return occ
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = rng.integers(4)
    if side == 0:
        occ[y0:y1, x0:x0 + int((x1 - x0) * fraction)] = True
    elif side == 1:
        occ[y0:y1, x1 - int((x1 - x0) * fraction):x1] = True
    elif side == 2:
        occ[y0:y0 + int((y1 - y0) * fraction), x0:x1] = True
    else:
        occ[y1 - int((y1 - y0) * fraction):y1, x0:x1] = True
    return occ


def make_test_samples(name: str, num: int, size: int = 256, seed: int = 0, lighting_change: bool = False,
                      occlusion: float = 0.0, photo_background: bool = True) -> list[PoseSample]:
    """Renders ``num`` test images of an object at random poses with known ground truth.

    Args:
        name: one of :data:`OBJECTS`.
        num: number of samples.
        size: square image size in pixels.
        seed: seed of poses, lights, backgrounds and occluders.
        lighting_change: render under lights other than the training views'.
        occlusion: fraction (0..1) of the object's bounding box covered by a photo patch in front.
        photo_background: composite on a photographic background (else black).
    """
    rng = np.random.default_rng(seed)
    obj = make_object(name)
    K = default_intrinsics(size)
    samples = []
    with ObjectRenderer(obj, size, size) as renderer:
        for _ in range(num):
            T = random_pose(rng)
            lit = lighting_change
            renderer.set_lights(_changed_lights(rng) if lit else TRAIN_LIGHTS)
            view = renderer.render(T, K)
            bg = _background(rng, (size, size)) if photo_background else np.zeros((size, size, 3), np.float32)
            a = view.alpha[..., None]
            image = view.image * a + bg * (1 - a)
            visible = view.alpha > 0.5
            occluded_fraction = 0.0
            if occlusion > 0:
                occ = _occluder(rng, view.alpha, occlusion)
                patch = _background(rng, (size, size))[:, ::-1] * 0.8 + 0.1
                image = np.where(occ[..., None], patch, image)
                occluded_fraction = float((visible & occ).sum() / max(visible.sum(), 1))
                visible = visible & ~occ
            samples.append(PoseSample(image.astype(np.float32), visible, np.where(visible, view.depth, 0.0)
                                      .astype(np.float32), K, T, lit, occluded_fraction))
    return samples
