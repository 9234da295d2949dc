"""Large-graph training under a memory cap, one subprocess per run.

Each run generates its graph (:func:`graph.datasets.synthetic.homophilous_sbm`)
and trains one variant (:func:`graph.forwardgnn.scale.train_large`) in a fresh
Python process, so the peak memory measured is that run's alone:

- ``peak_rss_mb``: the child's resident high-water mark (``VmHWM``) minus its
  resident size after the imports (``baseline_mb``), i.e. what the graph and
  the training took.
- glibc's dynamic mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_``) so
  that freed tensors return to the system and RSS follows the live memory.
- the cap: after the imports the child limits its own address space
  (``RLIMIT_AS``) to its current size plus ``cap_mb``; an allocation beyond it
  fails (``MemoryError`` / torch's allocator error) and the run is reported as
  not fitting. The graph counts against the cap.

Progress lines go to the child's stderr as ``@@progress <fraction> <text>``.

>>> r = run_capped(dict(num_nodes=2000, variant="sf", epochs=2))  # doctest: +SKIP
>>> r["fits"], r["peak_rss_mb"] > 0  # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

SPEC_DEFAULTS = dict(num_nodes=100_000, avg_degree=10.0, homophily=0.6, num_classes=5,
                     num_features=32, feature_snr=0.25, variant="sf", hidden=[64, 64, 64],
                     epochs=3, seed=0)
_PROGRESS = "@@progress "


class GraphMemoryError(MemoryError):
    """A graph run that does not fit in the memory cap."""


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def check_spec(spec: dict) -> dict:
    """The spec with defaults filled in; raises ValueError naming an unknown or bad key."""
    from graph.forwardgnn.scale import LARGE_VARIANTS

    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown spec keys {unknown}; expected some of {sorted(SPEC_DEFAULTS)}")
    full = {**SPEC_DEFAULTS, **spec}
    if full["variant"] not in LARGE_VARIANTS:
        raise ValueError(f"unknown large-graph variant {full['variant']!r}; choose one of "
                         f"{list(LARGE_VARIANTS)}")
    if not isinstance(full["num_nodes"], int) or full["num_nodes"] < 100:
        raise ValueError(f"num_nodes must be an int >= 100, got {full['num_nodes']!r}")
    return full


def _child(spec: dict, cap_mb: float | None) -> dict:
    """Runs inside the subprocess: generate, train, report."""
    import torch

    from graph.datasets.synthetic import homophilous_sbm
    from graph.forwardgnn.scale import LargeGraphConfig, train_large

    torch.set_num_threads(1)
    baseline_kb = _status_kb("VmRSS")
    if cap_mb is not None:
        limit = _status_kb("VmSize") * 1024 + int(cap_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {"spec": spec, "cap_mb": cap_mb, "baseline_mb": baseline_kb / 1024}

    def progress(frac: float, desc: str) -> None:
        print(f"{_PROGRESS}{frac:.4f} {desc}", file=sys.stderr, flush=True)

    try:
        t0 = time.perf_counter()
        progress(0.0, f"generating {spec['num_nodes']} nodes")
        data = homophilous_sbm(spec["num_nodes"], spec["num_classes"], spec["avg_degree"],
                               spec["homophily"], spec["num_features"], spec["feature_snr"],
                               seed=spec["seed"])
        out["generate_seconds"] = time.perf_counter() - t0
        config = LargeGraphConfig(hidden=tuple(spec["hidden"]), epochs=spec["epochs"],
                                  eval_every=max(1, spec["epochs"]))
        r = train_large(data, spec["variant"], config, seed=spec["seed"], progress=progress)
        out.update(fits=True, reason="ok", num_edges=r.num_edges, val=r.val, test=r.test,
                   train_seconds=r.train_seconds, peak_saved_mb=r.peak_saved_mb)
    except MemoryError:
        out.update(fits=False, reason="out of memory (MemoryError)")
    except RuntimeError as exc:
        if "alloc" not in str(exc) and "memory" not in str(exc):
            raise
        out.update(fits=False, reason="out of memory (allocator)")
    out["peak_rss_mb"] = (_status_kb("VmHWM") - baseline_kb) / 1024
    return out


def run_capped(spec: dict, cap_mb: float | None = None,
               progress: Callable[[float, str], None] | None = None,
               timeout: float | None = None) -> dict:
    """Runs one generated-graph training in a subprocess under an optional memory cap.

    Args:
        spec: graph and training settings (keys of ``SPEC_DEFAULTS``: ``num_nodes``,
            ``variant``, ``epochs``, ...).
        cap_mb: memory budget for the graph and the training in MiB (None: no cap).
        progress: called as ``progress(fraction, description)`` while the child runs.
        timeout: seconds before the child is killed (None: no limit).

    Returns:
        ``fits`` (bool), ``reason``, ``peak_rss_mb``, ``baseline_mb``, and for runs that
        fit ``val``, ``test``, ``train_seconds``, ``peak_saved_mb``, ``num_edges``.
    """
    spec = check_spec(spec)
    if cap_mb is not None and not cap_mb > 0:
        raise ValueError(f"cap_mb must be positive or None, got {cap_mb!r}")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
           # a fixed mmap threshold: freed tensors go back to the system, so RSS tracks live memory
           "MALLOC_MMAP_THRESHOLD_": "131072"}
    cmd = [sys.executable, "-W", "ignore", "-m", "graph.forwardgnn.memcap", json.dumps(spec),
           "none" if cap_mb is None else str(cap_mb)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    tail: list[str] = []
    for line in proc.stderr:  # progress lines as they come; keep the rest for errors
        if line.startswith(_PROGRESS):
            if progress is not None:
                frac, _, desc = line[len(_PROGRESS):].strip().partition(" ")
                progress(float(frac), desc)
        else:
            tail = (tail + [line.rstrip()])[-20:]
        if timeout is not None and time.perf_counter() - start > timeout:
            proc.kill()
    stdout = proc.stdout.read()
    code = proc.wait()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if code == 0 and lines:
        result = json.loads(lines[-1])
    elif code < 0:  # killed by a signal (the kernel's OOM killer, a crash on a failed allocation)
        result = {"spec": spec, "cap_mb": cap_mb, "fits": False,
                  "reason": f"killed by signal {-code}", "peak_rss_mb": None}
    else:
        raise RuntimeError(f"graph run failed (exit {code}):\n" + "\n".join(tail))
    result["wall_seconds"] = time.perf_counter() - start
    return result


def require_fit(result: dict) -> dict:
    """Returns ``result`` if the run fitted its cap, else raises :class:`GraphMemoryError`."""
    if result.get("fits"):
        return result
    spec, cap = result["spec"], result["cap_mb"]
    hint = "" if spec["variant"] == "sf" else " or the layer-local variant 'sf'"
    raise GraphMemoryError(
        f"a graph of {spec['num_nodes']} nodes with variant {spec['variant']!r} does not fit "
        f"the memory cap of {cap:g} MB ({result['reason']}); try fewer nodes, a larger cap{hint}")


def largest_trainable(variant: str, sizes: list[int], cap_mb: float, base: dict | None = None,
                      progress: Callable[[float, str], None] | None = None) -> dict:
    """Tries ``sizes`` in increasing order under ``cap_mb``; stops at the first that fails.

    Returns:
        ``{"variant", "cap_mb", "largest": nodes or None, "runs": [run_capped results]}``.
    """
    runs, largest = [], None
    for n in sorted(sizes):
        r = run_capped({**(base or {}), "num_nodes": n, "variant": variant}, cap_mb, progress)
        runs.append(r)
        if not r["fits"]:
            break
        largest = n
    return {"variant": variant, "cap_mb": cap_mb, "largest": largest, "runs": runs}


if __name__ == "__main__":
    _spec = json.loads(sys.argv[1])
    _cap = None if sys.argv[2] == "none" else float(sys.argv[2])
    print(json.dumps(_child(_spec, _cap)), flush=True)
