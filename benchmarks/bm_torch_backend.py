"""Benchmark of the pure-PyTorch rasterizer path: projection, compositing, backward.

Times (median of repeats after a warm-up) the PyTorch projection alone, the
whole ``rasterization(backend="torch")`` forward, and forward + backward, on
random scenes of N Gaussians seen by one square camera; then sweeps the torch
backend's ``batch_size`` (Gaussians per tile per dense step).

    python benchmarks/bm_torch_backend.py              # full grid
    python benchmarks/bm_torch_backend.py --quick      # one small scene
    python benchmarks/bm_torch_backend.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from splat.core.backends import torch_backend  # noqa: E402
from splat.core.projection import project_gaussians  # noqa: E402
from splat.core.rasterization import rasterization  # noqa: E402


def make_scene(n: int, size: int, seed: int = 0) -> dict:
    """``n`` Gaussians in a box 3-7 units in front of an identity camera of ``size`` px."""
    g = torch.Generator().manual_seed(seed)
    z = 3.0 + 4.0 * torch.rand(n, generator=g)
    xy = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.6 * z[:, None]
    f = 1.0 * size
    return dict(
        means=torch.cat([xy, z[:, None]], -1),
        quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.05 + 0.005,
        opacities=torch.rand(n, generator=g),
        colors=torch.rand(n, 3, generator=g),
        viewmats=torch.eye(4)[None],
        Ks=torch.tensor([[[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]]]),
        width=size,
        height=size,
    )


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _project(scene):
    with torch.no_grad():
        project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"],
                          scene["width"], scene["height"], opacities=scene["opacities"])


def _forward(scene):
    with torch.no_grad():
        rasterization(**scene, backend="torch")


def _forward_backward(scene):
    params = {k: (v.clone().requires_grad_() if k in ("means", "quats", "scales", "opacities", "colors") else v)
              for k, v in scene.items()}
    img, alpha, _ = rasterization(**params, backend="torch")
    (img.sum() + alpha.sum()).backward()


def run(grid, sweep, repeats: int) -> dict:
    rows = []
    for n, size in grid:
        scene = make_scene(n, size)
        with torch.no_grad():
            _, _, meta = rasterization(**scene, backend="torch")
        row = {
            "n": n, "size": size, "intersections": int(meta["tiles_per_gauss"].sum()),
            "project_s": median_time(partial(_project, scene), repeats),
            "forward_s": median_time(partial(_forward, scene), repeats),
            "forward_backward_s": median_time(partial(_forward_backward, scene), repeats),
        }
        rows.append(row)
        print(f"N={n:>6} {size:>4}x{size:<4} isects={row['intersections']:>7}  project {row['project_s']*1e3:7.1f} ms"
              f"  forward {row['forward_s']:6.2f} s  forward+backward {row['forward_backward_s']:6.2f} s", flush=True)
    sweep_rows = []
    if sweep:
        n, size = sweep
        scene = make_scene(n, size)
        p = project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["viewmats"], scene["Ks"],
                              size, size, opacities=scene["opacities"])
        args = (p.means2d, p.conics, scene["colors"][None], scene["opacities"][None], p.depths, p.radii, size, size, 16)
        for batch in (16, 32, 64, 128):
            def composite_only(batch=batch):
                with torch.no_grad():
                    torch_backend.composite(*args, batch_size=batch)

            t = median_time(composite_only, repeats)
            sweep_rows.append({"n": n, "size": size, "batch_size": batch, "composite_s": t})
            print(f"batch_size={batch:>4}: composite (forward) {t:6.2f} s", flush=True)
    return {"rows": rows, "batch_sweep": sweep_rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small scene, few repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON (atomically)")
    args = parser.parse_args(argv)
    if args.quick:
        grid, sweep, repeats = [(2000, 128)], None, args.repeats or 3
    else:
        grid, sweep, repeats = [(2000, 128), (20000, 256), (50000, 256)], (20000, 256), args.repeats or 5
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    result = run(grid, sweep, repeats)
    result["machine"] = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "torch": torch.__version__, "repeats": repeats}
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
