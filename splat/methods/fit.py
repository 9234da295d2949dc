"""The fitting loop, written once for every method.

>>> from splat.io import make_synthetic_scene          # doctest: +SKIP
>>> result = fit(make_synthetic_scene(), steps=300)     # doctest: +SKIP
>>> result.metrics["psnr"]                              # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from splat.core.device import resolve_device
from splat.core.gaussians import Gaussians
from splat.core.validation import finite_checks
from splat.io.atomic import write_bytes_atomic
from splat.methods.background import BACKGROUND_KEY, ENVIRONMENT_FILE, save_environment
from splat.methods.base import Method, MethodState, StepContext
from splat.methods.registry import get_method
from splat.metrics import psnr as psnr_fn
from splat.metrics import ssim as ssim_fn
from splat.utils.checks import check_int
from splat.utils.seeding import generator, seed_everything

__all__ = ["fit", "FitProgress", "FitResult", "init_gaussians", "initial_gaussians", "InitReport", "evaluate"]

CHECKPOINT = "checkpoint.pt"


@dataclass
class FitProgress:
    """One progress report, passed to the ``progress`` callback.

    Attributes:
        step: steps completed so far.
        steps: total steps of the run.
        loss: loss of the latest step.
        psnr: held-out PSNR of the latest evaluation (None before the first).
        num_gaussians: current number of Gaussians.
        elapsed_seconds: training time so far (evaluations excluded).
    """

    step: int
    steps: int
    loss: float
    psnr: float | None
    num_gaussians: int
    elapsed_seconds: float


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        gaussians: the fitted Gaussians.
        metrics: the content of ``metrics.json``.
        paths: name -> written file (``ply``, ``metrics``, ``checkpoint``, ``renders``); empty without ``out_dir``.
        state: the method's final state (e.g. learned camera-pose deltas).
    """

    gaussians: Gaussians
    metrics: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    state: MethodState | None = None


LOG_EVERY = 10  # steps between progress reports
NUM_RANDOM_POINTS = 10_000  # Gaussians drawn in the scene bounds when it has no points
EVAL_MAX_VIEWS = 8  # at most this many test views are evaluated during fitting (all at the end)


def focus_point(cameras) -> tuple[Tensor, Tensor]:
    """The point nearest all optical axes (least squares) and each camera's distance to it.

    Forward-facing captures (nearly parallel axes, or a point behind the
    cameras) fall back to the mean centre moved along the mean viewing
    direction by the cameras' spread (at least 1).

    Returns:
        ``(point [3], distances [C])``.
    """
    c2w = cameras.c2w.double()
    centers, dirs = c2w[:, :3, 3], torch.nn.functional.normalize(c2w[:, :3, 2], dim=-1)  # OpenCV: +z forward
    proj = torch.eye(3, dtype=torch.float64) - dirs[:, :, None] * dirs[:, None, :]  # [C, 3, 3]
    a, b = proj.sum(0), (proj @ centers[:, :, None]).sum(0)[:, 0]
    point = None
    if len(centers) > 1 and float(torch.linalg.eigvalsh(a)[0]) > 0.05 * len(centers):
        point = torch.linalg.solve(a, b)
        if float(((point - centers) * dirs).sum(-1).median()) <= 0:
            point = None
    if point is None:
        spread = float((centers - centers.mean(0)).norm(dim=-1).max())
        point = centers.mean(0) + torch.nn.functional.normalize(dirs.mean(0), dim=0) * max(4.0 * spread, 1.0)
    return point.float(), (centers - point).norm(dim=-1).float()


def _points_in_views(cameras, n: int, seed: int, depth_range=(0.4, 1.4)) -> tuple[Tensor, Tensor]:
    """``n`` points on random pixel rays of random cameras and random colours (see :func:`random_in_views`)."""
    gen = torch.Generator().manual_seed(seed)
    _, dist = focus_point(cameras)
    cam = torch.randint(len(cameras), (n,), generator=gen)
    w, h = cameras.width, cameras.height
    pix = torch.rand(n, 2, generator=gen) * torch.tensor([float(w), float(h)])
    K = cameras.Ks[cam]
    rays = torch.stack([(pix[:, 0] - K[:, 0, 2]) / K[:, 0, 0], (pix[:, 1] - K[:, 1, 2]) / K[:, 1, 1],
                        torch.ones(n)], dim=-1)  # camera frame, z = 1
    lo, hi = depth_range
    depth = dist[cam] * (lo + (hi - lo) * torch.rand(n, generator=gen))
    c2w = cameras.c2w[cam].float()
    points = (c2w[:, :3, :3] @ (rays * depth[:, None])[:, :, None])[:, :, 0] + c2w[:, :3, 3]
    return points, torch.rand(n, 3, generator=gen)


def random_in_views(cameras, n: int, sh_degree: int, seed: int = 0, depth_range=(0.4, 1.4)) -> Gaussians:
    """``n`` Gaussians on random pixel rays of random cameras, at random depths around the focus.

    Each point takes a random camera, a random pixel and a depth uniform in
    ``depth_range`` times that camera's distance to :func:`focus_point`, so
    the points fill what the cameras see (not the space between them).
    """
    points, colors = _points_in_views(cameras, n, seed, depth_range)
    return Gaussians.from_points(points, colors, sh_degree=sh_degree)


RANDOM_INITS = ("auto", "sfm", "views", "box")
MIN_SFM_POINTS = 500  # "auto" falls back to the random init below this many triangulated points


@dataclass
class InitReport:
    """How :func:`initial_gaussians` made the initial Gaussians.

    Attributes:
        kind: ``"points"`` (the scene's), ``"sfm"``, ``"views"`` or ``"box"``.
        num_gaussians: initial Gaussians.
        sfm: :meth:`~splat.methods.init_sfm.SfMCloud.summary` when triangulation ran.
        fallback: why ``"auto"`` fell back to the random init (None when it did not).
    """

    kind: str
    num_gaussians: int
    sfm: dict | None = None
    fallback: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "num_gaussians": self.num_gaussians, "sfm": self.sfm, "fallback": self.fallback}


def _missing_image(scene) -> str | None:
    """Why the training images cannot be read (naming the first such file), else None."""
    if getattr(scene, "image_paths", None) is None or not hasattr(scene, "image"):
        return "the scene has no image files"
    for i in scene.train_ids:
        try:
            scene.image(i)
        except (FileNotFoundError, ValueError) as exc:
            return f"training image {scene.image_paths[i].name} cannot be read ({type(exc).__name__})"
    return None


def _sfm_gaussians(scene, sh_degree: int, num_random_points: int, seed: int, cache_dir, progress,
                   top_up: float, strict: bool):
    """``(Gaussians, SfMCloud)`` on triangulated points, or ``(None, reason)`` when ``"auto"`` must fall back."""
    from splat.methods.init_sfm import SfMInitOptions, as_tensors, cached_sfm_points, sfm_available

    if not sfm_available():
        if strict:
            raise ImportError("random_init='sfm' needs pycolmap (pip install pycolmap)")
        return None, "pycolmap is not installed"
    missing = _missing_image(scene)
    if missing is not None:
        if strict:
            raise FileNotFoundError(f"random_init='sfm' needs the scene's images: {missing}")
        return None, missing
    if len(scene.train_ids) < 2:
        if strict:
            raise ValueError(f"random_init='sfm' needs at least 2 training views, got {len(scene.train_ids)}")
        return None, f"{len(scene.train_ids)} training view(s): nothing to triangulate"
    opts = SfMInitOptions(num_threads=torch.get_num_threads(), seed=seed)
    try:
        cloud = cached_sfm_points(scene, cache_dir, opts, progress)
    except (RuntimeError, ValueError) as exc:  # COLMAP refusing the input
        if strict:
            raise
        return None, f"triangulation failed ({type(exc).__name__}: {exc})"
    if len(cloud.points) < MIN_SFM_POINTS:
        reason = (f"triangulation kept {len(cloud.points)} points (< {MIN_SFM_POINTS}): too little matchable "
                  "texture or overlap between neighbouring views")
        if strict:
            raise ValueError(f"random_init='sfm' failed: {reason}")
        return None, reason
    points, colors = as_tensors(cloud)
    extra = int(round(top_up * num_random_points))
    if extra > 0:  # random points where SfM finds nothing (untextured surfaces)
        rp, rc = _points_in_views(scene.cameras[list(scene.train_ids)], extra, seed)
        points, colors = torch.cat([points, rp]), torch.cat([colors, rc])
    if progress is not None:
        took = "cached" if cloud.cached else f"{cloud.seconds:.1f} s"
        progress(f"init: {len(cloud.points)} triangulated points ({took})"
                 + (f" + {extra} random in the views" if extra else ""))
    return Gaussians.from_points(points, colors, sh_degree=sh_degree), cloud


def initial_gaussians(scene, sh_degree: int, num_random_points: int = NUM_RANDOM_POINTS, seed: int = 0,
                      random_init: str = "auto", *, cache_dir: str | os.PathLike | None = None,
                      progress: Callable[[str], None] | None = None,
                      sfm_top_up: float = 0.0) -> tuple[Gaussians, InitReport]:
    """Initial Gaussians and how they were made (see :func:`init_gaussians`)."""
    if random_init not in RANDOM_INITS:
        raise ValueError(f"random_init must be one of {RANDOM_INITS}, got {random_init!r}")
    if scene.points is not None and len(scene.points) > 0:
        g = Gaussians.from_points(scene.points, scene.point_colors, sh_degree=sh_degree)
        return g, InitReport("points", g.num_gaussians)
    fallback = None
    if random_init in ("auto", "sfm"):
        g, cloud = _sfm_gaussians(scene, sh_degree, num_random_points, seed, cache_dir, progress, sfm_top_up,
                                  strict=random_init == "sfm")
        if g is not None:
            return g, InitReport("sfm", g.num_gaussians, sfm=cloud.summary())
        fallback = cloud
        warnings.warn(f"scene {getattr(scene, 'name', '')!r}: no triangulated init ({fallback}); starting from "
                      f"{num_random_points} random Gaussians in the views", RuntimeWarning, stacklevel=3)
        random_init = "views"
    if random_init == "views":
        g = random_in_views(scene.cameras, num_random_points, sh_degree, seed)
        return g, InitReport("views", g.num_gaussians, fallback=fallback)
    centers = scene.cameras.centers
    mid = centers.mean(0)
    r = scene.extent / 1.1
    g = Gaussians.random_in_bounds(num_random_points, mid - r, mid + r, sh_degree=sh_degree, seed=seed)
    return g, InitReport("box", g.num_gaussians)


def init_gaussians(scene, sh_degree: int, num_random_points: int = NUM_RANDOM_POINTS, seed: int = 0,
                   random_init: str = "auto", *, cache_dir: str | os.PathLike | None = None,
                   progress: Callable[[str], None] | None = None, sfm_top_up: float = 0.0) -> Gaussians:
    """Initial Gaussians: on the scene's points if it has them, else triangulated or random.

    Args:
        scene: the scene.
        sh_degree: SH degree stored.
        num_random_points: how many random Gaussians a scene without points gets
            (``"views"``, ``"box"``, and the ``sfm_top_up`` share).
        seed: seed of the random init and of RANSAC.
        random_init: what a scene **without points** starts from (a scene with
            points always starts from them):

            * ``"auto"`` (default): ``"sfm"`` when pycolmap is installed and the
              training images can be read, else (or when fewer than
              :data:`MIN_SFM_POINTS` points are triangulated) ``"views"``, with a
              ``RuntimeWarning`` saying why;
            * ``"sfm"``: points triangulated from SIFT matches of the training
              views with their known poses (:mod:`splat.methods.init_sfm`),
              coloured from the images; raises when that is impossible;
            * ``"views"``: random in the cameras' view frusta around the depth
              they focus on (:func:`random_in_views`);
            * ``"box"``: uniform in the cube of half-side ``extent / 1.1`` around
              the camera centres (fills the space between the cameras: measured
              worse, see docs/fitting.md).
        cache_dir: folder that keeps the triangulated cloud (the fit's ``out_dir``);
            None triangulates every time.
        progress: called with one-line messages while triangulating.
        sfm_top_up: with ``"sfm"``, also add ``sfm_top_up * num_random_points``
            random Gaussians in the views.

    Raises:
        ValueError: unknown ``random_init``; ``"sfm"`` with too few points.
        ImportError: ``"sfm"`` without pycolmap.
        FileNotFoundError: ``"sfm"`` with a training image missing.
    """
    return initial_gaussians(scene, sh_degree, num_random_points, seed, random_init, cache_dir=cache_dir,
                             progress=progress, sfm_top_up=sfm_top_up)[0]


def _background(scene, device) -> Tensor:  # [1, 3]
    bg = scene.background if scene.background is not None else (0.0, 0.0, 0.0)
    return torch.tensor([bg], dtype=torch.float32, device=device)


def _rasterize(method: Method, ctx: StepContext, backend: str):
    from splat.core.rasterization import rasterization

    inputs = method.render_inputs(ctx)
    render, alphas, meta = rasterization(**inputs, backend=backend)
    return method.composite(ctx, render, alphas), alphas, meta


def _make_optimizers(method: Method, gaussians: Gaussians, state: MethodState) -> dict[str, torch.optim.Optimizer]:
    lrs = method.trainable(gaussians, state)
    optimizers = {}
    for name, p in gaussians.params.items():
        p.requires_grad_(name in lrs)
    for name, lr in lrs.items():
        if name in gaussians.params:
            param = gaussians.params[name]
        elif name in state.params:
            param = state.params[name]
            param.requires_grad_(True)
        else:
            raise ValueError(
                f"method {method.name!r} asks to train {name!r}, which is neither a Gaussian parameter "
                f"({list(gaussians.params)}) nor a method parameter ({list(state.params)})"
            )
        # fused: one pass over the parameter per step instead of ~10 element-wise ops (same Adam update)
        fused = param.device.type in ("cpu", "cuda") and param.is_floating_point()
        optimizers[name] = torch.optim.Adam([param], lr=lr, eps=1e-15, fused=fused)
    return optimizers


def _camera_order(train_ids: list[int], step: int, seed: int) -> int:
    """The training camera of ``step``: a fresh shuffle of the views every epoch, reproducible from the step."""
    n = len(train_ids)
    epoch, pos = divmod(step, n)
    return train_ids[int(torch.randperm(n, generator=generator(seed, epoch))[pos])]


@torch.no_grad()
def evaluate(
    method: Method,
    scene,
    gaussians: Gaussians,
    state: MethodState,
    ids: list[int],
    images: Tensor,  # [len(ids), H, W, 3]
    sh_degree: int,
    backend: str,
    with_ssim: bool = True,
) -> tuple[float, float | None, Tensor]:
    """Mean PSNR (and SSIM) of ``gaussians`` on the views ``ids``; also returns the renders."""
    renders, psnrs, ssims = [], [], []
    bg = _background(scene, gaussians.device)
    for i, cid in enumerate(ids):
        ctx = StepContext(
            step=-1, total_steps=0, scene=scene, gaussians=gaussians, optimizers={}, state=state,
            camera_ids=[cid], viewmats=scene.cameras.viewmats[[cid]].to(gaussians.device),
            Ks=scene.cameras.Ks[[cid]].to(gaussians.device), width=scene.cameras.width,
            height=scene.cameras.height, gt_images=images[i : i + 1],
            background=bg, sh_degree=sh_degree, extent=scene.extent,
        )
        render = _rasterize(method, ctx, backend)[0].clamp(0, 1)
        renders.append(render[0])
        psnrs.append(float(psnr_fn(render[0], images[i])))
        if with_ssim:
            ssims.append(float(ssim_fn(render[0], images[i])))
    return (
        float(np.mean(psnrs)),
        float(np.mean(ssims)) if with_ssim else None,
        torch.stack(renders) if renders else torch.zeros(0),
    )


def _save_checkpoint(path: Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def _write_png(path: Path, image: Tensor) -> None:
    import imageio.v3 as iio

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    write_bytes_atomic(path, iio.imwrite("<bytes>", arr, extension=".png"))


def _resolve_scene(scene):
    if isinstance(scene, (str, os.PathLike)):
        from splat.io import load_scene

        path = Path(scene)
        if not path.exists():
            raise FileNotFoundError(f"scene path not found: {path}")
        return load_scene(path)
    for attr in ("cameras", "images", "train_ids", "test_ids", "extent"):
        if not hasattr(scene, attr):
            raise TypeError(f"scene must be a splat.io.Scene or a path, got {type(scene).__name__}")
    if not scene.train_ids:
        raise ValueError("scene has no training views (train_ids is empty)")
    return scene


def fit(
    scene,
    method: str | Method = "3dgs",
    steps: int = 7000,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    backend: str = "auto",
    seed: int = 0,
    progress: Callable[[FitProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    eval_every: int = 500,
    checkpoint_every: int = 1000,
    show_progress: bool = True,
    gaussians: Gaussians | None = None,
    num_threads: int | None = None,
    *,
    device: str | torch.device = "auto",
    random_init: str = "auto",
    **method_overrides,
) -> FitResult:
    """Fits Gaussians to a scene's training views with a registered method.

    Args:
        scene: a :class:`~splat.io.scene.Scene` or a path :func:`splat.io.load_scene` reads.
        method: a registered method name (see :func:`~splat.methods.available_methods`)
            or a :class:`~splat.methods.base.Method` instance.
        steps: total optimisation steps (one training view per step).
        out_dir: folder for ``point_cloud.ply``, ``metrics.json``, ``renders/`` and
            ``checkpoint.pt``; nothing is written when None.
        resume: continue from ``out_dir/checkpoint.pt`` (its step, parameters,
            optimizer and method states, RNG) up to ``steps``.
        backend: rasterization backend (``"auto"``, ``"cpu"``, ``"torch"``, ``"gsplat"``).
        seed: seed of torch, numpy and Python RNGs and of the view order.
        progress: called with a :class:`FitProgress` every few steps and after evaluations.
        should_stop: polled before every step; returning True stops cleanly
            (a checkpoint and the outputs are written).
        eval_every: steps between held-out PSNR evaluations (0: only at the end).
        checkpoint_every: steps between checkpoints (0: only at the end).
        show_progress: show a tqdm bar with loss, PSNR and number of Gaussians.
        gaussians: initial Gaussians (default: :func:`init_gaussians` with ``random_init``:
            the scene's points, else points triangulated from the training views).
        num_threads: torch threads during the fit (restored afterwards); None
            keeps the current setting. On a busy machine 1 is often fastest.
        device: ``"auto"`` (CUDA when a GPU is present and gsplat runs there,
            else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. The Gaussians,
            the images and every method state live on it.
        random_init: what a scene without points starts from when ``gaussians``
            is None (see :func:`init_gaussians`; ``"auto"``: triangulated from the
            training views, kept in ``out_dir`` for the next fit, else random).
        **method_overrides: hyper-parameters of the method (e.g. ``sh_degree=1``).

    Returns:
        A :class:`FitResult` with the Gaussians, the metrics and the written paths.

    Raises:
        ValueError: unknown method or hyper-parameter, bad ``steps``, ``resume``
            without a checkpoint, or a checkpoint of another method.
        FileNotFoundError: a scene path that does not exist.
    """
    steps = check_int("steps", steps, 1)
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, 1)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            return fit(scene, method, steps, out_dir, resume, backend, seed, progress, should_stop, eval_every,
                       checkpoint_every, show_progress, gaussians, None, device=device, random_init=random_init,
                       **method_overrides)
        finally:
            torch.set_num_threads(previous_threads)
    eval_every = check_int("eval_every", eval_every, 0)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 0)
    seed = check_int("seed", seed, 0)
    if random_init not in RANDOM_INITS:
        raise ValueError(f"random_init must be one of {RANDOM_INITS}, got {random_init!r}")
    if isinstance(method, str):
        method = get_method(method, **method_overrides)
    elif isinstance(method, Method):
        if method_overrides:
            raise ValueError(f"hyper-parameter overrides {sorted(method_overrides)} need a method name, not an instance")
    else:
        raise TypeError(f"method must be a name or a Method instance, got {type(method).__name__}")
    scene = _resolve_scene(scene)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT if out is not None else None
    if resume and (ckpt_path is None or not ckpt_path.is_file()):
        raise ValueError(f"resume=True needs an existing checkpoint, none at {ckpt_path}")

    seed_everything(seed)
    device = resolve_device(device, backend)

    train_ids, test_ids = list(scene.train_ids), list(scene.test_ids)
    eval_ids = test_ids if test_ids else train_ids[:1]
    train_images = scene.images(train_ids).to(device)
    index_of = {cid: i for i, cid in enumerate(train_ids)}
    eval_images = scene.images(eval_ids).to(device)
    stride = max(1, math.ceil(len(eval_ids) / EVAL_MAX_VIEWS))
    quick_ids, quick_images = eval_ids[::stride], eval_images[::stride]
    extent = float(scene.extent)
    bg_fixed = _background(scene, device)

    start_step, curve, train_seconds, init_record = 0, [], 0.0, None
    if resume:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["method"] != method.name:
            raise ValueError(f"checkpoint {ckpt_path} was written by method {ckpt['method']!r}, not {method.name!r}")
        gaussians = Gaussians.from_state_dict(ckpt["gaussians"]).to(device)
        state = MethodState()
        state.load_state_dict(ckpt["method_state"])
        optimizers = _make_optimizers(method, gaussians, state)
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        start_step, curve, train_seconds = ckpt["step"], ckpt["curve"], ckpt["train_seconds"]
        init_record = ckpt.get("init")
        _set_rng_state(ckpt["rng"])
    else:
        if gaussians is None:
            gaussians, report = initial_gaussians(scene, method.sh_degree, NUM_RANDOM_POINTS, seed, random_init,
                                                  cache_dir=out, progress=tqdm.write if show_progress else None)
            init_record = report.to_dict()
        elif not isinstance(gaussians, Gaussians):
            raise TypeError(f"gaussians must be Gaussians or None, got {type(gaussians).__name__}")
        gaussians = gaussians.to(device)
        if gaussians.sh_degree < method.sh_degree:
            raise ValueError(f"gaussians store SH degree {gaussians.sh_degree} < method sh_degree {method.sh_degree}")
        state = method.init(scene, gaussians)
        optimizers = _make_optimizers(method, gaussians, state)

    def checkpoint(step: int) -> None:
        if ckpt_path is None:
            return
        _save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "steps": steps,
                "method": method.name,
                "hyperparameters": method.hyperparameters(),
                "gaussians": gaussians.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "method_state": state.state_dict(),
                "rng": _rng_state(),
                "curve": curve,
                "train_seconds": train_seconds,
                "init": init_record,
            },
        )

    if start_step == 0:  # the starting point of the PSNR curve
        init_psnr, _, _ = evaluate(method, scene, gaussians, state, quick_ids, quick_images,
                                   method.active_sh_degree(0), backend, with_ssim=False)
        curve.append({"step": 0, "seconds": 0.0, "psnr": init_psnr, "num_gaussians": gaussians.num_gaussians})
    last_loss, last_psnr = float("nan"), curve[-1]["psnr"]
    bar = tqdm(total=steps, initial=start_step, disable=not show_progress, desc=f"fit {method.name}", unit="step")
    stopped = False
    step = start_step
    try:
        while step < steps:
            if should_stop is not None and should_stop():
                stopped = True
                break
            t0 = time.perf_counter()
            cid = _camera_order(train_ids, step, seed)
            if method.random_background:
                background = torch.rand(1, 3, device=device)
            else:
                background = bg_fixed
            ctx = StepContext(
                step=step, total_steps=steps, scene=scene, gaussians=gaussians, optimizers=optimizers,
                state=state, camera_ids=[cid], viewmats=scene.cameras.viewmats[[cid]].to(device),
                Ks=scene.cameras.Ks[[cid]].to(device), width=scene.cameras.width, height=scene.cameras.height,
                gt_images=train_images[index_of[cid]][None], background=background,
                sh_degree=method.active_sh_degree(step), extent=extent,
            )
            with finite_checks(False):  # evaluations scan for NaN/inf; each step checks its loss below
                ctx.render, ctx.alphas, ctx.meta = _rasterize(method, ctx, backend)
            method.step_pre_backward(ctx)
            loss = method.loss(ctx)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at step {step}")
            loss.backward()
            method.step_post_backward(ctx)
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            step += 1
            train_seconds += time.perf_counter() - t0
            last_loss = float(loss.detach())

            evaluated = eval_every and step % eval_every == 0 and step < steps
            if evaluated:
                last_psnr, _, _ = evaluate(
                    method, scene, gaussians, state, quick_ids, quick_images,
                    method.active_sh_degree(step), backend, with_ssim=False,
                )
                curve.append(
                    {"step": step, "seconds": round(train_seconds, 3), "psnr": last_psnr,
                     "num_gaussians": gaussians.num_gaussians}
                )
            bar.update(1)
            if step % LOG_EVERY == 0 or evaluated or step == steps:
                bar.set_postfix(loss=f"{last_loss:.4f}", psnr="-" if last_psnr is None else f"{last_psnr:.2f}",
                                n=gaussians.num_gaussians)
                if progress is not None:
                    progress(FitProgress(step, steps, last_loss, last_psnr, gaussians.num_gaussians, train_seconds))
            if checkpoint_every and step % checkpoint_every == 0 and step < steps:
                checkpoint(step)
    finally:
        bar.close()

    final_sh = method.active_sh_degree(max(step - 1, 0))
    method.prepare_evaluation(scene, gaussians, state, eval_ids, eval_images, final_sh, backend)
    final_psnr, final_ssim, renders = evaluate(
        method, scene, gaussians, state, eval_ids, eval_images, final_sh, backend
    )
    if not curve or curve[-1]["step"] != step:
        curve.append({"step": step, "seconds": round(train_seconds, 3),
                      "psnr": float(np.mean([float(psnr_fn(renders[i], eval_images[i]))
                                             for i in range(0, len(eval_ids), stride)])),
                      "num_gaussians": gaussians.num_gaussians})
    metrics = {
        "method": method.name,
        "steps": step,
        "steps_requested": steps,
        "stopped_early": stopped,
        "psnr": final_psnr,
        "ssim": final_ssim,
        "num_gaussians": gaussians.num_gaussians,
        "train_seconds": round(train_seconds, 3),
        "eval_views": eval_ids,
        "eval_split": "test" if test_ids else "train",
        "width": scene.cameras.width,
        "height": scene.cameras.height,
        "backend": backend,
        "seed": seed,
        "hyperparameters": method.hyperparameters(),
        "init": init_record,
        "curve": curve,
    }
    if progress is not None:
        progress(FitProgress(step, steps, last_loss, final_psnr, gaussians.num_gaussians, train_seconds))

    paths: dict[str, Path] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint(step)
        paths["checkpoint"] = ckpt_path
        paths["ply"] = method.export_ply(gaussians, out / "point_cloud.ply")
        if BACKGROUND_KEY in state.params:  # a learned environment: renders of the PLY draw it too
            paths["environment"] = save_environment(out / ENVIRONMENT_FILE, state.params[BACKGROUND_KEY])
        render_dir = out / "renders"
        for i, cid in enumerate(eval_ids):
            _write_png(render_dir / f"{cid:04d}.png", torch.cat([renders[i], eval_images[i]], dim=1))
        paths["renders"] = render_dir
        paths["metrics"] = out / "metrics.json"
        write_bytes_atomic(paths["metrics"], (json.dumps(metrics, indent=2) + "\n").encode())
    return FitResult(gaussians=gaussians.detached(), metrics=metrics, paths=paths, state=state)
