"""Peak training memory on the CPU.

Two measures, because neither alone is both precise and complete on a CPU:

- ``saved_mb``: the peak total size of the distinct tensors autograd holds
  for backward (``torch.autograd.graph.saved_tensors_hooks``), i.e. the
  activation memory that back-propagation across layers must keep and
  forward learning frees. Deterministic; it ignores short-lived temporaries.
- ``rss_mb``: growth of the process's resident-set high-water mark
  (``VmHWM`` in ``/proc/self/status``, reset through ``/proc/self/clear_refs``)
  over the run. Complete but noisy: the allocator reuses freed pages, so
  small graphs show near-zero growth. ``tracemalloc`` is not used because it
  does not see PyTorch's tensor allocations.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class PeakMemory:
    """Filled by :func:`track_memory` when the block exits (MiB; ``rss_mb`` None if unavailable)."""

    saved_mb: float = 0.0
    rss_mb: float | None = None


class _SavedTracker:
    def __init__(self) -> None:
        self.live: dict[int, list[int]] = {}  # storage pointer -> [refs, bytes]
        self.current = 0
        self.peak = 0

    def pack(self, t: torch.Tensor):
        if t.layout == torch.sparse_csr:  # a sparse adjacency: its three parts, keyed by values
            key = t.values().untyped_storage().data_ptr()
            parts = (t.crow_indices(), t.col_indices(), t.values())
        else:
            key, parts = t.untyped_storage().data_ptr(), (t,)
        entry = self.live.get(key)
        if entry is None:
            nbytes = sum(p.untyped_storage().nbytes() for p in parts)
            self.live[key] = [1, nbytes]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        else:
            entry[0] += 1
        return _Handle(self, key, t)

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.live[key]


class _Handle:
    __slots__ = ("tracker", "key", "tensor")

    def __init__(self, tracker: _SavedTracker, key: int, tensor: torch.Tensor):
        self.tracker, self.key, self.tensor = tracker, key, tensor

    def __del__(self):
        self.tracker.release(self.key)


@contextlib.contextmanager
def track_memory():
    """Measure peak saved-for-backward bytes and RSS growth of the enclosed block.

    >>> with track_memory() as mem:
    ...     x = torch.ones(1000, requires_grad=True)
    ...     (x * x).sum().backward()
    >>> mem.saved_mb > 0
    True
    """
    result = PeakMemory()
    tracker = _SavedTracker()
    rss_ok = _reset_peak_rss()
    before = _status_kb("VmRSS")
    try:
        with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda h: h.tensor):
            yield result
    finally:
        result.saved_mb = tracker.peak / 2**20
        peak = _status_kb("VmHWM")
        if rss_ok and before is not None and peak is not None:
            result.rss_mb = max(0, peak - before) / 1024
