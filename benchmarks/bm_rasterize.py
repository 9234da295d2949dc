"""Benchmark of splat.rasterization: the pure-PyTorch backend against the compiled cpu one.

Times forward and forward+backward of the whole ``rasterization()`` call
(projection, colours and compositing) on random scenes that look like real
ones: Gaussians in front of the camera, pixel radii from a few to ~20, opacities
spread over (0, 1). Reports medians of repeats after a warm-up, the number of
tile-Gaussian intersections, the rate of pixel-Gaussian pairs (every pixel of
every intersected tile, as gsplat's kernel evaluates them) per second, and the
cpu backend's speed-up in wall time and in process CPU time (the steadier
figure on a shared machine).

``--fit-step`` also times one 3DGS training step (render with SH degree 3,
0.8 L1 + 0.2 D-SSIM loss, backward, one Adam per parameter as the fit loop)
at 800x600 with 100k Gaussians (``--fit-step-size``, ``--fit-step-ns``), in
two variants: ``current`` (the compiled SSIM kernel and fused Adam, as
``fit`` runs now) and ``previous`` (``splat.metrics.ssim`` and the
per-tensor Adam), and the two parts that changed (the SSIM term and Adam) on
their own.

    python benchmarks/bm_rasterize.py            # the full grid
    python benchmarks/bm_rasterize.py --quick    # a short run
    python benchmarks/bm_rasterize.py --ns 20000 100000 --sizes 256 512 --fit-step --json out.json
    python benchmarks/bm_rasterize.py --ns 1000 --sizes 128 --threads 1 --fit-step --fit-step-size 256 192 \
        --fit-step-ns 30000 50000 --fit-repeats 15   # the suite's training step
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


def make_scene(n: int, size: int, seed: int = 0, height: int | None = None) -> dict:
    """A random scene of ``n`` Gaussians seen by one ``size`` x ``height`` (default square) camera."""
    g = torch.Generator().manual_seed(seed)
    width, height = size, height or size
    f = float(size)
    z = 2.0 + 6.0 * torch.rand(n, generator=g)
    u = (torch.rand(n, generator=g) * 1.2 - 0.1) * width
    v = (torch.rand(n, generator=g) * 1.2 - 0.1) * height
    means = torch.stack([(u - width / 2) / f * z, (v - height / 2) / f * z, z], -1)
    # Screen-space standard deviations log-uniform in [0.7, 7] px: 3-sigma radii ~2..21 px.
    sigma_px = torch.exp(math.log(0.7) + math.log(10.0) * torch.rand(n, 1, generator=g))
    aniso = torch.exp(0.5 * torch.randn(n, 3, generator=g)).clamp(0.3, 1.0)
    scales = sigma_px * aniso * z[:, None] / f
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]])
    return dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
                viewmats=viewmats, Ks=Ks, width=width, height=height)


def _fit_step_run(state: dict, backend: str) -> tuple[float, float]:
    """One 3DGS step on ``state`` (params, optimizers, target, ssim); returns wall and CPU seconds."""
    from splat.core.validation import finite_checks

    p, opts, scene, target, ssim = state["params"], state["opts"], state["scene"], state["target"], state["ssim"]
    t0, c0 = time.perf_counter(), time.process_time()
    with finite_checks(False):  # as the fit loop
        img, _, meta = rasterization(
            p["means"], p["quats"], torch.exp(p["scales"]), torch.sigmoid(p["opacities"]), p["sh"],
            scene["viewmats"], scene["Ks"], scene["width"], scene["height"], sh_degree=3, backend=backend,
        )  # fmt: skip
    meta["means2d"].retain_grad()
    loss = 0.8 * (img - target).abs().mean() + 0.2 * (1.0 - ssim(img, target).mean())
    loss.backward()
    for opt in opts:
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, time.process_time() - c0


def measure_fit_step(n: int, width: int, height: int, backend: str, repeats: int, variant: str = "current") -> dict:
    """Median wall/CPU seconds of a training step after a warm-up step.

    ``variant``: ``"current"`` (compiled SSIM on the cpu backend, fused Adam)
    or ``"previous"`` (``splat.metrics.ssim``, per-tensor Adam).
    """
    from splat.metrics import ssim as spec_ssim

    fast = variant == "current"
    ssim = spec_ssim
    if fast and backend == "cpu":
        from splat.core.backends import cpu

        ssim = cpu.ssim
    scene = make_scene(n, width, height=height)
    g = torch.Generator().manual_seed(1)
    params = {
        "means": scene["means"], "quats": scene["quats"], "scales": torch.log(scene["scales"]),
        "opacities": torch.logit(scene["opacities"].clamp(0.01, 0.99)),
        "sh": torch.randn(n, 16, 3, generator=g) * 0.2,
    }  # fmt: skip
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    target = torch.rand(1, height, width, 3, generator=g)
    opts = [torch.optim.Adam([v], lr=1e-4, eps=1e-15, fused=fast) for v in params.values()]
    state = dict(params=params, scene=scene, target=target, opts=opts, ssim=ssim)
    _fit_step_run(state, backend)  # warm-up
    walls, cpus = zip(*(_fit_step_run(state, backend) for _ in range(repeats)))
    return dict(n=n, width=width, height=height, backend=backend, variant=variant, step_s=statistics.median(walls),
                step_cpu_s=statistics.median(cpus), repeats=repeats)


def measure_step_parts(n: int, width: int, height: int, repeats: int) -> dict:
    """Median process CPU ms of the SSIM term (forward + backward) and of the six 3DGS Adam steps,
    previous (``splat.metrics.ssim``, per-tensor Adam) against current (SSIM kernel, fused Adam)."""
    from splat.core.backends import cpu
    from splat.metrics import ssim as spec_ssim

    g = torch.Generator().manual_seed(2)
    img = torch.rand(1, height, width, 3, generator=g, requires_grad=True)
    ref = torch.rand(1, height, width, 3, generator=g)
    shapes = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "sh0": (n, 1, 3),
              "shN": (n, 15, 3)}

    def median_cpu_ms(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            c0 = time.process_time()
            fn()
            times.append(time.process_time() - c0)
        return statistics.median(times) * 1e3

    def ssim_step(fn):
        def run():
            (1.0 - fn(img, ref).mean()).backward()
            img.grad = None
        return run

    def adam_step(fused: bool):
        params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes.values()]
        opts = [torch.optim.Adam([p], lr=1e-3, eps=1e-15, fused=fused) for p in params]
        grads = [torch.randn_like(p) for p in params]

        def run():
            for p, gr, o in zip(params, grads, opts):
                p.grad = gr
                o.step()
        return run

    return dict(n=n, width=width, height=height, repeats=repeats,
                ssim_previous_ms=median_cpu_ms(ssim_step(spec_ssim)), ssim_current_ms=median_cpu_ms(ssim_step(cpu.ssim)),
                adam_previous_ms=median_cpu_ms(adam_step(False)), adam_current_ms=median_cpu_ms(adam_step(True)))


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
    parser.add_argument("--fit-step", action="store_true",
                        help="also time a 3DGS training step at 800x600 with 100k Gaussians (cpu backend)")
    parser.add_argument("--fit-step-torch", action="store_true",
                        help="with --fit-step, time the torch backend too (tens of seconds per step)")
    parser.add_argument("--fit-repeats", type=int, default=3, help="timed training steps (median reported)")
    parser.add_argument("--fit-step-size", type=int, nargs=2, default=[800, 600], metavar=("W", "H"),
                        help="image size of --fit-step (default 800 600)")
    parser.add_argument("--fit-step-ns", type=int, nargs="+", default=[100_000],
                        help="Gaussian counts of --fit-step (default 100000)")
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
              f"{'f+b cpu-ms':>10} {'Gpair/s fwd':>11} {'speed-up f+b':>12} {'(cpu time)':>10}")
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
                speed = speed_cpu = ""
                if backend == "cpu" and results["torch"] is not None:
                    r["speedup_fwd_bwd"] = results["torch"]["fwd_bwd_s"] / r["fwd_bwd_s"]
                    r["speedup_fwd"] = results["torch"]["fwd_s"] / r["fwd_s"]
                    r["speedup_fwd_bwd_cpu_time"] = results["torch"]["fwd_bwd_cpu_s"] / r["fwd_bwd_cpu_s"]
                    speed = f"{r['speedup_fwd_bwd']:.1f}x"
                    speed_cpu = f"{r['speedup_fwd_bwd_cpu_time']:.1f}x"
                print(f"{n:>7} {size:>5} {r['isects']:>8} {backend:>7} {r['fwd_s'] * 1e3:>9.1f} "
                      f"{r['fwd_bwd_s'] * 1e3:>11.1f} {r['fwd_bwd_cpu_s'] * 1e3:>10.1f} "
                      f"{r['pairs_per_s_fwd'] / 1e9:>11.3f} {speed:>12} {speed_cpu:>10}")
                rows.append(dict(n=n, size=size, backend=backend, **r))
    fit_rows = []
    if args.fit_step:
        fw, fh = args.fit_step_size
        print(f"\n3DGS training step, {fw}x{fh}, SH degree 3 (median of {args.fit_repeats})")
        for n in args.fit_step_ns:
            for backend in ("cpu", "torch") if args.fit_step_torch else ("cpu",):
                for variant in ("previous", "current"):
                    r = measure_fit_step(n, fw, fh, backend, args.fit_repeats, variant)
                    fit_rows.append(r)
                    print(f"{n:>7} {backend:>7} {variant:>8}: {r['step_s'] * 1e3:9.1f} ms wall, "
                          f"{r['step_cpu_s'] * 1e3:9.1f} ms CPU")
            parts = measure_step_parts(n, fw, fh, max(args.fit_repeats, 5))
            fit_rows.append(parts)
            print(f"{n:>7} parts (CPU ms, previous -> current): SSIM fwd+bwd {parts['ssim_previous_ms']:.1f} -> "
                  f"{parts['ssim_current_ms']:.1f}, Adam {parts['adam_previous_ms']:.1f} -> "
                  f"{parts['adam_current_ms']:.1f}")
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at end={load_end:.1f}")
    if args.json:
        payload = dict(machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                                    threads=torch.get_num_threads(), torch=torch.__version__,
                                    load_average_at_start=load, load_average_at_end=load_end),
                       repeats=repeats, rows=rows, fit_step=fit_rows)
        folder = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
            json.dump(payload, f, indent=2)
        os.replace(f.name, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
