"""``splatops pose``: 6D object pose from a splat model of the object (GS2Pose).

    splatops pose train --model MODEL.ply [--out POSENET.pt] [--steps N] [--input-size S]
    splatops pose estimate --model MODEL.ply --image IMG --intrinsics fx,fy,cx,cy --out OUT.json
                           [--depth D] [--mask M] [--init POSE.json] [--posenet POSENET.pt]
                           [--max-iters N] [--icp]

Pose files are JSON with an "object_to_camera" 4x4 matrix (OpenCV: x right, y down, z forward).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pose", help="6D object pose from a splat model (coarse Pose-Net + GS-Refiner)",
        description="Train the coarse Pose-Net of an object model, or estimate an object's pose in an image.",
    )
    sub = p.add_subparsers(dest="pose_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train the coarse Pose-Net on renders of the model",
                       description="Train a Pose-Net (NOCS U-Net) on renders of the object model at random poses.")
    t.add_argument("--model", type=Path, required=True, help="object model (3DGS PLY)")
    t.add_argument("--out", type=Path, default=None, help="checkpoint (default: MODEL.posenet.pt beside the model)")
    t.add_argument("--steps", type=int, default=1200, help="training steps (default 1200)")
    t.add_argument("--input-size", type=int, default=64, help="network input size in pixels (default 64)")
    t.add_argument("--max-seconds", type=float, default=None, help="stop training after this many seconds")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(_pose_run=_run_train)
    e = sub.add_parser("estimate", help="estimate the object's pose in an image",
                       description="Coarse pose (--init, or the Pose-Net + PnP-RANSAC), then the GS-Refiner. "
                       "Writes OUT.json and OUT_overlay.png (the model drawn before | after refinement).")
    e.add_argument("--model", type=Path, required=True, help="object model (3DGS PLY)")
    e.add_argument("--image", type=Path, required=True, help="image of the object")
    e.add_argument("--intrinsics", required=True, help="fx,fy,cx,cy in pixels")
    e.add_argument("--depth", type=Path, default=None, help="depth image (.npy in model units, or 16-bit PNG in mm)")
    e.add_argument("--mask", type=Path, default=None, help="object mask image (non-zero = object)")
    e.add_argument("--init", type=Path, default=None, help="initial pose JSON (object_to_camera)")
    e.add_argument("--posenet", type=Path, default=None, help="Pose-Net checkpoint (default: beside the model)")
    e.add_argument("--out", type=Path, required=True, help="pose JSON to write")
    e.add_argument("--max-iters", type=int, default=None, help="refinement iteration cap")
    e.add_argument("--icp", action="store_true", help="correct the translation by ICP on --depth")
    e.set_defaults(_pose_run=_run_estimate)
    return p


def _run_train(args) -> int:
    from splatops import api

    path = api.pose_train(args.model, out=args.out, steps=args.steps, input_size=args.input_size,
                          seed=args.seed, max_seconds=args.max_seconds)
    print(f"Pose-Net written to {path}")
    return 0


def _run_estimate(args) -> int:
    from splatops import api

    result = api.pose_estimate(args.model, args.image, args.intrinsics, depth=args.depth, mask=args.mask,
                               init=args.init, posenet=args.posenet, out=args.out, max_iters=args.max_iters,
                               icp=args.icp)
    t = result.object_to_camera[:3, 3]
    print(f"pose from {result.source}, refined in {result.iterations} iterations ({result.seconds:.2f} s), "
          f"translation [{t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}]; written to {args.out} and "
          f"{result.paths['overlay'].name}")
    return 0


def run(args) -> int:
    return args._pose_run(args)
