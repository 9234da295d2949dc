"""Measuring the time and the autograd memory of a forward+backward pass."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def saved_tensor_bytes(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Run ``fn`` (a forward pass) and count the bytes autograd keeps for backward.

    Every tensor saved for backward passes through
    ``torch.autograd.graph.saved_tensors_hooks``; distinct storages are counted
    once. All of them are alive together when the forward pass ends, so this is
    the activation memory a backward pass needs (a lower bound of the peak).

    Returns:
        ``fn()``'s output and the byte count.
    """
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        if t.layout == torch.strided:
            st = t.untyped_storage()
            seen[(st.data_ptr(), st.nbytes())] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, int(sum(seen.values()))


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(statistics.median(times))
