"""Regenerates the bundled example scene ``assets/scenes/globe`` (nerfstudio layout).

Real meshes and photographs that installed packages ship (no downloads):
pyvista's Earth globe with its 2k daymap texture, a cube whose faces are
scikit-image photographs, and pyvista's ant mesh, rendered off-screen by VTK on
a white background from a spiral of cameras over the upper hemisphere. Camera
intrinsics and extrinsics are read from the VTK camera; reference points (a
surface point seen at a pixel, unprojected through VTK's depth buffer) let the
tests check that our camera model puts them back on the same pixel.

Usage:
    python scripts/make_example_scene.py [--out assets/scenes/globe] [--views 32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
import pyvista as pv  # noqa: E402
from PIL import Image  # noqa: E402
from pyvista import examples  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from splat.io.atomic import atomic_dir  # noqa: E402

WIDTH, HEIGHT = 320, 240
SUPERSAMPLE = 2  # render at 2x and box-filter down: antialiasing with exact intrinsics
VIEW_ANGLE = 40.0  # vertical field of view, degrees (VTK's default convention)
RADIUS = 5.0  # camera distance from the orbit centre
TARGET = np.array([0.0, 0.0, -0.15])
BACKGROUND = (1.0, 1.0, 1.0)
LIGHTS = [((4.0, -3.0, 6.0), 0.75), ((-5.0, 4.0, 2.0), 0.35)]  # world-fixed: view-independent shading
AMBIENT, DIFFUSE = 0.35, 0.75


def photo(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def textured_parts() -> list[tuple[str, pv.PolyData, np.ndarray | None, tuple]]:
    """``(name, mesh with texture coordinates, texture [H, W, 3] uint8 or None, solid colour)``."""
    parts = []
    # Linear subdivision keeps the texture seam; then the points go back onto the sphere.
    globe = examples.load_globe().triangulate().subdivide(2, subfilter="linear")
    globe.points = globe.points / np.linalg.norm(globe.points, axis=1, keepdims=True) * 0.8
    globe.rotate_z(200.0, inplace=True)  # the Atlantic and Africa face the first cameras
    daymap = np.asarray(Image.open(examples.mapfile).convert("RGB"))
    parts.append(("globe", globe, daymap, (1, 1, 1)))

    # A cube of six photographs, resting beside the globe.
    size, centre = 0.7, np.array([1.05, -0.75, -0.45])
    faces = [  # (photo, normal axis, sign)
        ("astronaut", 0, 1), ("chelsea", 1, -1), ("coffee", 0, -1),
        ("rocket", 1, 1), ("astronaut", 2, 1), ("coffee", 2, -1),
    ]
    for name, axis, sign in faces:
        direction = np.zeros(3)
        direction[axis] = sign
        plane = pv.Plane(center=centre + direction * size / 2, direction=direction,
                         i_size=size, j_size=size, i_resolution=8, j_resolution=8).triangulate()
        parts.append((f"cube_{name}_{axis}{'+' if sign > 0 else '-'}", plane, photo(name), (1, 1, 1)))

    ant = examples.load_ant().triangulate()
    ant.points = (ant.points - np.array(ant.center)) / 34.0 * 1.3
    ant.rotate_x(90.0, inplace=True)
    ant.rotate_z(-30.0, inplace=True)
    ant.translate((-1.0, 0.85, -0.8 - ant.bounds[4]), inplace=True)
    parts.append(("ant", ant, None, (0.85, 0.45, 0.15)))
    return parts


def texture_lookup(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture colours ``[N, 3]`` in ``[0, 1]`` at ``uv [N, 2]`` (v up, as VTK)."""
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    t = texture.astype(np.float64) / 255.0
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bottom = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def sample_surface(parts, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface samples of all parts with their texture (albedo) colours."""
    tris, areas = [], []
    for index, (_, mesh, _, _) in enumerate(parts):
        faces = mesh.faces.reshape(-1, 4)[:, 1:]
        p = mesh.points[faces]
        area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
        tris += [(index, f) for f in range(len(faces))]
        areas.append(area)
    areas = np.concatenate(areas)
    chosen = rng.choice(len(tris), size=count, p=areas / areas.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    points, colors = np.zeros((count, 3)), np.zeros((count, 3))
    for k, t in enumerate(chosen):
        index, f = tris[t]
        _, mesh, texture, solid = parts[index]
        face = mesh.faces.reshape(-1, 4)[f, 1:]
        points[k] = bary[k] @ mesh.points[face]
        if texture is None:
            colors[k] = solid
        else:
            uv = bary[k] @ mesh.active_texture_coordinates[face]
            colors[k] = texture_lookup(texture, uv[None])[0]
    return points.astype(np.float32), colors.astype(np.float32)


def camera_poses(num_views: int) -> list[np.ndarray]:
    """Camera centres on a two-turn spiral from 12 to 62 degrees of elevation."""
    eyes = []
    for i in range(num_views):
        azim = 2.0 * 2.0 * math.pi * i / num_views
        elev = math.radians(12.0 + 50.0 * i / max(1, num_views - 1))
        eyes.append(TARGET + RADIUS * np.array(
            [math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)]))
    return eyes


def render_scene(out: Path, num_views: int, num_points: int, seed: int) -> None:
    from splat.io.images import save_png
    from splat.scenes.render import depth_buffer, unproject
    from splat.io.pointcloud import write_points_ply

    rng = np.random.default_rng(seed)
    parts = textured_parts()
    plotter = pv.Plotter(off_screen=True, window_size=(WIDTH * SUPERSAMPLE, HEIGHT * SUPERSAMPLE),
                         lighting="none")
    plotter.set_background(BACKGROUND)
    for position, intensity in LIGHTS:
        plotter.add_light(pv.Light(position=position, focal_point=(0, 0, 0), intensity=intensity,
                                   light_type="scene light"))
    for _, mesh, texture, solid in parts:
        tex = None if texture is None else pv.Texture(texture)
        if tex is not None:
            tex.interpolate, tex.mipmap = True, True
        plotter.add_mesh(mesh, texture=tex, color=None if tex is not None else solid, ambient=AMBIENT,
                         diffuse=DIFFUSE, specular=0.0, smooth_shading=True)
    plotter.show(auto_close=False)
    renderer, camera = plotter.renderer, plotter.camera

    fy = (HEIGHT / 2.0) / math.tan(math.radians(VIEW_ANGLE) / 2.0)
    frames, references = [], []
    images_dir = out / "images"
    for i, eye in enumerate(tqdm(camera_poses(num_views), desc="rendering views")):
        camera.position, camera.focal_point, camera.up = tuple(eye), tuple(TARGET), (0.0, 0.0, 1.0)
        camera.view_angle = VIEW_ANGLE
        camera.OrthogonalizeViewUp()
        renderer.ResetCameraClippingRange()
        plotter.render()
        big = plotter.screenshot(return_img=True)[..., :3].astype(np.float64) / 255.0
        image = big.reshape(HEIGHT, SUPERSAMPLE, WIDTH, SUPERSAMPLE, 3).mean(axis=(1, 3))
        name = f"images/frame_{i:05d}.png"
        save_png(out / name, (image * 255.0 + 0.5).astype(np.uint8))
        # VTK's view transform is world-to-camera in the OpenGL frame (camera looks down -z).
        w2c_gl = np.array([[camera.GetViewTransformMatrix().GetElement(r, c) for c in range(4)] for r in range(4)])
        frames.append({"file_path": name, "transform_matrix": np.linalg.inv(w2c_gl).tolist()})

        # Reference points: surface points behind a few foreground pixels, from the depth buffer.
        zbuf = depth_buffer(plotter)
        ys, xs = np.nonzero(zbuf < 0.999)
        for k in rng.choice(len(xs), size=min(3, len(xs)), replace=False):
            x_ss, y_ss = int(xs[k]), int(ys[k])  # supersampled pixel, y from the bottom
            world = unproject(renderer, x_ss + 0.5, y_ss + 0.5, float(zbuf[y_ss, x_ss]))
            u = (x_ss + 0.5) / SUPERSAMPLE
            v = HEIGHT - (y_ss + 0.5) / SUPERSAMPLE  # image rows go down
            references.append({"file_path": name, "world": world.tolist(), "pixel": [u, v]})
    plotter.close()

    points, colors = sample_surface(parts, num_points, rng)
    write_points_ply(out / "sparse_pc.ply", points, colors)
    meta = {
        "camera_model": "PINHOLE",
        "fl_x": fy, "fl_y": fy, "cx": WIDTH / 2.0, "cy": HEIGHT / 2.0, "w": WIDTH, "h": HEIGHT,
        "background": list(BACKGROUND),
        "ply_file_path": "sparse_pc.ply",
        "frames": frames,
    }
    (out / "transforms.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "reference_points.json").write_text(json.dumps({
        "description": "surface points seen at pixel centres (x right, y down, pixel i spans [i, i+1))",
        "points": references,
    }, indent=1) + "\n")


def check_scene(out: Path, tolerance: float = 0.01) -> float:
    """Projects the reference points with the loaded cameras; returns the worst error in pixels."""
    import torch

    from splat.core.camera import project_points
    from splat.io import load_nerfstudio

    scene = load_nerfstudio(out)
    refs = json.loads((out / "reference_points.json").read_text())["points"]
    names = [p.relative_to(scene.root).as_posix() for p in scene.image_paths]
    worst = 0.0
    for ref in refs:
        i = names.index(ref["file_path"])
        uv, z = project_points(torch.tensor([ref["world"]], dtype=torch.float64),
                               scene.cameras.viewmats[i:i + 1].double(), scene.cameras.Ks[i:i + 1].double())
        worst = max(worst, float((uv[0, 0] - torch.tensor(ref["pixel"], dtype=torch.float64)).abs().max()))
        if z.item() <= 0:
            raise RuntimeError(f"reference point behind camera in {ref['file_path']}")
    if worst > tolerance:
        raise RuntimeError(f"cameras do not reproduce VTK's projection: worst error {worst:.4f} px")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "scenes" / "globe")
    parser.add_argument("--views", type=int, default=32)
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out: Path = args.out
    with atomic_dir(out) as tmp:
        render_scene(tmp, args.views, args.points, args.seed)
        worst = check_scene(tmp)
        print(f"reference points reprojected within {worst:.2e} px")
        for keep in ("SOURCE.md",):  # hand-written files survive regeneration
            if (out / keep).is_file():
                shutil.copy2(out / keep, tmp / keep)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
