"""Physics on splats: MPM on the particles that fill a splat object, a GIOROM preview,
and the motion carried to every Gaussian (centres and covariances), rendered.

>>> from operators.splat_physics import prepare_object, simulate_object   # doctest: +SKIP
>>> obj = prepare_object(load_ply("object.ply"))                          # doctest: +SKIP
>>> sim = simulate_object(obj, "jelly", frames=100)                       # doctest: +SKIP
>>> g10 = sim.gaussians_at(10)   # the whole model at frame 10           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from operators.deformation import (InterpolationPlan, interpolate_motion, interpolation_plan,
                                   local_deformation_gradients)
from operators.splat_physics.deform import transform_covariances
from operators.splat_physics.particles import BoxFrame, fill_particles, frame_object, select_gaussians
from operators.splat_physics.shapes import BOX_WALLS, DEFAULT_SPACING
from splat.core.gaussians import Gaussians
from splat.io.atomic import atomic_path


@dataclass
class SplatObject:
    """A selection of a splat model, framed in the simulation box and filled with particles.

    Attributes:
        gaussians: the whole model (unselected Gaussians stay where they are).
        indices: Tensor,  # [S] the selected Gaussians
        frame: world <-> box map.
        particles: Tensor,  # [N, 3] box units, the volume fill
        spacing: particle spacing in box units.
        object_size: longest extent of the selection in box units.
    """

    gaussians: Gaussians
    indices: Tensor
    frame: BoxFrame
    particles: Tensor
    spacing: float
    object_size: float

    @property
    def centres_box(self) -> Tensor:
        """Selected Gaussian centres in box units,  # [S, 3] float64"""
        return self.frame.to_box(self.gaussians.means.detach()[self.indices])


def prepare_object(gaussians: Gaussians, box=None, *, spacing: float = DEFAULT_SPACING,
                   max_particles: int = 20000, object_size: float = 0.25, bottom: float = 0.15,
                   up: str = "+y", min_opacity: float = 0.05, seed: int = 0) -> SplatObject:
    """Select Gaussians, frame them in the box and fill the object's volume with particles.

    Args:
        gaussians: a fitted model.
        box: world-space selection box ``[[min xyz], [max xyz]]`` (None: all).
        spacing: particle spacing in box units (the bundled checkpoints were
            trained at the default).
        max_particles: particle budget; a fill that needs more is an error.
        object_size: the selection's longest extent in box units.
        bottom: drop height of its lowest point above the floor, box units.
        up: world axis that points up (``"+y"``, ``"-y"``, ``"+z"``, ...).
        min_opacity: fainter Gaussians are not selected.
        seed: seed of the fill jitter.

    Raises:
        ValueError: empty selection, a fill over ``max_particles``, bad box or axis.
    """
    if isinstance(max_particles, bool) or not isinstance(max_particles, int) or max_particles < 8:
        raise ValueError(f"max_particles must be an int >= 8, got {max_particles!r}")
    idx = select_gaussians(gaussians, box, min_opacity)
    means = gaussians.means.detach()[idx]
    frame = frame_object(means, up, object_size, bottom)
    centres = frame.to_box(means).float()
    scales = gaussians.scales.detach()[idx] * frame.scale
    particles = fill_particles(centres, scales, gaussians.opacities.detach()[idx], spacing,
                               max_particles, seed=seed)
    if particles.shape[0] < 8:
        raise ValueError(f"the selection fills only {particles.shape[0]} particles at spacing {spacing:g}; "
                         "use a finer spacing")
    return SplatObject(gaussians, idx, frame, particles, spacing, object_size)


@dataclass
class SplatMotion:
    """A simulated motion of a splat object, evaluable at every Gaussian and frame.

    Attributes:
        obj: the simulated object.
        engine: ``"mpm"`` or ``"giorom"``.
        points: Tensor,  # [T, P, 3] box positions of the moving points
            (all particles for MPM, the sparse graph for GIOROM)
        gradients: Tensor,  # [T, P, 3, 3] their local deformation gradients
        plan: points -> selected Gaussians.
        centres: Tensor | None,  # [T, S, 3] box centres when the engine gives
            them directly (GIOROM's dense query), else None (affine interpolation)
        ms_per_frame: wall-clock milliseconds per simulated frame (simulation only).
        transfer_ms_per_frame: milliseconds per frame to move and deform all Gaussians.
        info: engine facts (particles, sparse points, checkpoint, substeps).
    """

    obj: SplatObject
    engine: str
    points: Tensor
    gradients: Tensor
    plan: InterpolationPlan
    centres: Tensor | None
    ms_per_frame: float
    transfer_ms_per_frame: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Frames including the initial one."""
        return self.points.shape[0]

    def selected_at(self, t: int) -> tuple[Tensor, Tensor, Tensor]:
        """World means ``[S, 3]``, quats ``[S, 4]`` and activated scales ``[S, 3]`` of the
        selected Gaussians at frame ``t``."""
        if not 0 <= t < self.n_frames:
            raise ValueError(f"frame must be in [0, {self.n_frames - 1}], got {t}")
        g, idx, frame = self.obj.gaussians, self.obj.indices, self.obj.frame
        x, F = interpolate_motion(self.plan, self.points[t], self.gradients[t])
        if self.centres is not None:
            x = self.centres[t].double()
        quats, scales = transform_covariances(g.params["quats"].detach()[idx], g.scales.detach()[idx],
                                              frame.gradient_to_world(F))
        return frame.to_world(x).float(), quats, scales

    def gaussians_at(self, t: int) -> Gaussians:
        """The whole model at frame ``t`` (unselected Gaussians unchanged)."""
        means, quats, scales = self.selected_at(t)
        params = {k: v.detach().clone() for k, v in self.obj.gaussians.params.items()}
        idx = self.obj.indices
        params["means"][idx] = means
        params["quats"][idx] = quats
        params["scales"][idx] = torch.log(scales.clamp_min(1e-12))
        return Gaussians(params)


def _mpm_run(obj: SplatObject, material: str, frames: int, velocity, progress: bool):
    from tqdm.auto import tqdm

    from operators.mpm import MPMConfig, MPMSolver, make_material

    n = obj.particles.shape[0]
    vel = torch.as_tensor(np.asarray(velocity, dtype=np.float32)).reshape(1, 3).expand(n, 3).clone()
    if not torch.isfinite(vel).all():
        raise ValueError(f"velocity must be finite, got {list(velocity)}")
    config = MPMConfig()
    # the walls of the training box at every fill spacing, on a grid of two spacings a cell
    solver = MPMSolver.for_walls(make_material(material), obj.particles.clone(), vel, obj.spacing ** 3,
                                 BOX_WALLS, 2.0 * obj.spacing, config)
    substeps = solver.fit_substeps(config.frame_dt)
    xs = [solver.x.float().clone()]
    seconds = 0.0
    with torch.no_grad(), config.threads():
        for f in tqdm(range(frames), desc=f"mpm {material}", disable=not progress, leave=False):
            t0 = time.perf_counter()
            for _ in range(substeps):
                solver.substep()
            seconds += time.perf_counter() - t0
            if not solver.is_finite():
                raise ValueError(f"MPM state became NaN/Inf at frame {f + 1}")
            xs.append(solver.x.float().clone())
    info = {"particles": n, "substeps_per_frame": substeps, "n_grid": solver.n_grid,
            "material": solver.material.name}
    return torch.stack(xs), 1000 * seconds / frames, info


def simulate_object(obj: SplatObject, material: str = "jelly", frames: int = 100, *,
                    velocity=(0.0, 0.0, 0.0), progress: bool = False) -> SplatMotion:
    """MLS-MPM on the object's particles; the motion drives every selected Gaussian.

    Args:
        obj: from :func:`prepare_object`.
        material: an MPM material name (``"jelly"``, ``"sand"``, ``"plasticine"``, ...).
        frames: frames after the initial one (10 ms each).
        velocity: initial velocity ``[3]`` in box units per second.
        progress: show a progress bar.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames!r}")
    positions, ms, info = _mpm_run(obj, material, frames, velocity, progress)
    gradients = local_deformation_gradients(obj.particles, positions)
    plan = interpolation_plan(obj.particles, obj.centres_box.float())
    motion = SplatMotion(obj, "mpm", positions, gradients, plan, None, ms, info=info)
    motion.transfer_ms_per_frame = _time_transfer(motion)
    return motion


def load_preview_checkpoint(material: str, checkpoint: str | os.PathLike | None = None):
    """A 3-D GIOROM checkpoint for ``material``: the bundled one or ``checkpoint``.

    Raises:
        ValueError: no bundled 3-D checkpoint for the material, or a checkpoint
            for another dimension, material or model (the message names the file).
    """
    from operators.checkpoints import bundled_checkpoint, load_checkpoint

    path = Path(checkpoint) if checkpoint is not None else bundled_checkpoint(material, 3)
    ckpt = load_checkpoint(path)
    if ckpt.model != "giorom":
        raise ValueError(f"checkpoint {path.name} is a {ckpt.model} model; the splat preview needs GIOROM")
    if ckpt.dim != 3:
        raise ValueError(f"checkpoint {path.name} is {ckpt.dim}-D; splats need a 3-D checkpoint")
    trained = ckpt.metadata.get("material")
    if trained is not None and trained != material:
        raise ValueError(f"checkpoint {path.name} was trained on {trained!r}, not {material!r}")
    return ckpt


#: The preview's default step spacing on fine fills, per material, as a share of the spacing its
#: checkpoint's prior was fitted at (0.02 for the bundled ones): the coarsest of 0.75 / 0.625 / 0.5
#: whose mean RMSE over 50 frames stayed <= 5 % on both training-shape drops (octahedron, rod) of
#: ~75-80k particles (docs/giorom.md (d)). Other materials keep their trained density.
FINE_STEP_SHARE = {"jelly": 0.625, "sand": 0.5}
#: ... used only where it moves at most this share of the fill's particles (the preview then steps
#: at least 8x fewer points than MPM); coarser fills step at the trained density.
MAX_STEPPED_SHARE = 1.0 / 8.0


def default_step_spacing(ckpt, spacing: float) -> float | None:
    """The spacing the preview moves points at when none is asked, for an object filled at ``spacing``.

    ``FINE_STEP_SHARE`` of the checkpoint's trained spacing for its material, where that is at
    most ``MAX_STEPPED_SHARE`` of the fill's particles (fills of about 40-80k particles and more
    for the bundled objects): there the trained density would be 5-8 % off a fine MPM. Else None:
    the density the checkpoint was trained at (:func:`at_fill_spacing`). Checkpoints of other
    materials, or whose prior does not know its spacing, also give None.
    """
    from operators.contact import prior_spacing

    trained = prior_spacing(ckpt.model_config.get("wall_contact"))
    share = FINE_STEP_SHARE.get(ckpt.metadata.get("material"))
    if trained is None or share is None or "sparse_fraction" not in ckpt.model_config:
        return None
    fine = share * trained
    return fine if (spacing / fine) ** 3 <= MAX_STEPPED_SHARE else None


def at_fill_spacing(ckpt, spacing: float, step_spacing: float | None = None):
    """``ckpt`` set up for an object filled at ``spacing``, when it knows the spacing of the data it
    was trained on: from its prior (the granular and reduced MPM ones) or from its metadata
    (``particle_spacing``, recorded by training on a dataset that has it).

    The time-stepper keeps the density it was trained at: it moves ``sparse_fraction *
    (spacing / trained) ** 3`` of the fill (all of a coarser one), so a finer fill costs the
    preview only its dense query, and the prior gets the spacing of the fill (the model then scales
    it to the points it moves, :meth:`operators.giorom.GIOROMConfig.sparse_simulator_kwargs`).
    ``step_spacing`` asks for another density of the moved points instead (finer: closer to a fine
    MPM, at a higher cost per frame; for a physical prior such as the reduced MPM, with the learned
    residual off). Checkpoints that know no spacing are returned unchanged (they move
    ``sparse_fraction`` of any fill).
    """
    from operators.contact import contact_for_point_set, prior_spacing

    if step_spacing is not None and not (isinstance(step_spacing, (int, float)) and step_spacing > 0):
        raise ValueError(f"step_spacing must be a number > 0, got {step_spacing!r}")
    contact = ckpt.model_config.get("wall_contact")
    trained = prior_spacing(contact) or ckpt.metadata.get("particle_spacing")
    if trained is None or (trained == spacing and step_spacing is None):
        return ckpt
    config = {**ckpt.model_config, "wall_contact": contact_for_point_set(contact, spacing / trained)}
    if "sparse_fraction" in config:
        sparse_fraction = float(config["sparse_fraction"])
        target = trained * sparse_fraction ** (-1.0 / 3.0) if step_spacing is None else float(step_spacing)
        fraction = min(1.0, (spacing / target) ** 3)
        config["sparse_fraction"] = fraction
        # the sparse graph's radius and the query's kernel width follow the spacing of the points moved
        config["radius_factor"] = (spacing / trained) * (1.0 / fraction) ** (1.0 / 3.0)
    return dataclasses.replace(ckpt, model_config=config)


def preview_object(obj: SplatObject, material: str = "jelly", frames: int = 100, *,
                   checkpoint: str | os.PathLike | None = None, window: Tensor | None = None,
                   step_spacing: float | None = None, progress: bool = False) -> SplatMotion:
    """GIOROM preview: the time-stepper moves a sparse graph of the particles, the dense
    query evaluates the deformation at every selected Gaussian centre.

    Args:
        obj: from :func:`prepare_object`.
        material: selects the bundled checkpoint and must match ``checkpoint``'s.
        frames: frames after the initial one.
        checkpoint: a 3-D GIOROM checkpoint (default: the bundled one).
        window: Tensor | None,  # [6, N, 3] first particle frames (e.g. MPM's);
            None starts from rest.
        step_spacing: spacing of the points the time-stepper moves (default:
            :func:`default_step_spacing`: finer than trained on large fills, else the density it
            was trained at), :func:`at_fill_spacing`.
    """
    from operators.checkpoints import models_from_checkpoint
    from operators.features import INPUT_SEQUENCE_LENGTH as W
    from operators.rollout import simulate_reduced

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < W:
        raise ValueError(f"frames must be an int >= {W}, got {frames!r}")
    loaded = load_preview_checkpoint(material, checkpoint)
    if step_spacing is None:
        step_spacing = default_step_spacing(loaded, obj.spacing)
    ckpt = at_fill_spacing(loaded, obj.spacing, step_spacing)
    types = [t for t in ckpt.metadata["particle_types"] if t != 3]
    simulator, query = models_from_checkpoint(ckpt)
    n = obj.particles.shape[0]
    if window is None:
        window = obj.particles[None].repeat(W, 1, 1)
    if window.shape != (W, n, 3):
        raise ValueError(f"window must be [{W}, {n}, 3], got {tuple(window.shape)}")
    ptype = torch.full((n,), int(types[0]), dtype=torch.long)
    t0 = time.perf_counter()
    reduced = simulate_reduced(simulator, ckpt.model_config["sparse_fraction"], ckpt.model_config["sampler"],
                               window.float(), ptype, frames + 1 - W, progress=progress)
    step_ms = 1000 * (time.perf_counter() - t0) / (frames + 1 - W)
    sparse_ref = obj.particles[reduced.indices]
    centres0 = obj.centres_box.float()
    t0 = time.perf_counter()
    with torch.no_grad():
        qplan = query.plan(sparse_ref, centres0)
        centres = torch.stack([centres0 + query.apply(qplan, s - sparse_ref) for s in reduced.sparse])
    query_ms = 1000 * (time.perf_counter() - t0) / reduced.sparse.shape[0]
    gradients = local_deformation_gradients(sparse_ref, reduced.sparse)
    plan = interpolation_plan(sparse_ref, centres0)
    info = {"particles": n, "sparse_points": int(reduced.indices.numel()), "checkpoint": Path(ckpt.path).name,
            "step_spacing": step_spacing, "step_ms": step_ms, "query_ms": query_ms}
    motion = SplatMotion(obj, "giorom", reduced.sparse, gradients, plan, centres, step_ms + query_ms,
                         info=info)
    motion.transfer_ms_per_frame = _time_transfer(motion)
    return motion


def _time_transfer(motion: SplatMotion) -> float:
    t = motion.n_frames - 1
    t0 = time.perf_counter()
    motion.selected_at(t)
    return 1000 * (time.perf_counter() - t0)


def centre_rmse(a: SplatMotion, b: SplatMotion) -> list[float]:
    """Per-frame RMSE of the selected Gaussian centres between two motions, as a fraction
    of the object size (box units)."""
    frames = min(a.n_frames, b.n_frames)
    out = []
    for t in range(frames):
        xa = interpolate_motion(a.plan, a.points[t], a.gradients[t])[0] if a.centres is None else a.centres[t]
        xb = interpolate_motion(b.plan, b.points[t], b.gradients[t])[0] if b.centres is None else b.centres[t]
        out.append(float(((xa.double() - xb.double()) ** 2).sum(-1).mean().sqrt()) / a.obj.object_size)
    return out


# ------------------------------------------------------------------------- output


def object_camera(obj: SplatObject, width: int = 256, height: int = 256, distance: float = 2.6):
    """A camera looking at the object from the front and above, with room for its fall.

    Returns:
        (viewmat Tensor [1, 4, 4], K Tensor [1, 3, 3])
    """
    from splat.core.camera import look_at

    fr = obj.frame
    up = fr.rotation[1]  # world direction of box +y
    side = fr.rotation[2]  # world direction of box +z (towards the camera)
    size_world = obj.object_size / fr.scale
    drop_world = float(obj.particles[:, 1].min() - 0.08) / fr.scale
    target = fr.to_world(torch.tensor([0.5, float(obj.particles[:, 1].mean()), 0.5], dtype=torch.float64))
    target = target - 0.35 * drop_world * up
    eye = target + distance * size_world * (side + 0.45 * up + 0.3 * fr.rotation[0])
    viewmat = look_at(eye.float(), target.float(), up.float())
    f = 0.9 * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return viewmat[None], K[None]


def render_motion(motion: SplatMotion, frames=None, width: int = 256, height: int = 256,
                  backend: str = "cpu", background=(1.0, 1.0, 1.0)) -> list[np.ndarray]:
    """Render frames of a motion through the rasterizer, ``[H, W, 3]`` uint8 each."""
    from splat.render import render_images

    viewmat, K = object_camera(motion.obj, width, height)
    bg = torch.tensor([background], dtype=torch.float32)
    out = []
    for t in (range(motion.n_frames) if frames is None else frames):
        img = render_images(motion.gaussians_at(t), viewmat, K, width, height, bg, backend)[0]
        out.append((img.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return out


def write_motion_npz(motion: SplatMotion, path: str | os.PathLike, progress: bool = False) -> Path:
    """The deformed selected Gaussians of every frame in one ``.npz`` (written atomically).

    Keys: ``means``, ``quats``, ``scales`` ``[T, S, 3|4]`` (world units, activated
    scales), ``indices`` ``[S]`` into the model, ``opacities`` ``[S]``, ``sh0``
    ``[S, 1, 3]``, ``shN``, ``particles`` ``[T, P, 3]`` (box units), and the
    box frame (``frame_rotation``, ``frame_scale``, ``frame_centre``, ``frame_shift``).
    Streams frame by frame, so 100k Gaussians x 100 frames need little memory.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    g, idx = motion.obj.gaussians, motion.obj.indices
    s, t_count = idx.numel(), motion.n_frames
    static = {"indices": idx.numpy(), "opacities": g.opacities.detach()[idx].numpy(),
              "sh0": g.params["sh0"].detach()[idx].numpy(), "shN": g.params["shN"].detach()[idx].numpy(),
              "particles": motion.points.numpy(), "frame_rotation": motion.obj.frame.rotation.numpy(),
              "frame_scale": np.float64(motion.obj.frame.scale),
              "frame_centre": motion.obj.frame.centre.numpy(), "frame_shift": motion.obj.frame.shift.numpy()}
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        frames = {key: np.lib.format.open_memmap(Path(work) / f"{key}.npy", mode="w+", dtype=np.float32,
                                                 shape=(t_count, s, cols))
                  for key, cols in (("means", 3), ("quats", 4), ("scales", 3))}
        for t in tqdm(range(t_count), desc="deform splats", disable=not progress, leave=False):
            for key, part in zip(("means", "quats", "scales"), motion.selected_at(t)):
                frames[key][t] = part.numpy()
        for arr in frames.values():
            arr.flush()
        del frames
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for key, arr in static.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(arr))
            for key in ("means", "quats", "scales"):
                zf.write(Path(work) / f"{key}.npy", arcname=f"{key}.npy")
    return path
