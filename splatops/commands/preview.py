"""``splatops preview``: MPM ground truth beside the bundled learned simulator (the app's Simulate tab).

    splatops preview [--material water] [--scene dam_break] [--particles N] [--frames T]
                     [--dim 2|3] [--seed S] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from splatops.commands.simulate import MATERIAL_CHOICES, SCENE_CHOICES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "preview", help="simulate with MPM and preview the bundled learned simulator beside it",
        description="Run MLS-MPM, then the bundled GIOROM checkpoint from the same first six frames; "
                    "print time per frame and position MSE, and write an animation with --out.")
    p.add_argument("--material", default="water", choices=MATERIAL_CHOICES)
    p.add_argument("--scene", default="dam_break", choices=SCENE_CHOICES)
    p.add_argument("--particles", type=int, default=1000)
    p.add_argument("--frames", type=int, default=60, help="frames after the initial one (> 6)")
    p.add_argument("--dim", type=int, default=2, choices=[2, 3])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write simulation.gif into this folder")
    return p


def run(args) -> int:
    from splatops import api
    from splatops.commands.graph import format_table

    res = api.simulate_preview(args.material, args.scene, particles=args.particles, frames=args.frames,
                               dim=args.dim, seed=args.seed, out_dir=args.out)
    columns = ["model", "particles", "ms per frame", "position MSE"]
    print(format_table([dict(zip(columns, row)) for row in res.rows], columns))
    if res.note:
        print(f"no learned preview: {res.note}")
    if res.animation is not None:
        print(f"wrote {res.animation}")
    return 0
