"""One training loop and evaluation helpers for CGS and its baselines."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

LOSSES = ("mse", "cross_entropy")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`.

    Attributes:
        epochs: passes over the training set.
        batch_size: graphs per step.
        lr: Adam learning rate (cosine-decayed to ``lr * final_lr_ratio``).
        final_lr_ratio: last learning rate as a fraction of ``lr``.
        weight_decay: Adam weight decay.
        grad_clip: gradient-norm clip (0 disables).
        warmup: fraction of the steps over which the learning rate rises
            linearly from ``lr / 10`` to ``lr`` before the cosine decay (0: none).
        loss: ``"mse"`` (node or graph regression) or ``"cross_entropy"``.
        recalibrate_norm: recompute the running statistics of every batch norm
            over the training set after training (and before each ``on_epoch``
            call) with the final weights (:func:`recalibrate_batch_norm`).
        progress: show a tqdm bar.
    """

    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    final_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup: float = 0.0
    loss: str = "mse"
    recalibrate_norm: bool = True
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")


@dataclass
class TrainResult:
    """What :func:`train` did."""

    losses: list  # mean loss per epoch
    seconds: float
    mean_iterations: float  # forward fixed-point iterations per step (nan for a GCN)


def _call(model: nn.Module, batch: Data) -> tuple[Tensor, object]:
    return model(batch.x, batch.edge_index, batch.edge_attr, batch.batch)


def _loss(kind: str, pred: Tensor, target: Tensor) -> Tensor:
    if kind == "cross_entropy":
        return nn.functional.cross_entropy(pred, target.view(-1).long())
    return nn.functional.mse_loss(pred, target.view_as(pred).to(pred.dtype))


def _schedule(opt: torch.optim.Optimizer, c: TrainConfig, total: int):
    """Cosine decay to ``lr * final_lr_ratio``, after a linear warm-up when ``c.warmup > 0``."""
    if c.warmup == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total,
                                                          eta_min=c.lr * c.final_lr_ratio)
    warm = max(1, int(round(c.warmup * total)))

    def factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return c.final_lr_ratio + (1 - c.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(model: nn.Module, dataset: list[Data], config: TrainConfig | None = None,
          seed: int = 0, desc: str = "train",
          on_epoch: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """Fit ``model`` to ``dataset`` (each ``Data`` with ``x``, ``edge_index``,
    ``edge_attr`` and ``y``) with Adam.

    Args:
        model: the network (CGS, GIN, GCN: called as ``model(x, edge_index,
            edge_attr, batch)``).
        dataset: the training graphs.
        config: a :class:`TrainConfig` (default: its defaults).
        seed: seed of the batch order.
        desc: progress-bar label.
        on_epoch: called as ``on_epoch(epoch, model)`` after every epoch
            (``epoch`` counts from 1); the model is put back in training mode
            afterwards, so the hook may evaluate it.

    Returns:
        A :class:`TrainResult` with the loss per epoch and the wall time.
    """
    c = config or TrainConfig()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(dataset, (list, tuple)) or not dataset:
        raise ValueError("dataset must be a non-empty list of torch_geometric Data")
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(list(dataset), batch_size=c.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    total = c.epochs * len(loader)
    sched = _schedule(opt, c, total)
    losses, iters = [], []
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, disable=not c.progress, leave=False)
    for epoch in range(1, c.epochs + 1):
        run = 0.0
        for batch in loader:
            pred, info = _call(model, batch)
            loss = _loss(c.loss, pred, batch.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            opt.step()
            sched.step()
            run += float(loss.detach()) * batch.num_graphs
            if info is not None:
                iters.append(info.forward_iterations)
            bar.update()
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        losses.append(run / len(dataset))
        if c.recalibrate_norm and (on_epoch is not None or epoch == c.epochs):
            recalibrate_batch_norm(model, dataset, c.batch_size)
            model.train()
        if on_epoch is not None:
            on_epoch(epoch, model)
            model.train()
    bar.close()
    mean_it = float(sum(iters) / len(iters)) if iters else float("nan")
    return TrainResult(losses, time.perf_counter() - start, mean_it)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, dataset: list[Data], batch_size: int) -> int:
    """Recompute every batch norm's running mean and variance over ``dataset``.

    During training the running statistics are an exponential average over
    batches seen while the weights were still changing; after a short run
    (some hundred steps) they can sit far from the statistics of the final
    weights, and evaluation then normalises with the wrong ones. Here each
    batch norm averages the statistics of every batch of ``dataset`` under the
    final weights instead (equal weight per batch, no gradients). The model is
    left in evaluation mode.

    Args:
        model: the trained network.
        dataset: the training graphs.
        batch_size: graphs per batch (the training batch size).

    Returns:
        The number of batch-norm layers recalibrated (0: nothing to do).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        model.eval()
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    for batch in DataLoader(list(dataset), batch_size=batch_size, shuffle=False):
        _call(model, batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)


@torch.no_grad()
def predict(model: nn.Module, data: Data) -> tuple[Tensor, int | None]:
    """Prediction for one graph and the forward iterations (None for a GCN)."""
    model.eval()
    batch = Batch.from_data_list([data])
    pred, info = _call(model, batch)
    return pred, (None if info is None else info.forward_iterations)
