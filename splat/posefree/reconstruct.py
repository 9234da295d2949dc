"""Plain photos (or a video) to estimated cameras and an initial point cloud.

:func:`reconstruct` is the one entry point: it normalises the input
(:func:`~splat.posefree.images.collect_named_images`), runs structure-from-motion
tuned for small sparse captures (:mod:`splat.posefree.sfm`), densifies and cleans
the cloud (:mod:`splat.posefree.cloud`), and returns a :class:`Reconstruction`
whose ``scene`` the splat methods fit like any loaded scene.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from splat.core.camera import Camera
from splat.io.images import image_size
from splat.io.scene import Scene
from splat.posefree.cloud import clean_points, densify
from splat.posefree.images import collect_named_images, is_video_file
from splat.posefree.sfm import SfMOptions, model_arrays, native_feature_count, run_sfm

Progress = Callable[[float, str], None]
MATCHERS = ("auto", "exhaustive", "sequential")


@dataclass
class RegistrationReport:
    """Which images got a camera, which did not and why, and what it cost.

    Attributes:
        registered: user's names of the registered images, in input order.
        unregistered: user's name -> reason, for every other image.
        mapper: ``"incremental"`` or ``"global"`` (the mapper of the kept model).
        mean_reprojection_error: mean reprojection error of the SfM points, pixels
            (of the normalised images).
        num_sparse_points: points of the SfM model.
        num_points: points of the initial cloud after densifying and cleaning.
        seconds: wall-clock per stage: ``images``, ``features``, ``matching``,
            ``mapping``, ``cloud``.
        focal: the estimated shared focal length, pixels.
        warnings: messages about the input (skipped files, resized images).
        log: what the mappers did.
        pair_support: share of all verified inlier matches that the poses explain
            (low values: contradicting pairs, e.g. repeated texture; NaN: not computed).
        view_graph: the pairs the model was mapped from (``"all pairs"`` or ``"top-k pairs"``).
    """

    registered: list[str]
    unregistered: dict[str, str]
    mapper: str
    mean_reprojection_error: float
    num_sparse_points: int
    num_points: int
    seconds: dict[str, float] = field(default_factory=dict)
    focal: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    pair_support: float = float("nan")
    view_graph: str = "all pairs"

    def to_dict(self) -> dict:
        """JSON-ready dict (adds ``num_images`` and ``num_registered``)."""
        out = asdict(self)
        out["num_images"] = len(self.registered) + len(self.unregistered)
        out["num_registered"] = len(self.registered)
        return out


@dataclass
class Reconstruction:
    """Cameras and an initial cloud estimated from plain images.

    Attributes:
        scene: registered views only; OpenCV world-to-camera ``viewmats``, one
            shared ``K`` (SIMPLE_PINHOLE); ``image_paths`` are the normalised images
            in ``work_dir/images``; ``points``/``point_colors`` the cleaned initial
            cloud; ``train_ids`` all views, ``test_ids`` empty (the caller splits).
        report: the :class:`RegistrationReport`.
        colmap_model_dir: ``work_dir/sparse/0``, a COLMAP binary model of the
            normalised images (SfM points only).
    """

    scene: Scene
    report: RegistrationReport
    colmap_model_dir: Path


@contextlib.contextmanager
def _quiet_colmap():
    """Silences COLMAP's glog INFO/WARNING lines for the duration."""
    import pycolmap

    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


def _upscale_factor(width: int, height: int, min_size: int) -> int:
    """Integer factor that brings the longer side to about ``min_size`` (1 when already there or off)."""
    if min_size <= 0:
        return 1
    return max(1, min_size // max(width, height))


def _write_feature_images(paths: list[Path], folder: Path, factor: int) -> None:
    """Bicubic ``factor`` x copies of ``paths`` (SIFT finds far more on small images upsampled)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        with Image.open(p) as img:
            img.resize((img.width * factor, img.height * factor), Image.Resampling.BICUBIC).save(folder / p.name)


def _rescale_model(rec, factor: int) -> None:
    """Maps a model of ``factor`` x upsampled images to the original images (in place)."""
    if factor == 1:
        return
    for cam in rec.cameras.values():
        cam.rescale(1.0 / factor)
    for image_id in rec.reg_image_ids():
        for p in rec.image(image_id).points2D:
            p.xy = p.xy / factor


def _mapping_failed(names: list[str], unregistered: dict[str, str], log: list[str]) -> ValueError:
    reasons = "; ".join(f"{n}: {unregistered.get(n, 'not registered')}" for n in names)
    return ValueError(
        f"mapping failed: no camera model could be built from {len(names)} images ({reasons}). "
        "Try more images, more overlap between neighbouring views, or a smaller angle between "
        "views (10-20 degrees), with textured, static, in-focus subjects."
    )


def _resolve_matcher(matcher: str, video: bool) -> str:
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
    if matcher == "auto":
        return "sequential" if video else "exhaustive"
    return matcher


def _is_video_source(source) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return is_video_file(source) and Path(source).is_file()
    if isinstance(source, (list, tuple)) and len(source) == 1 and isinstance(source[0], (str, os.PathLike)):
        return is_video_file(source[0])
    return False


def _publish(staging: Path, work_dir: Path) -> None:
    """Moves the staged ``images``, ``sparse`` and ``database.db`` into ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for entry in ("images", "sparse", "database.db"):
        target = work_dir / entry
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (staging / entry).exists():
            os.replace(staging / entry, target)


def reconstruct(
    source,
    work_dir: str | os.PathLike,
    *,
    frames: int | None = None,
    matcher: str = "auto",
    max_size: int | None = None,
    progress: Progress | None = None,
    options: SfMOptions | None = None,
    densify_cloud: bool = True,
    max_points: int = 100_000,
) -> Reconstruction:
    """Estimates cameras and an initial point cloud from plain photos or a video.

    Args:
        source: a folder of images, a list of image paths, a ``.zip`` of images, or
            a video file (sampled to ``frames`` frames).
        work_dir: folder for ``database.db``, the COLMAP model (``sparse/0``) and the
            normalised images (``images/``). Those three entries are replaced; the
            rest of the folder is left alone. Nothing is written there on failure.
        frames: frames sampled from a video (default 24).
        matcher: ``"auto"`` (exhaustive for photos, sequential without loop
            detection for video frames), ``"exhaustive"`` or ``"sequential"``.
        max_size: downscale images so the longer side is at most this (pixels).
        progress: optional ``progress(fraction, message)`` callback.
        options: SfM settings (default :class:`SfMOptions`, tuned for small
            captures; ``SfMOptions.colmap_defaults()`` for pycolmap's own).
        densify_cloud: re-triangulate with relaxed settings for a denser cloud.
        max_points: cap of the cleaned cloud (voxel downsampling).

    Returns:
        :class:`Reconstruction`.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        TypeError: ``source`` has the wrong type.
        ValueError: fewer than 2 usable images, a corrupt video, or mapping failed
            (the message names the images and what to try).
    """
    if options is not None and not isinstance(options, SfMOptions):
        raise TypeError(f"options must be SfMOptions, got {type(options).__name__}")
    video = _is_video_source(source)
    chosen = _resolve_matcher(matcher, video)
    opts = SfMOptions(**{**(asdict(options) if options else {}), "matcher": chosen})

    def report(lo: float, hi: float) -> Progress | None:
        if progress is None:
            return None
        return lambda frac, msg: progress(lo + (hi - lo) * float(frac), msg)

    work_dir = Path(work_dir)
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{work_dir.name}.posefree.", dir=work_dir.parent))
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        paths, user_names, warnings = collect_named_images(
            source, staging / "images", frames=frames, max_size=max_size, progress=report(0.0, 0.1))
        seconds["images"] = time.perf_counter() - t0
        file_names = [p.name for p in paths]
        to_user = dict(zip(file_names, user_names))
        w, h = image_size(paths[0])
        factor = _upscale_factor(w, h, opts.feature_min_size)
        if factor > 1 and opts.upsample_below_features > 0:
            with _quiet_colmap():
                native = native_feature_count(paths, opts)
            if native >= opts.upsample_below_features:
                factor = 1
        log = [f"matcher: {opts.matcher}; features extracted at {factor}x the image size"]
        feature_dir = staging / "images"
        if factor > 1:
            feature_dir = staging / "features"
            _write_feature_images(paths, feature_dir, factor)
        with _quiet_colmap():
            result = run_sfm(feature_dir, file_names, staging, opts, progress=report(0.1, 0.8))
        seconds.update(result.seconds)
        unregistered = {to_user[n]: why for n, why in result.unregistered.items()}
        rec = result.reconstruction
        if rec is None or rec.num_reg_images() < 2:
            raise _mapping_failed(user_names, unregistered, result.log)

        t0 = time.perf_counter()
        if progress is not None:
            progress(0.85, "densifying the point cloud")
        sparse_points = rec.num_points3D()
        reproj = float(rec.compute_mean_reprojection_error()) / factor
        with _quiet_colmap():
            dense = densify(rec, staging / "database.db", feature_dir, seed=opts.seed) if densify_cloud else rec
            dense.extract_colors_for_all_images(str(feature_dir))
        arrays = model_arrays(dense, file_names)
        keep = arrays["errors"] <= 2.0 * factor
        points, colors = clean_points(arrays["points"][keep], arrays["colors"][keep] / 255.0, max_points=max_points)
        _rescale_model(rec, factor)
        model_dir = staging / "sparse" / "0"
        model_dir.mkdir(parents=True)
        rec.write(str(model_dir))
        seconds["cloud"] = time.perf_counter() - t0
        if feature_dir != staging / "images":
            shutil.rmtree(feature_dir, ignore_errors=True)
        shutil.rmtree(staging / "models", ignore_errors=True)
        _publish(staging, work_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    arrays_final = model_arrays(rec, file_names)
    registered = arrays_final["names"]
    K = torch.tensor(arrays_final["K"], dtype=torch.float32)
    w, h = arrays_final["size"]
    cameras = Camera(torch.tensor(arrays_final["viewmats"], dtype=torch.float32),
                     K.expand(len(registered), 3, 3).clone(), int(w), int(h))
    name = Path(source).stem if isinstance(source, (str, os.PathLike)) else "photos"
    scene = Scene(
        name=name, root=work_dir, cameras=cameras,
        image_paths=[work_dir / "images" / n for n in registered],
        train_ids=list(range(len(registered))), test_ids=[],
        points=torch.tensor(points, dtype=torch.float32) if len(points) else None,
        point_colors=torch.tensor(colors, dtype=torch.float32) if len(points) else None,
    )
    rep = RegistrationReport(
        registered=[to_user[n] for n in registered], unregistered=unregistered, mapper=result.mapper,
        mean_reprojection_error=reproj, num_sparse_points=int(sparse_points), num_points=int(len(points)),
        seconds={k: round(v, 3) for k, v in seconds.items()}, focal=float(K[0, 0]), warnings=warnings,
        log=log + result.log, pair_support=round(float(result.pair_support), 4), view_graph=result.view_graph,
    )
    if progress is not None:
        progress(1.0, f"registered {len(registered)} of {len(file_names)} images, {len(points)} points")
    return Reconstruction(scene=scene, report=rep, colmap_model_dir=work_dir / "sparse" / "0")

