"""Benchmark of splat.rasterization: the pure-PyTorch backend against the compiled cpu one.

Times forward and forward+backward of the whole ``rasterization()`` call
(projection, colours and compositing) on random scenes that look like real
ones: Gaussians in front of the camera, pixel radii from a few to ~20, opacities
spread over (0, 1). Reports medians of repeats after a warm-up, the number of
tile-Gaussian intersections and the rate of pixel-Gaussian pairs (every pixel of
every intersected tile, as gsplat's kernel evaluates them) per second.

    python benchmarks/bm_rasterize.py            # the full grid
    python benchmarks/bm_rasterize.py --quick    # a short run
    python benchmarks/bm_rasterize.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from splat.core.rasterization import rasterization  # noqa: E402


def make_scene(n: int, size: int, seed: int = 0) -> dict:
    """A random scene of ``n`` Gaussians seen by one ``size`` x ``size`` camera."""
    g = torch.Generator().manual_seed(seed)
    f = float(size)
    z = 2.0 + 6.0 * torch.rand(n, generator=g)
    u = (torch.rand(n, generator=g) * 1.2 - 0.1) * size
    v = (torch.rand(n, generator=g) * 1.2 - 0.1) * size
    means = torch.stack([(u - size / 2) / f * z, (v - size / 2) / f * z, z], -1)
    # Screen-space standard deviations log-uniform in [0.7, 7] px: 3-sigma radii ~2..21 px.
    sigma_px = torch.exp(math.log(0.7) + math.log(10.0) * torch.rand(n, 1, generator=g))
    aniso = torch.exp(0.5 * torch.randn(n, 3, generator=g)).clamp(0.3, 1.0)
    scales = sigma_px * aniso * z[:, None] / f
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]]])
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
                viewmats=viewmats, Ks=Ks, width=size, height=size)


def _run(scene: dict, backend: str, backward: bool) -> tuple[float, float, dict]:
    """One call; returns wall seconds, process CPU seconds (all threads) and meta."""
    params = {k: (v.clone().requires_grad_(backward) if k in ("means", "quats", "scales", "opacities", "colors") else v)
              for k, v in scene.items()}
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.set_grad_enabled(backward):
        img, alpha, meta = rasterization(**params, backend=backend)
        if backward:
            (img.sum() + alpha.sum()).backward()
    return time.perf_counter() - t0, time.process_time() - c0, meta


def measure(scene: dict, backend: str, backward: bool, repeats: int) -> tuple[float, float, dict]:
    """Median wall and CPU seconds over ``repeats`` calls after one warm-up call."""
    _run(scene, backend, backward)  # warm-up
    walls, cpus, meta = [], [], None
    for _ in range(repeats):
        w, c, meta = _run(scene, backend, backward)
        walls.append(w)
        cpus.append(c)
    return statistics.median(walls), statistics.median(cpus), meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run: fewer sizes and repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--torch-limit", type=float, default=3e8,
                        help="skip the torch backend above this many pixel-Gaussian pairs (it would take minutes)")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sizes (default: 128 256 512)")
    parser.add_argument("--ns", type=int, nargs="+", help="Gaussian counts (default: 1000 20000 100000)")
    parser.add_argument("--threads", type=int, help="torch/OpenMP threads (default: torch's default)")
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.quick:
        ns, sizes, repeats = [1_000, 20_000], [128, 256], args.repeats or 2
    else:
        ns, sizes, repeats = [1_000, 20_000, 100_000], [128, 256, 512], args.repeats or 5
    ns, sizes = args.ns or ns, args.sizes or sizes

    rows = []
    header = (f"{'N':>7} {'size':>5} {'isects':>8} {'backend':>7} {'fwd ms':>9} {'fwd+bwd ms':>11} "
              f"{'f+b cpu-s':>9} {'Gpair/s fwd':>11} {'speed-up f+b':>12}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads={torch.get_num_threads()}  cores={os.cpu_count()}  load average at start={load:.1f}  "
          f"repeats={repeats} (median; cpu-s = process CPU time, all threads)")
    print(header)
    print("-" * len(header))
    for n in ns:
        for size in sizes:
            scene = make_scene(n, size)
            results = {}
            for backend in ("cpu", "torch"):
                _, _, meta = _run(scene, "cpu", False)
                isects = int(meta["tiles_per_gauss"].sum())
                pairs = isects * meta["tile_size"] ** 2
                if backend == "torch" and pairs > args.torch_limit:
                    results[backend] = None
                    print(f"{n:>7} {size:>5} {isects:>8} {backend:>7} {'skipped (would take minutes)':>45}")
                    continue
                fwd, fwd_cpu, _ = measure(scene, backend, False, repeats)
                both, both_cpu, _ = measure(scene, backend, True, repeats)
                results[backend] = dict(fwd_s=fwd, fwd_bwd_s=both, fwd_cpu_s=fwd_cpu, fwd_bwd_cpu_s=both_cpu,
                                        isects=isects, pairs=pairs, pairs_per_s_fwd=pairs / fwd)
            for backend in ("cpu", "torch"):
                r = results[backend]
                if r is None:
                    continue
                speed = ""
                if backend == "cpu" and results["torch"] is not None:
                    r["speedup_fwd_bwd"] = results["torch"]["fwd_bwd_s"] / r["fwd_bwd_s"]
                    r["speedup_fwd"] = results["torch"]["fwd_s"] / r["fwd_s"]
                    speed = f"{r['speedup_fwd_bwd']:.1f}x"
                print(f"{n:>7} {size:>5} {r['isects']:>8} {backend:>7} {r['fwd_s'] * 1e3:>9.1f} "
                      f"{r['fwd_bwd_s'] * 1e3:>11.1f} {r['fwd_bwd_cpu_s']:>9.2f} {r['pairs_per_s_fwd'] / 1e9:>11.3f} "
                      f"{speed:>12}")
                rows.append(dict(n=n, size=size, backend=backend, **r))
    if args.json:
        payload = dict(machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                                    threads=torch.get_num_threads(), torch=torch.__version__,
                                    load_average_at_start=load), repeats=repeats, rows=rows)
        folder = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
            json.dump(payload, f, indent=2)
        os.replace(f.name, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
