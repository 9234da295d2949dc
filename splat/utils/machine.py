"""The machine a measurement ran on, as benchmarks record it beside their figures."""

from __future__ import annotations

import os
import platform

import torch


def machine_info(threads: int | None, **extra) -> dict:
    """Platform, CPU count, torch version and torch threads, plus ``extra`` facts.

    Args:
        threads: torch CPU threads the measurement used.
        **extra: further entries (e.g. ``device``, ``backend``, the load average).

    >>> sorted(machine_info(1))
    ['cpu_count', 'platform', 'threads', 'torch']
    """
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "threads": threads, **extra}
