"""GS2Pose on generated object data, with BOP-style metrics.

For each object (a box of photographs, pyvista's airplane; see
``splat.pose.dataset``) the benchmark

1. renders training views with VTK (RGBA, 48 views, 192 px) and fits an object
   model with the mask-supervised ``object`` method (cached in ``--work``);
2. trains the coarse Pose-Net on renders of that model (cached beside it);
3. renders test images at 256 px at random poses on photographic
   backgrounds: clean, under changed lights, and with a photo patch occluding
   30 % of the object's box (the mask given is the visible one);
4. runs the refiner alone from perturbations of the true pose (rotation error
   exactly ``angle``, translation error exactly ``fraction`` of the diameter),
   the coarse stage alone, and coarse + refiner.

Metrics (BOP): success = ADD < 0.1 d (ADD-S for symmetric objects; none of
these is), median rotation error (degrees) and translation error (fraction
of d), mean iterations, median wall seconds and median CPU seconds (process
time; on one thread this is the wall time of an idle core) per refinement. The refiner always
gets the image and the visible mask, no depth.

Usage:
    python benchmarks/bm_gs2pose.py [--objects photo_box,airplane] [--samples 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splat.pose.estimate import default_posenet_path  # noqa: E402
from splat.pose.model import load_object_model, model_diameter, surface_points  # noqa: E402
from splat.pose.refiner import Observation, RefinerConfig, refine_pose  # noqa: E402
from splat.pose.se3 import perturb, rotation_error_deg  # noqa: E402

PERTURBATIONS = [(5.0, 0.05), (20.0, 0.10), (30.0, 0.20)]
CONDITIONS = {"clean": dict(), "lighting": dict(lighting_change=True), "occlusion": dict(occlusion=0.3)}


def add_metric(T: torch.Tensor, T_gt: torch.Tensor, points: torch.Tensor, symmetric: bool = False) -> float:
    """ADD (mean distance of corresponding model points) or ADD-S (to the closest point)."""
    a = points.double() @ T[:3, :3].T.double() + T[:3, 3].double()
    b = points.double() @ T_gt[:3, :3].T.double() + T_gt[:3, 3].double()
    if not symmetric:
        return float((a - b).norm(dim=-1).mean())
    return float(torch.cdist(b, a).min(dim=1).values.mean())


def errors(T, T_gt, points, d) -> dict:
    return {
        "add_d": add_metric(T, T_gt, points) / d,
        "re_deg": float(rotation_error_deg(T[:3, :3].double(), T_gt[:3, :3].double())),
        "te_d": float((T[:3, 3] - T_gt[:3, 3]).norm()) / d,
    }


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {}
    out = {
        "n": len(rows),
        "success": float(np.mean([r["add_d"] < 0.1 for r in rows])),
        "median_re_deg": float(np.median([r["re_deg"] for r in rows])),
        "median_te_d": float(np.median([r["te_d"] for r in rows])),
    }
    if "iterations" in rows[0]:
        out["mean_iterations"] = float(np.mean([r["iterations"] for r in rows]))
        out["median_seconds"] = float(np.median([r["seconds"] for r in rows]))
        out["median_cpu_seconds"] = float(np.median([r.get("cpu_seconds", r["seconds"]) for r in rows]))
    return out


def object_model(name: str, work: Path, steps: int) -> Path:
    """Fits (or reuses) the object model of ``name``; returns its PLY."""
    from splat.pose.dataset import write_object_views
    from splat.pose.object_model import fit_object_model

    ply = work / f"{name}_fit" / "point_cloud.ply"
    if ply.is_file():
        return ply
    views = work / f"{name}_views"
    if not (views / "transforms.json").is_file():
        write_object_views(name, views, num_views=48, size=192, distance=2.4)
    t = time.perf_counter()
    result = fit_object_model(views, ply.parent, steps=steps)
    print(f"[{name}] fitted in {time.perf_counter() - t:.0f} s: held-out PSNR {result.metrics['psnr']:.2f}, "
          f"{result.metrics['num_gaussians']} Gaussians", flush=True)
    return ply


def posenet_for(ply: Path, steps: int) -> Path:
    from splat.pose.estimate import train_posenet

    path = default_posenet_path(ply)
    if not path.is_file():
        t = time.perf_counter()
        train_posenet(ply, path, steps=steps, show_progress=False)
        print(f"[{ply.parent.name}] Pose-Net trained in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def run_object(name: str, args) -> dict:
    from splat.pose.dataset import make_test_samples
    from splat.pose.posenet import coarse_pose, load_posenet

    ply = object_model(name, args.work, args.fit_steps)
    gaussians = load_object_model(ply)
    points = surface_points(gaussians)
    d = model_diameter(points)
    config = RefinerConfig()
    results: dict = {"diameter": d, "num_gaussians": gaussians.num_gaussians, "refiner": {}, "coarse": {},
                     "coarse+refiner": {}}
    net = payload = None
    if "coarse" in args.stages:
        net, payload = load_posenet(posenet_for(ply, args.posenet_steps), gaussians)
        results["posenet_train_seconds"] = payload["train_seconds"]
    gen = torch.Generator().manual_seed(args.seed)
    for cond, kwargs in CONDITIONS.items():
        samples = make_test_samples(name, args.samples, size=args.size, seed=args.seed + 17, **kwargs)
        for angle, frac in PERTURBATIONS if "refiner" in args.stages else []:
            rows = []
            for s in samples:
                T_gt = torch.from_numpy(s.object_to_camera)
                obs = Observation(torch.from_numpy(s.image), torch.from_numpy(s.K).float(),
                                  torch.from_numpy(s.mask), None)
                T0 = perturb(T_gt, angle, frac * d, gen)
                cpu = time.process_time()
                r = refine_pose(gaussians, obs, T0, config, points=points, diameter=d)
                rows.append({**errors(r.object_to_camera, T_gt, points, d), "iterations": r.iterations,
                             "seconds": r.seconds, "cpu_seconds": time.process_time() - cpu})
            key = f"{cond} {angle:g}deg {frac:g}d"
            results["refiner"][key] = summarise(rows)
            print(f"[{name}] refiner {key}: {results['refiner'][key]}", flush=True)
        if net is None:
            continue
        coarse_rows, full_rows = [], []
        for s in samples:
            T_gt = torch.from_numpy(s.object_to_camera)
            image, K = torch.from_numpy(s.image), torch.from_numpy(s.K)
            mask = torch.from_numpy(s.mask)
            t, cpu = time.perf_counter(), time.process_time()
            T0, _ = coarse_pose(net, payload, image, K, mask)
            coarse_seconds, coarse_cpu = time.perf_counter() - t, time.process_time() - cpu
            if T0 is None:  # no pose: counted as failures with maximal errors
                fail = {"add_d": float("inf"), "re_deg": 180.0, "te_d": float("inf")}
                coarse_rows.append({**fail, "seconds": coarse_seconds, "cpu_seconds": coarse_cpu, "iterations": 0})
                full_rows.append({**fail, "seconds": coarse_seconds, "cpu_seconds": coarse_cpu, "iterations": 0})
                continue
            coarse_rows.append({**errors(T0, T_gt, points, d), "seconds": coarse_seconds, "cpu_seconds": coarse_cpu,
                                "iterations": 0})
            cpu = time.process_time()
            r = refine_pose(gaussians, Observation(image, K.float(), mask, None), T0, config, points=points,
                            diameter=d)
            full_rows.append({**errors(r.object_to_camera, T_gt, points, d), "iterations": r.iterations,
                              "seconds": r.seconds + coarse_seconds,
                              "cpu_seconds": time.process_time() - cpu + coarse_cpu})
        results["coarse"][cond] = summarise(coarse_rows)
        results["coarse+refiner"][cond] = summarise(full_rows)
        print(f"[{name}] coarse {cond}: {results['coarse'][cond]}", flush=True)
        print(f"[{name}] coarse+refiner {cond}: {results['coarse+refiner'][cond]}", flush=True)
    return results


def print_table(all_results: dict) -> None:
    print()
    print(f"{'object':10} {'stage':15} {'condition':26} {'n':>3} {'ADD<0.1d':>8} {'med re°':>8} {'med te/d':>8} "
          f"{'iters':>6} {'wall s':>7} {'cpu s':>6}")
    for name, res in all_results.items():
        for stage in ("refiner", "coarse", "coarse+refiner"):
            for cond, m in res.get(stage, {}).items():
                if not m:
                    continue
                print(f"{name:10} {stage:15} {cond:26} {m['n']:>3} {m['success'] * 100:>7.0f}% "
                      f"{m['median_re_deg']:>8.2f} {m['median_te_d']:>8.3f} "
                      f"{m.get('mean_iterations', 0):>6.1f} {m.get('median_seconds', 0):>7.2f} "
                      f"{m.get('median_cpu_seconds', 0):>6.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", default="photo_box,airplane")
    parser.add_argument("--samples", type=int, default=6, help="test images per condition")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-steps", type=int, default=1500)
    parser.add_argument("--posenet-steps", type=int, default=1200)
    parser.add_argument("--stages", default="refiner,coarse",
                        help="refiner (from perturbations) and/or coarse (alone and + refiner)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "splatops_gs2pose")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    # Warm-up: one tiny refinement loads and initialises the rasterizer and Adam before timing.
    from splat.pose.dataset import default_intrinsics, look_at_pose, make_object
    from splat.pose.model import sample_object_gaussians

    warm = sample_object_gaussians(make_object("photo_box"), num=300)
    K = torch.from_numpy(default_intrinsics(64)).float()
    T = torch.from_numpy(look_at_pose(np.array([1.0, 0.3, 0.4]), 2.5))
    refine_pose(warm, Observation(torch.zeros(64, 64, 3), K), T, RefinerConfig(max_iters=2, min_iters=1))

    all_results = {name: run_object(name, args) for name in args.objects.split(",")}
    print_table(all_results)
    if args.json:
        from splat.io.atomic import write_text_atomic

        meta = {"machine": os.uname().nodename, "threads": args.threads, "size": args.size,
                "samples": args.samples, "seed": args.seed}
        write_text_atomic(args.json, json.dumps({"meta": meta, "results": all_results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
