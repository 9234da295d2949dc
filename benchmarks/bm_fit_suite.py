"""Fitting on the generated scene suite, ours beside OpenSplat (optional).

For every scene of ``splat.scenes.SUITE`` (generated once into ``--cache``),
fits ``--method`` with its defaults for each ``--steps`` count on one torch
thread and reports held-out PSNR/SSIM (every 8th view, our renderer), the
wall-clock of the whole fit, its process CPU time (one thread: about the wall
time of an idle machine; the compiled backend is loaded before the clock
starts) and the number of Gaussians. With ``--opensplat
PATH`` the OpenSplat binary (WebODM/OpenSplat 1.2.0, CPU runtime) is run on
the same scenes: it gets a nerfstudio folder with only the training views
(plus a random 20k-point PLY in the scene bounds when the scene has no
points), ``--cpu -n N --densify-until N``; the whole process is timed, and
its PLY is evaluated on the same held-out views with our renderer, under
its conventions (pixel centres at integer coordinates, black background).

    python benchmarks/bm_fit_suite.py --scenes tabletop thin --steps 1000
    python benchmarks/bm_fit_suite.py --steps 1000 3000 --opensplat /tmp/opensplat-build/opensplat --json r.json
    python benchmarks/bm_fit_suite.py --scenes tabletop --random-init views  # ablation: random init
    python benchmarks/bm_fit_suite.py --scenes tabletop --random-init box --set refine_stop_fraction=1.0  # ablation
    python benchmarks/bm_fit_suite.py --scenes tabletop --steps 3000 --only ours --json ours.json  # one side only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from splat.core.camera import Camera  # noqa: E402
from splat.io import load_nerfstudio  # noqa: E402
from splat.io.atomic import write_text_atomic  # noqa: E402
from splat.io.pointcloud import write_points_ply  # noqa: E402
from splat.methods import fit, get_method  # noqa: E402
from splat.methods.base import MethodState  # noqa: E402
from splat.methods.fit import NUM_RANDOM_POINTS, RANDOM_INITS, evaluate, initial_gaussians  # noqa: E402
from splat.scenes import SCENE_VERSION, SUITE, make_scene  # noqa: E402


def cached_scene(cache: Path, name: str, size, num_views, seed: int) -> Path:
    """The scene folder in ``cache``, generated when missing or from an older generator."""
    spec = SUITE[name]
    w, h = spec.size if size is None else (size, round(size * spec.size[1] / spec.size[0]))
    views = num_views or spec.num_views
    path = cache / f"{name}_{w}x{h}_{views}v_s{seed}"
    meta = path / "transforms.json"
    if not meta.is_file() or json.loads(meta.read_text()).get("suite_version") != SCENE_VERSION:
        make_scene(name, path, num_views=views, size=(w, h), seed=seed)
    return path


def train_only_copy(scene, src: Path, dst: Path, seed: int, num_random: int = 20_000) -> Path:
    """A nerfstudio folder OpenSplat reads: the training frames only, and always a ``ply_file_path``."""
    meta = json.loads((src / "transforms.json").read_text())
    frames = sorted(meta["frames"], key=lambda f: f["file_path"])
    meta["frames"] = [frames[i] for i in scene.train_ids]
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "images").mkdir(exist_ok=True)
    for f in meta["frames"]:
        shutil.copy2(src / f["file_path"], dst / f["file_path"])
    if "ply_file_path" in meta:
        shutil.copy2(src / meta["ply_file_path"], dst / meta["ply_file_path"])
    else:  # random points in the box the cameras span (OpenSplat needs an initial cloud)
        centers = scene.cameras.centers.double()
        mid, r = centers.mean(0).numpy(), scene.extent / 1.1
        rng = np.random.default_rng(seed)
        pts = mid + rng.uniform(-r, r, size=(num_random, 3))
        write_points_ply(dst / "random_pc.ply", pts, rng.uniform(0, 1, size=(num_random, 3)))
        meta["ply_file_path"] = "random_pc.ply"
    (dst / "transforms.json").write_text(json.dumps(meta, indent=1))
    return dst


def evaluate_ply(ply: Path, scene, integer_pixel_centres: bool, background) -> tuple[float, float, int]:
    """Held-out PSNR, SSIM and count of a 3DGS PLY rendered by our rasterizer."""
    from splat.io.ply import load_ply

    g = load_ply(ply)
    Ks = scene.cameras.Ks.clone()
    if integer_pixel_centres:  # its pixel i is sampled at coordinate i, ours at i + 0.5
        Ks[:, 0, 2] += 0.5
        Ks[:, 1, 2] += 0.5
    ev = replace(scene, cameras=Camera(scene.cameras.viewmats, Ks, scene.cameras.width, scene.cameras.height),
                 background=background)
    method = get_method("3dgs", sh_degree=g.sh_degree)
    psnr, ssim, _ = evaluate(method, ev, g, MethodState(), list(ev.test_ids), ev.images(list(ev.test_ids)),
                             g.sh_degree, "auto")
    return psnr, ssim, g.num_gaussians


def run_ours(path: Path, method: str, steps: int, seed: int, random_init: str = "auto",
             overrides: dict | None = None, sfm_top_up: float = 0.0) -> dict:
    """One fit; its times include the init (a triangulation runs on one thread, as the fit)."""
    overrides = overrides or {}
    scene = load_nerfstudio(path)
    warm_backend()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        sh_degree = get_method(method, **overrides).sh_degree
        init, report = initial_gaussians(scene, sh_degree, NUM_RANDOM_POINTS, seed, random_init,
                                         sfm_top_up=sfm_top_up)
        init_s = time.perf_counter() - t0
        result = fit(scene, method=method, steps=steps, eval_every=0, checkpoint_every=0, seed=seed,
                     num_threads=1, show_progress=False, gaussians=init, **overrides)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        torch.set_num_threads(threads)
    m = result.metrics
    return {"psnr": m["psnr"], "ssim": m["ssim"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "train_s": m["train_seconds"], "gaussians": m["num_gaussians"], "init": report.kind,
            "init_gaussians": report.num_gaussians, "init_s": round(init_s, 1)}


def warm_backend() -> None:
    """Builds or loads the compiled rasterizer before the clock starts (a one-off of the install)."""
    from splat.core.backends import cpu

    cpu.is_available()


def run_opensplat(binary: Path, path: Path, steps: int, seed: int, work: Path, densify_until: bool) -> dict:
    scene = load_nerfstudio(path)
    data = train_only_copy(scene, path, work / "data", seed)
    out = work / f"splat_{steps}.ply"
    cmd = [str(binary), str(data), "--cpu", "-n", str(steps), "-o", str(out)]
    if densify_until:
        cmd += ["--densify-until", str(steps)]
    env = dict(os.environ)
    torch_lib = str(Path(torch.__file__).parent / "lib")
    env["LD_LIBRARY_PATH"] = torch_lib + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"opensplat failed ({proc.returncode}): {proc.stderr[-2000:] or proc.stdout[-2000:]}")
    psnr, ssim, n = evaluate_ply(out, scene, integer_pixel_centres=True, background=(0.0, 0.0, 0.0))
    return {"psnr": psnr, "ssim": ssim, "wall_s": round(wall, 1), "gaussians": n,
            "settings": "--densify-until N" if densify_until else "defaults"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=[n for n in SUITE if n != "tabletop_hd"],
                    choices=sorted(SUITE), help="suite scenes (default: all but tabletop_hd)")
    ap.add_argument("--steps", nargs="+", type=int, default=[1000, 3000])
    ap.add_argument("--method", default="3dgs")
    ap.add_argument("--size", type=int, default=None, help="image width (default: each scene's own)")
    ap.add_argument("--views", type=int, default=None, help="number of views (default: each scene's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "splat_fit_suite")
    ap.add_argument("--opensplat", type=Path, default=None, metavar="PATH", help="OpenSplat binary to compare")
    ap.add_argument("--only", choices=("both", "ours", "opensplat"), default="both",
                    help="run only one side (with --opensplat): long head-to-heads can be run in parts")
    ap.add_argument("--opensplat-defaults", action="store_true",
                    help="also run OpenSplat with its stock densification schedule")
    ap.add_argument("--random-init", choices=RANDOM_INITS, default="auto",
                    help="init of scenes without points (default: the fit default, auto)")
    ap.add_argument("--sfm-top-up", type=float, default=0.0, metavar="F",
                    help="with the sfm init: also add F x 10k random Gaussians in the views (ablation)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="method hyper-parameter override (ablation), repeatable")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = json.loads(value) if value not in ("True", "False") else value == "True"
    if args.opensplat is not None and not args.opensplat.is_file():
        ap.error(f"--opensplat: no such file {args.opensplat}")
    if args.only == "opensplat" and args.opensplat is None:
        ap.error("--only opensplat needs --opensplat PATH")

    rows = []
    for name in args.scenes:
        path = cached_scene(args.cache, name, args.size, args.views, args.seed)
        for steps in args.steps:
            row = {"scene": name, "steps": steps}
            if args.only != "opensplat":
                row["ours"] = run_ours(path, args.method, steps, args.seed, args.random_init, overrides,
                                       args.sfm_top_up)
                print(f"{name} {steps} ours: {row['ours']}", flush=True)
            if args.opensplat is not None and args.only != "ours":
                with tempfile.TemporaryDirectory(prefix="opensplat_") as work:
                    row["opensplat"] = run_opensplat(args.opensplat, path, steps, args.seed, Path(work), True)
                    print(f"{name} {steps} opensplat: {row['opensplat']}", flush=True)
                    if args.opensplat_defaults:
                        row["opensplat_defaults"] = run_opensplat(args.opensplat, path, steps, args.seed,
                                                                  Path(work), False)
            rows.append(row)

    peers = [k for k in ("opensplat", "opensplat_defaults") if any(k in r for r in rows)]
    head = f"{'scene':<12} {'steps':>5} | {'ours dB':>7} {'SSIM':>6} {'wall s':>7} {'CPU s':>6} {'N':>6}"
    for k in peers:
        head += f" | {k[:10] + ' dB':>13} {'SSIM':>6} {'wall s':>7} {'N':>6}"
    print("\n" + head)
    for r in rows:
        o = r.get("ours")
        line = f"{r['scene']:<12} {r['steps']:>5} | " + (
            f"{o['psnr']:>7.2f} {o['ssim']:>6.3f} {o['wall_s']:>7.1f} {o.get('cpu_s', float('nan')):>6.1f} "
            f"{o['gaussians']:>6}" if o else f"{'-':>7} {'-':>6} {'-':>7} {'-':>6} {'-':>6}")
        for k in peers:
            p = r.get(k)
            line += " | " + (f"{p['psnr']:>13.2f} {p['ssim']:>6.3f} {p['wall_s']:>7.1f} {p['gaussians']:>6}"
                             if p else f"{'-':>13} {'-':>6} {'-':>7} {'-':>6}")
        print(line)
    if args.json is not None:
        payload = {"benchmark": "bm_fit_suite", "method": args.method, "random_init": args.random_init,
                   "sfm_top_up": args.sfm_top_up,
                   "overrides": overrides, "machine": platform.machine(),
                   "cpus": os.cpu_count(), "torch_threads_ours": 1, "rows": rows}
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
