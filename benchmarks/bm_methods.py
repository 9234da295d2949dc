"""Method comparison on the fitting suite: quality against steps and seconds, size and render time.

Every method named by ``--methods`` (default: every registered one) fits each
scene of ``--scenes`` (suite names of ``splat.scenes.SUITE``, generated once
into ``--cache`` as ``benchmarks/bm_fit_suite.py`` does, plus ``globe`` for
the bundled scene) with its defaults, on ``--threads`` torch threads. Every
``--eval-every`` steps the held-out PSNR and SSIM are recorded against the
step and the training seconds (evaluations are not timed). At the end: final
held-out PSNR/SSIM, Gaussians, the size of the exported PLY and the render
time of one held-out view (median of ``--render-repeats`` after a warm-up).

``--steps`` takes a default and per-method counts (``--steps 3000
turbo-gs=1000``); ``--budget-seconds`` also stops a fit once its training
time is spent. With ``--ablation`` Turbo-GS also runs once with each of its
mechanisms switched off (``TurboGS.ablations()``). Where both ``3dgs`` and
``turbo-gs`` ran, the table says at which step and second Turbo-GS first came
within ``--tolerance`` dB of 3DGS's final PSNR (3DGS's row may come from an
earlier run's JSON, ``--reference``).

    python benchmarks/bm_methods.py --scenes globe --steps 300                      # quick look
    python benchmarks/bm_methods.py --scenes tabletop ground photo_wall --methods 3dgs turbo-gs \\
        --steps 3000 turbo-gs=1000 --json results/bm_methods.json
    python benchmarks/bm_methods.py --scenes tabletop --methods turbo-gs --steps 1000 --ablation
    python benchmarks/bm_methods.py --scenes ground --methods 3dgs ges --set ges.freq_lambda=0.2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bm_fit_suite import cached_scene  # noqa: E402
from splat.io import load_bundled_scene, load_nerfstudio  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402
from splat.methods import available_methods, fit, get_method  # noqa: E402
from splat.methods.fit import evaluate  # noqa: E402
from splat.scenes import SUITE  # noqa: E402
from splat.utils.machine import machine_info  # noqa: E402

BUNDLED = "globe"


def parse_steps(tokens: list[str]) -> tuple[int, dict[str, int]]:
    """``["3000", "turbo-gs=1000"]`` -> ``(3000, {"turbo-gs": 1000})``."""
    default, per_method = 3000, {}
    for tok in tokens:
        name, sep, value = tok.rpartition("=")
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--steps expects N or METHOD=N, got {tok!r}") from None
        if n < 1:
            raise ValueError(f"--steps must be >= 1, got {tok!r}")
        if sep:
            per_method[name] = n
        else:
            default = n
    return default, per_method


def parse_sets(items: list[str]) -> dict[str, dict]:
    """``["turbo-gs.dilation=false"]`` -> ``{"turbo-gs": {"dilation": False}}`` (values as JSON)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, field = key.partition(".")
        if not sep or not dot or not field:
            raise ValueError(f"--set expects METHOD.KEY=VALUE, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(method, {})[field] = parsed
    return out


def load_scene(name: str, args):
    """The bundled scene or a cached suite scene."""
    if name == BUNDLED:
        return load_bundled_scene()
    return load_nerfstudio(cached_scene(args.cache, name, args.size, args.views, args.seed))


def steps_to_reach(curve: list[dict], target: float) -> dict | None:
    """The first curve point whose PSNR is at least ``target`` (None if never)."""
    for c in curve:
        if c["psnr"] >= target:
            return {"step": c["step"], "seconds": c["seconds"]}
    return None


def run_one(scene, method_name: str, steps: int, overrides: dict, args, label: str | None = None) -> dict:
    """One fit with a curve of held-out PSNR/SSIM, then PLY size and render time."""
    method = get_method(method_name, **overrides)
    held = {}
    original_init = method.init

    def init_and_keep(scn, gaussians):  # keeps the live Gaussians and state for the evaluations
        state = original_init(scn, gaussians)
        held.update(gaussians=gaussians, state=state, images=scene.images(eval_ids).to(gaussians.device))
        psnr, ssim, _ = evaluate(method, scn, gaussians, state, eval_ids, held["images"], method.active_sh_degree(0),
                                 args.backend)
        curve.append({"step": 0, "seconds": 0.0, "psnr": psnr, "ssim": ssim,
                      "num_gaussians": gaussians.num_gaussians})
        return state

    eval_ids = list(scene.test_ids) or list(scene.train_ids[:1])
    curve: list[dict] = []
    method.init = init_and_keep

    elapsed = [0.0]

    def record(p) -> None:
        elapsed[0] = p.elapsed_seconds
        if args.eval_every and p.step % args.eval_every == 0 and 0 < p.step < steps:
            if any(c["step"] == p.step for c in curve):
                return
            psnr, ssim, _ = evaluate(method, scene, held["gaussians"], held["state"], eval_ids, held["images"],
                                     method.active_sh_degree(p.step), args.backend)
            curve.append({"step": p.step, "seconds": round(p.elapsed_seconds, 3), "psnr": psnr, "ssim": ssim,
                          "num_gaussians": p.num_gaussians})

    wall = time.perf_counter()
    result = fit(scene, method=method, steps=steps, eval_every=args.eval_every, checkpoint_every=0,
                 backend=args.backend, seed=args.seed, num_threads=args.threads, show_progress=False,
                 progress=record, device=args.device, should_stop=lambda: elapsed[0] >= args.budget_seconds)
    wall = time.perf_counter() - wall
    m = result.metrics
    curve = [c for c in curve if c["step"] < m["steps"]]
    curve.append({"step": m["steps"], "seconds": m["train_seconds"], "psnr": m["psnr"], "ssim": m["ssim"],
                  "num_gaussians": m["num_gaussians"]})

    with tempfile.TemporaryDirectory(prefix="bm_methods_") as tmp:
        ply_bytes = method.export_ply(result.gaussians, Path(tmp) / "point_cloud.ply").stat().st_size
    times = []
    sh = method.active_sh_degree(max(m["steps"] - 1, 0))
    view = [eval_ids[0]]
    for i in range(args.render_repeats + 1):
        t0 = time.perf_counter()
        evaluate(method, scene, result.gaussians, result.state, view, held["images"][:1], sh, args.backend,
                 with_ssim=False)
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - t0)
    return {"method": label or method_name, "registered": method_name, "overrides": overrides, "steps": m["steps"],
            "psnr": m["psnr"], "ssim": m["ssim"], "num_gaussians": m["num_gaussians"],
            "train_seconds": m["train_seconds"], "wall_seconds": round(wall, 2), "ply_bytes": ply_bytes,
            "render_ms": round(1000 * statistics.median(times), 2), "curve": curve,
            "hyperparameters": m["hyperparameters"]}


def ablations(overrides: dict) -> dict[str, dict]:
    """Turbo-GS's named switch-off settings (empty if the method offers none)."""
    cls = type(get_method("turbo-gs", **overrides))
    table = getattr(cls, "ablations", None)
    return dict(table()) if callable(table) else {}


def print_table(rows: list[dict], tolerance: float) -> None:
    head = (f"{'scene':<12} {'method':<26} {'steps':>5} {'train s':>8} {'PSNR':>6} {'SSIM':>6} {'N':>7} "
            f"{'PLY MB':>7} {'render ms':>9} | {'reach 3DGS-' + str(tolerance) + ' dB':>18}")
    print("\n" + head)
    print("-" * len(head))
    for r in rows:
        reach = r.get("reach_3dgs")
        cell = "-" if "reach_3dgs" not in r else ("never" if reach is None
                                                   else f"{reach['step']} st / {reach['seconds']:.0f} s")
        print(f"{r['scene']:<12} {r['method']:<26} {r['steps']:>5} {r['train_seconds']:>8.1f} {r['psnr']:>6.2f} "
              f"{r['ssim']:>6.3f} {r['num_gaussians']:>7} {r['ply_bytes'] / 1e6:>7.2f} {r['render_ms']:>9.1f} | "
              f"{cell:>18}")
    print("\nheld-out PSNR along the fit (step: dB @ training s)")
    for r in rows:
        pts = " ".join(f"{c['step']}:{c['psnr']:.2f}@{c['seconds']:.0f}s" for c in r["curve"])
        print(f"{r['scene']:<12} {r['method']:<26} {pts}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scene_names = [BUNDLED, *SUITE]
    ap.add_argument("--scenes", nargs="+", default=[n for n in SUITE if n != "tabletop_hd"], choices=scene_names,
                    metavar="SCENE", help=f"{', '.join(scene_names)} (default: the suite without tabletop_hd)")
    ap.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    ap.add_argument("--steps", nargs="+", default=["3000"], metavar="N|METHOD=N",
                    help="steps per fit: a default and per-method counts (default 3000)")
    ap.add_argument("--ablation", action="store_true", help="also run Turbo-GS with each mechanism switched off")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                    help="hyper-parameter override of one method (value as JSON), repeatable")
    ap.add_argument("--budget-seconds", type=float, default=float("inf"),
                    help="also stop a fit once its training time exceeds this (default: no limit)")
    ap.add_argument("--eval-every", type=int, default=100, help="steps between curve points (0: end only)")
    ap.add_argument("--tolerance", type=float, default=0.1, help="dB below 3DGS's final PSNR that counts as reached")
    ap.add_argument("--reference", type=Path, default=None, metavar="JSON",
                    help="an earlier --json whose 3dgs rows are the reference where 3dgs is not run now")
    ap.add_argument("--render-repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=None, help="image width of suite scenes (default: each scene's)")
    ap.add_argument("--views", type=int, default=None, help="views of suite scenes (default: each scene's)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "splat_fit_suite")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default="auto", help="fit device: auto, cpu, cuda (see splat.methods.fit)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)
    try:
        default_steps, method_steps = parse_steps(args.steps)
        sets = parse_sets(args.set)
    except ValueError as exc:
        ap.error(str(exc))
    if args.budget_seconds <= 0:
        ap.error(f"--budget-seconds must be > 0, got {args.budget_seconds}")
    if args.eval_every < 0 or args.render_repeats < 1 or args.threads < 1:
        ap.error("--eval-every must be >= 0, --render-repeats and --threads >= 1")
    methods = args.methods or available_methods()
    unknown = sorted((set(methods) | set(method_steps) | set(sets)) - set(available_methods()))
    if unknown:
        ap.error(f"unknown methods {unknown}; registered: {available_methods()}")
    if args.ablation and "turbo-gs" not in available_methods():
        ap.error("--ablation needs the turbo-gs method")

    reference = []
    if args.reference is not None:
        try:
            reference = json.loads(args.reference.read_text())["rows"]
        except (OSError, ValueError, KeyError) as exc:
            ap.error(f"--reference {args.reference}: not a bm_methods JSON ({exc})")
    rows = []
    for scene_name in args.scenes:
        scene = load_scene(scene_name, args)
        plan = [(name, name, sets.get(name, {})) for name in methods]
        if args.ablation:
            base = sets.get("turbo-gs", {})
            plan += [(f"turbo-gs -{label}", "turbo-gs", {**base, **ov}) for label, ov in ablations(base).items()]
        for label, name, overrides in plan:
            steps = method_steps.get(name, default_steps)
            row = {"scene": scene_name, "size": [scene.cameras.width, scene.cameras.height],
                   **run_one(scene, name, steps, overrides, args, label)}
            rows.append(row)
            print(f"{scene_name} {label} {row['steps']} steps: PSNR {row['psnr']:.2f} SSIM {row['ssim']:.3f} "
                  f"N {row['num_gaussians']} train {row['train_seconds']:.1f} s", flush=True)
        ref = next((r for r in rows + reference if r["scene"] == scene_name and r["method"] == "3dgs"), None)
        if ref is not None:
            for r in rows:
                if r["scene"] == scene_name and r["registered"] == "turbo-gs":
                    r["reach_3dgs"] = steps_to_reach(r["curve"], ref["psnr"] - args.tolerance)

    print_table(rows, args.tolerance)
    if args.json is not None:
        write_json_atomic(args.json, {
            "benchmark": "bm_methods",
            "command": " ".join(["python", "benchmarks/bm_methods.py", *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine_info(args.threads, backend=args.backend, device=args.device,
                                    gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None),
            "tolerance_db": args.tolerance,
            "rows": rows,
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
