"""Structure-from-motion with pycolmap, configured for small and sparse captures.

COLMAP's defaults are tuned for many large photos. On a dozen 256-320 px views
10-30 degrees apart they find too few features and matches, and the mapper's
inlier thresholds then reject most views. :class:`SfMOptions` holds the settings
that register such captures:

* one shared ``SIMPLE_PINHOLE`` camera (focal refined in bundle adjustment);
* SIFT with affine shape adaptation and domain-size pooling, a lower peak
  threshold and upsampled first octave (more, more repeatable features);
* guided matching, fewer required inliers per verified pair;
* lower mapper thresholds (``min_num_matches``, ``init_min_num_inliers``,
  ``abs_pose_min_num_inliers``, initial triangulation angle).

``SfMOptions.colmap_defaults()`` gives pycolmap's stock settings (for comparison).
:func:`run_sfm` extracts, matches, maps incrementally and falls back to global
mapping (GLOMAP, when the wheel has it) if too few views registered; it keeps the
largest model and says why each other image did not register.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

Progress = Callable[[float, str], None]


@dataclass
class SfMOptions:
    """Settings of :func:`run_sfm`.

    Attributes:
        matcher: ``"exhaustive"`` (every pair, for photo sets) or ``"sequential"``
            (neighbours in order, loop detection off, for video frames).
        sequential_overlap: neighbours matched on each side in sequential mode.
        max_num_features: SIFT features per image.
        peak_threshold: SIFT detection threshold (lower finds more on small images).
        affine_shape: affine-adapted SIFT (``estimate_affine_shape``).
        domain_size_pooling: SIFT descriptor pooled over scales (DSP-SIFT).
        guided_matching: re-match with the estimated two-view geometry.
        min_two_view_inliers: inliers a pair needs to count as verified.
        min_num_matches: matches a pair needs to be used by the mapper.
        init_min_num_inliers: inliers of the mapper's initial pair.
        init_min_tri_angle: triangulation angle (degrees) of the initial pair.
        abs_pose_min_num_inliers: 2D-3D inliers to register a further view.
        abs_pose_max_error: reprojection error (px) of a registration inlier.
        filter_max_reproj_error: points above this error (px) are removed.
        feature_min_size: images whose longer side is under this are upsampled
            by an integer factor for feature extraction (SIFT finds several times
            more features on 2x upsampled 320 px renders); 0 turns it off.
        upsample_below_features: upsample only when a probe of a few images at
            their own size finds fewer SIFT features than this (median); richly
            textured images keep their size (matching 2x upsampled features costs
            several times more for little gain).
        single_camera: all images share one camera (one focal length).
        camera_model: COLMAP camera model (``SIMPLE_PINHOLE`` keeps the splat
            rasterizer's distortion-free pinhole).
        global_fallback: run global mapping when incremental mapping registers
            fewer than ``min_registered_fraction`` of the images.
        min_registered_fraction: see ``global_fallback``.
        graph_hypotheses: after incremental mapping on every verified pair, the
            mapper also runs on sparser view graphs that keep each image's ``k``
            strongest pairs, for each ``k`` here (exhaustive matching only; ``()``
            turns it off). See :mod:`splat.posefree.viewgraph`.
        hypothesis_min_gain: a sparser graph's model replaces the full graph's only
            when it registers as many images and its epipolar support (share of all
            verified inliers its poses explain) is higher by at least this.
        num_threads: CPU threads (-1: all). See ``reproducible``.
        reproducible: feature extraction and mapping run in one thread, so the
            same photos give the same model on every run. Multi-threaded
            extraction stores the images in a varying order, which can change
            which views register on a hard capture. ``False`` runs every stage
            on ``num_threads`` (faster extraction).
        seed: random seed of RANSAC and the mapper (reproducible runs).
    """

    matcher: str = "exhaustive"
    sequential_overlap: int = 10
    max_num_features: int = 8192
    peak_threshold: float = 0.004
    affine_shape: bool = True
    domain_size_pooling: bool = True
    guided_matching: bool = True
    min_two_view_inliers: int = 12
    min_num_matches: int = 12
    init_min_num_inliers: int = 40
    init_min_tri_angle: float = 8.0
    abs_pose_min_num_inliers: int = 15
    abs_pose_max_error: float = 8.0
    filter_max_reproj_error: float = 4.0
    feature_min_size: int = 640
    upsample_below_features: int = 500
    single_camera: bool = True
    camera_model: str = "SIMPLE_PINHOLE"
    global_fallback: bool = True
    min_registered_fraction: float = 1.0
    graph_hypotheses: tuple[int, ...] = (2, 3, 4)
    hypothesis_min_gain: float = 0.02
    num_threads: int = -1
    reproducible: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.matcher not in ("exhaustive", "sequential"):
            raise ValueError(f"matcher must be 'exhaustive' or 'sequential', got {self.matcher!r}")
        if self.camera_model not in ("SIMPLE_PINHOLE", "PINHOLE"):
            raise ValueError(f"camera_model must be SIMPLE_PINHOLE or PINHOLE, got {self.camera_model!r}")
        self.graph_hypotheses = tuple(int(k) for k in self.graph_hypotheses)
        if any(k < 1 for k in self.graph_hypotheses):
            raise ValueError(f"graph_hypotheses must be pair counts >= 1, got {self.graph_hypotheses}")
        if not 0.0 < self.min_registered_fraction <= 1.0:
            raise ValueError(f"min_registered_fraction must be in (0, 1], got {self.min_registered_fraction}")

    @property
    def serial_threads(self) -> int:
        """Threads of the stages whose result depends on thread timing."""
        return 1 if self.reproducible else self.num_threads

    @classmethod
    def colmap_defaults(cls, **overrides) -> "SfMOptions":
        """pycolmap's stock feature, matching and mapper settings (a shared pinhole camera kept)."""
        base = dict(
            max_num_features=8192, peak_threshold=0.02 / 3, affine_shape=False, domain_size_pooling=False,
            guided_matching=False, min_two_view_inliers=15, min_num_matches=15, init_min_num_inliers=100,
            init_min_tri_angle=16.0, abs_pose_min_num_inliers=30, abs_pose_max_error=12.0,
            global_fallback=False, feature_min_size=0, graph_hypotheses=(),
        )
        base.update(overrides)
        return cls(**base)


@dataclass
class SfMResult:
    """What :func:`run_sfm` found.

    Attributes:
        reconstruction: the largest ``pycolmap.Reconstruction`` (or ``None``).
        mapper: ``"incremental"`` or ``"global"`` (the mapper of the kept model).
        unregistered: image name -> reason, for images outside the kept model.
        seconds: wall-clock per stage (``features``, ``matching``, ``mapping``).
        log: what was tried (for reports).
        pair_support: share of all verified inlier matches that the kept model's
            poses explain (:func:`~splat.posefree.viewgraph.epipolar_support`);
            NaN when not computed.
        view_graph: ``"all pairs"`` or ``"top-k pairs"``: the pairs the kept model was mapped from.
    """

    reconstruction: object | None
    mapper: str
    unregistered: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    pair_support: float = float("nan")
    view_graph: str = "all pairs"


def _set(obj, **kwargs) -> None:
    for k, v in kwargs.items():
        if not hasattr(obj, k):
            raise AttributeError(f"this pycolmap has no option {type(obj).__name__}.{k}")
        setattr(obj, k, v)


def extraction_options(opts: SfMOptions):
    import pycolmap

    ext = pycolmap.FeatureExtractionOptions()
    _set(ext, num_threads=opts.serial_threads, use_gpu=False)
    _set(ext.sift, max_num_features=opts.max_num_features, peak_threshold=opts.peak_threshold,
         estimate_affine_shape=opts.affine_shape, domain_size_pooling=opts.domain_size_pooling)
    return ext


def matching_options(opts: SfMOptions):
    import pycolmap

    match = pycolmap.FeatureMatchingOptions()
    _set(match, num_threads=opts.num_threads, use_gpu=False, guided_matching=opts.guided_matching)
    verify = pycolmap.TwoViewGeometryOptions()
    _set(verify, min_num_inliers=opts.min_two_view_inliers)
    verify.ransac.random_seed = opts.seed
    return match, verify


def incremental_options(opts: SfMOptions):
    import pycolmap

    inc = pycolmap.IncrementalPipelineOptions()
    _set(inc, min_num_matches=opts.min_num_matches, multiple_models=True, min_model_size=2,
         num_threads=opts.serial_threads, random_seed=opts.seed, ba_refine_focal_length=True,
         ba_refine_principal_point=False, ba_refine_extra_params=False, extract_colors=True)
    _set(inc.mapper, init_min_num_inliers=opts.init_min_num_inliers, init_min_tri_angle=opts.init_min_tri_angle,
         abs_pose_min_num_inliers=opts.abs_pose_min_num_inliers, abs_pose_max_error=opts.abs_pose_max_error,
         filter_max_reproj_error=opts.filter_max_reproj_error, abs_pose_refine_extra_params=False,
         random_seed=opts.seed)
    return inc


def global_options(opts: SfMOptions):
    import pycolmap

    glo = pycolmap.GlobalPipelineOptions()
    _set(glo, min_num_matches=opts.min_num_matches, num_threads=opts.serial_threads, random_seed=opts.seed,
         multiple_models=True, min_model_size=2)
    glo.mapper.random_seed = opts.seed
    glo.mapper.bundle_adjustment.refine_extra_params = False
    glo.mapper.bundle_adjustment.refine_principal_point = False
    glo.mapper.global_positioning.use_gpu = False
    glo.mapper.bundle_adjustment.ceres.use_gpu = False
    return glo


def native_feature_count(paths: list[Path], opts: SfMOptions, probes: int = 4) -> int:
    """Median SIFT feature count of up to ``probes`` evenly spaced images at their own size."""
    import warnings

    import pycolmap
    from PIL import Image

    ext = extraction_options(opts)
    ext.sift.estimate_affine_shape = False
    ext.sift.domain_size_pooling = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sift = pycolmap.Sift(ext, device=pycolmap.Device.cpu)
    picks = sorted({int(round(i)) for i in np.linspace(0, len(paths) - 1, min(probes, len(paths)))})
    counts = []
    for i in picks:
        with Image.open(paths[i]) as img:
            gray = np.ascontiguousarray(np.asarray(img.convert("L"), np.float32) / 255.0)
        keypoints, _ = sift.extract(gray)
        counts.append(len(keypoints))
    return int(np.median(counts))


def _largest(models: dict) -> object | None:
    if not models:
        return None
    return max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))


def _why_unregistered(database: Path, names: list[str], registered: set[str], other_models: list[set[str]],
                      opts: SfMOptions) -> dict[str, str]:
    """A reason per unregistered image, from the database's features and verified pairs."""
    import pycolmap

    db = pycolmap.Database.open(str(database))
    try:
        by_name = {im.name: im.image_id for im in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
        best: dict[int, int] = {}
        for pair_id, geom in zip(pair_ids, geometries):
            i, j = pycolmap.pair_id_to_image_pair(pair_id)
            n = len(geom.inlier_matches)
            best[i], best[j] = max(best.get(i, 0), n), max(best.get(j, 0), n)
        reasons = {}
        for name in names:
            if name in registered:
                continue
            image_id = by_name.get(name)
            keypoints = db.num_keypoints_for_image(image_id) if image_id is not None else 0
            matches = best.get(image_id, 0)
            if keypoints < 50:
                reasons[name] = f"too few features ({keypoints}): the image has little texture"
            elif matches < opts.min_num_matches:
                reasons[name] = (
                    f"too few matches with any other image (best pair: {matches} verified matches, "
                    f"{opts.min_num_matches} needed): it shares too little of the scene with the others"
                )
            elif any(name in m for m in other_models):
                reasons[name] = "registered only in a separate, smaller model that could not be joined to the main one"
            else:
                reasons[name] = (
                    f"not registered by the mapper (best pair: {matches} verified matches): "
                    "too few matches with points already reconstructed"
                )
        return reasons
    finally:
        db.close()


def run_sfm(
    image_dir: str | Path,
    names: list[str],
    work_dir: str | Path,
    options: SfMOptions | None = None,
    progress: Progress | None = None,
) -> SfMResult:
    """Features, matching and mapping of the images ``names`` in ``image_dir``.

    Args:
        image_dir: folder of same-size RGB images.
        names: file names in ``image_dir`` to use, in capture order (sequential
            matching pairs neighbours in this order).
        work_dir: folder for ``database.db`` and the mapper's models.
        options: :class:`SfMOptions` (default: tuned for small captures).
        progress: optional ``progress(fraction, message)`` callback.

    Returns:
        :class:`SfMResult`; ``reconstruction`` is ``None`` when no model could be made.
    """
    import pycolmap

    opts = options or SfMOptions()
    image_dir, work_dir = Path(image_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    database = work_dir / "database.db"
    if database.exists():
        database.unlink()
    pycolmap.set_random_seed(opts.seed)
    seconds: dict[str, float] = {}
    log: list[str] = []

    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(frac, msg)

    report(0.0, f"extracting features from {len(names)} images")
    t0 = time.perf_counter()
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = opts.camera_model
    pycolmap.extract_features(
        str(database), str(image_dir), image_names=list(names),
        camera_mode=pycolmap.CameraMode.SINGLE if opts.single_camera else pycolmap.CameraMode.AUTO,
        reader_options=reader, extraction_options=extraction_options(opts), device=pycolmap.Device.cpu,
    )
    seconds["features"] = time.perf_counter() - t0

    report(0.3, f"matching features ({opts.matcher})")
    t0 = time.perf_counter()
    match, verify = matching_options(opts)
    if opts.matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        _set(pairing, overlap=opts.sequential_overlap, loop_detection=False)
        pycolmap.match_sequential(str(database), matching_options=match, pairing_options=pairing,
                                  verification_options=verify, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(str(database), matching_options=match, verification_options=verify,
                                  device=pycolmap.Device.cpu)
    seconds["matching"] = time.perf_counter() - t0

    report(0.6, "mapping (incremental)")
    t0 = time.perf_counter()
    models_dir = work_dir / "models"
    inc_dir = models_dir / "incremental"
    inc_dir.mkdir(parents=True, exist_ok=True)
    models = pycolmap.incremental_mapping(str(database), str(image_dir), str(inc_dir), options=incremental_options(opts))
    best, mapper = _largest(models), "incremental"
    n_inc = best.num_reg_images() if best is not None else 0
    log.append(f"incremental mapping: {len(models)} model(s), largest registers {n_inc}/{len(names)}")
    view_graph, support = "all pairs", float("nan")
    if best is not None and opts.matcher == "exhaustive" and opts.graph_hypotheses:
        report(0.7, "mapping sparser view graphs")
        best, models, view_graph, support = _best_view_graph(database, image_dir, models_dir, best, models, opts, log)
        n_inc = best.num_reg_images()
    if (opts.global_fallback and hasattr(pycolmap, "global_mapping")
            and n_inc < opts.min_registered_fraction * len(names)):
        report(0.8, "mapping (global, second try)")
        glo_dir = models_dir / "global"
        glo_dir.mkdir(parents=True, exist_ok=True)
        try:
            glo_models = pycolmap.global_mapping(str(database), str(image_dir), str(glo_dir), options=global_options(opts))
        except (RuntimeError, ValueError) as exc:  # GLOMAP refuses graphs it cannot solve
            glo_models = {}
            log.append(f"global mapping failed: {exc}")
        glo_best = _largest(glo_models)
        n_glo = glo_best.num_reg_images() if glo_best is not None else 0
        log.append(f"global mapping: {len(glo_models)} model(s), largest registers {n_glo}/{len(names)}")
        if n_glo > n_inc:
            best, mapper, models, view_graph = glo_best, "global", glo_models, "all pairs"
            support = _support(best, database).fraction
    if best is not None and support != support:  # NaN: not scored yet
        support = _support(best, database).fraction
    seconds["mapping"] = time.perf_counter() - t0

    registered = set() if best is None else {best.image(i).name for i in best.reg_image_ids()}
    others = [{m.image(i).name for i in m.reg_image_ids()} for m in models.values() if m is not best]
    unregistered = _why_unregistered(database, list(names), registered, others, opts)
    report(1.0, f"registered {len(registered)} of {len(names)} images")
    return SfMResult(best, mapper, unregistered, seconds, log, support, view_graph)


def _support(model, database: Path):
    from splat.posefree.viewgraph import epipolar_support, support_tolerance

    cam = next(iter(model.cameras.values()))
    return epipolar_support(model, database, support_tolerance(int(cam.width), int(cam.height)))


def _best_view_graph(database: Path, image_dir: Path, models_dir: Path, best, models: dict, opts: SfMOptions,
                     log: list[str]):
    """Maps the top-k view graphs of ``opts.graph_hypotheses`` and keeps the best supported model.

    Returns:
        ``(model, models, view_graph, support fraction)`` of the kept hypothesis.
    """
    import pycolmap

    from splat.posefree.viewgraph import pair_inliers, restrict_pairs, top_k_pairs

    inliers = pair_inliers(database)
    base = _support(best, database)
    kept = (best, models, "all pairs", base.fraction)
    log.append(f"view graph all {len(inliers)} pairs: {best.num_reg_images()} registered, "
               f"epipolar support {base.fraction:.3f}")
    tried: set[frozenset] = {frozenset(inliers)}
    for k in opts.graph_hypotheses:
        keep = top_k_pairs(inliers, k)
        if frozenset(keep) in tried:
            continue
        tried.add(frozenset(keep))
        folder = models_dir / f"top{k}"
        folder.mkdir(parents=True, exist_ok=True)
        db_k = restrict_pairs(database, models_dir / f"top{k}.db", keep)
        cand_models = pycolmap.incremental_mapping(str(db_k), str(image_dir), str(folder),
                                                   options=incremental_options(opts))
        cand = _largest(cand_models)
        if cand is None:
            log.append(f"view graph top-{k} ({len(keep)} pairs): no model")
            continue
        frac = _support(cand, database).fraction
        log.append(f"view graph top-{k} ({len(keep)} pairs): {cand.num_reg_images()} registered, "
                   f"epipolar support {frac:.3f}")
        if cand.num_reg_images() >= kept[0].num_reg_images() and frac >= kept[3] + opts.hypothesis_min_gain:
            kept = (cand, cand_models, f"top-{k} pairs", frac)
    if kept[2] != "all pairs":
        log.append(f"kept the model of the {kept[2]} view graph (support {kept[3]:.3f} against {base.fraction:.3f} "
                   "with all pairs): some verified pairs contradict it, likely repeated texture or symmetry")
        kept = _remap_consistent(database, image_dir, models_dir, kept, opts, log)
    return kept


def _remap_consistent(database: Path, image_dir: Path, models_dir: Path, kept: tuple, opts: SfMOptions,
                      log: list[str]) -> tuple:
    """Maps again from every pair's matches that the kept sparse-graph model explains; keeps it if no worse."""
    import pycolmap

    from splat.posefree.viewgraph import filter_inliers, support_tolerance

    model = kept[0]
    cam = next(iter(model.cameras.values()))
    filtered = models_dir / "consistent.db"
    n_kept, n_total = filter_inliers(database, filtered, model, support_tolerance(int(cam.width), int(cam.height)),
                                     opts.min_two_view_inliers)
    folder = models_dir / "consistent"
    folder.mkdir(parents=True, exist_ok=True)
    models = pycolmap.incremental_mapping(str(filtered), str(image_dir), str(folder), options=incremental_options(opts))
    cand = _largest(models)
    if cand is None:
        log.append("mapping the consistent matches made no model")
        return kept
    frac = _support(cand, database).fraction
    log.append(f"consistent matches of all pairs ({n_kept} of {n_total}): {cand.num_reg_images()} registered, "
               f"epipolar support {frac:.3f}")
    if cand.num_reg_images() >= model.num_reg_images() and frac >= kept[3] - 0.005:
        return cand, models, f"{kept[2]}, then the consistent matches of all pairs", frac
    return kept


def model_arrays(reconstruction, names: list[str]) -> dict:
    """Cameras and points of a pycolmap model as numpy arrays, views in the order of ``names``.

    Only registered images appear. Returns a dict with ``names`` (registered, in
    order), ``viewmats [C, 4, 4]`` (OpenCV world-to-camera), ``K [3, 3]`` (the
    shared camera; the mean focal if several), ``size (w, h)``, ``points [P, 3]``,
    ``colors [P, 3]`` uint8, ``errors [P]`` (px) and ``track_lengths [P]``.
    """
    by_name = {reconstruction.image(i).name: reconstruction.image(i) for i in reconstruction.reg_image_ids()}
    order = [n for n in names if n in by_name]
    viewmats, focals, centres, sizes = [], [], [], set()
    for n in order:
        im = by_name[n]
        m = np.eye(4)
        m[:3, :4] = im.cam_from_world().matrix() if callable(im.cam_from_world) else im.cam_from_world.matrix()
        viewmats.append(m)
        cam = im.camera
        params = np.asarray(cam.params, np.float64)
        if cam.model.name == "SIMPLE_PINHOLE":
            focals.append((params[0], params[0]))
            centres.append((params[1], params[2]))
        elif cam.model.name == "PINHOLE":
            focals.append((params[0], params[1]))
            centres.append((params[2], params[3]))
        else:
            raise ValueError(f"unexpected camera model {cam.model.name} in the reconstruction")
        sizes.add((int(cam.width), int(cam.height)))
    f = np.mean(focals, axis=0)
    c = np.mean(centres, axis=0)
    K = np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])
    pts = reconstruction.points3D
    ids = list(pts.keys()) if hasattr(pts, "keys") else [p for p in pts]
    points = np.array([pts[i].xyz for i in ids], np.float64).reshape(-1, 3)
    colors = np.array([pts[i].color for i in ids], np.uint8).reshape(-1, 3)
    errors = np.array([pts[i].error for i in ids], np.float64)
    tracks = np.array([pts[i].track.length() for i in ids], np.int64)
    (size,) = sizes if len(sizes) == 1 else (max(sizes),)
    return dict(names=order, viewmats=np.stack(viewmats), K=K, size=size, points=points, colors=colors,
                errors=errors, track_lengths=tracks)


