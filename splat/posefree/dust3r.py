"""DUSt3R / MASt3R point maps as a :class:`~splat.posefree.Reconstruction`.

InstantSplat initialises from DUSt3R (or MASt3R): a network predicts a 3D point
for every pixel of every image pair, a global alignment puts all point maps in
one frame and yields per-view camera-to-world poses and focal lengths. When a
user has ``dust3r`` (or ``mast3r``) installed with local weights, this module
runs it and turns its output into the same :class:`Reconstruction` the
pycolmap path returns, so every later stage works unchanged.

Nothing is downloaded: ``weights`` must be a local checkpoint (a ``.pth`` file
or a folder that ``from_pretrained`` reads). The packages are imported only
inside :func:`reconstruct_dust3r`; :func:`pointmaps_to_reconstruction` needs
numpy and torch only and is what the tests exercise.

>>> from splat.posefree.dust3r import reconstruct_dust3r                  # doctest: +SKIP
>>> rec = reconstruct_dust3r("photos/", "work/",                            # doctest: +SKIP
...                          weights="checkpoints/DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth")
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from splat.core.camera import Camera, c2w_to_w2c
from splat.io.scene import Scene
from splat.posefree.cloud import clean_points
from splat.posefree.images import collect_named_images
from splat.posefree.reconstruct import Reconstruction, RegistrationReport, _publish

Progress = Callable[[float, str], None]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def pointmaps_to_reconstruction(
    image_paths: Sequence[Path],
    image_names: Sequence[str],
    work_dir: str | os.PathLike,
    *,
    c2w,
    focals,
    pts3d: Sequence,
    colors: Sequence,
    confidence: Sequence | None = None,
    pointmap_size: tuple[int, int],
    principal_points=None,
    min_confidence: float = 1.5,
    max_points: int = 100_000,
    seconds: dict[str, float] | None = None,
    warnings: list[str] | None = None,
    mapper: str = "dust3r",
) -> Reconstruction:
    """Converts globally aligned point maps into a :class:`Reconstruction`.

    The point maps live at the network's resolution (e.g. 512x384); the
    intrinsics are scaled to the size of ``image_paths`` (the normalised
    images), assuming the network input was the image resized (and centre
    cropped to a multiple of 16 pixels, which shifts the principal point only).
    Focal lengths are averaged into one shared focal (as InstantSplat does).

    Args:
        image_paths: ``C`` normalised images (one size), in ``work_dir/images`` or
            anywhere (they are not moved).
        image_names: ``C`` names shown in the report (the user's file names).
        work_dir: folder for the COLMAP model (``sparse/0``).
        c2w: ``[C, 4, 4]`` camera-to-world poses, OpenCV convention (DUSt3R's).
        focals: ``[C]`` or ``[C, 1]`` focal lengths in point-map pixels.
        pts3d: ``C`` point maps ``[H, W, 3]`` (or ``[H * W, 3]``) in world space.
        colors: ``C`` images ``[H, W, 3]`` (or ``[H * W, 3]``) in ``[0, 1]``.
        confidence: ``C`` maps ``[H, W]`` of confidences (or boolean masks), or ``None``.
        pointmap_size: ``(W, H)`` of the point maps.
        principal_points: ``[C, 2]`` in point-map pixels (default: the centre).
        min_confidence: points with lower confidence are dropped (ignored for masks).
        max_points: cap of the cleaned cloud.
        seconds: stage timings for the report.
        warnings: input warnings for the report.
        mapper: the report's ``mapper`` field.

    Returns:
        :class:`Reconstruction` with every view registered.

    Raises:
        ValueError: inconsistent shapes or counts, non-finite poses, no confident point.
    """
    c2w = _np(c2w)
    n = len(image_paths)
    if len(image_names) != n:
        raise ValueError(f"image_names has {len(image_names)} entries for {n} images")
    if c2w.shape != (n, 4, 4):
        raise ValueError(f"c2w must be [{n}, 4, 4], got {list(c2w.shape)}")
    if not np.all(np.isfinite(c2w)):
        raise ValueError("c2w contains NaN or infinite values")
    focals = _np(focals).reshape(-1)
    if focals.shape != (n,) or not np.all(focals > 0):
        raise ValueError(f"focals must be {n} positive values, got {focals.tolist()}")
    if len(pts3d) != n or len(colors) != n or (confidence is not None and len(confidence) != n):
        raise ValueError(f"pts3d, colors and confidence must hold {n} maps each")
    pw, ph = (int(v) for v in pointmap_size)
    from splat.io.images import image_size

    sizes = {image_size(p) for p in image_paths}
    if len(sizes) != 1:
        raise ValueError(f"the images must share one size, got {sorted(sizes)}")
    (w, h), = sizes
    pp = np.tile([pw / 2.0, ph / 2.0], (n, 1)) if principal_points is None else _np(principal_points).reshape(n, 2)

    # The network saw the image resized by s (then centre-cropped): pixel x_img = (x_map + crop) / s.
    s = max(pw / w, ph / h)
    crop = np.array([(w * s - pw) / 2.0, (h * s - ph) / 2.0])
    f = float(np.mean(focals)) / s
    c = ((pp + crop) / s).mean(0)
    K = torch.tensor([[f, 0.0, c[0]], [0.0, f, c[1]], [0.0, 0.0, 1.0]], dtype=torch.float32)

    pts_all, col_all = [], []
    for i in range(n):
        p = _np(pts3d[i]).reshape(-1, 3)
        col = _np(colors[i]).reshape(-1, 3)
        if len(p) != pw * ph or len(col) != len(p):
            raise ValueError(f"point map {i} must have {pw}x{ph} points and colours, got {len(p)} and {len(col)}")
        keep = np.all(np.isfinite(p), axis=1)
        if confidence is not None:
            conf = _np(confidence[i]).reshape(-1)
            if conf.shape != (len(p),):
                raise ValueError(f"confidence map {i} must have {pw}x{ph} values, got {conf.shape[0]}")
            is_mask = np.asarray(confidence[i]).dtype == bool or (
                isinstance(confidence[i], torch.Tensor) and confidence[i].dtype == torch.bool)
            keep &= conf > 0.5 if is_mask else conf >= min_confidence
        pts_all.append(p[keep])
        col_all.append(col[keep])
    points = np.concatenate(pts_all)
    point_colors = np.clip(np.concatenate(col_all), 0.0, 1.0)
    if len(points) == 0:
        raise ValueError(f"no point map pixel has confidence >= {min_confidence}; lower min_confidence")
    t0 = time.perf_counter()
    points, point_colors = clean_points(points, point_colors, max_points=max_points)

    viewmats = c2w_to_w2c(torch.tensor(c2w, dtype=torch.float64)).float()
    cameras = Camera(viewmats, K.expand(n, 3, 3).clone(), int(w), int(h))
    work_dir = Path(work_dir)
    scene = Scene(
        name=work_dir.name, root=work_dir, cameras=cameras, image_paths=list(image_paths),
        train_ids=list(range(n)), test_ids=[],
        points=torch.tensor(points, dtype=torch.float32), point_colors=torch.tensor(point_colors, dtype=torch.float32),
    )
    from splat.io.colmap import save_colmap

    model_dir = save_colmap(scene, work_dir / "sparse" / "0")
    timings = dict(seconds or {})
    timings["cloud"] = timings.get("cloud", 0.0) + time.perf_counter() - t0
    report = RegistrationReport(
        registered=list(image_names), unregistered={}, mapper=mapper, mean_reprojection_error=float("nan"),
        num_sparse_points=int(sum(len(p) for p in pts_all)), num_points=int(len(points)),
        seconds={k: round(v, 3) for k, v in timings.items()}, focal=f, warnings=list(warnings or []),
    )
    return Reconstruction(scene=scene, report=report, colmap_model_dir=model_dir)


def _import_backend(model: str):
    try:
        if model == "mast3r":
            import mast3r.utils.path_to_dust3r  # noqa: F401  (puts dust3r on the path, as mast3r's own scripts)
            from mast3r.model import AsymmetricMASt3R as Net
        else:
            from dust3r.model import AsymmetricCroCo3DStereo as Net
        from dust3r.image_pairs import make_pairs
        from dust3r.utils.image import load_images
    except ImportError as exc:
        raise ImportError(
            f"the {model} package is not installed ({exc}); install it from its repository "
            f"(https://github.com/naver/{model}) and pass local weights, or use splat.posefree.reconstruct "
            "(pycolmap, no weights needed)"
        ) from exc
    return Net, make_pairs, load_images


def reconstruct_dust3r(
    source,
    work_dir: str | os.PathLike,
    *,
    weights: str | os.PathLike,
    model: str = "dust3r",
    device: str = "cpu",
    frames: int | None = None,
    max_size: int | None = None,
    resolution: int = 512,
    niter: int = 300,
    min_confidence: float = 1.5,
    progress: Progress | None = None,
) -> Reconstruction:
    """Cameras and a dense cloud from DUSt3R or MASt3R (installed separately, local weights).

    Runs the network on all image pairs (a complete graph), the global
    alignment (DUSt3R's ``PointCloudOptimizer`` from a minimum spanning tree,
    cosine schedule; MASt3R's ``sparse_global_alignment`` with shared
    intrinsics), and converts the result with :func:`pointmaps_to_reconstruction`.

    Args:
        source: as :func:`splat.posefree.reconstruct`.
        work_dir: folder for ``images/`` and ``sparse/0``; nothing is written on failure.
        weights: a local checkpoint file or folder; never downloaded.
        model: ``"dust3r"`` or ``"mast3r"``.
        device: torch device of the network.
        frames, max_size: as :func:`splat.posefree.reconstruct`.
        resolution: the network's input size (longer side), 512 for the 512 checkpoints.
        niter: global alignment iterations.
        min_confidence: confidence threshold of the kept points.
        progress: optional ``progress(fraction, message)`` callback.

    Raises:
        ImportError: the package is not installed.
        FileNotFoundError: ``weights`` does not exist.
        ValueError: bad input (as :func:`collect_images`) or an unknown ``model``.
    """
    if model not in ("dust3r", "mast3r"):
        raise ValueError(f"model must be 'dust3r' or 'mast3r', got {model!r}")
    weights = Path(weights)
    if not weights.exists():
        raise FileNotFoundError(f"{model} weights not found: {weights.name} (weights are never downloaded)")
    Net, make_pairs, load_images = _import_backend(model)

    def say(frac: float, msg: str) -> None:
        if progress is not None:
            progress(frac, msg)

    work_dir = Path(work_dir)
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{work_dir.name}.dust3r.", dir=work_dir.parent))
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        paths, names, warnings = collect_named_images(source, staging / "images", frames=frames, max_size=max_size)
        seconds["images"] = time.perf_counter() - t0
        say(0.1, f"running {model} on {len(paths)} images")
        t0 = time.perf_counter()
        net = Net.from_pretrained(str(weights)).to(device).eval()
        imgs = load_images([str(p) for p in paths], size=resolution, verbose=False)
        pairs = make_pairs(imgs, scene_graph="complete", prefilter=None, symmetrize=True)
        if model == "mast3r":
            from mast3r.cloud_opt.sparse_ga import sparse_global_alignment

            cache = staging / "cache"
            aligned = sparse_global_alignment([str(p) for p in paths], pairs, str(cache), net, device=device,
                                              shared_intrinsics=True, niter1=niter, niter2=niter // 2)
            pts3d, _, confs = aligned.get_dense_pts3d(clean_depth=True)
        else:
            from dust3r.cloud_opt import GlobalAlignerMode, global_aligner
            from dust3r.inference import inference

            output = inference(pairs, net, device, batch_size=1, verbose=False)
            mode = GlobalAlignerMode.PointCloudOptimizer if len(paths) > 2 else GlobalAlignerMode.PairViewer
            aligned = global_aligner(output, device=device, mode=mode, verbose=False)
            if mode == GlobalAlignerMode.PointCloudOptimizer:
                aligned.compute_global_alignment(init="mst", niter=niter, schedule="cosine", lr=0.01)
            pts3d = aligned.get_pts3d()
            confs = [c for c in aligned.im_conf]
        seconds["mapping"] = time.perf_counter() - t0
        say(0.8, "building the point cloud")
        ph, pw = np.asarray(aligned.imgs[0]).shape[:2]
        pp = aligned.get_principal_points() if hasattr(aligned, "get_principal_points") else None
        result = pointmaps_to_reconstruction(
            paths, names, staging, c2w=aligned.get_im_poses(), focals=aligned.get_focals(), pts3d=pts3d,
            colors=[np.asarray(im) for im in aligned.imgs], confidence=confs, pointmap_size=(pw, ph),
            principal_points=pp, min_confidence=min_confidence, seconds=seconds, warnings=warnings, mapper=model,
        )
        shutil.rmtree(staging / "cache", ignore_errors=True)
        _publish(staging, work_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # The scene was built on the staged files; point it at the published ones.
    scene = result.scene
    scene.root = work_dir
    scene.image_paths = [work_dir / "images" / p.name for p in scene.image_paths]
    say(1.0, f"{len(paths)} cameras, {result.report.num_points} points")
    return Reconstruction(scene=scene, report=result.report, colmap_model_dir=work_dir / "sparse" / "0")
