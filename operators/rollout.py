"""Rollouts of trained simulators: on datasets (with metrics) and as previews."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from splat.io.atomic import atomic_path, write_json_atomic

from operators.checkpoints import (Checkpoint, bundled_checkpoint, check_compatible, load_checkpoint,
                                   models_from_checkpoint)
from operators.datasets import read_metadata, read_split
from operators.features import INPUT_SEQUENCE_LENGTH, KINEMATIC_PARTICLE
from operators.giorom import DenseQuery, sample_sparse
from operators.simulator import LearnedSimulator, check_positions


@torch.no_grad()
def simulate(simulator: LearnedSimulator, initial_positions: Tensor, particle_type: Tensor,
             n_steps: int, kinematic_positions: Tensor | None = None, progress: bool = False) -> Tensor:
    """Roll a learned simulator forward from a window of positions.

    Args:
        simulator: trained simulator (any point set it was trained for).
        initial_positions: Tensor,  # [W, N, d] with W = 6
        particle_type: Tensor,  # [N]
        n_steps: steps to predict.
        kinematic_positions: Tensor | None,  # [W + n_steps, N, d] prescribed
            positions of kinematic particles (type 3), e.g. ground truth.
        progress: show a tqdm bar.

    Returns:
        Tensor,  # [W + n_steps, N, d] the window followed by the predictions
    """
    w = INPUT_SEQUENCE_LENGTH
    if initial_positions.ndim != 3 or initial_positions.shape[0] != w:
        raise ValueError(f"initial_positions must be [{w}, N, d], got {tuple(initial_positions.shape)}")
    check_positions("initial_positions", initial_positions.transpose(0, 1), simulator.dim, 3)
    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
    kinematic = particle_type == KINEMATIC_PARTICLE
    frames = [p for p in initial_positions]
    window = initial_positions.transpose(0, 1).contiguous()  # [N, W, d]
    for t in tqdm(range(n_steps), desc="rollout", disable=not progress, leave=False):
        nxt = simulator.predict_positions(window, particle_type)
        if kinematic_positions is not None and kinematic.any():
            nxt = torch.where(kinematic[:, None], kinematic_positions[w + t], nxt)
        if not torch.isfinite(nxt).all():
            raise ValueError(f"the rollout diverged (NaN/Inf) at step {t + 1}")
        frames.append(nxt)
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return torch.stack(frames)


@dataclass
class ReducedRollout:
    """Sparse trajectory of a GIOROM rollout, evaluable at any dense points.

    Attributes:
        sparse: Tensor,  # [T, M, d] sparse positions (window + predictions)
        indices: Tensor,  # [M] sparse particles among the N initial ones
        initial: Tensor,  # [W, N, d] the initial window of all particles
    """

    sparse: Tensor
    indices: Tensor
    initial: Tensor

    @torch.no_grad()
    def evaluate(self, query: DenseQuery, points: Tensor | None = None) -> Tensor:
        """Positions ``[T, Q, d]`` of ``points`` (given in the first frame's
        configuration); None: all N particles, whose window frames are known."""
        ref = self.initial[0]
        sparse_ref = ref[self.indices]
        queried = ref if points is None else points
        plan = query.plan(sparse_ref, queried)
        frames = [queried + query.apply(plan, frame - sparse_ref) for frame in self.sparse]
        if points is None:
            frames[:INPUT_SEQUENCE_LENGTH] = list(self.initial)
        return torch.stack(frames)


@torch.no_grad()
def simulate_reduced(simulator: LearnedSimulator, fraction: float, sampler: str,
                     initial_positions: Tensor, particle_type: Tensor, n_steps: int,
                     progress: bool = False) -> ReducedRollout:
    """GIOROM rollout: step a sparse subset of the particles.

    The subset is sampled deterministically (farthest-point from the first
    particle, or a seeded random choice) on the first frame, which is also the
    reference configuration of the dense query (:meth:`ReducedRollout.evaluate`).

    Args:
        simulator: GIOROM time-stepper.
        fraction: sparse fraction; sampler: ``"fps"`` or ``"random"``.
        initial_positions: Tensor,  # [W, N, d]
        particle_type: Tensor,  # [N]
        n_steps: steps to predict.
    """
    if initial_positions.ndim != 3 or initial_positions.shape[0] != INPUT_SEQUENCE_LENGTH:
        raise ValueError(f"initial_positions must be [{INPUT_SEQUENCE_LENGTH}, N, d], "
                         f"got {tuple(initial_positions.shape)}")
    check_positions("initial_positions", initial_positions.transpose(0, 1), simulator.dim, 3)
    gen = torch.Generator().manual_seed(0)
    idx = sample_sparse(initial_positions[0], fraction, sampler, generator=gen, random_start=False)
    sparse = simulate(simulator, initial_positions[:, idx], particle_type[idx], n_steps, progress=progress)
    return ReducedRollout(sparse, idx, initial_positions)


def _rollout_one(ckpt: Checkpoint, simulator, query, positions: Tensor, particle_type: Tensor,
                 n_steps: int, progress: bool) -> Tensor:
    w = INPUT_SEQUENCE_LENGTH
    if ckpt.model == "giorom":
        reduced = simulate_reduced(simulator, ckpt.model_config["sparse_fraction"],
                                   ckpt.model_config["sampler"], positions[:w], particle_type, n_steps,
                                   progress=progress)
        return reduced.evaluate(query)
    kin = positions if positions.shape[0] >= w + n_steps else None
    return simulate(simulator, positions[:w], particle_type, n_steps, kinematic_positions=kin,
                    progress=progress)



@dataclass
class RolloutResult:
    """Predictions and metrics of :func:`rollout`.

    Attributes:
        predictions: per trajectory, Tensor [T, N, d] (window + predicted frames).
        ground_truth: per trajectory, Tensor [T, N, d].
        mse_per_step: per trajectory, position MSE of each predicted step, [n_steps].
        mean_mse: mean over trajectories and steps.
        files: written files (``rollout.npz``, ``metrics.json``), if any.
    """

    predictions: list
    ground_truth: list
    mse_per_step: list
    mean_mse: float
    files: list


def rollout(checkpoint: str | os.PathLike | Checkpoint, data_dir: str | os.PathLike,
            split: str = "test", n_steps: int | None = None, out_dir: str | os.PathLike | None = None,
            max_trajectories: int | None = None, progress: bool = True) -> RolloutResult:
    """Roll a checkpoint out on a dataset split and measure position MSE.

    Starts from the first 6 frames of each trajectory and predicts
    ``n_steps`` frames (default: to the end). GIOROM steps its sparse subset
    and is evaluated at every particle through its dense query, so its MSE
    is over all particles, as GNS's.

    Args:
        checkpoint: path or loaded :class:`Checkpoint`.
        data_dir: GNS-layout dataset folder.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        n_steps: predicted frames per trajectory (<= length - 6).
        out_dir: if given, writes ``rollout.npz`` (``predicted_<i>``,
            ``ground_truth_<i>``, ``particle_type_<i>``) and ``metrics.json``,
            each atomically, only once every trajectory succeeded.
        max_trajectories: roll out only the first few trajectories.
        progress: show a tqdm bar.

    Returns:
        RolloutResult.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    meta = read_metadata(data_dir)
    trajs = read_split(data_dir, split, meta, min_frames=INPUT_SEQUENCE_LENGTH + 1)
    if max_trajectories is not None:
        if max_trajectories < 1:
            raise ValueError(f"max_trajectories must be >= 1, got {max_trajectories}")
        trajs = trajs[:max_trajectories]
    check_compatible(ckpt, meta, {int(t) for tr in trajs for t in tr.particle_type.unique()})
    w = INPUT_SEQUENCE_LENGTH
    shortest = min(tr.positions.shape[0] for tr in trajs) - w
    if n_steps is None:
        n_steps = shortest
    if not isinstance(n_steps, int) or not 1 <= n_steps <= shortest:
        raise ValueError(f"n_steps must be an int in [1, {shortest}], got {n_steps!r}")
    simulator, query = models_from_checkpoint(ckpt)
    preds, truths, mses = [], [], []
    for tr in tqdm(trajs, desc=f"rollout {ckpt.model}", disable=not progress):
        truth = tr.positions[: w + n_steps]
        pred = _rollout_one(ckpt, simulator, query, truth, tr.particle_type, n_steps, False)
        preds.append(pred)
        truths.append(truth)
        mses.append(((pred[w:] - truth[w:]) ** 2).mean(dim=(1, 2)))
    per_step = torch.stack(mses).mean(0)
    mean = float(per_step.mean())
    files = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, (p, g, tr) in enumerate(zip(preds, truths, trajs)):
            arrays[f"predicted_{i}"] = p.numpy()
            arrays[f"ground_truth_{i}"] = g.numpy()
            arrays[f"particle_type_{i}"] = tr.particle_type.numpy()
        metrics = {"model": ckpt.model, "split": split, "n_steps": n_steps,
                   "n_trajectories": len(trajs), "mean_mse": mean,
                   "mse_per_step": per_step.tolist(),
                   "mse_per_trajectory": [float(m.mean()) for m in mses]}

        with atomic_path(out / "rollout.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        write_json_atomic(out / "metrics.json", metrics, indent=1)
        files = [out / "rollout.npz", out / "metrics.json"]
    return RolloutResult(preds, truths, [m.tolist() for m in mses], mean, files)


def preview(material: str, dim: int, initial_positions, n_steps: int, dense_points=None,
            particle_type=None, checkpoint: str | os.PathLike | None = None) -> dict:
    """Quick learned-simulator preview from a bundled (or given) checkpoint.

    Args:
        material: e.g. ``"water"`` or ``"sand"`` (selects the bundled checkpoint).
        dim: 2 or 3.
        initial_positions: array ``[N, d]`` (starts at rest) or a window ``[6, N, d]``.
        n_steps: frames to predict (>= 1).
        dense_points: optional ``[Q, d]`` points in the first frame's
            configuration to carry along (GIOROM's query; e.g. splat centres).
        particle_type: ``[N]`` types; default: the checkpoint's first material type.
        checkpoint: use this checkpoint instead of the bundled one.

    Returns:
        dict with ``positions`` ``[6 + n_steps, N, d]`` (numpy), ``dense``
        ``[6 + n_steps, Q, d]`` or None, ``sparse`` ``[6 + n_steps, M, d]``
        (GIOROM's simulated subset; None for GNS), ``model`` and ``checkpoint``.
    """
    path = Path(checkpoint) if checkpoint is not None else bundled_checkpoint(material, dim)
    ckpt = load_checkpoint(path)
    if ckpt.dim != dim:
        raise ValueError(f"checkpoint {path.name} is {ckpt.dim}-D but dim={dim}")
    pos = torch.as_tensor(np.asarray(initial_positions), dtype=torch.float32)
    w = INPUT_SEQUENCE_LENGTH
    if pos.ndim == 2:
        check_positions("initial_positions", pos, dim, 2)
        pos = pos.unsqueeze(0).repeat(w, 1, 1)
    elif pos.ndim != 3 or pos.shape[0] != w:
        raise ValueError(f"initial_positions must be [N, {dim}] or [{w}, N, {dim}], got {tuple(pos.shape)}")
    check_positions("initial_positions", pos.transpose(0, 1), dim, 3)
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    n = pos.shape[1]
    if particle_type is None:
        types = [t for t in ckpt.metadata["particle_types"] if t != KINEMATIC_PARTICLE]
        ptype = torch.full((n,), int(types[0]), dtype=torch.long)
    else:
        ptype = torch.as_tensor(np.asarray(particle_type), dtype=torch.long)
        if ptype.shape != (n,):
            raise ValueError(f"particle_type must be [{n}], got {tuple(ptype.shape)}")
    check_compatible(ckpt, {"dim": dim, "material": material}, ptype.unique().tolist())
    simulator, query = models_from_checkpoint(ckpt)
    dense = sparse = None
    if ckpt.model == "giorom":
        dp = None
        if dense_points is not None:
            dp = torch.as_tensor(np.asarray(dense_points), dtype=torch.float32)
            check_positions("dense_points", dp, dim, 2)
        reduced = simulate_reduced(simulator, ckpt.model_config["sparse_fraction"],
                                   ckpt.model_config["sampler"], pos, ptype, n_steps)
        positions = reduced.evaluate(query)
        sparse = reduced.sparse.numpy()
        if dp is not None:
            dense = reduced.evaluate(query, dp).numpy()
    else:
        if dense_points is not None:
            raise ValueError("dense_points needs a GIOROM checkpoint; this one is GNS")
        positions = simulate(simulator, pos, ptype, n_steps)
    return {"positions": positions.numpy(), "dense": dense, "sparse": sparse, "model": ckpt.model,
            "checkpoint": str(path)}
