"""``splatops train giorom|gns --data DIR --out DIR``: train a learned simulator."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a learned simulator (GIOROM or GNS) on a dataset",
                              description="Train a GIOROM or GNS simulator on a GNS-layout dataset; "
                                          "writes OUT/checkpoint.pt periodically.")
    p.add_argument("model", choices=("giorom", "gns"))
    p.add_argument("--data", required=True, help="dataset folder (metadata.json, train.npz)")
    p.add_argument("--out", required=True, help="output folder for checkpoint.pt")
    p.add_argument("--steps", type=int, default=2000, help="total optimisation steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    from splatops import api

    res = api.train(args.model, args.data, out_dir=args.out, steps=args.steps, resume=args.resume,
                    batch_size=args.batch_size, lr=args.lr, show_progress=not args.no_progress)
    print(f"wrote {res.checkpoint} (step {res.step}, loss {res.loss:.4g})")
    return 0
