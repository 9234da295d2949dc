"""Pose-free geometry initialisation: registered views, pose accuracy and time vs view count.

Feeds plain images of scenes with known poses (the bundled ``globe`` and the
generated suite scenes of :mod:`splat.scenes`, rendered here) to
:func:`splat.posefree.reconstruct`, never showing it the poses, and compares
the estimated cameras with the ground truth after a Sim(3) alignment:
registered views, ATE as a percentage of the rig radius, median rotation error,
points of the initial cloud and wall-clock, for pycolmap's default options and
for the tuned ones (``SfMOptions()``).

    python benchmarks/bm_posefree.py                              # globe + 3 suite scenes, 3/6/12/24 views
    python benchmarks/bm_posefree.py --scenes globe --views 12 --variants tuned
    python benchmarks/bm_posefree.py --json benchmarks/results/bm_posefree.json

Views are spread evenly over each scene's capture (``--views`` of its 24-32).
Wall-clock is one run per setting (SfM is deterministic with a fixed seed; the
figures are dominated by feature extraction).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from splat.io import bundled_scene_path, load_scene  # noqa: E402
from splat.posefree import SfMOptions, reconstruct, trajectory_errors  # noqa: E402

VARIANTS = {
    "default": lambda: SfMOptions.colmap_defaults(),
    "tuned": lambda: SfMOptions(),
}
SUITE_SCENES = ("tabletop", "photo_wall", "gradient_bg")


def scene_folder(name: str, cache: Path, num_views: int = 24) -> Path:
    """The bundled globe, or a suite scene rendered once into ``cache``."""
    if name == "globe":
        return bundled_scene_path()
    out = cache / f"{name}_{num_views}"
    if not (out / "transforms.json").is_file():
        from splat.scenes import make_scene

        make_scene(name, out, num_views=num_views)
    return out


def evaluate(scene_dir: Path, num_views: int, options: SfMOptions, work: Path) -> dict:
    """Reconstructs ``num_views`` evenly spread views of a scene and scores the poses."""
    gt_scene = load_scene(scene_dir)
    ids = np.linspace(0, len(gt_scene) - 1, num_views).round().astype(int).tolist()
    paths = [gt_scene.image_paths[i] for i in ids]
    by_name = {p.name: gt_scene.cameras.viewmats[i].double().numpy() for p, i in zip(paths, ids)}
    gt_focal = float(gt_scene.cameras.Ks[0, 0, 0])
    shutil.rmtree(work, ignore_errors=True)
    row = {"views": num_views}
    t0 = time.perf_counter()
    try:
        rec = reconstruct(paths, work, options=options)
    except ValueError as exc:
        row.update(registered=0, error=str(exc)[:120], seconds=time.perf_counter() - t0)
        return row
    row["seconds"] = time.perf_counter() - t0
    rep = rec.report
    row.update(registered=len(rep.registered), points=rep.num_points, sparse_points=rep.num_sparse_points,
               mapper=rep.mapper, reproj_px=rep.mean_reprojection_error,
               focal_error_pct=100.0 * abs(rep.focal - gt_focal) / gt_focal, stages=rep.seconds)
    if len(rep.registered) >= 3:
        est = rec.scene.cameras.viewmats.double().numpy()
        gt = np.stack([by_name[n] for n in rep.registered])
        err = trajectory_errors(est, gt)
        row.update(ate_pct=100.0 * err.ate_relative, rot_median_deg=err.median_rotation_deg,
                   rot_max_deg=float(err.rotation_errors_deg.max()))
    return row


def fmt(v, spec):
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return format(v, spec) if isinstance(v, (int, float)) else "-".rjust(width)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=["globe", *SUITE_SCENES])
    ap.add_argument("--views", nargs="+", type=int, default=[3, 6, 12, 24])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "splatops_bm_posefree")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)

    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'scene':12s} {'variant':8s} {'views':>5s} {'reg':>4s} {'ATE %':>7s} {'rot med':>8s} "
          f"{'rot max':>8s} {'f err %':>7s} {'points':>7s} {'mapper':>11s} {'s':>6s}")
    for name in args.scenes:
        folder = scene_folder(name, args.cache)
        for variant in args.variants:
            for n in args.views:
                row = evaluate(folder, n, VARIANTS[variant](), args.cache / "work")
                row.update(scene=name, variant=variant)
                rows.append(row)
                print(f"{name:12s} {variant:8s} {n:5d} {row['registered']:4d} {fmt(row.get('ate_pct'), '7.2f')} "
                      f"{fmt(row.get('rot_median_deg'), '8.2f')} {fmt(row.get('rot_max_deg'), '8.2f')} "
                      f"{fmt(row.get('focal_error_pct'), '7.1f')} {fmt(row.get('points'), '7d')} "
                      f"{row.get('mapper', '-'):>11s} {row['seconds']:6.1f}", flush=True)
    if args.json is not None:
        from splat.io.atomic import atomic_path

        payload = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                   "rows": rows}
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
