"""Seeding, in one place: every RNG at once, and per-step generators derived from one seed.

>>> mix_seed(3, 7)
3000016
>>> g1, g2 = generator(0, 5), generator(0, 5)
>>> bool((torch.rand(3, generator=g1) == torch.rand(3, generator=g2)).all())
True
"""

from __future__ import annotations

import random

import numpy as np
import torch

from splat.utils.checks import check_int

__all__ = ["seed_everything", "mix_seed", "generator"]

_SEED_STRIDE = 1_000_003  # a prime: streams of nearby seeds do not overlap for < 1e6 keys
_KEY_STRIDE = 997


def seed_everything(seed: int) -> None:
    """Seeds torch, NumPy's global RNG and Python's ``random``."""
    seed = check_int("seed", seed, minimum=0)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def mix_seed(seed: int, *keys: int) -> int:
    """A derived seed for one use of a run's seed: ``seed * 1_000_003 + k0 + k1 * 997 + ...``.

    Used for streams that must not depend on how many random numbers came
    before (the view order of epoch ``e``, the batch of step ``s`` on rank ``r``),
    so that a resumed run draws exactly what an uninterrupted one would.
    """
    out = check_int("seed", seed) * _SEED_STRIDE
    for i, key in enumerate(keys):
        out += check_int(f"keys[{i}]", key) * _KEY_STRIDE**i
    return out


def generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`mix_seed` ``(seed, *keys)``."""
    return torch.Generator().manual_seed(mix_seed(seed, *keys))
