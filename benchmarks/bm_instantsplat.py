"""Pose-free fitting: InstantSplat against pycolmap + 3DGS on generated scenes with known poses.

For each suite scene (:mod:`splat.scenes`, rendered here with VTK; the methods
never see its poses) and each input-view count N, the scene is rendered with 2N
views on its trajectory: the even ones are the N input photos (plain PNGs, no
poses), a few odd ones (between inputs) are held out. Every pipeline then runs
end to end on the N photos:

* ``instantsplat``: :func:`splat.posefree.reconstruct` (pycolmap with the tuned
  options and a densified cloud) -> ``instantsplat`` fit (poses and focal refined);
* ``tuned+3dgs``: the same reconstruction -> ``3dgs`` fit on its poses;
* ``default+3dgs``: pycolmap with its stock options -> ``3dgs``.

Reported per run: registered views, ATE after Sim(3) alignment (percent of the
rig radius: mean distance of the true centres to their centroid), median
rotation error, held-out PSNR/SSIM and wall-clock end to end (registration +
fit + evaluation). Held-out views are posed as pose-free methods are evaluated:
their true poses are mapped into the estimated frame by the Sim(3) that aligns
the registered inputs (after the fit, for instantsplat, whose fit moves the
frame), then refined against the image with the Gaussians frozen
(``test-time pose alignment``, as InstantSplat's evaluation); ``3dgs`` rows give
PSNR with and without that alignment.

    python benchmarks/bm_instantsplat.py                                   # the full grid
    python benchmarks/bm_instantsplat.py --scenes tabletop --views 12 --json results/bm_instantsplat.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from splat.core.camera import Camera, c2w_to_w2c  # noqa: E402
from splat.io.atomic import write_text_atomic  # noqa: E402
from splat.io.nerfstudio import load_nerfstudio  # noqa: E402
from splat.io.scene import Scene  # noqa: E402
from splat.methods import fit, get_method  # noqa: E402
from splat.methods.instantsplat import corrected_cameras, refine_view_pose  # noqa: E402
from splat.metrics import psnr as psnr_fn  # noqa: E402
from splat.metrics import ssim as ssim_fn  # noqa: E402
from splat.posefree.consistency import learned_environment, photometric_outliers, view_psnrs  # noqa: E402
from splat.utils.machine import machine_info  # noqa: E402

PIPELINES = ("instantsplat", "tuned+3dgs", "default+3dgs")
_RECONSTRUCTIONS: dict = {}  # work folder -> {stock options?: (Reconstruction, seconds)}


def make_views(name: str, num_inputs: int, size: int, cache: Path, test_views: int):
    """The 2N-view ground-truth scene, the input ids (even) and the held-out ids (odd, spread)."""
    from splat.scenes import make_scene

    folder = cache / f"{name}_{2 * num_inputs}v_{size}px"
    if not (folder / "transforms.json").is_file():
        make_scene(name, folder, num_views=2 * num_inputs, size=size)
    gt = load_nerfstudio(folder, verify_images=False)
    inputs = list(range(0, 2 * num_inputs, 2))
    odd = list(range(1, 2 * num_inputs, 2))
    k = min(test_views, len(odd))
    tests = [odd[int(round(i * (len(odd) - 1) / max(k - 1, 1)))] for i in range(k)] if k else []
    return gt, inputs, sorted(set(tests))


def _est_from_gt(sim, gt_viewmats: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices of true poses mapped into the estimated frame (inverse of ``sim``)."""
    c2w = torch.linalg.inv(gt_viewmats.double()).numpy()
    R_inv = sim.R.T
    out = np.tile(np.eye(4), (len(c2w), 1, 1))
    out[:, :3, :3] = R_inv @ c2w[:, :3, :3]
    out[:, :3, 3] = (c2w[:, :3, 3] - sim.t) @ R_inv.T / sim.scale
    return c2w_to_w2c(torch.from_numpy(out)).float()


def eval_scene(rec_scene: Scene, gt: Scene, input_ids: list[int], test_ids: list[int]):
    """The registered inputs plus the held-out views (true poses in the estimated frame).

    Returns:
        ``(scene, gt_ids)``: the scene to fit (train: registered inputs, test: held-out)
        and the ground-truth view id of each of its registered views.
    """
    from splat.posefree import align_sim3

    by_name = {gt.image_paths[i].name: i for i in input_ids}
    gt_ids = [by_name[Path(p).name] for p in rec_scene.image_paths]
    est_c = rec_scene.cameras.centers.double()
    gt_c = gt.cameras.centers[gt_ids].double()
    sim = align_sim3(est_c, gt_c)
    test_vm = _est_from_gt(sim, gt.cameras.viewmats[test_ids])
    K = rec_scene.cameras.Ks[:1].expand(len(test_ids), 3, 3)
    cams = Camera(torch.cat([rec_scene.cameras.viewmats, test_vm]), torch.cat([rec_scene.cameras.Ks, K]),
                  rec_scene.width, rec_scene.height)
    n = len(rec_scene)
    scene = replace(rec_scene, cameras=cams, image_paths=list(rec_scene.image_paths) + [gt.image_paths[i] for i in test_ids],
                    train_ids=list(range(n)), test_ids=list(range(n, n + len(test_ids))), _cache={},
                    background=None)
    return scene, gt_ids


def pose_errors(est_viewmats: torch.Tensor, gt_viewmats: torch.Tensor) -> dict:
    from splat.posefree import trajectory_errors

    if len(est_viewmats) < 3:
        return {"ate_percent": None, "rot_median_deg": None}
    e = trajectory_errors(est_viewmats, gt_viewmats)
    return {"ate_percent": 100.0 * e.ate_relative, "rot_median_deg": e.median_rotation_deg}


def aligned_test_metrics(result, scene: Scene, steps: int, lr: float, environment=None) -> tuple[float, float]:
    """Held-out PSNR/SSIM of a fit after test-time pose alignment (Gaussians frozen).

    ``environment``: the fit's learned background (``(coeffs, degree)``), composited
    behind the Gaussians for the final render as the fit itself renders.
    """
    from splat.core.rasterization import rasterization
    from splat.methods.background import over_environment

    psnrs, ssims = [], []
    g = result.gaussians
    for cid in scene.test_ids:
        image = scene.image(cid)
        _, vm = refine_view_pose(g, scene.cameras.viewmats[cid], scene.cameras.Ks[cid], image, steps=steps, lr=lr,
                                 translation_scale=float(scene.extent), sh_degree=g.sh_degree)
        K = scene.cameras.Ks[cid][None]
        with torch.no_grad():
            render, alphas, _ = rasterization(g.means, g.quats, g.scales, g.opacities, g.sh, vm[None], K,
                                              scene.width, scene.height, sh_degree=g.sh_degree,
                                              backgrounds=torch.zeros(1, 3))
            if environment is not None:
                render = over_environment(render, alphas, environment[0], environment[1], vm[None], K)
            render = render[0].clamp(0, 1)
        psnrs.append(float(psnr_fn(render, image)))
        ssims.append(float(ssim_fn(render, image)))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def run_pipeline(pipeline: str, gt: Scene, inputs: list[int], tests: list[int], args, work: Path) -> dict:
    from splat.posefree import SfMOptions, reconstruct

    photos = work / "photos"
    if not photos.is_dir():
        photos.mkdir(parents=True)
        for i in inputs:
            shutil.copyfile(gt.image_paths[i], photos / gt.image_paths[i].name)
    row = {"pipeline": pipeline, "inputs": len(inputs), "held_out": len(tests)}
    stock = pipeline == "default+3dgs"
    options = SfMOptions.colmap_defaults() if stock else None
    t0 = time.perf_counter()
    cache = _RECONSTRUCTIONS.setdefault(str(work), {})
    try:  # instantsplat and tuned+3dgs share one registration; its time is counted in both rows
        if stock not in cache:
            start = time.perf_counter()
            cache[stock] = (reconstruct(photos, work / f"sfm_{int(stock)}", options=options),
                            time.perf_counter() - start)
        rec, sfm_seconds = cache[stock]
    except ValueError as exc:
        row.update(registered=0, error=str(exc).split(".")[0], seconds=round(time.perf_counter() - t0, 1))
        return row
    t0 -= sfm_seconds - (time.perf_counter() - t0)  # end-to-end clock starts at the registration
    row["registered"] = len(rec.scene)
    row["sfm_seconds"] = round(sfm_seconds, 1)
    row["initial_points"] = len(rec.scene.points) if rec.scene.points is not None else 0
    scene, gt_ids = eval_scene(rec.scene, gt, inputs, tests)
    gt_vm = gt.cameras.viewmats[gt_ids]
    row["sfm_pose"] = pose_errors(rec.scene.cameras.viewmats, gt_vm)
    method = "instantsplat" if pipeline == "instantsplat" else "3dgs"
    overrides = {} if method == "instantsplat" else {"sh_degree": args.sh_degree_3dgs}
    overrides.update({"test_pose_steps": 0, **args.set} if method == "instantsplat" else {})
    method_obj = get_method(method, **overrides)
    result = fit(scene, method=method_obj, steps=args.steps, eval_every=0, checkpoint_every=0,
                 show_progress=False, num_threads=args.threads, seed=args.seed)
    env = learned_environment(method_obj, result.state)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    n = len(rec.scene)
    if method == "instantsplat":
        cams = corrected_cameras(scene, result.state)
        row["pose"] = pose_errors(cams.viewmats[:n], gt_vm)
        row["focal_error_percent"] = 100.0 * (float(cams.Ks[0, 0, 0]) / float(gt.cameras.Ks[0, 0, 0]) - 1.0)
        # held-out poses from the Sim(3) of the *refined* inputs (the fit moves the frame), then aligned
        refined = replace(rec.scene, cameras=Camera(cams.viewmats[:n], cams.Ks[:n], scene.width, scene.height))
        scene_eval, _ = eval_scene(refined, gt, inputs, tests)
        test_method = get_method("instantsplat")
        row["psnr"], row["ssim"] = aligned_test_metrics(result, scene_eval, test_method.test_pose_steps,
                                                        test_method.test_pose_lr, env)
    else:
        row["pose"] = row["sfm_pose"]
        row["focal_error_percent"] = 100.0 * (float(scene.cameras.Ks[0, 0, 0]) / float(gt.cameras.Ks[0, 0, 0]) - 1.0)
        row["psnr_unaligned"], row["ssim_unaligned"] = result.metrics["psnr"], result.metrics["ssim"]
        test_steps = get_method("instantsplat").test_pose_steps
        test_lr = get_method("instantsplat").test_pose_lr
        row["psnr"], row["ssim"] = aligned_test_metrics(result, scene, test_steps, test_lr, env)
    row["num_gaussians"] = result.metrics["num_gaussians"]
    row["train_seconds"] = result.metrics["train_seconds"]
    # the pipeline's photometric view check (fit_images): would it leave a registered input out?

    cams = corrected_cameras(scene, result.state) if method == "instantsplat" else scene.cameras
    train_psnr = view_psnrs(result.gaussians, scene, cameras=cams, ids=range(n), environment=env)
    flagged = photometric_outliers(train_psnr)
    row["train_psnr_median"] = float(np.median(list(train_psnr.values())))
    row["train_psnr_min"] = min(train_psnr.values())
    row["flagged_views"] = [rec.scene.image_paths[i].name for i in sorted(flagged)]
    if flagged and n >= 3:
        from splat.posefree import trajectory_errors

        errs = trajectory_errors(cams.viewmats[:n], gt_vm).rotation_errors_deg
        row["flagged_rot_err_deg"] = [round(float(errs[i]), 2) for i in sorted(flagged)]
    return row


def _fmt(v, spec):
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return "-".rjust(width) if v is None else format(v, spec)


def print_table(rows: list[dict]) -> None:
    head = (f"{'scene':<12} {'N':>3} {'pipeline':<13} {'reg':>5} {'ATE%':>6} {'rot°':>6} {'sfmATE%':>8} "
            f"{'sfmrot°':>8} {'f err%':>7} {'PSNR':>6} {'SSIM':>6} {'PSNRraw':>8} {'sec':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        pose, sfm = r.get("pose", {}), r.get("sfm_pose", {})
        print(f"{r['scene']:<12} {r['inputs']:>3} {r['pipeline']:<13} {str(r.get('registered', 0)) + '/' + str(r['inputs']):>5} "
              f"{_fmt(pose.get('ate_percent'), '6.2f')} {_fmt(pose.get('rot_median_deg'), '6.2f')} "
              f"{_fmt(sfm.get('ate_percent'), '8.2f')} {_fmt(sfm.get('rot_median_deg'), '8.2f')} "
              f"{_fmt(r.get('focal_error_percent'), '7.2f')} {_fmt(r.get('psnr'), '6.2f')} {_fmt(r.get('ssim'), '6.3f')} "
              f"{_fmt(r.get('psnr_unaligned'), '8.2f')} {_fmt(r.get('seconds'), '6.1f')}")


def parse_set(items: list[str]) -> dict:
    from splatops.commands.fit import parse_overrides

    return parse_overrides(items)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="*", default=["tabletop", "gradient_bg", "photo_wall"])
    ap.add_argument("--views", nargs="*", type=int, default=[3, 6, 12, 24], help="input-view counts N")
    ap.add_argument("--pipelines", nargs="*", default=list(PIPELINES), choices=PIPELINES)
    ap.add_argument("--size", type=int, default=256, help="image width (px)")
    ap.add_argument("--steps", type=int, default=1000, help="fit steps of every pipeline")
    ap.add_argument("--test-views", type=int, default=4, help="held-out views per run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the fits")
    ap.add_argument("--sh-degree-3dgs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="instantsplat hyper-parameter override (repeatable)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "splatops_bm_scenes")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.set = parse_set(args.set)

    rows = []
    for name in args.scenes:
        for n in args.views:
            gt, inputs, tests = make_views(name, n, args.size, args.cache, args.test_views)
            with tempfile.TemporaryDirectory(prefix="bm_instantsplat_") as tmp:
                for pipeline in args.pipelines:
                    row = run_pipeline(pipeline, gt, inputs, tests, args, Path(tmp))
                    row["scene"] = name
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    print_table(rows)
    if args.json is not None:
        payload = {
            "benchmark": "bm_instantsplat",
            "machine": machine_info(args.threads, load_average_at_end=os.getloadavg()),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "rows": rows,
        }
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
