"""``splatops render-demo --out PATH``: render the built-in demo scene to a PNG."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("render-demo", help="render the built-in demo Gaussians to a PNG",
                              description="Render three coloured spheres on a rainbow ring with the "
                                          "rasterizer and write a PNG.")
    p.add_argument("--out", required=True, help="output .png path")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "cpu", "gsplat"))
    return p


def run(args) -> int:
    from splatops import api

    path = api.render_demo(args.out, args.width, args.height, backend=args.backend)
    print(f"wrote {path}")
    return 0
