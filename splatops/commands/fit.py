"""``splatops fit``: fit Gaussians to a scene with a registered method.

    splatops fit [--data PATH] [--method 3dgs] [--steps N] --out DIR [--resume]
                 [--backend auto|cpu|torch|gsplat] [--downscale F] [--threads T] [--orbit]
                 [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fit", help="fit Gaussians to a scene (3DGS and the other registered methods)",
        description="Fit Gaussians to a scene's training views; writes point_cloud.ply, metrics.json, "
        "renders/ and checkpoint.pt into --out.",
    )
    p.add_argument("--data", type=Path, default=None,
                   help="scene folder (COLMAP, nerfstudio or Blender); default: the bundled scene")
    p.add_argument("--method", default="3dgs", help="registered method name (default 3dgs)")
    p.add_argument("--steps", type=int, default=7000, help="optimisation steps (default 7000)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--backend", default="auto", help="rasterization backend: auto, cpu, torch or gsplat")
    p.add_argument("--downscale", type=int, default=1, help="divide the image size by this factor")
    p.add_argument("--eval-every", type=int, default=500, help="steps between held-out evaluations")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--orbit", action="store_true", help="also render --out/orbit.mp4 around the scene")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyper-parameter override, e.g. --set sh_degree=1 (repeatable)")
    return p


def parse_overrides(items: list[str]) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as Python literals when possible)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def run(args) -> int:
    from splatops import api

    result = api.fit(
        args.data, out_dir=args.out, method=args.method, steps=args.steps, resume=args.resume,
        backend=args.backend, downscale=args.downscale, seed=args.seed, eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every, num_threads=args.threads, orbit_video=args.orbit,
        **parse_overrides(args.set),
    )
    m = result.metrics
    print(f"{m['method']}: {m['steps']} steps in {m['train_seconds']:.1f} s, held-out PSNR {m['psnr']:.2f} dB, "
          f"SSIM {m['ssim']:.4f}, {m['num_gaussians']} Gaussians -> {args.out}")
    return 0
