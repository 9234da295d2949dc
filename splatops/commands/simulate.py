"""``splatops simulate``: write an MPM trajectory dataset (GNS layout), or, with ``--ply``,
drop a splat object and write its deformed splats and videos."""

from __future__ import annotations

import argparse

MATERIAL_CHOICES = ["water", "non_newtonian", "jelly", "sand", "plasticine"]
SCENE_CHOICES = ["dam_break", "falling_blocks", "colliding_blocks", "column_collapse"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a material with MLS-MPM: a trajectory dataset, or a splat object (--ply)",
        description="Simulate randomised trajectories of a material in a scene with MLS-MPM "
                    "and write a dataset folder (metadata.json, train/valid/test.npz). With --ply, "
                    "fill a splat object with particles, drop it, and write the deformed splats "
                    "per frame (splats.npz) and a rendered video (mpm.mp4); --preview giorom adds "
                    "the learned preview (preview_splats.npz, preview.mp4).",
    )
    p.add_argument("--material", required=True, choices=MATERIAL_CHOICES)
    p.add_argument("--scene", choices=SCENE_CHOICES, help="dataset scene (required without --ply)")
    p.add_argument("--dim", type=int, default=2, choices=[2, 3])
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--trajectories", type=int, default=10, help="number of trajectories (>= 3)")
    p.add_argument("--particles", type=int, default=2000, help="particles per trajectory")
    p.add_argument("--frames", type=int, default=100, help="frames per trajectory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted generation into the same --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    splats = p.add_argument_group("splat objects (--ply)")
    splats.add_argument("--ply", help="a 3DGS PLY to simulate instead of writing a dataset")
    splats.add_argument("--preview", choices=["giorom"], help="also run the learned preview")
    splats.add_argument("--box", type=float, nargs=6, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
                        help="simulate only the Gaussians inside this world box")
    splats.add_argument("--spacing", type=float, default=0.01,
                        help="particle spacing of MPM's fill (box units; the object is 0.25 long)")
    splats.add_argument("--max-particles", type=int, default=20000, help="particle budget")
    splats.add_argument("--up", default="+y", choices=["+x", "-x", "+y", "-y", "+z", "-z"],
                        help="the model's up axis")
    splats.add_argument("--checkpoint", help="a 3-D GIOROM checkpoint (default: the bundled one)")
    splats.add_argument("--preview-step-spacing", type=float, default=None,
                        help="spacing of the points the preview moves (default: its trained 0.02, or "
                             "0.0125 for jelly / 0.01 for sand on fills of --spacing 0.00625 / 0.005 "
                             "and finer; finer is closer to MPM and slower)")
    splats.add_argument("--no-video", action="store_true", help="skip the rendered videos")
    return p


def run(args: argparse.Namespace) -> int:
    if args.ply is not None:
        return run_splats(args)
    if args.scene is None:
        raise ValueError("--scene is required to write a dataset (or pass --ply to simulate a splat object)")
    return run_dataset(args)


def run_splats(args: argparse.Namespace) -> int:
    from splatops import api

    box = None if args.box is None else [args.box[:3], args.box[3:]]
    res = api.simulate_splats(args.ply, args.material, out_dir=args.out, frames=args.frames,
                              preview=args.preview, box=box, spacing=args.spacing,
                              max_particles=args.max_particles, up=args.up, checkpoint=args.checkpoint,
                              preview_step_spacing=args.preview_step_spacing, video=not args.no_video,
                              show_progress=not args.no_progress)
    print(f"wrote {args.out}: {res.gaussians} Gaussians on {res.particles} particles, "
          f"{args.frames} frames; MPM {res.mpm_ms_per_frame:.1f} ms/frame, "
          f"deforming the splats {res.deform_ms_per_frame:.1f} ms/frame")
    if res.preview_ms_per_frame is not None:
        print(f"GIOROM preview: {res.sparse_points} sparse points, {res.preview_ms_per_frame:.1f} ms/frame, "
              f"centre RMSE {100 * res.rmse:.2f} % of the object size")
    return 0


def run_dataset(args: argparse.Namespace) -> int:
    from splatops import api

    ds = api.simulate(args.material, args.scene, out_dir=args.out, dim=args.dim,
                      trajectories=args.trajectories, particles=args.particles, frames=args.frames,
                      seed=args.seed, resume=args.resume, show_progress=not args.no_progress)
    s = ds.splits
    print(f"wrote {ds.path}: {s['train']}/{s['valid']}/{s['test']} train/valid/test "
          f"trajectories, {ds.frames} frames, {args.particles} particles, dt={ds.dt:g} s")
    return 0
