"""Photos in, splats out: registration, joint fitting and a folder that loads as a scene.

:func:`fit_images` runs the whole pose-free path on a user's photos, a zip or a video:

1. :func:`splat.posefree.reconstruct` registers the images (cameras, one shared
   intrinsics, an initial cloud);
2. :func:`splat.methods.fit` fits Gaussians with ``instantsplat`` (or any
   registered method), which also refines every pose and the focal length;
3. the output folder receives, in one frame::

       point_cloud.ply        the fitted Gaussians (3DGS layout)
       transforms.json        nerfstudio cameras (OpenGL camera-to-world) with the refined poses
                              and intrinsics, file_path -> images/, plus sparse_pc.ply
       images/                the registered images as fitted (same size as the cameras)
       sparse/0/              COLMAP model of the same cameras, for other tools
       initial/transforms.json  the registration's cameras before refinement (and for --resume)
       metrics.json           registration report, fit metrics, timings
       checkpoint.pt, renders/  as every fit

   so that ``splat.io.load_scene(out)`` and ``splatops render --ply out/point_cloud.ply --data out``
   work on it. Everything is built in a hidden temporary folder next to ``out_dir``
   and moved into place at the end: a failure leaves ``out_dir`` as it was.

>>> result = fit_images("photos/", "out/", steps=1000)        # doctest: +SKIP
>>> result.metrics["registration"]["registered"]              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from splat.io.atomic import write_text_atomic
from splat.posefree.consistency import learned_environment, photometric_outliers, uniform_background, view_psnrs

__all__ = ["fit_images", "PipelineProgress", "PoseFreeResult"]

#: Stages reported through ``progress`` with the share of the total each takes.
STAGES = {"reconstruct": (0.0, 0.25), "fit": (0.25, 0.95), "write": (0.95, 1.0)}


@dataclass
class PipelineProgress:
    """One progress report of :func:`fit_images`.

    Attributes:
        stage: ``"reconstruct"``, ``"fit"``, ``"write"`` or ``"done"``.
        fraction: overall progress in ``[0, 1]``.
        message: a short human-readable line.
        fit: the fit loop's :class:`~splat.methods.fit.FitProgress` during ``"fit"``.
    """

    stage: str
    fraction: float
    message: str
    fit: Any = None


@dataclass
class PoseFreeResult:
    """What :func:`fit_images` returns.

    Attributes:
        gaussians: the fitted Gaussians.
        scene: the output scene (refined cameras, images in ``out_dir/images``).
        initial_cameras: the registration's cameras before refinement (same views).
        metrics: the content of ``metrics.json``.
        paths: name -> written file or folder (``ply``, ``transforms``, ``colmap``, ``metrics``, ...).
        state: the method's final state (pose and focal corrections for ``instantsplat``).
        warnings: messages for the user (skipped files, resized images, unregistered views).
    """

    gaussians: Any
    scene: Any
    initial_cameras: Any
    metrics: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    state: Any = None
    warnings: list[str] = field(default_factory=list)


def _check_args(steps, test_every, out_dir) -> Path:
    for name, value, minimum in (("steps", steps, 1), ("test_every", test_every, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if test_every == 1:
        raise ValueError("test_every=1 would hold out every view; use 0 (no held-out views) or >= 2")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    return Path(out_dir)


def _split(num_views: int, test_every: int) -> tuple[list[int], list[int]]:
    if test_every == 0:
        return list(range(num_views)), []
    test = [i for i in range(num_views) if i % test_every == 0]
    train = [i for i in range(num_views) if i % test_every != 0]
    if len(train) < 2:
        raise ValueError(f"test_every={test_every} leaves {len(train)} training view(s) of {num_views}; need 2")
    return train, test


def _stage(progress, stage: str, frac: float, message: str, fit=None) -> None:
    if progress is None:
        return
    lo, hi = STAGES.get(stage, (1.0, 1.0))
    progress(PipelineProgress(stage, lo + (hi - lo) * min(max(frac, 0.0), 1.0), message, fit))


def _copy_images(scene, dest: Path) -> list[Path]:
    """Copies the scene's images to ``dest`` under stable names; returns the new paths."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i, src in enumerate(scene.image_paths):
        dst = dest / Path(src).name
        if dst.exists():  # two inputs with the same file name
            dst = dest / f"{i:05d}_{Path(src).name}"
        shutil.copyfile(src, dst)
        out.append(dst)
    return out


def _fitted_points(gaussians, max_points: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Means and base colours of the most opaque Gaussians (the output scene's point cloud)."""
    means = gaussians.means.detach().cpu()
    colors = gaussians.colors.detach().cpu().clamp(0, 1)
    if means.shape[0] > max_points:
        keep = torch.topk(gaussians.opacities.detach().cpu(), max_points).indices
        means, colors = means[keep], colors[keep]
    return means.numpy().astype(np.float32), colors.numpy().astype(np.float32)


def _load_initial(tmp: Path):
    from splat.io.nerfstudio import load_nerfstudio

    return load_nerfstudio(tmp / "initial" / "transforms.json", verify_images=False, name="initial")


def _registration_dict(report) -> dict[str, Any]:
    if report is None:
        return {}
    if hasattr(report, "to_dict"):
        return report.to_dict()
    return dict(vars(report))


def fit_images(
    source,
    out_dir: str | os.PathLike,
    *,
    method: str = "instantsplat",
    steps: int = 1000,
    frames: int | None = None,
    test_every: int = 0,
    max_size: int | None = None,
    matcher: str = "auto",
    progress: Callable[[PipelineProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    backend: str = "auto",
    seed: int = 0,
    num_threads: int | None = None,
    eval_every: int = 0,
    show_progress: bool = False,
    check_views: bool = True,
    misregistered_margin_db: float = 6.0,
    **method_overrides,
) -> PoseFreeResult:
    """Registers plain photos (or video frames), fits Gaussians and cameras, writes a scene folder.

    Args:
        source: a folder of images, a list of image paths, a ``.zip`` of images or a video.
        out_dir: output folder (created; must be absent or empty unless ``resume``).
        method: registered fitting method (``"instantsplat"`` refines the cameras too).
        steps: optimisation steps of the fit.
        frames: frames sampled from a video (default: the collector's default).
        test_every: hold out every ``test_every``-th registered view for evaluation
            (their poses are aligned with the Gaussians frozen); 0 fits every view.
        max_size: downscale the images so that the longer side is at most this.
        matcher: ``"auto"``, ``"exhaustive"`` or ``"sequential"`` (see :func:`splat.posefree.reconstruct`).
        progress: called with a :class:`PipelineProgress` through the stages.
        should_stop: polled by the fit; returning True ends the fit early (outputs are written).
        resume: continue the fit of an earlier (stopped) run in ``out_dir`` from its
            checkpoint, reusing its registration, up to ``steps``.
        backend: rasterization backend.
        seed: seed of the fit.
        num_threads: torch threads during the fit (None keeps the current setting).
        eval_every: steps between held-out evaluations during the fit (0: only at the end).
        show_progress: show the fit's tqdm bar.
        check_views: after the fit, render every view with its camera; a view whose
            PSNR falls more than ``misregistered_margin_db`` below the median of
            the views is taken as mis-registered (its pose is wrong): it is left
            out, named in ``metrics["misregistered"]`` and the warnings, and the
            fit runs again on the other views (not on ``resume``).
        misregistered_margin_db: see ``check_views``.
        **method_overrides: hyper-parameters of the method.

    Returns:
        A :class:`PoseFreeResult`.

    Raises:
        ValueError: bad arguments, unusable input (fewer than 2 images, nothing
            registered; the message names the user's files), a non-empty ``out_dir``
            without ``resume``, or ``resume`` without an earlier run.
        FileNotFoundError: ``source`` does not exist.
    """
    from splat.methods.fit import fit
    from splat.methods.registry import get_method

    out = _check_args(steps, test_every, out_dir)
    method_obj = get_method(method, **method_overrides) if isinstance(method, str) else method
    if resume:
        if not (out / "checkpoint.pt").is_file() or not (out / "initial" / "transforms.json").is_file():
            raise ValueError(f"resume needs an earlier run in {out.name} (checkpoint.pt and initial/), none found")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output folder {out.name} already exists and is not empty (pass resume=True to continue)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    t_start = time.perf_counter()
    try:
        timings: dict[str, float] = {}
        warnings: list[str] = []
        if resume:
            shutil.copytree(out, tmp, dirs_exist_ok=True)
            previous = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
            registration = previous.get("registration", {})
            warnings = list(previous.get("warnings", []))
            timings["reconstruct"] = previous.get("seconds", {}).get("reconstruct", 0.0)
            initial = _load_initial(tmp)
            train_ids, test_ids = initial.train_ids, initial.test_ids
        else:
            from splat.posefree import reconstruct
            from splat.io.nerfstudio import save_nerfstudio

            _stage(progress, "reconstruct", 0.0, "registering the images")
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=".sfm.", dir=tmp) as work:
                rec = reconstruct(
                    source, work, frames=frames, matcher=matcher, max_size=max_size,
                    progress=None if progress is None
                    else (lambda frac, msg: _stage(progress, "reconstruct", frac, msg)),
                )
                registration = _registration_dict(rec.report)
                warnings = list(rec.report.warnings)
                unregistered = rec.report.unregistered
                if unregistered:
                    warnings.append(f"{len(unregistered)} image(s) could not be registered and were left out: "
                                    + ", ".join(sorted(unregistered)))
                scene = rec.scene
                train_ids, test_ids = _split(len(scene), test_every)
                paths = _copy_images(scene, tmp / "images")
                background = uniform_background(paths) if scene.background is None else scene.background
                scene = replace(scene, image_paths=paths, train_ids=train_ids, test_ids=test_ids, _cache={},
                                background=background)
                save_nerfstudio(scene, tmp / "initial" / "transforms.json")
            timings["reconstruct"] = round(time.perf_counter() - t0, 3)
            initial = _load_initial(tmp)
        view_names = (list(registration.get("fitted") or registration.get("registered") or [])
                      or [Path(p).name for p in initial.image_paths])
        misregistered: dict[str, str] = dict(registration.get("misregistered", {})) if resume else {}
        timings["fit"] = 0.0
        for attempt in range(2):
            _stage(progress, "fit", 0.0, f"fitting {method_obj.name} on {len(train_ids)} views")
            t0 = time.perf_counter()

            def on_fit(p) -> None:
                _stage(progress, "fit", p.step / max(p.steps, 1), f"step {p.step}/{p.steps}", fit=p)

            result = fit(
                initial, method=method_obj, steps=steps, out_dir=tmp, resume=resume, backend=backend, seed=seed,
                progress=on_fit, should_stop=should_stop, eval_every=eval_every, checkpoint_every=0,
                show_progress=show_progress, num_threads=num_threads,
            )
            out_scene = _output_scene(initial, result)
            psnrs = view_psnrs(result.gaussians, out_scene, ids=range(len(out_scene)), backend=backend,
                               environment=learned_environment(method_obj, result.state))
            timings["fit"] = round(timings["fit"] + time.perf_counter() - t0, 3)
            stopped = should_stop is not None and should_stop()
            if not check_views or resume or attempt == 1 or stopped:
                break
            bad = photometric_outliers(psnrs, misregistered_margin_db)
            try:
                _split(len(out_scene) - len(bad), test_every)
            except ValueError:  # too few views would remain
                bad = {}
            if not bad:
                break
            for cid, deficit in sorted(bad.items()):
                misregistered[view_names[cid]] = (
                    f"rendered {deficit:.1f} dB below the median view ({psnrs[cid]:.1f} dB) after fitting all "
                    "views: its estimated pose is likely wrong (repeated texture or a symmetric subject); left out")
            _stage(progress, "fit", 0.0, f"{len(bad)} view(s) look mis-registered; fitting again without them")
            initial, view_names, train_ids, test_ids = _drop_views(tmp, initial, view_names, set(bad), test_every)
        if misregistered:
            warnings.append(f"{len(misregistered)} image(s) looked mis-registered (wrong pose) and were left out: "
                            + ", ".join(sorted(misregistered)))
        registration = dict(registration)
        registration["misregistered"] = misregistered
        registration["fitted"] = view_names

        t0 = time.perf_counter()
        _stage(progress, "write", 0.0, "writing the scene")
        written = _write_outputs(tmp, out_scene, result)
        timings["write"] = round(time.perf_counter() - t0, 3)
        timings["total"] = round(time.perf_counter() - t_start, 3)
        metrics = dict(result.metrics)
        metrics["registration"] = registration
        metrics["misregistered"] = misregistered
        metrics["view_psnr"] = {view_names[cid]: round(v, 3) for cid, v in psnrs.items()}
        metrics["background"] = list(initial.background) if initial.background is not None else None
        metrics["warnings"] = warnings
        metrics["seconds"] = timings
        metrics["cameras"] = _camera_summary(initial, out_scene)
        metrics["num_views"] = {"registered": len(initial), "train": len(train_ids), "test": len(test_ids)}
        write_text_atomic(tmp / "metrics.json", json.dumps(metrics, indent=2, default=_json_default) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the output is an ordinary folder
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    paths = {"ply": out / "point_cloud.ply", "transforms": out / "transforms.json", "images": out / "images",
             "colmap": out / "sparse" / "0", "metrics": out / "metrics.json", "checkpoint": out / "checkpoint.pt",
             "initial": out / "initial" / "transforms.json", "renders": out / "renders"}
    from splat.io.nerfstudio import load_nerfstudio

    final_scene = load_nerfstudio(out, verify_images=False)
    initial_cams = load_nerfstudio(out / "initial" / "transforms.json", verify_images=False).cameras
    _stage(progress, "done", 1.0, f"done in {time.perf_counter() - t_start:.1f} s")
    return PoseFreeResult(result.gaussians, final_scene, initial_cams, metrics, paths, result.state, warnings)


def _drop_views(tmp: Path, scene, names: list[str], drop: set[int], test_every: int):
    """The scene without the views ``drop`` (images deleted, ``initial/`` rewritten); new names and split."""
    from splat.core.camera import Camera
    from splat.io.nerfstudio import save_nerfstudio

    keep = [i for i in range(len(scene)) if i not in drop]
    train_ids, test_ids = _split(len(keep), test_every)
    for i in sorted(drop):
        Path(scene.image_paths[i]).unlink(missing_ok=True)
    shutil.rmtree(tmp / "renders", ignore_errors=True)  # the next fit renders the kept views
    cams = scene.cameras
    reduced = replace(scene, cameras=Camera(cams.viewmats[keep], cams.Ks[keep], cams.width, cams.height),
                      image_paths=[scene.image_paths[i] for i in keep], train_ids=train_ids, test_ids=test_ids,
                      _cache={})
    save_nerfstudio(reduced, tmp / "initial" / "transforms.json")
    return _load_initial(tmp), [names[i] for i in keep], train_ids, test_ids


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _output_scene(initial, result):
    """The initial scene with the method's refined cameras (when it refines them) and the fitted cloud."""
    from splat.methods.instantsplat import FOCAL_KEY, POSE_KEY, corrected_cameras

    state = result.state
    cameras = initial.cameras
    if state is not None and POSE_KEY in state.params and FOCAL_KEY in state.params:
        cameras = corrected_cameras(initial, state)
    points, colors = _fitted_points(result.gaussians)
    return replace(initial, cameras=cameras, points=torch.from_numpy(points), point_colors=torch.from_numpy(colors),
                   _cache={})


def _write_outputs(tmp: Path, scene, result) -> dict[str, Path]:
    from splat.io.colmap import save_colmap
    from splat.io.nerfstudio import save_nerfstudio

    transforms = save_nerfstudio(scene, tmp / "transforms.json")
    colmap = save_colmap(scene, tmp / "sparse" / "0")
    return {"transforms": transforms, "colmap": colmap}


def _camera_summary(initial, final) -> dict[str, Any]:
    """Focal lengths before and after and the size of the pose corrections."""
    from splat.core.camera import w2c_to_c2w

    c0, c1 = w2c_to_c2w(initial.cameras.viewmats.double()), w2c_to_c2w(final.cameras.viewmats.double())
    rel = c0[:, :3, :3].transpose(-1, -2) @ c1[:, :3, :3]
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    moved = (c1[:, :3, 3] - c0[:, :3, 3]).norm(dim=-1)
    return {
        "focal_initial": float(initial.cameras.Ks[0, 0, 0]),
        "focal_final": float(final.cameras.Ks[0, 0, 0]),
        "pose_change_deg_median": float(torch.rad2deg(torch.arccos(cos)).median()),
        "pose_change_centre_median_of_extent": float(moved.median() / initial.extent),
    }


def _replace_folder(tmp: Path, out: Path) -> None:
    """Moves the finished ``tmp`` onto ``out`` (an empty or earlier output folder is replaced)."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
