"""Datasets of generated graphs whose sizes are drawn from a range."""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")


def sized_dataset(make: Callable[[int, int], T], count: int, size_range: tuple[int, int], seed: int,
                  min_size: int) -> list[T]:
    """``count`` graphs ``make(size, seed_i)``, sizes uniform in ``size_range`` (inclusive).

    The sizes and per-graph seeds are drawn from one generator seeded with
    ``seed``, so a dataset is a function of ``(count, size_range, seed)``.

    >>> sized_dataset(lambda n, s: n, 3, (5, 5), seed=0, min_size=3)
    [5, 5, 5]
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    lo, hi = size_range
    if not min_size <= lo <= hi:
        raise ValueError(f"size_range must satisfy {min_size} <= low <= high, got {size_range}")
    rng = np.random.default_rng(seed)
    sizes = rng.integers(lo, hi + 1, size=count)
    seeds = rng.integers(0, 2**31 - 1, size=count)
    return [make(int(n), int(s)) for n, s in zip(sizes, seeds)]
