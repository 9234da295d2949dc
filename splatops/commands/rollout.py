"""``splatops rollout --model CKPT --data DIR [--out DIR]``: roll out and measure MSE."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("rollout", help="roll a trained simulator out on a dataset split",
                              description="Roll a GIOROM/GNS checkpoint out from the first frames of "
                                          "each trajectory and report position MSE.")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--out", default=None, help="write rollout.npz and metrics.json here")
    p.add_argument("--steps", type=int, default=None, help="predicted frames (default: to the end)")
    p.add_argument("--max-trajectories", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    from splatops import api

    res = api.rollout(args.model, args.data, split=args.split, steps=args.steps, out_dir=args.out,
                      max_trajectories=args.max_trajectories, show_progress=not args.no_progress)
    print(f"mean position MSE {res.mean_mse:.4g} over {len(res.predictions)} trajectories")
    for f in res.files:
        print(f"wrote {f}")
    return 0
