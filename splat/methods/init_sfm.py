"""Initial points triangulated from a scene's known poses (structure-from-motion without pose estimation).

Real captures reach 3DGS with an SfM cloud. A scene that comes with poses but
no points (a synthetic render, a capture rig) would otherwise start from random
Gaussians, which a 360-degree fit on a few hundred pixels per view cannot fully
clear (see docs/fitting.md). :func:`triangulate_scene` makes the cloud in
seconds with pycolmap: SIFT on the training views (never the held-out ones),
matching between views whose known cameras look at the same part of the scene,
then COLMAP's triangulator with every pose held fixed. Points are coloured from
the images, filtered by reprojection error and cleaned of outliers
(:func:`splat.posefree.cloud.clean_points`).

:func:`cached_sfm_points` keeps the cloud in a folder (the fit's ``out_dir``)
under a key of the cameras, the training views' pixels and the options, so a
second fit into the same folder does not triangulate again.

>>> from splat.methods.init_sfm import triangulate_scene   # doctest: +SKIP
>>> cloud = triangulate_scene(scene)                        # doctest: +SKIP
>>> cloud.points.shape, cloud.seconds                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from splat.io.atomic import write_bytes_atomic

__all__ = ["SfMInitOptions", "SfMCloud", "known_pose_pairs", "triangulate_scene", "cached_sfm_points",
           "sfm_available", "as_tensors", "CACHE_NAME"]

#: File name of the cached cloud in the cache folder.
CACHE_NAME = "sfm_init_points.npz"
_FORMAT = 1  # bump when the cached content changes meaning

Progress = Callable[[str], None]


@dataclass
class SfMInitOptions:
    """Settings of :func:`triangulate_scene`.

    Attributes:
        neighbours: each training view is matched with this many others whose
            centres are nearest among those looking the same way (viewing
            directions less than ``max_view_angle`` apart); 0 matches every pair.
        max_view_angle: largest angle (degrees) between the viewing directions of
            a matched pair.
        feature_scale: images are upsampled by this integer factor for SIFT
            (more points, several times the time).
        max_num_features: SIFT features per image.
        peak_threshold: SIFT detection threshold.
        min_two_view_inliers: verified inliers a pair needs.
        min_angle: smallest triangulation angle (degrees) of a point.
        max_error: points whose mean reprojection error exceeds this (pixels of
            the image) are dropped.
        max_points: the cleaned cloud is voxel-downsampled to at most this many points.
        num_threads: CPU threads of feature extraction and matching (-1: all).
        seed: RANSAC seed.
    """

    neighbours: int = 6
    max_view_angle: float = 60.0
    feature_scale: int = 1
    max_num_features: int = 8192
    peak_threshold: float = 0.004
    min_two_view_inliers: int = 12
    min_angle: float = 1.5
    max_error: float = 2.0
    max_points: int = 100_000
    num_threads: int = -1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("neighbours", "feature_scale", "max_num_features", "min_two_view_inliers", "max_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if self.neighbours < 0:
            raise ValueError(f"neighbours must be >= 0 (0: every pair), got {self.neighbours}")
        if self.feature_scale < 1:
            raise ValueError(f"feature_scale must be >= 1, got {self.feature_scale}")
        if not 0.0 < self.max_view_angle <= 180.0:
            raise ValueError(f"max_view_angle must be in (0, 180] degrees, got {self.max_view_angle}")
        if not self.max_error > 0 or not self.min_angle > 0:
            raise ValueError(f"max_error and min_angle must be positive, got {self.max_error}, {self.min_angle}")


@dataclass
class SfMCloud:
    """What :func:`triangulate_scene` made.

    Attributes:
        points: ``[P, 3]`` float32 world positions.
        colors: ``[P, 3]`` float32 colours in ``[0, 1]``.
        num_views: training views used.
        num_pairs: image pairs matched.
        num_triangulated: points before filtering and cleaning.
        seconds: wall-clock of the whole triangulation (0 when read from the cache).
        cached: whether the cloud came from the cache.
        log: what each stage kept (for reports).
    """

    points: np.ndarray
    colors: np.ndarray
    num_views: int
    num_pairs: int
    num_triangulated: int
    seconds: float
    cached: bool = False
    log: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """A JSON-able record (no arrays) for ``metrics.json``."""
        return {"points": int(len(self.points)), "views": self.num_views, "pairs": self.num_pairs,
                "triangulated": self.num_triangulated, "seconds": round(self.seconds, 2), "cached": self.cached}


def known_pose_pairs(cameras, neighbours: int, max_view_angle: float = 60.0) -> list[tuple[int, int]]:
    """Pairs of views to match, chosen from the known poses.

    Args:
        cameras: a :class:`~splat.core.camera.Camera` batch.
        neighbours: per view, the nearest others (camera centres) among those
            whose viewing direction is within ``max_view_angle``; 0: every pair.
        max_view_angle: largest angle (degrees) between two matched views' axes.

    Returns:
        Sorted ``(i, j)`` index pairs with ``i < j``.

    >>> import torch
    >>> from splat.core.camera import Camera, look_at
    >>> eyes = [torch.tensor([4.0 * math.cos(k * math.pi / 4), 4.0 * math.sin(k * math.pi / 4), 1.0])
    ...         for k in range(8)]  # an orbit of 8 views, 45 degrees apart
    >>> vm = torch.stack([look_at(e, torch.zeros(3)) for e in eyes])
    >>> pairs = known_pose_pairs(Camera(vm, torch.eye(3).expand(8, 3, 3), 8, 8), 2)
    >>> (0, 1) in pairs, (0, 7) in pairs, (0, 4) in pairs  # neighbours, not the opposite view
    (True, True, False)
    """
    n = len(cameras)
    if neighbours == 0 or neighbours >= n - 1:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    c2w = cameras.c2w.double()
    centres = c2w[:, :3, 3]
    axes = torch.nn.functional.normalize(c2w[:, :3, 2], dim=-1)  # OpenCV: +z looks forward
    dist = torch.cdist(centres, centres)
    dist[axes @ axes.T < math.cos(math.radians(max_view_angle))] = float("inf")
    dist.fill_diagonal_(float("inf"))
    pairs = set()
    for i in range(n):
        for j in dist[i].argsort()[:neighbours].tolist():
            if torch.isfinite(dist[i, j]):
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def _write_images(scene, ids: list[int], folder: Path, scale: int) -> list[str]:
    """The views ``ids`` as PNGs (composited, at the scene's size times ``scale``); returns the names."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in ids:
        arr = (scene.image(i).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
        img = Image.fromarray(arr)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.BICUBIC)
        name = f"view_{i:05d}.png"
        img.save(folder / name)
        names.append(name)
    return names


def _known_model(scene, ids: list[int], names: list[str], folder: Path, scale: int):
    """A ``pycolmap.Reconstruction`` of the views ``ids`` with their known poses (no points)."""
    import pycolmap

    from splat.core.camera import Camera
    from splat.io.colmap import save_colmap
    from splat.io.scene import Scene

    Ks = scene.cameras.Ks[ids].clone()
    Ks[:, :2, :] *= scale  # pixel centres at i + 0.5 in both: the scaling is exact
    cameras = Camera(scene.cameras.viewmats[ids].clone(), Ks, scene.width * scale, scene.height * scale)
    known = Scene(name=scene.name, root=folder, cameras=cameras, image_paths=[folder / n for n in names])
    save_colmap(known, folder / "known")
    return pycolmap.Reconstruction(str(folder / "known"))


def _triangulation_options(opts: SfMInitOptions):
    import pycolmap

    pipeline = pycolmap.IncrementalPipelineOptions()
    pipeline.num_threads = opts.num_threads
    pipeline.random_seed = opts.seed
    tri = pipeline.triangulation
    tri.ignore_two_view_tracks = False  # sparse captures: most points are seen by two training views
    tri.min_angle = opts.min_angle
    tri.random_seed = opts.seed
    pipeline.mapper.filter_min_tri_angle = opts.min_angle
    return pipeline


def triangulate_scene(scene, options: SfMInitOptions | None = None, progress: Progress | None = None) -> SfMCloud:
    """Triangulates SIFT matches of the scene's training views with their known poses held fixed.

    Args:
        scene: a :class:`~splat.io.scene.Scene` (its cameras are OpenCV
            world-to-camera, which is what COLMAP stores).
        options: :class:`SfMInitOptions` (default: the defaults).
        progress: called with a one-line message per stage.

    Returns:
        :class:`SfMCloud` (possibly with few or no points: the caller decides).

    Raises:
        ImportError: pycolmap is not installed.
        ValueError: fewer than two training views.
        FileNotFoundError: an image of the scene is missing.
    """
    import pycolmap

    from splat.posefree.cloud import clean_points
    from splat.posefree.reconstruct import _quiet_colmap
    from splat.posefree.sfm import SfMOptions, extraction_options, matching_options

    opts = options or SfMInitOptions()
    ids = list(scene.train_ids)
    if len(ids) < 2:
        raise ValueError(f"triangulating needs at least 2 training views, the scene has {len(ids)}")
    say = progress or (lambda msg: None)
    sift = SfMOptions(max_num_features=opts.max_num_features, peak_threshold=opts.peak_threshold,
                      affine_shape=False, domain_size_pooling=False, guided_matching=False,
                      min_two_view_inliers=opts.min_two_view_inliers, num_threads=opts.num_threads, seed=opts.seed)
    t0 = time.perf_counter()
    log: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="splat_sfm_init."))
    try:
        names = _write_images(scene, ids, work / "images", opts.feature_scale)
        pairs = known_pose_pairs(scene.cameras[ids], opts.neighbours, opts.max_view_angle)
        (work / "pairs.txt").write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
        database = work / "database.db"
        say(f"init: SIFT features of {len(ids)} training views")
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        with _quiet_colmap():
            pycolmap.extract_features(str(database), str(work / "images"), image_names=names,
                                      camera_mode=pycolmap.CameraMode.PER_IMAGE, reader_options=reader,
                                      extraction_options=extraction_options(sift), device=pycolmap.Device.cpu)
            say(f"init: matching {len(pairs)} view pairs chosen from the known poses")
            match, verify = matching_options(sift)
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = str(work / "pairs.txt")
            pycolmap.match_image_pairs(str(database), matching_options=match, pairing_options=pairing,
                                       verification_options=verify, device=pycolmap.Device.cpu)
            say("init: triangulating with the known poses")
            model = _known_model(scene, ids, names, work, opts.feature_scale)
            model = pycolmap.triangulate_points(model, str(database), str(work / "images"), str(work / "out"),
                                                options=_triangulation_options(opts), refine_intrinsics=False)
            model.extract_colors_for_all_images(str(work / "images"))
        points3d = model.points3D
        triangulated = len(points3d)
        xyz = np.array([p.xyz for p in points3d.values()], np.float64).reshape(-1, 3)
        rgb = np.array([p.color for p in points3d.values()], np.float64).reshape(-1, 3) / 255.0
        err = np.array([p.error for p in points3d.values()], np.float64)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keep = np.isfinite(xyz).all(axis=1) & (err <= opts.max_error * opts.feature_scale)
    log.append(f"{triangulated} points triangulated from {len(pairs)} pairs, {int(keep.sum())} within "
               f"{opts.max_error} px")
    xyz, rgb = clean_points(xyz[keep], rgb[keep], max_points=opts.max_points)
    log.append(f"{len(xyz)} after outlier removal")
    return SfMCloud(points=xyz.astype(np.float32), colors=np.clip(rgb, 0, 1).astype(np.float32),
                    num_views=len(ids), num_pairs=len(pairs), num_triangulated=triangulated,
                    seconds=time.perf_counter() - t0, log=log)


def _cache_key(scene, opts: SfMInitOptions) -> str:
    """Digest of what the cloud depends on: cameras, training views' pixels, options."""
    h = hashlib.sha256()
    ids = list(scene.train_ids)
    h.update(json.dumps({"format": _FORMAT, "ids": ids, "size": [scene.width, scene.height],
                         "options": asdict(opts)}, sort_keys=True).encode())
    h.update(scene.cameras.viewmats[ids].double().numpy().tobytes())
    h.update(scene.cameras.Ks[ids].double().numpy().tobytes())
    for i in ids:
        h.update((scene.image(i).numpy() * 255.0).round().astype(np.uint8).tobytes())
    return h.hexdigest()


def cached_sfm_points(scene, cache_dir=None, options: SfMInitOptions | None = None,
                      progress: Progress | None = None) -> SfMCloud:
    """:func:`triangulate_scene`, read from / written to ``cache_dir/`` :data:`CACHE_NAME` when given.

    The cache holds one cloud and the key it was made for; another scene,
    other training views, changed images or options triangulate again and
    replace it (atomically).
    """
    opts = options or SfMInitOptions()
    if cache_dir is None:
        return triangulate_scene(scene, opts, progress)
    path = Path(cache_dir) / CACHE_NAME
    key = _cache_key(scene, opts)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) == key:
                    meta = json.loads(str(data["meta"]))
                    return SfMCloud(points=data["points"], colors=data["colors"], num_views=meta["views"],
                                    num_pairs=meta["pairs"], num_triangulated=meta["triangulated"],
                                    seconds=0.0, cached=True)
        except (OSError, ValueError, KeyError):  # unreadable or older file: made again below
            pass
    cloud = triangulate_scene(scene, opts, progress)
    buffer = io.BytesIO()
    np.savez(buffer, points=cloud.points, colors=cloud.colors, key=np.array(key),
             meta=np.array(json.dumps(cloud.summary())))
    write_bytes_atomic(path, buffer.getvalue())
    return cloud


def sfm_available() -> bool:
    """Whether pycolmap can be imported."""
    try:
        import pycolmap  # noqa: F401
    except ImportError:
        return False
    return True


def as_tensors(cloud: SfMCloud) -> tuple[torch.Tensor, torch.Tensor]:
    """The cloud as float32 tensors ``(points [P, 3], colors [P, 3])``."""
    return torch.from_numpy(np.ascontiguousarray(cloud.points)), torch.from_numpy(np.ascontiguousarray(cloud.colors))
