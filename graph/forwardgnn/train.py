"""Train and evaluate one variant; run several seeds on a bundled dataset."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch_geometric.data import Data

from graph.forwardgnn.config import CONVS, ForwardGNNConfig
from graph.forwardgnn.memory import track_memory
from graph.forwardgnn.registry import get_variant
from graph.forwardgnn.tasks import make_task


@dataclass
class RunResult:
    """Outcome of one training run.

    Attributes:
        metric: ``accuracy`` (node) or ``roc_auc`` (link).
        val / test: the metric on validation and test nodes or pairs.
        train_seconds: wall time of ``fit`` (summed over ``gat_residual_gate`` candidates).
        peak_saved_mb / peak_rss_mb: see :mod:`graph.forwardgnn.memory` (the largest
            over candidates).
        gat_residual_gate: the GAT skip gate kept (None: unscaled skip, or no GAT skip).
    """

    variant: str
    conv: str
    task: str
    seed: int
    metric: str
    val: float
    test: float
    train_seconds: float
    peak_saved_mb: float
    peak_rss_mb: float | None
    gat_residual_gate: float | None = None


def train_forwardgnn(data: Data, variant: str = "sf", conv: str = "gcn", task: str = "node",
                     config: ForwardGNNConfig | None = None, seed: int = 0,
                     progress: bool = False, return_model: bool = False):
    """Train one variant on one graph and score it on held-out nodes or pairs.

    Args:
        data: a graph, e.g. from :func:`graph.datasets.load_dataset`.
        variant: ``bp``, ``ff-label``, ``ff-vn``, ``sf`` or ``sf-topdown``.
        conv: ``gcn``, ``sage`` or ``gat``.
        task: ``node`` (accuracy) or ``link`` (ROC-AUC on held-out edges).
        config: hyper-parameters (defaults if None).
        seed: seeds the weights, negatives and the edge split (torch's and Python's RNGs).
        progress: show tqdm bars.
        return_model: also return the trained model.

    Returns:
        :class:`RunResult`, or ``(RunResult, model)`` with ``return_model``.

    >>> from graph.datasets import load_dataset
    >>> r = train_forwardgnn(load_dataset("karate"), "sf", "gcn",
    ...                      config=ForwardGNNConfig(epochs=20))
    >>> 0.0 <= r.test <= 1.0
    True
    """
    cls = get_variant(variant, task)
    if conv not in CONVS:
        raise ValueError(f"unknown conv {conv!r}; choose one of {list(CONVS)}")
    if config is None:
        config = ForwardGNNConfig()
    if not isinstance(config, ForwardGNNConfig):
        raise TypeError(f"config must be a ForwardGNNConfig, got {type(config).__name__}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    t = make_task(data, task, split_seed=seed)
    best = None
    seconds, saved, rss = 0.0, 0.0, None
    for candidate in config.gate_candidates(conv):  # several: chosen on validation
        torch.manual_seed(seed)
        random.seed(seed)  # torch_geometric's negative_sampling may draw with Python's random
        model = cls(t.x.shape[1], getattr(t, "num_classes", 0), conv, candidate)
        with track_memory() as mem:
            start = time.perf_counter()
            model.fit(t, progress=progress)
            seconds += time.perf_counter() - start
        saved = max(saved, mem.saved_mb)
        if mem.rss_mb is not None:
            rss = max(rss or 0.0, mem.rss_mb)
        val = model.score(t, "val")
        if best is None or val > best[0]:  # the earliest candidate wins a tie
            best = (val, model, candidate.gat_residual_gate)
    val, model, gate = best
    result = RunResult(variant, conv, task, seed, "accuracy" if task == "node" else "roc_auc",
                       val, model.score(t, "test"), seconds, saved, rss,
                       gate if conv == "gat" and config.gat_residual else None)
    return (result, model) if return_model else result


def summarize(results: list[RunResult]) -> dict:
    """Mean and standard deviation over seeds of the metric, memory and time."""
    if not results:
        raise ValueError("summarize needs at least one result, got none")
    test = [r.test for r in results]
    rss = [r.peak_rss_mb for r in results if r.peak_rss_mb is not None]
    return {
        "variant": results[0].variant, "conv": results[0].conv, "task": results[0].task,
        "metric": results[0].metric, "seeds": len(results),
        "mean": statistics.fmean(test), "std": statistics.pstdev(test),
        "peak_saved_mb": statistics.median(r.peak_saved_mb for r in results),
        "peak_rss_mb": statistics.median(rss) if rss else None,
        "train_seconds": statistics.median(r.train_seconds for r in results),
        "runs": [asdict(r) for r in results],
    }


def run_forwardgnn(dataset: str, variant: str = "sf", conv: str = "gcn", task: str = "node",
                   seeds: int = 1, config: ForwardGNNConfig | None = None,
                   progress: bool = False) -> dict:
    """Train a variant on a bundled dataset over ``seeds`` seeds (0 .. seeds-1).

    Returns:
        :func:`summarize` of the runs, with ``dataset`` added.
    """
    from graph.datasets import dataset_info, load_task_dataset

    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}")
    info = dataset_info(dataset)
    if task not in info.tasks:
        raise ValueError(f"dataset {dataset!r} supports tasks {list(info.tasks)}, got {task!r}")
    get_variant(variant, task)
    data = load_task_dataset(dataset, task)  # connectomes: post->pre edges for node tasks
    runs = [train_forwardgnn(data, variant, conv, task, config, seed=s, progress=progress)
            for s in range(seeds)]
    return {"dataset": dataset, **summarize(runs)}
