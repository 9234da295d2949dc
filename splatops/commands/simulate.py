"""``splatops simulate``: write an MPM trajectory dataset (GNS layout)."""

from __future__ import annotations

import argparse

MATERIAL_CHOICES = ["water", "non_newtonian", "jelly", "sand", "plasticine"]
SCENE_CHOICES = ["dam_break", "falling_blocks", "colliding_blocks", "column_collapse"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a material with MLS-MPM and write a trajectory dataset",
        description="Simulate randomised trajectories of a material in a scene with MLS-MPM "
                    "and write a dataset folder (metadata.json, train/valid/test.npz).",
    )
    p.add_argument("--material", required=True, choices=MATERIAL_CHOICES)
    p.add_argument("--scene", required=True, choices=SCENE_CHOICES)
    p.add_argument("--dim", type=int, default=2, choices=[2, 3])
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--trajectories", type=int, default=10, help="number of trajectories (>= 3)")
    p.add_argument("--particles", type=int, default=2000, help="particles per trajectory")
    p.add_argument("--frames", type=int, default=100, help="frames per trajectory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted generation into the same --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from splatops import api

    ds = api.simulate(args.material, args.scene, out_dir=args.out, dim=args.dim,
                      trajectories=args.trajectories, particles=args.particles, frames=args.frames,
                      seed=args.seed, resume=args.resume, show_progress=not args.no_progress)
    s = ds.splits
    print(f"wrote {ds.path}: {s['train']}/{s['valid']}/{s['test']} train/valid/test "
          f"trajectories, {ds.frames} frames, {args.particles} particles, dt={ds.dt:g} s")
    return 0
