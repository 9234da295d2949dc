"""``splatops render``: render fitted Gaussians at a scene's views and along an orbit.

    splatops render --ply FILE [--data PATH] --out DIR [--layout render|side-by-side]
                    [--frames N] [--fps F] [--backend B] [--no-video] [--no-environment]

Each view is written as ``DIR/views/<source image stem>.png`` (``images/frame_0003.png``
-> ``views/frame_0003.png``), so other tools can pair renders with ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "render", help="render a fitted PLY at a scene's views and as an orbit video",
        description="Writes views/<image name>.png (one per scene view, named after its source image) "
                    "and orbit.mp4 into --out.",
    )
    p.add_argument("--ply", type=Path, required=True, help="3DGS PLY file (e.g. point_cloud.ply)")
    p.add_argument("--data", type=Path, default=None, help="scene folder; default: the bundled scene")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--layout", default="render", choices=("render", "side-by-side"),
                   help="render: the render alone (default); side-by-side: render | ground truth")
    p.add_argument("--downscale", type=int, default=1, help="divide the image size by this factor")
    p.add_argument("--frames", type=int, default=60, help="orbit video frames")
    p.add_argument("--fps", type=int, default=20, help="orbit video frames per second")
    p.add_argument("--backend", default="auto", help="rasterization backend")
    p.add_argument("--no-video", action="store_true", help="skip the orbit video")
    p.add_argument("--no-environment", action="store_true",
                   help="draw the scene's background instead of the learned environment.json beside the PLY")
    return p


def run(args) -> int:
    from splatops import api

    res = api.render(args.ply, args.data, out_dir=args.out, layout=args.layout, downscale=args.downscale,
                     video=not args.no_video, frames=args.frames, fps=args.fps, backend=args.backend,
                     environment=not args.no_environment)
    print(f"{len(res.views)} views -> {args.out / 'views'}")
    if res.video is not None:
        print(f"orbit video -> {res.video}")
    return 0
