"""``splatops render``: render fitted Gaussians at a scene's views and along an orbit.

    splatops render --ply FILE [--data PATH] --out DIR [--frames N] [--fps F] [--backend B] [--no-video]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "render", help="render a fitted PLY at a scene's views and as an orbit video",
        description="Writes views/<id>.png (render beside ground truth) and orbit.mp4 (or .gif) into --out.",
    )
    p.add_argument("--ply", type=Path, required=True, help="3DGS PLY file (e.g. point_cloud.ply)")
    p.add_argument("--data", type=Path, default=None, help="scene folder; default: the bundled scene")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--downscale", type=int, default=1, help="divide the image size by this factor")
    p.add_argument("--frames", type=int, default=60, help="orbit video frames")
    p.add_argument("--fps", type=int, default=20, help="orbit video frames per second")
    p.add_argument("--backend", default="auto", help="rasterization backend")
    p.add_argument("--no-video", action="store_true", help="skip the orbit video")
    return p


def run(args) -> int:
    from splat.io import load_bundled_scene, load_scene
    from splat.io.ply import load_ply
    from splat.render import render_orbit, render_views

    if args.data is None:
        scene = load_bundled_scene()
    else:
        if not args.data.exists():
            raise FileNotFoundError(f"--data path not found: {args.data}")
        scene = load_scene(args.data)
    if args.downscale != 1:
        scene = scene.downscaled(args.downscale)
    gaussians = load_ply(args.ply)
    views = render_views(gaussians, scene, args.out / "views", backend=args.backend)
    print(f"{len(views)} views -> {args.out / 'views'}")
    if not args.no_video:
        video = render_orbit(gaussians, scene, args.out / "orbit.mp4", num_frames=args.frames, fps=args.fps,
                             backend=args.backend)
        print(f"orbit video -> {video}")
    return 0
