"""Fitting benchmark: held-out PSNR/SSIM and number of Gaussians vs steps and seconds.

Fits the bundled scene with a registered method on the CPU, evaluating the
held-out views every ``--eval-every`` steps (evaluation time is not counted),
and stops at ``--steps`` (default 1000) or when the training time exceeds ``--budget-seconds``.
Target on a 2-core CPU: at least 28 dB held-out PSNR within 5 minutes.

    python benchmarks/bm_fit.py                          # 3dgs, 300 s budget
    python benchmarks/bm_fit.py --budget-seconds 120 --json results/bm_fit.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from splat.io import load_bundled_scene, load_scene  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402
from splat.methods import fit  # noqa: E402
from splat.utils.machine import machine_info  # noqa: E402

TARGET_DB = 28.0


def first_time_at(curve: list[dict], db: float) -> dict | None:
    """The first evaluation of the curve at or above ``db``."""
    return next((c for c in curve if c["psnr"] >= db), None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="scene folder (default: the bundled scene)")
    ap.add_argument("--method", default="3dgs")
    ap.add_argument("--steps", type=int, default=1000,
                    help="steps of the schedule (learning-rate decay); sized to end within the budget")
    ap.add_argument("--budget-seconds", type=float, default=300.0, help="stop when training time exceeds this")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the fit outputs here")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)

    scene = load_bundled_scene() if args.data is None else load_scene(args.data)
    # warm-up: loads (and if needed compiles) the backend and caches the images
    fit(scene, method=args.method, steps=3, eval_every=0, backend=args.backend, num_threads=args.threads,
        show_progress=False)

    elapsed = [0.0]

    def on_progress(p):
        elapsed[0] = p.elapsed_seconds

    out = args.out or Path(tempfile.mkdtemp(prefix="bm_fit_"))
    wall = time.perf_counter()
    result = fit(scene, method=args.method, steps=args.steps, out_dir=out, eval_every=args.eval_every,
                 checkpoint_every=0, backend=args.backend, seed=args.seed, num_threads=args.threads,
                 progress=on_progress, should_stop=lambda: elapsed[0] >= args.budget_seconds)
    wall = time.perf_counter() - wall
    m = result.metrics
    hit = first_time_at(m["curve"], TARGET_DB)

    print(f"\n{args.method} on {scene.name} ({m['width']}x{m['height']}, {len(scene.train_ids)} train / "
          f"{len(m['eval_views'])} held-out views), {args.threads} thread(s), backend {args.backend}")
    print(f"{'step':>6} {'seconds':>9} {'PSNR dB':>8} {'Gaussians':>10}")
    for c in m["curve"]:
        print(f"{c['step']:>6} {c['seconds']:>9.1f} {c['psnr']:>8.2f} {c['num_gaussians']:>10}")
    print(f"final: {m['steps']} steps, {m['train_seconds']:.1f} s training ({wall:.1f} s wall with evaluations), "
          f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, {m['num_gaussians']} Gaussians")
    verdict = (f"reached {TARGET_DB} dB at step {hit['step']} after {hit['seconds']:.1f} s" if hit
               else f"did not reach {TARGET_DB} dB")
    within = bool(hit and hit["seconds"] <= 300.0)
    print(f"target (>= {TARGET_DB} dB within 300 s): {'met' if within else 'missed'} ({verdict})")

    if args.json:
        payload = {
            "benchmark": "fit",
            "machine": machine_info(args.threads),
            "scene": scene.name,
            "method": args.method,
            "backend": args.backend,
            "budget_seconds": args.budget_seconds,
            "steps_schedule": args.steps,
            "steps_done": m["steps"],
            "train_seconds": m["train_seconds"],
            "wall_seconds": round(wall, 2),
            "psnr": m["psnr"],
            "ssim": m["ssim"],
            "num_gaussians": m["num_gaussians"],
            "target_db": TARGET_DB,
            "target_reached": hit,
            "target_met_within_300s": within,
            "curve": m["curve"],
            "hyperparameters": m["hyperparameters"],
        }
        write_json_atomic(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
