"""Method comparison: every registered method on the bundled scene for the same time budget.

Each method fits the bundled scene with its default hyper-parameters (SH degree
and schedule length shared) and stops at ``--steps`` or when its training time
exceeds ``--budget-seconds``; held-out PSNR and the number of Gaussians are
recorded every ``--eval-every`` steps (evaluation time is not counted) and
PSNR/SSIM at the end.

    python benchmarks/bm_methods.py                                  # all methods, 120 s each
    python benchmarks/bm_methods.py --methods 3dgs ges --json results/bm_methods.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from splat.io import load_bundled_scene  # noqa: E402
from splat.io.ply import atomic_write_bytes  # noqa: E402
from splat.methods import available_methods, fit  # noqa: E402


def psnr_at(curve: list[dict], seconds: float) -> float | None:
    """Held-out PSNR of the last evaluation at or before ``seconds`` of training."""
    best = [c for c in curve if c["seconds"] <= seconds]
    return best[-1]["psnr"] if best else None


def run_method(scene, name: str, args) -> dict:
    elapsed = [0.0]

    def on_progress(p):
        elapsed[0] = p.elapsed_seconds

    wall = time.perf_counter()
    result = fit(scene, method=name, steps=args.steps, eval_every=args.eval_every, checkpoint_every=0,
                 backend=args.backend, seed=args.seed, num_threads=args.threads, show_progress=False,
                 progress=on_progress, should_stop=lambda: elapsed[0] >= args.budget_seconds,
                 sh_degree=args.sh_degree)
    m = result.metrics
    return {"method": name, "steps_done": m["steps"], "train_seconds": m["train_seconds"],
            "wall_seconds": round(time.perf_counter() - wall, 2), "psnr": m["psnr"], "ssim": m["ssim"],
            "num_gaussians": m["num_gaussians"], "curve": m["curve"], "hyperparameters": m["hyperparameters"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    ap.add_argument("--budget-seconds", type=float, default=120.0, help="training time per method")
    ap.add_argument("--steps", type=int, default=700, help="schedule length (learning-rate decay)")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--sh-degree", type=int, default=3)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)
    if args.budget_seconds <= 0:
        ap.error(f"--budget-seconds must be > 0, got {args.budget_seconds}")
    methods = args.methods or available_methods()
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        ap.error(f"unknown methods {unknown}; registered: {available_methods()}")

    scene = load_bundled_scene()
    fit(scene, method=methods[0], steps=3, eval_every=0, backend=args.backend, num_threads=args.threads,
        show_progress=False)  # warm-up: loads the backend and caches the images
    runs = [run_method(scene, name, args) for name in methods]

    marks = [t for t in (30, 60, 90, 120, 180, 300) if t <= args.budget_seconds]
    print(f"\n{scene.name} {scene.cameras.width}x{scene.cameras.height}, budget {args.budget_seconds:.0f} s "
          f"training per method, schedule {args.steps} steps, {args.threads} thread(s)")
    head = f"{'method':>10} " + " ".join(f"{f'PSNR@{t}s':>10}" for t in marks)
    print(head + f" {'final PSNR':>10} {'SSIM':>6} {'N':>7} {'steps':>6}")
    for r in runs:
        cells = " ".join(f"{psnr_at(r['curve'], t) or float('nan'):>10.2f}" for t in marks)
        print(f"{r['method']:>10} {cells} {r['psnr']:>10.2f} {r['ssim']:>6.4f} {r['num_gaussians']:>7} "
              f"{r['steps_done']:>6}")

    if args.json:
        payload = {
            "benchmark": "methods",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                        "threads": args.threads},
            "scene": scene.name,
            "budget_seconds": args.budget_seconds,
            "steps_schedule": args.steps,
            "runs": runs,
        }
        atomic_write_bytes(args.json, (json.dumps(payload, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
