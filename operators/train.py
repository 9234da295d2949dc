"""Training of the learned simulators (GNS, GIOROM), single process or DDP.

Run as ``operators.train.train(...)``, ``splatops train giorom|gns ...``, or
under ``torchrun --nproc_per_node=2 -m splatops train giorom --data D --out O``
(DistributedDataParallel with the gloo backend; rank 0 writes checkpoints).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from splat.utils.seeding import generator

from operators.checkpoints import (MODELS, Checkpoint, build_models, check_compatible,
                                   load_checkpoint, save_checkpoint)
from operators.datasets import read_metadata, read_split
from operators.features import (INPUT_SEQUENCE_LENGTH, KINEMATIC_PARTICLE, Normalization,
                                random_walk_noise)
from operators.giorom import GIOROMConfig, sample_sparse
from operators.gns import GNSConfig

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Training settings (model hyper-parameters live in the model configs).

    Attributes:
        batch_size: windows per step (per process under DDP).
        lr: initial learning rate (Adam).
        lr_final: learning rate approached for long runs.
        lr_decay_steps: steps over which ``lr - lr_final`` decays tenfold
            (independent of the run length, so a resumed run continues the schedule).
        noise_std: random-walk noise on the last input velocity (data units).
        checkpoint_every: steps between checkpoints.
        log_every: steps between logged losses.
        query_points: dense points per window in GIOROM's query loss.
        query_weight: weight of the query loss.
        rollout_steps: steps unrolled per window (1: the one-step loss of GNS). With
            K > 1 the model is rolled out K steps from the (noisy) window and each
            step's target is the acceleration that would bring its own predicted
            state to the ground truth, so it learns to correct its drift.
        seed: random seed.
    """

    batch_size: int = 2
    lr: float = 1e-3
    lr_final: float = 1e-5
    lr_decay_steps: int = 1000
    noise_std: float = 3e-4
    checkpoint_every: int = 200
    log_every: int = 10
    query_points: int = 1024
    query_weight: float = 1.0
    rollout_steps: int = 1
    seed: int = 0


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        checkpoint: path of the last checkpoint.
        step: steps done.
        loss: mean loss of the last logged interval.
        state_dict: this process's final weights.
    """

    checkpoint: Path
    step: int
    loss: float
    state_dict: dict


class _Objective(nn.Module):
    """Loss of one batch; the module DDP wraps (its forward runs the models)."""

    def __init__(self, simulator, query, dense_radius: float):
        super().__init__()
        self.simulator, self.query = simulator, query
        self.dense_radius = dense_radius

    def forward(self, windows, nexts, types, batch, noise, queries) -> tuple[Tensor, Tensor]:
        mask = (types != KINEMATIC_PARTICLE).float()
        if nexts.ndim == 2:
            predicted, target = self.simulator.training_targets(nexts, windows, noise, types, batch)
            acc_loss = (((predicted - target) ** 2).sum(-1) * mask).sum() / mask.sum().clamp(min=1)
        else:
            acc_loss = self._rollout_loss(windows, noise, nexts, types, batch, mask)
        q_loss = windows.new_zeros(())
        if self.query is not None and queries:
            parts = []
            for sparse_ref, sparse_next, dense_ref, dense_next in queries:
                pred = self.query(sparse_ref, sparse_next, dense_ref)
                parts.append((((pred - dense_next) / self.dense_radius) ** 2).sum(-1).mean())
            q_loss = torch.stack(parts).mean()
        return acc_loss, q_loss


    def _rollout_loss(self, windows: Tensor, noise: Tensor, nexts: Tensor, types: Tensor,
                      batch: Tensor, mask: Tensor) -> Tensor:
        """Mean one-step loss along a K-step rollout of the model from the noisy window
        ``windows + noise`` [N, W, d]; ``nexts`` [N, K, d] are the true next positions."""
        sim, losses = self.simulator, []
        window = windows + noise
        for k in range(nexts.shape[1]):
            predicted = sim(window, types, batch)
            # the correction that would land this (predicted) state on the truth, shifted by
            # the noise on the last input position so that noise is not learnt (as in GNS)
            target = sim.normalized_acceleration(nexts[:, k] + noise[:, -1], window, batch).detach()
            losses.append((((predicted - target) ** 2).sum(-1) * mask).sum() / mask.sum().clamp(min=1))
            nxt = sim.integrate(predicted, window, batch)
            if sim.clamp_to_bounds:
                nxt = torch.maximum(torch.minimum(nxt, sim.bounds[:, 1]), sim.bounds[:, 0])
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
        return torch.stack(losses).mean()


def _to_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _to_device(sampled: tuple, dev: torch.device) -> tuple:
    """Moves a sampled batch (tensors and GIOROM's query tuples) to ``dev``."""
    *tensors, queries = sampled
    return (*(t.to(dev) for t in tensors), [tuple(t.to(dev) for t in q) for q in queries])


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _lr_at(cfg: TrainConfig, step: int) -> float:
    return cfg.lr_final + (cfg.lr - cfg.lr_final) * 0.1 ** (step / max(cfg.lr_decay_steps, 1))


def _sample_batch(trajs, cfg: TrainConfig, model_cfg, model: str, gen: torch.Generator,
                  noise_std: float):
    w = INPUT_SEQUENCE_LENGTH
    windows, nexts, types, batch, noises, queries = [], [], [], [], [], []
    k = cfg.rollout_steps
    for b in range(cfg.batch_size):
        tr = trajs[int(torch.randint(len(trajs), (1,), generator=gen))]
        t = int(torch.randint(w - 1, tr.positions.shape[0] - k, (1,), generator=gen))
        window = tr.positions[t - w + 1: t + 1].transpose(0, 1)  # [N, W, d]
        # [N, d] the next frame, or [N, K, d] the next K frames
        nxt = tr.positions[t + 1] if k == 1 else tr.positions[t + 1: t + 1 + k].transpose(0, 1)
        ptype = tr.particle_type
        if model == "giorom":
            ref = tr.positions[0]
            idx = sample_sparse(ref, model_cfg.sparse_fraction, model_cfg.sampler, generator=gen)
            n_q = min(cfg.query_points, ref.shape[0])
            q = torch.randperm(ref.shape[0], generator=gen)[:n_q]
            first = tr.positions[t + 1]
            queries.append((ref[idx], first[idx], ref[q], first[q]))
            window, nxt, ptype = window[idx], nxt[idx], ptype[idx]
        noises.append(random_walk_noise(window, noise_std, generator=gen))
        windows.append(window)
        nexts.append(nxt)
        types.append(ptype)
        batch.append(torch.full((window.shape[0],), b, dtype=torch.long))
    return (torch.cat(windows), torch.cat(nexts), torch.cat(types), torch.cat(batch),
            torch.cat(noises), queries)


def train(model: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike, steps: int,
          resume: bool = False, progress: bool = True, model_config: dict | None = None,
          device: str | torch.device = "cpu", **train_overrides) -> TrainResult:
    """Train a GNS or GIOROM simulator on a GNS-layout dataset.

    Writes ``<out_dir>/checkpoint.pt`` atomically every ``checkpoint_every``
    steps and at the end (model, optimizer, step, normalisation statistics,
    dataset metadata incl. dimension, material and particle types). Under
    ``torchrun`` every process trains on its own batches, gradients are
    averaged by DistributedDataParallel (gloo), and rank 0 writes.

    Args:
        model: ``"giorom"`` or ``"gns"``.
        data_dir: folder with ``metadata.json`` and ``train.npz``.
        out_dir: folder for the checkpoint.
        steps: total optimisation steps (a resumed run continues up to it).
        resume: continue from ``<out_dir>/checkpoint.pt``.
        progress: show a tqdm bar with the loss.
        model_config: overrides of :class:`GNSConfig` / :class:`GIOROMConfig` fields.
        device: torch device of the networks and batches (``"cuda"`` trains on a
            GPU; graphs are built on the CPU and moved). Checkpoints hold CPU tensors.
        **train_overrides: overrides of :class:`TrainConfig` fields.

    Returns:
        TrainResult.

    Example: ``train("giorom", "data/water2d", "runs/water", steps=2000)`` on a dataset
    from ``splatops simulate``.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(train_overrides) - known
    if unknown:
        raise TypeError(f"unknown training settings {sorted(unknown)}; expected some of {sorted(known)}")
    cfg = TrainConfig(**train_overrides)
    if not isinstance(cfg.rollout_steps, int) or cfg.rollout_steps < 1:
        raise ValueError(f"rollout_steps must be an int >= 1, got {cfg.rollout_steps!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device")
    meta = read_metadata(data_dir)
    trajs = read_split(data_dir, "train", meta,
                       min_frames=INPUT_SEQUENCE_LENGTH + int(train_overrides.get("rollout_steps", 1)))
    ptypes = sorted({int(t) for tr in trajs for t in tr.particle_type.unique()})
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME

    prior = None
    if resume:
        if not ckpt_path.is_file():
            raise ValueError(f"resume=True but {ckpt_path} does not exist")
        prior = load_checkpoint(ckpt_path)
        if prior.model != model:
            raise ValueError(f"{ckpt_path} holds a {prior.model} model, not {model}")
        check_compatible(prior, meta, ptypes)
        model_config = prior.model_config
        cfg = TrainConfig(**{**prior.train_config, **train_overrides})
    cfg_cls = GNSConfig if model == "gns" else GIOROMConfig
    model_cfg = cfg_cls(**(model_config or {}))

    rank, world = _dist_info()
    if world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    stats = Normalization.from_metadata(meta, cfg.noise_std, meta.get("external_acceleration"))
    simulator, query = build_models(model, asdict(model_cfg), meta, stats)
    objective = _Objective(simulator, query, float(meta["default_connectivity_radius"])).to(dev)
    optimizer = torch.optim.Adam(objective.parameters(), lr=cfg.lr)
    step, history = 0, []
    if prior is not None:
        objective.load_state_dict(prior.state_dict)
        if prior.optimizer is not None:
            optimizer.load_state_dict(prior.optimizer)
            for state in optimizer.state.values():
                for k, v in state.items():
                    if isinstance(v, Tensor) and k != "step":
                        state[k] = v.to(dev)
        step, history = prior.step, list(prior.history)
    wrapped: nn.Module = objective
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(objective)

    ckpt_meta = {k: meta[k] for k in ("dim", "dt", "bounds", "default_connectivity_radius",
                                      "sequence_length", "material", "external_acceleration",
                                      "particle_spacing")
                 if k in meta}
    ckpt_meta["particle_types"] = ptypes

    def save() -> None:
        if rank == 0:
            save_checkpoint(Checkpoint(
                model=model, model_config=asdict(model_cfg), metadata=ckpt_meta,
                stats=stats.as_dict(), state_dict=_to_cpu(objective.state_dict()), step=step,
                optimizer=_to_cpu(optimizer.state_dict()), train_config=asdict(cfg), history=history),
                ckpt_path)
        if world > 1:
            dist.barrier()

    bar = tqdm(total=steps, initial=step, desc=f"train {model}", disable=not progress or rank != 0,
               dynamic_ncols=True)
    recent: list[float] = []
    loss_value = math.nan
    objective.train()
    while step < steps:
        gen = generator(cfg.seed, rank, step)  # the same batches whether resumed or not
        windows, nexts, types, batch, noise, queries = _to_device(_sample_batch(
            trajs, cfg, model_cfg, model, gen, cfg.noise_std), dev)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(cfg, step)
        acc_loss, q_loss = wrapped(windows, nexts, types, batch, noise, queries)
        loss = acc_loss + cfg.query_weight * q_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        recent.append(loss.item())
        if step % cfg.log_every == 0 or step == steps:
            loss_value = float(np.mean(recent))
            history.append([step, loss_value])
            recent = []
            bar.set_postfix(loss=f"{loss_value:.4g}")
        bar.update(1)
        if step % cfg.checkpoint_every == 0 or step == steps:
            save()
    bar.close()
    if prior is not None and prior.step >= steps:
        save()
    if world > 1:
        dist.destroy_process_group()
    state = {k: v.detach().cpu().clone() for k, v in objective.state_dict().items()}
    return TrainResult(ckpt_path, step, loss_value, state)
