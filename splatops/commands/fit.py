"""``splatops fit``: fit Gaussians to a scene with a registered method.

    splatops fit [--data PATH] [--method 3dgs] [--steps N] --out DIR [--resume]
                 [--backend auto|cpu|torch|gsplat] [--downscale F] [--threads T] [--orbit]
                 [--init auto|sfm|views|box] [--set KEY=VALUE ...]
    splatops fit --images DIR_OR_VIDEO_OR_ZIP [--frames N] [--max-size PX] [--test-every K]
                 [--method instantsplat] [--steps 1000] --out DIR [--resume] ...

A scene without points starts from points triangulated from its training
views with the known poses (``--init auto``, the default; random in the views
when that fails, with a warning); ``--init views`` or ``box`` start from random
Gaussians. With ``--images`` the input is plain photos (a folder, a zip) or a video: the
cameras are estimated first (pycolmap), then refined with the Gaussians.
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
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, default=None,
                        help="scene folder (COLMAP, nerfstudio or Blender); default: the bundled scene")
    source.add_argument("--images", type=Path, default=None,
                        help="plain photos without poses: a folder, a .zip of images, or a video")
    p.add_argument("--frames", type=int, default=None, help="with --images and a video: frames to sample (24)")
    p.add_argument("--max-size", type=int, default=None, help="with --images: longest image side in pixels")
    p.add_argument("--test-every", type=int, default=0,
                   help="with --images: hold out every K-th view for evaluation (default 0: none)")
    p.add_argument("--method", default=None,
                   help="registered method name (default 3dgs; instantsplat with --images)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimisation steps (default 7000; 1000 with --images)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--backend", default="auto", help="rasterization backend: auto, cpu, torch or gsplat")
    p.add_argument("--downscale", type=int, default=1, help="divide the image size by this factor")
    p.add_argument("--eval-every", type=int, default=500, help="steps between held-out evaluations")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--orbit", action="store_true", help="also render --out/orbit.mp4 around the scene")
    p.add_argument("--init", choices=("auto", "sfm", "views", "box"), default=None,
                   help="start of a scene without points: auto (default: triangulated from the training views "
                   "with the known poses, else random), sfm, views (random in the views) or box")
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


def run_images(args) -> int:
    """``splatops fit --images``: photos or a video to splats and a scene folder."""
    from splatops import api

    result = api.fit_images(
        args.images, out_dir=args.out, method=args.method or "instantsplat",
        steps=1000 if args.steps is None else args.steps,
        frames=args.frames, test_every=args.test_every, max_size=args.max_size, resume=args.resume,
        backend=args.backend, seed=args.seed, num_threads=args.threads, **parse_overrides(args.set),
    )
    m = result.metrics
    for warning in result.warnings:
        print(f"warning: {warning}")
    reg = m["registration"]
    left_out = {**reg.get("unregistered", {}), **m.get("misregistered", {})}
    for name, why in sorted(left_out.items()):
        print(f"left out {name}: {why}")
    print(f"registered {reg.get('num_registered', len(result.scene))} of {reg.get('num_images', '?')} images, "
          f"fitted {len(result.scene)}; "
          f"{m['method']}: {m['steps']} steps, PSNR {m['psnr']:.2f} dB ({m['eval_split']} views), "
          f"{m['num_gaussians']} Gaussians, {m['seconds']['total']:.1f} s -> {args.out}")
    return 0


def run(args) -> int:
    from splatops import api

    if args.images is not None:
        if args.init is not None:
            raise ValueError("--init applies to --data scenes; with --images the cameras and points come from SfM")
        return run_images(args)
    for flag, value in (("--frames", args.frames), ("--max-size", args.max_size)):
        if value is not None:
            raise ValueError(f"{flag} needs --images")
    if args.test_every:
        raise ValueError("--test-every needs --images")
    random_init = args.init or "auto"
    if args.data is not None and not args.data.exists():
        raise FileNotFoundError(f"--data path not found: {args.data}")
    result = api.fit(
        args.data, out_dir=args.out, method=args.method or "3dgs", steps=7000 if args.steps is None else args.steps,
        resume=args.resume,
        backend=args.backend, downscale=args.downscale, seed=args.seed, eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every, num_threads=args.threads, orbit_video=args.orbit,
        random_init=random_init, **parse_overrides(args.set),
    )
    m = result.metrics
    init = m.get("init") or {}
    if init.get("kind") == "sfm" and not init["sfm"]["cached"]:
        print(f"init: {init['sfm']['points']} points triangulated from {init['sfm']['views']} training views "
              f"in {init['sfm']['seconds']:.1f} s")
    print(f"{m['method']}: {m['steps']} steps in {m['train_seconds']:.1f} s, held-out PSNR {m['psnr']:.2f} dB, "
          f"SSIM {m['ssim']:.4f}, {m['num_gaussians']} Gaussians -> {args.out}")
    return 0
