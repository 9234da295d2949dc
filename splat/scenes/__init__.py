"""Generated scenes for fitting benchmarks and tests (nerfstudio layout, nothing downloaded).

``SUITE`` maps scene names to :class:`SceneSpec`; :func:`make_scene` renders
one with VTK off-screen into a nerfstudio folder:

* ``transforms.json``: ground-truth OpenGL camera-to-world poses, pinhole
  intrinsics read from the VTK camera, ``background`` (the render's uniform
  background colour, when it has one), ``ply_file_path`` for scenes with a
  sparse SfM-like cloud;
* ``images/frame_XXXXX.png``;
* ``reference_points.json``: surface points under pixel centres (from VTK's
  depth buffer) that tests reproject with our camera model.

Every 8th view is held out by the loaders' default split.

>>> from splat.scenes import SUITE, make_scene             # doctest: +SKIP
>>> path = make_scene("tabletop", "/tmp/tabletop")          # doctest: +SKIP
>>> from splat.io import load_nerfstudio                    # doctest: +SKIP
>>> scene = load_nerfstudio(path)                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from splat.scenes.suite import SUITE, SceneSpec

__all__ = ["SUITE", "SceneSpec", "make_scene", "reprojection_error"]

SCENE_VERSION = 2  # bump when a builder changes, so cached scenes are regenerated


def _size(size, spec: SceneSpec) -> tuple[int, int]:
    """``size``: None (the spec's), an int width (height keeps the spec's aspect) or ``(w, h)``."""
    if size is None:
        return spec.size
    if isinstance(size, bool):
        raise TypeError(f"size must be an int width or a (width, height) pair, got {size!r}")
    if isinstance(size, (int, np.integer)):
        w = int(size)
        h = int(round(w * spec.size[1] / spec.size[0]))
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size):
        w, h = int(size[0]), int(size[1])
    else:
        raise TypeError(f"size must be an int width or a (width, height) pair, got {size!r}")
    if w < 8 or h < 8:
        raise ValueError(f"size must be at least 8x8 pixels, got {w}x{h}")
    return w, h


def make_scene(name: str, out_dir: str | os.PathLike, *, num_views: int | None = None,
               size: int | tuple[int, int] | None = None, seed: int = 0) -> Path:
    """Renders suite scene ``name`` into ``out_dir`` (nerfstudio layout), replacing what was there.

    Args:
        name: a key of :data:`SUITE`.
        out_dir: the scene folder to write (created; written to a temporary folder and renamed).
        num_views: number of views (default: the spec's); every 8th is held out.
        size: image width (the height keeps the spec's aspect) or ``(width, height)``.
        seed: seeds the reference pixels, the sparse cloud and the forward-facing jitter.

    Returns:
        ``out_dir`` as a Path. The same arguments give the same files.

    Raises:
        ValueError: unknown scene, fewer than 2 views, an image smaller than 8x8.
        TypeError: ``num_views``, ``size`` or ``seed`` of the wrong type.
    """
    if name not in SUITE:
        raise ValueError(f"unknown scene {name!r}; expected one of {sorted(SUITE)}")
    spec = SUITE[name]
    if num_views is None:
        num_views = spec.num_views
    if isinstance(num_views, bool) or not isinstance(num_views, (int, np.integer)):
        raise TypeError(f"num_views must be an int, got {type(num_views).__name__}")
    if num_views < 2:
        raise ValueError(f"num_views must be >= 2, got {num_views}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    width, height = _size(size, spec)

    from splat.io.images import save_png
    from splat.io.pointcloud import write_points_ply
    from splat.scenes.render import render_views

    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    parts, views, settings = spec.build(width, height, int(num_views), rng)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        result = render_views(parts, views, settings, rng, num_points=spec.num_points,
                              point_noise=spec.point_noise, point_radius=spec.point_radius)
        frames, refs = [], []
        for i, (image, c2w) in enumerate(zip(result["images"], result["c2w"])):
            file_path = f"images/frame_{i:05d}.png"
            save_png(tmp / file_path, image)
            frames.append({"file_path": file_path, "transform_matrix": np.round(c2w, 10).tolist()})
        for i, world, pixel in result["references"]:
            refs.append({"file_path": frames[i]["file_path"], "world": np.asarray(world).tolist(),
                         "pixel": list(pixel)})
        f = result["focal"]
        meta = {
            "camera_model": "PINHOLE",
            "fl_x": f, "fl_y": f, "cx": width / 2.0, "cy": height / 2.0, "w": width, "h": height,
            "suite_scene": name, "suite_version": SCENE_VERSION, "seed": int(seed),
            "layout": spec.layout, "description": spec.description,
        }
        if not any(p.unlit for p in parts):  # a uniform background the renders show where nothing is
            meta["background"] = list(settings.background)
        if result["points"] is not None:
            write_points_ply(tmp / "sparse_pc.ply", result["points"], result["colors"])
            meta["ply_file_path"] = "sparse_pc.ply"
        meta["frames"] = frames
        (tmp / "transforms.json").write_text(json.dumps(meta, indent=1) + "\n")
        (tmp / "reference_points.json").write_text(json.dumps({
            "description": "surface points seen at pixel centres (x right, y down, pixel i spans [i, i+1))",
            "points": refs,
        }, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def reprojection_error(scene_dir: str | os.PathLike) -> float:
    """Worst pixel error of the scene's reference points projected with the loaded cameras.

    A correct scene (poses and intrinsics that match VTK's rendering) gives
    about 1e-3 px or less.
    """
    import torch

    from splat.core.camera import project_points
    from splat.io import load_nerfstudio

    scene_dir = Path(scene_dir)
    scene = load_nerfstudio(scene_dir, verify_images=False)
    refs = json.loads((scene_dir / "reference_points.json").read_text())["points"]
    if not refs:
        raise ValueError(f"{scene_dir.name}: reference_points.json holds no points")
    names = [p.relative_to(scene.root).as_posix() for p in scene.image_paths]
    worst = 0.0
    for ref in refs:
        i = names.index(ref["file_path"])
        uv, z = project_points(torch.tensor([ref["world"]], dtype=torch.float64),
                               scene.cameras.viewmats[i:i + 1].double(), scene.cameras.Ks[i:i + 1].double())
        if float(z.reshape(-1)[0]) <= 0:
            return float("inf")
        worst = max(worst, float((uv.reshape(-1, 2)[0] - torch.tensor(ref["pixel"], dtype=torch.float64))
                                 .abs().max()))
    return worst
