"""The public verbs of splatops: what the ``splatops`` CLI and the browser app both call.

Each verb is called by exactly one CLI subcommand (``splatops/commands/``) and,
where the app offers it, by one app callback (``splatops/app/``), so the two
front ends cannot drift apart. A verb takes plain values (paths, names,
numbers), checks them, runs the library, writes its files atomically and
returns a result object; it never prints and never parses command lines.

=====================  ==============================  ===========================
verb                   CLI                             app callback
=====================  ==============================  ===========================
:func:`fit`            ``splatops fit``                Splat tab, Fit
:func:`fit_images`     ``splatops fit --images``       Splat tab, Fit (photos)
:func:`render`         ``splatops render``             -
:func:`render_demo`    ``splatops render-demo``        -
:func:`simulate`       ``splatops simulate``           -
:func:`simulate_preview` ``splatops preview``          Simulate tab, Simulate
:func:`simulate_splats`  ``splatops simulate --ply``     Simulate tab, Simulate splats
:func:`train`          ``splatops train``              -
:func:`rollout`        ``splatops rollout``            -
:func:`forwardgnn`     ``splatops graph forwardgnn``   Graphs tab, Train
:func:`forwardgnn_large` ``splatops graph large``      Graphs tab, Train large
:func:`cgs`            ``splatops graph cgs``          -
:func:`cgs_demo`       ``splatops graph cgs-demo``     Graphs tab, Solve
:func:`pose_train`     ``splatops pose train``         -
:func:`pose_estimate`  ``splatops pose estimate``      -
=====================  ==============================  ===========================

:func:`open_scene` is the one way both front ends turn a scene argument into a
:class:`~splat.io.scene.Scene`; it is a shared step, not a verb.

Adding a verb:

1. Write it here, in its section, with keyword arguments, a Google-style
   docstring and a result type; import the library lazily inside it so that
   ``import splatops.api`` stays cheap. Add its name to ``__all__`` and
   ``VERBS``.
2. Add ``splatops/commands/<name>.py`` (``add_parser`` and ``run``) whose
   ``run`` calls only this verb, and, if the app offers it, one callback in a
   tab of ``splatops/app/`` that calls only this verb.
3. ``tests/test_api_verbs.py`` checks that every command and every app callback
   calls exactly one verb; add a test of the verb itself beside it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from splat.io.scene import Scene
    from splat.methods.fit import FitProgress, FitResult

__all__ = [
    "VERBS",
    "open_scene",
    "fit",
    "fit_images",
    "render",
    "RenderResult",
    "render_demo",
    "simulate",
    "SimulatedDataset",
    "simulate_preview",
    "SimulationPreview",
    "simulate_splats",
    "SplatSimulation",
    "train",
    "rollout",
    "forwardgnn",
    "forwardgnn_large",
    "cgs",
    "cgs_demo",
    "CGSDemo",
    "pose_train",
    "pose_estimate",
]

#: The public verbs; the CLI and the app call nothing else of the library's top level.
VERBS = ("fit", "fit_images", "render", "render_demo", "simulate", "simulate_preview", "simulate_splats", "train",
         "rollout", "forwardgnn", "forwardgnn_large", "cgs", "cgs_demo", "pose_train", "pose_estimate")

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- scenes


def open_scene(data: PathLike | Scene | None = None, downscale: int = 1) -> Scene:
    """The scene a verb works on: the bundled one, a folder or file, or a loaded scene.

    Args:
        data: None for the bundled example scene, a COLMAP / nerfstudio / Blender
            folder (or ``transforms.json``), or a :class:`~splat.io.scene.Scene`.
        downscale: divide the image size by this integer factor (1: as stored).

    Raises:
        FileNotFoundError: ``data`` names a path that does not exist.
        ValueError: the scene cannot be read, or ``downscale`` < 1.
    """
    from splat.io import load_bundled_scene, load_scene
    from splat.io.scene import Scene
    from splat.utils.checks import check_int

    downscale = check_int("downscale", downscale, minimum=1)
    if data is None:
        scene = load_bundled_scene()
    elif isinstance(data, Scene):
        scene = data
    elif isinstance(data, (str, os.PathLike)):
        if not Path(data).exists():
            raise FileNotFoundError(f"scene path not found: {data}")
        scene = load_scene(data)
    else:
        raise TypeError(f"data must be None, a path or a Scene, got {type(data).__name__}")
    return scene.downscaled(downscale) if downscale != 1 else scene


# --------------------------------------------------------------------------- splatting


def fit(
    data: PathLike | Scene | None = None,
    *,
    out_dir: PathLike | None,
    method: str = "3dgs",
    steps: int = 7000,
    resume: bool = False,
    backend: str = "auto",
    downscale: int = 1,
    seed: int = 0,
    eval_every: int = 500,
    checkpoint_every: int = 1000,
    num_threads: int | None = None,
    orbit_video: bool = False,
    progress: Callable[[FitProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    show_progress: bool = True,
    random_init: str = "auto",
    **method_overrides: Any,
) -> FitResult:
    """Fits Gaussians to a scene with a registered method (``splatops fit``, the Splat tab).

    Args:
        data: scene, see :func:`open_scene` (None: the bundled scene).
        out_dir: folder for ``point_cloud.ply``, ``metrics.json``, ``renders/``,
            ``checkpoint.pt`` (and ``orbit.mp4``); None writes nothing.
        method: a registered method name (:func:`splat.methods.available_methods`).
        steps: optimisation steps.
        resume: continue from ``out_dir/checkpoint.pt``.
        backend: rasterization backend (``auto``, ``cpu``, ``torch``, ``gsplat``).
        downscale: image downscale factor.
        seed: seed of every RNG and of the view order.
        eval_every: steps between held-out evaluations.
        checkpoint_every: steps between checkpoints.
        num_threads: torch CPU threads during the fit (None: leave as is).
        orbit_video: also render ``out_dir/orbit.mp4`` around the scene
            (``result.paths["orbit"]``); needs ``out_dir``.
        progress: called with a :class:`~splat.methods.fit.FitProgress` every few steps.
        should_stop: polled between steps; True ends the fit early (results are kept).
        show_progress: show a progress bar on the terminal.
        random_init: start of a scene without points: ``"auto"`` (points
            triangulated from the training views with the known poses, else
            random in the views), ``"sfm"``, ``"views"`` or ``"box"``
            (:func:`splat.methods.fit.init_gaussians`).
        **method_overrides: hyper-parameters of the method, e.g. ``sh_degree=1``.

    Returns:
        The :class:`~splat.methods.fit.FitResult`.
    """
    from splat.methods.fit import fit as fit_scene
    from splat.render import render_orbit

    if orbit_video and out_dir is None:
        raise ValueError("orbit_video=True needs an out_dir to write orbit.mp4 into")
    scene = open_scene(data, downscale)
    result = fit_scene(scene, method=method, steps=steps, out_dir=out_dir, resume=resume,
                       backend=backend, seed=seed, progress=progress, should_stop=should_stop,
                       eval_every=eval_every, checkpoint_every=checkpoint_every,
                       show_progress=show_progress, num_threads=num_threads, random_init=random_init,
                       **method_overrides)
    if orbit_video:
        result.paths["orbit"] = render_orbit(result.gaussians, scene, Path(out_dir) / "orbit.mp4",
                                             backend=backend, show_progress=show_progress)
    return result


def fit_images(
    images: PathLike | list[PathLike],
    *,
    out_dir: PathLike,
    method: str = "instantsplat",
    steps: int = 1000,
    frames: int | None = None,
    test_every: int = 0,
    max_size: int | None = None,
    resume: bool = False,
    backend: str = "auto",
    seed: int = 0,
    num_threads: int | None = None,
    orbit_video: bool = False,
    progress: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    show_progress: bool = True,
    **method_overrides: Any,
):
    """Fits splats to plain photos or a video: registration, joint pose and Gaussian fit, a scene folder
    (``splatops fit --images``).

    Args:
        images: a folder of images, a list of image files, a ``.zip`` of images, or a video.
        out_dir: output folder (``point_cloud.ply``, ``transforms.json``, ``images/``,
            ``sparse/0``, ``metrics.json``); it loads as a scene afterwards.
        method: a registered method (``instantsplat`` also refines the cameras).
        steps: optimisation steps.
        frames: frames sampled from a video (default: 24).
        test_every: hold out every n-th registered view for evaluation (0: none).
        max_size: downscale so that the longer image side is at most this.
        resume: continue a stopped run in ``out_dir``.
        backend: rasterization backend.
        seed: seed of the fit.
        num_threads: torch CPU threads during the fit (None: leave as is).
        orbit_video: also render ``out_dir/orbit.mp4`` around the fitted scene
            (``result.paths["orbit"]``).
        progress: called with a :class:`~splat.posefree.pipeline.PipelineProgress` through the stages.
        should_stop: polled between fit steps; True ends the fit early (results are kept).
        show_progress: show the fit's progress bar on the terminal.
        **method_overrides: hyper-parameters of the method.

    Returns:
        The :class:`~splat.posefree.pipeline.PoseFreeResult`.
    """
    from splat.posefree.pipeline import fit_images as run_pipeline
    from splat.render import render_orbit

    result = run_pipeline(images, out_dir, method=method, steps=steps, frames=frames, test_every=test_every,
                          max_size=max_size, progress=progress, should_stop=should_stop, resume=resume,
                          backend=backend, seed=seed, num_threads=num_threads, show_progress=show_progress,
                          **method_overrides)
    if orbit_video:
        result.paths["orbit"] = render_orbit(result.gaussians, result.scene, Path(out_dir) / "orbit.mp4",
                                             backend=backend, show_progress=show_progress)
    return result


@dataclass
class RenderResult:
    """What :func:`render` wrote.

    Attributes:
        views: one PNG per scene view, named after its source image.
        video: the orbit video, or None when not asked for.
    """

    views: list[Path]
    video: Path | None = None


def render(
    ply: PathLike,
    data: PathLike | Scene | None = None,
    *,
    out_dir: PathLike,
    layout: str = "render",
    downscale: int = 1,
    video: bool = True,
    frames: int = 60,
    fps: int = 20,
    backend: str = "auto",
    show_progress: bool = True,
    environment: PathLike | bool = True,
) -> RenderResult:
    """Renders fitted Gaussians at a scene's views and along an orbit (``splatops render``).

    Each view is written to ``out_dir/views/<image stem>.png``, named after the
    scene image it reproduces (``images/frame_0003.png`` -> ``frame_0003.png``),
    so evaluation tools can pair renders with ground truth.

    Args:
        ply: a 3DGS PLY file (e.g. ``point_cloud.ply`` from :func:`fit`).
        data: scene whose cameras are rendered, see :func:`open_scene`.
        out_dir: output folder (``views/`` and ``orbit.mp4`` inside).
        layout: ``"render"`` (the render alone) or ``"side-by-side"`` (render | ground truth).
        downscale: image downscale factor.
        video: also write ``orbit.mp4``.
        frames: orbit video frames.
        fps: orbit video frames per second.
        backend: rasterization backend.
        show_progress: show progress bars.
        environment: the learned environment drawn where the Gaussians leave a
            pixel uncovered: ``True`` uses ``environment.json`` beside the PLY
            when a fit wrote one (else the scene's background), a path names
            the file, ``False`` draws the scene's background.
    """
    from splat.io.ply import load_ply
    from splat.methods.background import ENVIRONMENT_FILE, load_environment
    from splat.render import LAYOUTS, render_orbit, render_views

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    if not Path(ply).is_file():
        raise FileNotFoundError(f"PLY file not found: {ply}")
    env_path = None
    if environment is True:
        beside = Path(ply).parent / ENVIRONMENT_FILE
        env_path = beside if beside.is_file() else None
    elif environment is not False:
        env_path = Path(environment)
        if not env_path.is_file():
            raise FileNotFoundError(f"environment file not found: {env_path.name}")
    env = load_environment(env_path) if env_path is not None else None
    scene = open_scene(data, downscale)
    gaussians = load_ply(ply)
    out_dir = Path(out_dir)
    views = render_views(gaussians, scene, out_dir / "views", backend=backend, layout=layout,
                         show_progress=show_progress, environment=env)
    path = None
    if video:
        path = render_orbit(gaussians, scene, out_dir / "orbit.mp4", num_frames=frames, fps=fps,
                            backend=backend, show_progress=show_progress, environment=env)
    return RenderResult(views=views, video=path)


def render_demo(out: PathLike, width: int = 320, height: int = 240, backend: str = "auto") -> Path:
    """Renders the built-in demo Gaussians to a PNG (``splatops render-demo``); returns the path."""
    from splat.core.demo import render_demo_png

    return render_demo_png(out, width, height, backend=backend)


# --------------------------------------------------------------------------- simulation


@dataclass
class SimulatedDataset:
    """A dataset folder written by :func:`simulate`.

    Attributes:
        path: the dataset folder (``metadata.json``, ``train/valid/test.npz``).
        splits: trajectories per split, e.g. ``{"train": 8, "valid": 1, "test": 1}``.
        frames: frames per trajectory (initial one included).
        dt: seconds between frames.
    """

    path: Path
    splits: dict[str, int]
    frames: int
    dt: float


def simulate(
    material: str,
    scene: str,
    *,
    out_dir: PathLike,
    dim: int = 2,
    trajectories: int = 10,
    particles: int = 2000,
    frames: int = 100,
    seed: int = 0,
    resume: bool = False,
    show_progress: bool = True,
) -> SimulatedDataset:
    """Simulates randomised MPM trajectories into a GNS-layout dataset (``splatops simulate``).

    Args:
        material: a name of :data:`operators.mpm.MATERIALS`.
        scene: a name of :data:`operators.scenes.SCENES`.
        out_dir: dataset folder to create (must not exist unless ``resume``).
        dim: 2 or 3.
        trajectories: number of trajectories (>= 3: train, valid and test get one at least).
        particles: particles per trajectory.
        frames: frames per trajectory after the initial one.
        seed: base seed (trajectory ``i`` uses ``seed * 1000 + i``).
        resume: continue an interrupted generation into the same ``out_dir``.
        show_progress: show a progress bar.

    Raises:
        FileExistsError: ``out_dir`` exists and ``resume`` is False.
    """
    from operators.datasets import generate_dataset, load_dataset

    path = generate_dataset(material, scene, dim, trajectories, particles, frames, seed, out_dir,
                            progress=show_progress, resume=resume)
    ds = load_dataset(path)
    return SimulatedDataset(path=Path(path),
                            splits={"train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test)},
                            frames=int(ds.metadata["sequence_length"]) + 1, dt=float(ds.dt))


@dataclass
class SimulationPreview:
    """MPM ground truth beside the learned (GIOROM) preview, from :func:`simulate_preview`.

    Attributes:
        material, scene: what was simulated.
        truth: the MPM :class:`~operators.mpm.simulate.Trajectory`.
        learned: :func:`operators.rollout.preview`'s dict (``positions``, ``sparse``,
            ``model``), or None when no bundled checkpoint fits (see ``note``).
        mpm_ms_per_frame: MPM wall-clock time per frame.
        learned_ms_per_frame: the learned simulator's time per frame (None without one).
        mse: position MSE of the learned preview against MPM over the predicted frames.
        note: why there is no learned preview ("" when there is one).
        animation: the GIF written into ``out_dir`` (None without ``out_dir``).
    """

    material: str
    scene: str
    truth: Any
    learned: dict | None
    mpm_ms_per_frame: float
    learned_ms_per_frame: float | None = None
    mse: float | None = None
    note: str = ""
    animation: Path | None = None
    rows: list[list[str]] = field(default_factory=list)


def simulate_preview(
    material: str = "water",
    scene: str = "dam_break",
    *,
    particles: int = 1000,
    frames: int = 60,
    dim: int = 2,
    seed: int = 0,
    out_dir: PathLike | None = None,
) -> SimulationPreview:
    """Runs MPM, then the bundled learned simulator from the same first frames (``splatops preview``,
    the Simulate tab).

    The learned simulator starts from MPM's first six frames and predicts the
    rest; both are timed per frame. Materials without a bundled checkpoint get
    the MPM run and a note instead of a preview.

    Args:
        material: a name of :data:`operators.mpm.MATERIALS`.
        scene: a name of :data:`operators.scenes.SCENES`.
        particles: particles to simulate.
        frames: frames after the initial one (> 6).
        dim: 2 or 3.
        seed: seed of the particle sampling.
        out_dir: write ``simulation.gif`` (MPM | learned | sparse graph) here.
    """
    import numpy as np

    from operators.features import INPUT_SEQUENCE_LENGTH as window
    from operators.mpm import simulate as mpm_simulate
    from operators.rollout import preview
    from splat.utils.checks import check_int

    frames = check_int("frames", frames, minimum=window + 1)
    truth = mpm_simulate(material, scene, dim=dim, n_particles=particles, n_frames=frames, seed=seed)
    gt = truth.positions.numpy()
    result = SimulationPreview(material=material, scene=scene, truth=truth, learned=None,
                               mpm_ms_per_frame=1000 * float(np.mean(truth.frame_seconds)))
    result.rows.append(["MPM (ground truth)", f"{particles}", f"{result.mpm_ms_per_frame:.1f}", "-"])
    panels = [{"title": f"MPM {material}", "positions": gt, "color": "#1f77b4"}]
    n_steps = len(gt) - window
    try:
        start = time.perf_counter()
        learned = preview(material, dim, gt[:window], n_steps=n_steps)
        seconds = time.perf_counter() - start
    except ValueError as exc:  # no bundled checkpoint for this material or dimension
        result.note = str(exc)
    else:
        dense = learned["positions"]
        result.learned = learned
        result.learned_ms_per_frame = 1000 * seconds / n_steps
        result.mse = float(np.mean((dense[window:] - gt[window:len(dense)]) ** 2))
        result.rows.append([f"GIOROM ({learned['model']})", f"{particles}",
                            f"{result.learned_ms_per_frame:.1f}", f"{result.mse:.2e}"])
        panels.append({"title": "GIOROM dense reconstruction", "positions": dense, "color": "#d62728"})
        if learned.get("sparse") is not None:
            panels.append({"title": f"sparse graph ({learned['sparse'].shape[1]} points)",
                           "positions": learned["sparse"], "color": "#2ca02c", "size": 6})
    if out_dir is not None:
        from splatops.plots import particle_animation

        result.animation = particle_animation(panels, truth.bounds, Path(out_dir) / "simulation.gif")
    return result


@dataclass
class SplatSimulation:
    """A splat object simulated by :func:`simulate_splats`.

    Attributes:
        material: the simulated material.
        gaussians: Gaussians simulated (the selection).
        particles: MPM particles filling the object.
        mpm_ms_per_frame: MPM time per frame (simulation only).
        deform_ms_per_frame: time per frame to move and deform every Gaussian.
        preview_ms_per_frame: GIOROM time per frame (sparse step + dense query), or None.
        sparse_points: GIOROM's sparse graph size, or None.
        rmse: mean RMSE of the preview's Gaussian centres against MPM, as a
            fraction of the object size, or None.
        files: written files by role (``splats``, ``video``, ``preview_splats``,
            ``preview_video``, ``summary``); empty without ``out_dir``.
        summary: everything ``summary.json`` holds.
    """

    material: str
    gaussians: int
    particles: int
    mpm_ms_per_frame: float
    deform_ms_per_frame: float
    preview_ms_per_frame: float | None = None
    sparse_points: int | None = None
    rmse: float | None = None
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def simulate_splats(
    ply: PathLike,
    material: str = "jelly",
    *,
    out_dir: PathLike | None,
    frames: int = 100,
    preview: str | None = None,
    box: Any = None,
    spacing: float = 0.01,
    max_particles: int = 20000,
    up: str = "+y",
    checkpoint: PathLike | None = None,
    preview_step_spacing: float | None = None,
    video: bool = True,
    width: int = 256,
    height: int = 256,
    show_progress: bool = True,
) -> SplatSimulation:
    """Drops a splat object with MPM, optionally beside the GIOROM preview (``splatops simulate
    --ply``, the Simulate tab).

    The selected Gaussians fill a solid with particles, MPM moves the particles,
    and every Gaussian follows: its centre by the local motion, its covariance
    by the local deformation gradient (``Σ' = F Σ Fᵀ``).

    Args:
        ply: a 3DGS PLY (a fitted model or a bundled object).
        material: an MPM material (``jelly``, ``sand``, ``plasticine``, ...).
        out_dir: folder for ``splats.npz``, ``mpm.mp4`` (``preview_splats.npz``,
            ``preview.mp4``) and ``summary.json``, all written at the end; None writes nothing.
        frames: frames after the initial one (10 ms each).
        preview: ``"giorom"`` to also run the learned preview (bundled 3-D checkpoint).
        box: world box ``[[min xyz], [max xyz]]`` selecting the Gaussians (None: all).
        spacing: particle spacing of MPM's fill in simulation-box units (the object is 0.25
            long; the preview steps at its trained density, 0.02, except on fine fills, see
            ``preview_step_spacing``).
        max_particles: particle budget (a larger fill is an error).
        up: the model's up axis (``+y``, ``-y``, ``+z``, ...).
        checkpoint: a 3-D GIOROM checkpoint instead of the bundled one.
        preview_step_spacing: spacing of the points the preview moves (default:
            :func:`operators.splat_physics.simulate.default_step_spacing`: the trained 0.02, or
            0.0125 for jelly and 0.01 for sand where that is at most an eighth of the particles,
            i.e. fills of 0.00625 / 0.005 and finer; finer is closer to MPM and slower).
        video: render the videos.
        width, height: video size in pixels.
        show_progress: show progress bars.

    Raises:
        ValueError: empty selection, a fill over the budget, a checkpoint for
            another material or dimension; nothing is written.
    """
    from operators.splat_physics.pipeline import run_splat_physics

    run = run_splat_physics(ply, material, out_dir, frames=frames, preview=preview, box=box,
                            spacing=spacing, max_particles=max_particles, up=up, checkpoint=checkpoint,
                            preview_step_spacing=preview_step_spacing, video=video, width=width, height=height, progress=show_progress)
    s = run.summary
    return SplatSimulation(material=material, gaussians=s["gaussians_simulated"], particles=s["particles"],
                           mpm_ms_per_frame=s["mpm_ms_per_frame"], deform_ms_per_frame=s["deform_ms_per_frame"],
                           preview_ms_per_frame=s.get("preview_ms_per_frame"),
                           sparse_points=(run.preview.info["sparse_points"] if run.preview else None),
                           rmse=s.get("rmse_fraction_mean"), files=run.files, summary=s)


def train(
    model: str,
    data: PathLike,
    *,
    out_dir: PathLike,
    steps: int = 2000,
    resume: bool = False,
    batch_size: int = 2,
    lr: float = 1e-3,
    show_progress: bool = True,
    **overrides: Any,
):
    """Trains a GIOROM or GNS simulator on a GNS-layout dataset (``splatops train``).

    Args:
        model: ``"giorom"`` or ``"gns"``.
        data: dataset folder (``metadata.json``, ``train.npz``).
        out_dir: folder for ``checkpoint.pt`` (written periodically and at the end).
        steps: total optimisation steps (a resumed run continues up to it).
        resume: continue from ``out_dir/checkpoint.pt``.
        batch_size: trajectories windows per step.
        lr: peak learning rate.
        show_progress: show a progress bar with the loss.
        **overrides: other :class:`operators.train.TrainConfig` fields.

    Returns:
        :class:`operators.train.TrainResult`.
    """
    from operators.train import train as train_simulator

    return train_simulator(model, data, out_dir, steps, resume=resume, progress=show_progress,
                           batch_size=batch_size, lr=lr, **overrides)


def rollout(
    model: PathLike,
    data: PathLike,
    *,
    split: str = "test",
    steps: int | None = None,
    out_dir: PathLike | None = None,
    max_trajectories: int | None = None,
    show_progress: bool = True,
):
    """Rolls a trained simulator out on a dataset split and measures MSE (``splatops rollout``).

    Args:
        model: a checkpoint file from :func:`train` (or a bundled one).
        data: dataset folder.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        steps: predicted frames per trajectory (None: to the end).
        out_dir: write ``rollout.npz`` and ``metrics.json`` here.
        max_trajectories: roll out at most this many trajectories.
        show_progress: show a progress bar.

    Returns:
        :class:`operators.rollout.RolloutResult`.
    """
    from operators.rollout import rollout as rollout_simulator

    return rollout_simulator(model, data, split=split, n_steps=steps, out_dir=out_dir,
                             max_trajectories=max_trajectories, progress=show_progress)


# --------------------------------------------------------------------------- graphs


def forwardgnn(
    dataset: str,
    variant: str = "sf",
    *,
    conv: str = "gcn",
    task: str = "node",
    seeds: int = 1,
    epochs: int | None = None,
    show_progress: bool = False,
) -> dict:
    """Trains a GNN layer by layer (or end to end, ``bp``) on a bundled graph (``splatops graph
    forwardgnn``, the Graphs tab).

    Args:
        dataset: a name from :func:`graph.datasets.available_datasets`.
        variant: ``bp``, ``ff-label``, ``ff-vn``, ``sf`` or ``sf-topdown``.
        conv: ``gcn``, ``sage`` or ``gat``.
        task: ``node`` (classification) or ``link`` (prediction).
        seeds: runs with seeds ``0 .. seeds-1``.
        epochs: epochs per layer (None: the default of :class:`graph.forwardgnn.ForwardGNNConfig`).
        show_progress: show progress bars.

    Returns:
        The summary dict (``dataset``, ``variant``, ``metric``, ``mean``, ``std``,
        ``peak_saved_mb``, ``train_seconds``, ``runs``, ...).
    """
    from graph.forwardgnn import ForwardGNNConfig, run_forwardgnn

    config = ForwardGNNConfig() if epochs is None else ForwardGNNConfig(epochs=epochs)
    return run_forwardgnn(dataset, variant, conv, task, seeds, config, progress=show_progress)


def forwardgnn_large(
    num_nodes: int,
    variant: str = "sf",
    *,
    homophily: float = 0.6,
    avg_degree: float = 10.0,
    hidden: tuple[int, ...] = (64, 64, 64),
    epochs: int = 10,
    memory_cap_mb: float | None = None,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Trains on a generated graph of ``num_nodes`` nodes in a subprocess under a memory cap
    (``splatops graph large``, the Graphs tab).

    The graph is a seeded stochastic block model (:mod:`graph.datasets.synthetic`);
    ``sf`` trains layer-local (one layer's activations at a time), ``bp`` end to end
    on the full graph, ``bp-sampled`` end to end on neighbour-sampled mini-batches.

    Args:
        num_nodes: nodes of the generated graph (>= 100).
        variant: ``sf``, ``bp`` or ``bp-sampled``.
        homophily: fraction of edges inside a class.
        avg_degree: mean degree.
        hidden: GCN layer widths.
        epochs: epochs per layer (``sf``) or in total (``bp``).
        memory_cap_mb: budget for the graph and the training in MiB (None: no cap).
        seed: seed of the graph and the weights.
        progress: called as ``progress(fraction, description)``.

    Returns:
        :func:`graph.forwardgnn.memcap.run_capped`'s dict (``test``, ``peak_rss_mb``,
        ``peak_saved_mb``, ``train_seconds``, ...).

    Raises:
        graph.forwardgnn.memcap.GraphMemoryError: (a ``MemoryError``) the run does not fit the cap.
    """
    from graph.forwardgnn.memcap import require_fit, run_capped

    spec = dict(num_nodes=num_nodes, variant=variant, homophily=homophily,
                avg_degree=avg_degree, hidden=list(hidden), epochs=epochs, seed=seed)
    return require_fit(run_capped(spec, memory_cap_mb, progress=progress))


def cgs(task: str, *, seed: int = 0, quick: bool = False) -> list[dict]:
    """Runs a Convergent Graph Solver experiment against its baselines (``splatops graph cgs``).

    Args:
        task: ``porous`` (pressure in pore networks), ``mdp`` (graph value
            iteration) or ``classify`` (connectome classification).
        seed: seed of data and models.
        quick: a smaller, faster run.

    Returns:
        One record (dict) per model and metric.
    """
    from graph.cgs.experiments import run

    records = run(task, seed=seed, quick=quick)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TypeError(f"graph.cgs.experiments.run must return a list of dicts, "
                        f"got {type(records).__name__}")
    return records


@dataclass
class CGSDemo:
    """A pore network solved by the bundled CGS and by SciPy, from :func:`cgs_demo`.

    Attributes:
        result: :func:`graph.cgs.demo.porous_demo`'s dict (``positions``, ``edges``,
            ``predicted``, ``exact``, ``mae``, ``iterations``, ``train_seconds``, ``train_sizes``).
        figure: the PNG written into ``out_dir`` (None without ``out_dir``).
    """

    result: dict
    figure: Path | None = None

    @property
    def summary(self) -> str:
        d = self.result
        return (f"{len(d['predicted'])} pores, {d['edges'].shape[1]} throats. Mean absolute error "
                f"{d['mae']:.4f} (pressure range 0 to 1), fixed point in {d['iterations']} "
                f"iterations; model trained in {d['train_seconds']:.1f} s on networks of "
                f"{d['train_sizes'][0]}-{d['train_sizes'][1]} pores.")


def cgs_demo(num_pores: int = 300, *, seed: int = 0, out_dir: PathLike | None = None) -> CGSDemo:
    """Solves a random pore network with the bundled CGS beside SciPy's exact solve
    (``splatops graph cgs-demo``, the Graphs tab).

    Args:
        num_pores: pores in the network (>= 10).
        seed: seed of the network.
        out_dir: write ``pressure.png`` (CGS | exact) here.
    """
    from graph.cgs.demo import porous_demo

    demo = CGSDemo(result=porous_demo(num_pores=num_pores, seed=seed))
    if out_dir is not None:
        from splatops.plots import graph_field_figure

        d = demo.result
        demo.figure = graph_field_figure(
            d["positions"][:, :2], d["edges"],
            [("CGS prediction", d["predicted"]), ("exact (SciPy sparse solve)", d["exact"])],
            Path(out_dir) / "pressure.png")
    return demo


# --------------------------------------------------------------------------- object pose (GS2Pose)


def pose_train(
    model: PathLike,
    *,
    out: PathLike | None = None,
    steps: int = 1200,
    input_size: int = 64,
    seed: int = 0,
    max_seconds: float | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    show_progress: bool = True,
) -> Path:
    """Trains the coarse Pose-Net of an object model (``splatops pose train``).

    Args:
        model: the object model, a 3DGS PLY in the object's frame.
        out: checkpoint path (default: ``MODEL.posenet.pt`` beside the model).
        steps: training steps.
        input_size: network input size in pixels (a multiple of 8).
        seed: seed of the renders, the augmentation and the weights.
        max_seconds: stop training after this wall time.
        progress: called with ``(step, steps, loss)`` every 20 steps.
        show_progress: show a progress bar on the terminal.

    Returns:
        The written checkpoint (it records the model's fingerprint).
    """
    from splat.pose.estimate import train_posenet

    return train_posenet(model, out, steps=steps, input_size=input_size, seed=seed, max_seconds=max_seconds,
                         progress=progress, show_progress=show_progress)


def pose_estimate(
    model: PathLike,
    image: PathLike | Any,
    intrinsics: str | Any,
    *,
    depth: PathLike | Any | None = None,
    mask: PathLike | Any | None = None,
    init: PathLike | Any | None = None,
    posenet: PathLike | None = None,
    out: PathLike | None = None,
    max_iters: int | None = None,
    icp: bool = False,
):
    """Estimates an object's 6D pose in an image: Pose-Net + PnP if no ``init``, then the GS-Refiner
    (``splatops pose estimate``).

    Args:
        model: the object model (3DGS PLY).
        image: the image (file or ``[H, W, 3]`` array).
        intrinsics: ``"fx,fy,cx,cy"`` in pixels (or four numbers, or a 3x3 matrix).
        depth: optional depth image (``.npy`` in model units or 16-bit PNG in millimetres).
        mask: optional object mask (non-zero = object).
        init: initial pose: a pose JSON with ``"object_to_camera"`` (OpenCV) or a 4x4.
        posenet: Pose-Net checkpoint (default: ``MODEL.posenet.pt`` when there).
        out: pose JSON to write; ``<stem>_overlay.png`` is written beside it.
        max_iters: refinement iteration cap (default: the refiner's).
        icp: correct the translation by point-to-plane ICP on ``depth``.

    Returns:
        The :class:`~splat.pose.estimate.PoseResult`.
    """
    from splat.pose.estimate import estimate_pose
    from splat.pose.refiner import RefinerConfig

    config = RefinerConfig(icp=icp) if max_iters is None else RefinerConfig(
        max_iters=max_iters, min_iters=min(max_iters, RefinerConfig.min_iters), icp=icp)
    return estimate_pose(model, image, intrinsics, depth=depth, mask=mask, init=init, posenet=posenet,
                         out=out, config=config)
