"""Physics on splats: MPM vs the GIOROM preview per frame, rollout error on held-out
shapes, GNS vs GIOROM at the same training budget.

    python benchmarks/bm_physics_splats.py [--sizes 1000 10000 100000] [--gaussians 100000]
                                      [--data-dir /tmp/splatphys] [--rigid-contact] [--compliant-contact]
                                      [--contact-model granular ...] [--contact-json JSON] [--fit-drops N]
                                      [--json PATH]

(a) Per frame, at N MPM particles filling a splat ball of G Gaussians: MPM
    (median substep x substeps per frame) against the GIOROM preview (one
    sparse step on the ~1k-point graph of the bundled checkpoint + the dense
    query to all N particles and all G Gaussian centres), one GNS step on all N
    particles (radius graph over every particle + the network; the bundled GNS
    of the material, radius scaled to the spacing), and the cost of deforming
    every Gaussian's covariance (needed by all for rendering).
(b) Rollout error against MPM on the held-out shapes (torus, capsule) of
    the shape-drop datasets made by ``scripts/make_splat_checkpoints.py``:
    position RMSE over all particles as a fraction of the object size, after
    50 frames and averaged over them, and the Chamfer distance at frame 50,
    for GIOROM and GNS trained with the same budget (steps x batch); seconds
    per rollout step of each. ``--contact-model NAME`` also fits any registered
    wall-contact prior (``operators.contact.contact_models``) on the training
    split, scores it on both splits and times its step at ``--prior-sizes``
    particles.
(c) The bundled splat objects dropped through the whole pipeline
    (``run_splat_physics``): MPM vs preview ms per frame and the Gaussian-centre
    RMSE after 50 frames and averaged over them; ``--fill-spacing`` fills them
    finer for MPM (the preview keeps stepping at its trained density).
(d) The reduction: the held-out shapes (torus, capsule) filled at
    ``--reduction-spacings`` (up to ~100k particles) and thrown at a wall, MPM
    on every particle against the preview stepping its trained density and
    querying every particle; RMSE over 50 predicted frames and CPU ms per frame.
    ``--reduction-gns N`` also rolls out GNS on every particle of the fills of
    up to N particles and scores it the same way (``--reduction-gns-on-stepped``:
    also on the very points the preview moves); ``--reduction-more-runs``
    scores the runs of other training seeds against the same MPM runs and
    sums GIOROM against GNS per run and over the runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint  # noqa: E402
from operators.contact import contact_from_dict, contact_rollout  # noqa: E402
from operators.features import INPUT_SEQUENCE_LENGTH as W  # noqa: E402
from operators.giorom import sample_sparse  # noqa: E402
from operators.splat_physics.deform import transform_covariances  # noqa: E402
from operators.splat_physics.particles import fill_particles  # noqa: E402
from operators.splat_physics.shapes import DEFAULT_SPACING as COARSE  # noqa: E402  (training data's)
from splat.io.atomic import write_text_atomic  # noqa: E402


def median_ms(fn, repeats: int = 3, warmup: int = 1) -> tuple[float, float]:
    """Median wall-clock and process CPU milliseconds of ``fn`` (one thread: on a shared
    machine the CPU time is what an idle core would take)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def ball_gaussians(n: int, radius: float = 0.125, centre=(0.5, 0.3, 0.5)):
    """Surface Gaussians of a ball in box units (Fibonacci points), isotropic."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    phi, theta = torch.acos(1 - 2 * i / n), math.pi * (1 + 5 ** 0.5) * i
    pts = radius * torch.stack([torch.cos(theta) * torch.sin(phi), torch.cos(phi),
                                torch.sin(theta) * torch.sin(phi)], -1) + torch.tensor(centre)
    scale = math.sqrt(4 * math.pi * radius ** 2 / n)
    return pts.float(), torch.full((n, 3), scale), torch.full((n,), 0.95)


def gns_at_spacing(ckpt, spacing: float):
    """The GNS simulator of ``ckpt`` for particles filled at ``spacing``: its prior at the fill's
    spacing (:func:`at_fill_spacing`) and its connectivity radius scaled by ``spacing / COARSE``, so
    that every particle keeps the neighbours in particles it was trained with."""
    from operators.splat_physics.simulate import at_fill_spacing

    simulator, _ = models_from_checkpoint(at_fill_spacing(ckpt, spacing))
    simulator.radius = float(ckpt.metadata["default_connectivity_radius"]) * spacing / COARSE
    return simulator


def gns_frame(ckpt, dense: torch.Tensor, spacing: float, repeats: int) -> dict:
    """ms of one GNS step on all ``dense`` particles: the radius graph over every particle
    (cKDTree, ``graph.build.radius_graph``) and the network on it, with the checkpoint's
    connectivity radius scaled to the particle spacing.

    The checkpoint's radius is 3x the median neighbour distance of its training data,
    filled at the coarse spacing ``COARSE``; at a finer spacing the same neighbourhood in
    particles needs the radius scaled by ``spacing / COARSE`` (as GIOROM scales its sparse
    radius to the sparse spacing), and each node keeps at most ``max_num_neighbors`` edges.
    """
    from graph.build import radius_graph

    simulator = gns_at_spacing(ckpt, spacing)
    ptype = torch.full((dense.shape[0],), int(ckpt.metadata["particle_types"][0]))
    window = dense[:, None, :].repeat(1, W, 1).contiguous()
    with torch.no_grad():
        edges = radius_graph(dense, simulator.radius, max_num_neighbors=simulator.max_num_neighbors)
        graph_ms, graph_cpu = median_ms(lambda: radius_graph(dense, simulator.radius,
                                                             max_num_neighbors=simulator.max_num_neighbors),
                                        repeats=repeats, warmup=0)  # the call above warmed it up
        step_ms, step_cpu = median_ms(lambda: simulator.predict_positions(window, ptype), repeats=repeats)
    return {"gns_radius": simulator.radius, "gns_edges": int(edges.shape[1]),
            "gns_graph_ms": graph_ms, "gns_graph_cpu_ms": graph_cpu, "gns_ms": step_ms, "gns_cpu_ms": step_cpu}


def per_frame(material: str, sizes: list[int], n_gaussians: int, data_dir: Path,
              from_runs: bool = False, gns: bool = True) -> list[dict]:
    """(a) ms per frame at each particle count: MPM, the GIOROM preview and one GNS step.

    Args:
        material: ``"jelly"`` or ``"sand"`` (the 3-D checkpoints of that material).
        sizes: particle counts to fill the ball with (the fill lands near them).
        n_gaussians: surface Gaussians of the ball (all of them are queried by the preview).
        data_dir: folder of ``make_splat_checkpoints`` runs, read with ``from_runs``.
        from_runs: time the run checkpoints of ``data_dir`` when present instead of the
            bundled ones (same networks; the cost per frame depends only on them).
        gns: also time the GNS step on all particles.
    """
    from operators.mpm import MPMConfig, build_solver
    from operators.scenes import SceneInit

    runs = data_dir if from_runs else None
    ckpt = _run_or_bundled(runs, "giorom", material)
    gns_ckpt = _run_or_bundled(runs, "gns", material) if gns else None
    simulator, query = models_from_checkpoint(ckpt)
    means, scales, opac = ball_gaussians(n_gaussians)
    coarse = fill_particles(means, scales, opac, COARSE, 10 ** 6)
    rows = []
    for n in sizes:
        volume = coarse.shape[0] * COARSE ** 3
        spacing = (volume / n) ** (1 / 3)
        dense = fill_particles(means, scales, opac, spacing, 10 * n)
        if abs(dense.shape[0] / n - 1) > 0.05:  # the fill's volume is not the coarse one's: correct once
            spacing *= (dense.shape[0] / n) ** (1 / 3)
            dense = fill_particles(means, scales, opac, spacing, 10 * n)
        repeats = 3 if n <= 20000 else 1
        init = SceneInit(dense, torch.zeros_like(dense), spacing ** 3, spacing)
        solver, _ = build_solver(material, init, dim=3,
                                 config=MPMConfig(n_grid=int(min(160, round(1 / (2 * spacing))))))
        substeps = max(1, math.ceil(0.01 / solver.dt - 1e-9))
        with torch.no_grad():
            mpm_ms, mpm_cpu = (t * substeps for t in median_ms(solver.substep, repeats=repeats))
        del solver
        # the preview: sparse graph at the checkpoint's spacing, one step, query to particles + Gaussians
        idx = sample_sparse(coarse, ckpt.model_config["sparse_fraction"], "fps", random_start=False)
        sparse = coarse[idx]
        ptype = torch.full((idx.numel(),), int(ckpt.metadata["particle_types"][0]))
        window = sparse[:, None, :].repeat(1, W, 1).contiguous()
        targets = torch.cat([dense, means])
        with torch.no_grad():
            step_ms, step_cpu = median_ms(lambda: simulator.predict_positions(window, ptype))
            plan = query.plan(sparse, targets)
            shift = torch.randn_like(sparse) * 1e-3
            query_ms, query_cpu = median_ms(lambda: query.apply(plan, shift))
        F = torch.eye(3) + 0.05 * torch.randn(n_gaussians, 3, 3)
        q = torch.randn(n_gaussians, 4)
        cov_ms, cov_cpu = median_ms(lambda: transform_covariances(q, scales, F), repeats=1)
        preview_ms, preview_cpu = step_ms + query_ms, step_cpu + query_cpu
        row = {"material": material, "particles": int(dense.shape[0]), "gaussians": n_gaussians,
               "mpm_substeps": substeps, "mpm_ms": mpm_ms, "mpm_cpu_ms": mpm_cpu,
               "sparse_points": int(idx.numel()), "giorom_step_ms": step_ms, "query_ms": query_ms,
               "preview_ms": preview_ms, "preview_cpu_ms": preview_cpu,
               "speedup_wall": mpm_ms / preview_ms, "speedup_cpu": mpm_cpu / preview_cpu,
               "covariance_ms": cov_ms, "covariance_cpu_ms": cov_cpu,
               "giorom_checkpoint": ckpt.path.name if not from_runs else str(ckpt.path)}
        line = (f"  {material} N={dense.shape[0]}: MPM {mpm_ms:.0f} ms/frame (cpu {mpm_cpu:.0f}), preview "
                f"{preview_ms:.0f} ms (cpu {preview_cpu:.0f}; step {step_ms:.0f} + query {query_ms:.0f}), "
                f"x{mpm_ms / preview_ms:.1f} wall, x{mpm_cpu / preview_cpu:.1f} cpu")
        if gns_ckpt is not None:
            row.update(gns_frame(gns_ckpt, dense, spacing, repeats),
                       gns_checkpoint=gns_ckpt.path.name if not from_runs else str(gns_ckpt.path))
            row["giorom_vs_gns_wall"] = row["gns_ms"] / preview_ms
            row["giorom_vs_gns_cpu"] = row["gns_cpu_ms"] / preview_cpu
            line += (f"; GNS {row['gns_ms']:.0f} ms (cpu {row['gns_cpu_ms']:.0f}, graph "
                     f"{row['gns_graph_cpu_ms']:.0f}, {row['gns_edges']} edges), preview "
                     f"x{row['giorom_vs_gns_cpu']:.1f} cpu vs GNS")
        rows.append(row)
        print(line, flush=True)
    return rows


def chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.spatial import cKDTree

    da, _ = cKDTree(b.numpy()).query(a.numpy())
    db, _ = cKDTree(a.numpy()).query(b.numpy())
    return float(da.mean() + db.mean()) / 2


def object_size(frame: torch.Tensor) -> float:
    """The largest extent of a frame's points ``[N, 3]``, the scale rollout errors are given in."""
    return float((frame.max(0).values - frame.min(0).values).max())


def rmse_fraction(pred: torch.Tensor, truth: torch.Tensor, size: float | None = None) -> torch.Tensor:
    """Position RMSE over all points of each predicted frame (after the first ``W``) as a fraction
    of ``size`` (default: :func:`object_size` of ``truth``'s first frame)."""
    if size is None:
        size = object_size(truth[0])
    return ((pred[W:] - truth[W:]) ** 2).sum(-1).mean(-1).sqrt() / size


def _errors(predictions, truths) -> dict:
    """RMSE over all particles as a fraction of each object's size (after the last frame and
    averaged over the predicted frames) and the Chamfer distance at the last frame, averaged
    over trajectories; with each trajectory's mean and per-frame RMSE."""
    rmse_last, rmse_mean, ch, curves = [], [], [], []
    for pred, truth in zip(predictions, truths):
        size = object_size(truth[0])
        err = rmse_fraction(pred, truth, size)  # [n_steps]
        rmse_last.append(float(err[-1]))
        rmse_mean.append(float(err.mean()))
        ch.append(chamfer(pred[-1], truth[-1]) / size)
        curves.append([round(float(e), 4) for e in err])
    return {"rmse_frac_last": float(np.mean(rmse_last)), "rmse_frac_mean": float(np.mean(rmse_mean)),
            "chamfer_frac_last": float(np.mean(ch)), "rmse_frac_per_trajectory": rmse_mean,
            "rmse_frac_per_frame": curves}


def prior_step_ms(contact, external: torch.Tensor, bounds: torch.Tensor, sizes, repeats: int = 5) -> dict:
    """Median wall-clock ms of one ``contact.step`` at each particle count: a block of grains at the
    dataset spacing landing on the floor (every grain in contact), as ``{N: ms}``."""
    out = {}
    for n in sizes:
        side = max(2, round(n ** (1 / 3)))
        g = torch.arange(side, dtype=torch.float32) * COARSE
        block = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        block = block - block.mean(0) + torch.tensor([0.5, 0.0, 0.5])
        block[:, 1] += float(bounds[1, 0]) + 0.01 - float(block[:, 1].min())
        block = block + 0.002 * torch.rand(block.shape, generator=torch.Generator().manual_seed(0))
        prev, last = block + torch.tensor([0.0, 0.01, 0.0]), block
        ms, _ = median_ms(lambda: contact.step(prev, last, external, bounds), repeats=repeats)
        out[int(block.shape[0])] = ms
        print(f"    prior step at {block.shape[0]} particles: {ms:.1f} ms", flush=True)
    return out


def object_contact_rows(material: str, data_dir: Path, meta: dict, test: list, model: str,
                        prior_sizes=(), constants: dict | None = None, fit_drops: int | None = None) -> list[dict]:
    """A wall-contact prior ``model`` of :func:`operators.contact.fit_contact` (e.g. ``"rigid"``,
    ``"compliant"``, ``"granular"``, ``"affine"``): constants fitted on the training split (on every
    k-th of its drops for ``fit_drops`` of them; ``constants`` given: no fit), scored on the whole
    training split and the test split, then each checkpoint's unchanged networks over it; with
    ``prior_sizes``, the prior's ms per frame."""
    import dataclasses

    from operators.contact import fit_contact
    from operators.datasets import read_split
    from operators.rollout import rollout

    data = data_dir / f"data_{material}_3d"
    ext = torch.tensor(meta.get("external_acceleration") or [0.0] * 3, dtype=torch.float32)
    bounds = torch.tensor(meta["bounds"], dtype=torch.float32)
    n_steps = min(50, test[0].positions.shape[0] - W)
    train = [t.positions for t in read_split(data, "train", meta)]
    subset = train[::max(1, len(train) // fit_drops)][:fit_drops] if fit_drops else train
    t0 = time.perf_counter()
    if constants is None:
        fitted, fit_err = fit_contact(model, subset, ext, bounds)
    else:
        fitted, fit_err = contact_from_dict({"model": model, **constants}), None
    fit_s = time.perf_counter() - t0
    train_scores = _errors([contact_rollout(t[:W], n_steps, ext, bounds, fitted) for t in train],
                           [t[:W + n_steps] for t in train])
    how = "given" if constants is not None else f"fitted on {len(subset)} training drops in {fit_s:.0f} s"
    print(f"  {material} {model} contact {how}: {fitted.as_dict()} (whole training split "
          f"{100 * train_scores['rmse_frac_mean']:.1f} %)", flush=True)
    preds = [contact_rollout(tr.positions[:W], n_steps, ext, bounds, fitted) for tr in test]
    truths = [tr.positions[:W + n_steps] for tr in test]
    rows = [{"material": material, "model": f"prior: gravity + {model} contact", "steps": 0, "batch": 0,
             "budget_windows": 0, "frames": n_steps, **_errors(preds, truths), "wall_contact": fitted.as_dict(),
             "fit_seconds": fit_s, "fit_train_rmse_frac": fit_err,
             "fit_drops": None if constants is not None else len(subset),
             "constants_given": constants is not None, "train_rmse_frac_mean": train_scores["rmse_frac_mean"],
             "train_rmse_frac_per_trajectory": train_scores["rmse_frac_per_trajectory"],
             **({"prior_ms_per_frame": prior_step_ms(fitted, ext, bounds, prior_sizes)} if prior_sizes else {})}]
    per_drop = " / ".join(f"{100 * e:.1f}" for e in rows[-1]["rmse_frac_per_trajectory"])
    print(f"  {material} {rows[-1]['model']}: mean RMSE {100 * rows[-1]['rmse_frac_mean']:.1f} % "
          f"(per test drop {per_drop} %; train {100 * train_scores['rmse_frac_mean']:.1f} %)", flush=True)
    for net in ("giorom", "gns"):
        path = _trained_checkpoint(data_dir, net, material)
        if not path.is_file():
            continue
        ckpt = load_checkpoint(path)
        ckpt = dataclasses.replace(ckpt, model_config={**ckpt.model_config, "wall_contact": fitted.as_dict()})
        res = rollout(ckpt, data, split="test", n_steps=n_steps, progress=False)
        rows.append({"material": material, "model": f"{net} over {model} contact (networks unchanged)",
                     "steps": ckpt.step, "batch": ckpt.train_config.get("batch_size"), "frames": n_steps,
                     "residual_scale": ckpt.model_config.get("residual_scale"),
                     **_errors(res.predictions, res.ground_truth), "wall_contact": fitted.as_dict()})
        print(f"  {material} {rows[-1]['model']}: mean RMSE {100 * rows[-1]['rmse_frac_mean']:.1f} %", flush=True)
    return rows


def _trained_checkpoint(data_dir: Path, model: str, material: str) -> Path:
    """The run's checkpoint selected on the valid split when training kept one (--select-every), else its last."""
    run = data_dir / f"run_{model}_{material}_3d"
    return run / "best.pt" if (run / "best.pt").is_file() else run / "checkpoint.pt"


def _run_checkpoint(data_dir: Path | None, model: str, material: str) -> Path | None:
    """:func:`_trained_checkpoint` of ``data_dir``'s run of ``model`` when it exists, else None."""
    run = _trained_checkpoint(data_dir, model, material) if data_dir is not None else None
    return run if run is not None and run.is_file() else None


def _run_or_bundled(data_dir: Path | None, model: str, material: str):
    """The checkpoint of ``data_dir``'s run of ``model`` when there is one (None: never), else the bundled one."""
    return load_checkpoint(_run_checkpoint(data_dir, model, material) or bundled_checkpoint(material, 3, model))


def rollout_errors(material: str, data_dir: Path, contacts: tuple = (), prior_sizes=(),
                   constants: dict | None = None, fit_drops: int | None = None) -> list[dict]:
    """(b) the trained models of ``data_dir`` and the priors alone on the held-out shapes; ``contacts``:
    wall-contact priors (``"rigid"``, ``"compliant"``, ...) also fitted on the training split and measured;
    the checkpoint's own prior is also scored on the training split (``train_rmse_frac_mean``);
    ``constants``: ``{model: {field: value}}`` used instead of a fit; ``fit_drops``: fit on that many."""
    from operators.datasets import read_metadata, read_split
    from operators.rollout import rollout

    data = data_dir / f"data_{material}_3d"
    if not (data / "metadata.json").is_file():
        print(f"  (no dataset {data}; run scripts/make_splat_checkpoints.py)")
        return []
    meta = read_metadata(data)
    test = read_split(data, "test", meta)
    rows = []
    contact = None
    for model in ("giorom", "gns"):
        path = _trained_checkpoint(data_dir, model, material)
        if not path.is_file():
            continue
        ckpt = load_checkpoint(path)
        contact = contact or ckpt.model_config.get("wall_contact")
        n_steps = min(50, test[0].positions.shape[0] - W)
        t0, c0 = time.perf_counter(), time.process_time()
        res = rollout(ckpt, data, split="test", n_steps=n_steps, progress=False)
        step_s = (time.perf_counter() - t0) / (n_steps * len(test))
        step_cpu = (time.process_time() - c0) / (n_steps * len(test))
        info = json.loads((path.parent / "info.json").read_text()) if (path.parent / "info.json").is_file() else {}
        rows.append({"material": material, "model": model, "steps": ckpt.step,
                     "batch": ckpt.train_config.get("batch_size"),
                     "budget_windows": ckpt.step * int(ckpt.train_config.get("batch_size", 1)),
                     "held_out_shapes": meta.get("test_shapes"), "frames": n_steps,
                     **_errors(res.predictions, res.ground_truth),
                     "wall_contact": ckpt.model_config.get("wall_contact"),
                     "ms_per_step": 1000 * step_s, "cpu_ms_per_step": 1000 * step_cpu,
                     "steps_trained": info.get("steps_trained", ckpt.step),
                     "train_seconds": info.get("train_seconds_this_run")})
        r = rows[-1]
        print(f"  {material} {model}: {r['steps']} steps x {r['batch']}, RMSE@{n_steps} "
              f"{100 * r['rmse_frac_last']:.1f} % (mean {100 * r['rmse_frac_mean']:.1f} %), "
              f"{r['ms_per_step']:.0f} ms/step", flush=True)
    # the priors alone, no learning: gravity and the wall clamp, and with the fitted wall response
    ext = torch.tensor(meta.get("external_acceleration") or [0.0] * 3, dtype=torch.float32)
    bounds = torch.tensor(meta["bounds"], dtype=torch.float32)
    n_steps = min(50, test[0].positions.shape[0] - W)
    kind = (contact or {}).get("model", "particle")
    for name, wc in (("prior: gravity + walls", None),
                     ("prior: gravity + wall contact" if kind == "particle" else f"prior: gravity + {kind} contact",
                      contact)):
        if name != "prior: gravity + walls" and wc is None:
            continue
        wall = contact_from_dict(wc) if wc else None
        preds = [contact_rollout(tr.positions[:W], n_steps, ext, bounds, wall) for tr in test]
        truths = [tr.positions[:W + n_steps] for tr in test]
        train = [tr.positions for tr in read_split(data, "train", meta)]
        train_err = float(np.mean([float(_errors([contact_rollout(t[:W], n_steps, ext, bounds, wall)],
                                                  [t[:W + n_steps]])["rmse_frac_mean"]) for t in train]))
        rows.append({"material": material, "model": name, "steps": 0, "batch": 0, "budget_windows": 0,
                     "held_out_shapes": meta.get("test_shapes"), "frames": n_steps,
                     **_errors(preds, truths), "wall_contact": wc, "train_rmse_frac_mean": train_err})
        print(f"  {material} {name}: mean RMSE {100 * rows[-1]['rmse_frac_mean']:.1f} % "
              f"(train {100 * train_err:.1f} %)", flush=True)
    for model in contacts:
        rows += object_contact_rows(material, data_dir, meta, test, model, prior_sizes,
                                    (constants or {}).get(model), fit_drops)
    return rows


def figure(runs: list, frames: int, path: str) -> None:
    """Rows of rendered frames: MPM above the GIOROM preview, for each run."""
    import imageio.v3 as iio

    from operators.splat_physics.simulate import render_motion

    picks = [0, frames // 4, frames // 2, frames]
    rows = []
    for run in runs:
        for motion in (run.mpm, run.preview):
            rows.append(np.concatenate(render_motion(motion, picks, 160, 160), axis=1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.concatenate(rows, axis=0))
    print(f"  wrote {path}: frames {picks}, rows MPM / GIOROM per run")


def splat_objects(materials: list[str], frames: int, figure_path: str | None = None,
                  data_dir: Path | None = None, spacing: float = COARSE,
                  max_particles: int = 20000, names: list[str] | None = None) -> list[dict]:
    """(c) the bundled splat objects, MPM against the preview of the bundled GIOROM checkpoint (or, with
    ``data_dir``, of its ``make_splat_checkpoints`` run of the material when there), both filled at
    ``spacing`` (MPM moves every particle of the fill, the preview steps at its trained density)."""
    from operators.splat_physics.pipeline import run_splat_physics
    from splatops_assets import asset_path

    rows, shown = [], []
    for ply in sorted(asset_path("objects").glob("*.ply")):
        if names and ply.stem not in names:
            continue
        for material in materials:
            ckpt = _run_checkpoint(data_dir, "giorom", material)
            run = run_splat_physics(ply, material, None, frames=frames, preview="giorom", video=False,
                                    checkpoint=ckpt, spacing=spacing, max_particles=max_particles)
            if (ply.stem, material) in (("ball", "jelly"), ("crate", "sand")):
                shown.append(run)
            s = run.summary
            rows.append({"object": ply.stem, "material": material, "fill_spacing": spacing,
                         "gaussians": s["gaussians_simulated"],
                         "particles": s["particles"], "sparse_points": s["preview_info"]["sparse_points"],
                         "mpm_ms": s["mpm_ms_per_frame"], "preview_ms": s["preview_ms_per_frame"],
                         "deform_ms": s["deform_ms_per_frame"], "rmse_frac_last": s["rmse_fraction_last"],
                         "rmse_frac_mean": s["rmse_fraction_mean"],
                         "checkpoint": str(ckpt) if ckpt is not None else "bundled"})
            r = rows[-1]
            print(f"  {ply.stem} {material} ({r['particles']} particles): MPM {r['mpm_ms']:.0f} ms/frame, preview "
                  f"{r['preview_ms']:.0f} ({r['sparse_points']} points), RMSE@{frames} "
                  f"{100 * r['rmse_frac_last']:.1f} % (mean {100 * r['rmse_frac_mean']:.1f} %)", flush=True)
    if figure_path and shown:
        figure(shown, frames, figure_path)
    return rows


def reduction_errors(material: str, spacings: list[float], frames: int, data_dir: Path | None = None,
                     shapes=("torus", "capsule"), size: float = 0.35,
                     velocity=(0.8, 0.0, 0.5), step_spacings=(None,), gns_max_particles: int = 0,
                     test_drops: int = 0, more_runs: tuple = (), gns_on_stepped: bool = False,
                     truth_cell: float | None = None) -> list[dict]:
    """(d) The reduction itself: the held-out shapes filled at each of ``spacings`` and thrown at a
    wall with MPM on every particle, against the GIOROM preview that steps the checkpoint's trained
    density (an ``(spacing / 0.02) ** 3`` share of the fill, :func:`at_fill_spacing`) from MPM's first
    frames and queries every particle; RMSE over all particles as a fraction of the size.

    Args:
        material: the checkpoint's material.
        spacings: fill spacings (box units; 0.02 is the training data's).
        frames: frames simulated (the first ``W`` given to the preview).
        data_dir: read the GIOROM run of ``make_splat_checkpoints`` there when present (else bundled).
        shapes: analytic shapes filled (``operators.splat_physics.shapes``; held out of training).
        size: their size, box units.
        velocity: initial velocity, m/s.
        step_spacings: spacings of the points the preview moves (None: its trained density); each is
            scored against the same MPM run when finer than the fill's.
        gns_max_particles: also roll out the GNS of the same runs (or the bundled one) on every
            particle of fills up to this many particles (0: none); its CPU ms per step and RMSE are
            added to the fill's rows.
        test_drops: instead of throwing ``shapes``, drop the first N test drops of the shape
            datasets (:func:`held_out_drop`: their sizes, orientations and velocities) at each fill.
        more_runs: more ``make_splat_checkpoints --work`` directories (e.g. other training seeds)
            whose GIOROM (and GNS) are scored against the same MPM runs; each row names its
            ``run`` (the directory, or ``"bundled"``).
        gns_on_stepped: where GNS is rolled out, also roll it out on the very points the preview
            moved (``gns_stepped_rmse_frac_mean``, beside the preview's ``stepped_rmse_frac_mean``):
            the two time-steppers compared at the same resolution.
        truth_cell: grid cell of the MPM runs (box units; None: twice the fill's spacing, as
            ``splatops simulate`` fills). The training data's cell (0.04 for its 0.02 spacing) scores
            the learned models against the solver they imitate, without MPM's own grid dependence.
    """
    from operators.splat_physics.shapes import BOX_WALLS, held_out_drop, shape_scene

    runs = [(_run_name(data_dir, material), _run_or_bundled(data_dir, "giorom", material),
             _run_or_bundled(data_dir, "gns", material) if gns_max_particles > 0 else None)]
    for run in map(Path, more_runs):
        found = {m: _run_checkpoint(run, m, material) for m in ("giorom", "gns")}
        missing = [str(_trained_checkpoint(run, m, material)) for m, c in found.items()
                   if c is None and (m == "giorom" or gns_max_particles > 0)]
        if missing:
            raise FileNotFoundError(f"no trained checkpoint {', '.join(missing)}")
        runs.append((str(run), load_checkpoint(found["giorom"]),
                     load_checkpoint(found["gns"]) if gns_max_particles > 0 else None))
    rows = []

    def scenes(spacing):  # (name, scene) pairs at this fill
        if test_drops:
            return [held_out_drop(i, spacing) for i in range(test_drops)]
        return [(shape, shape_scene(shape, size, spacing, bottom=0.1, velocity=velocity, wall=BOX_WALLS[0]))
                for shape in shapes]

    for spacing in spacings:
        for k, (shape, scene) in enumerate(scenes(spacing)):
            truth, mpm_cpu, cell = _mpm_run(material, scene, spacing, truth_cell or 2 * spacing, frames)
            fields = dict(material=material, shape=shape, mpm_cpu_ms=mpm_cpu, mpm_cell=cell,
                          **({"test_drop": k} if test_drops else {}))
            if truth_cell is not None:  # how far this truth is from MPM on the fill's own grid
                gap = 0.0
                if not math.isclose(truth_cell, 2 * spacing):
                    own, _, _ = _mpm_run(material, scene, spacing, 2 * spacing, frames)
                    gap = float(rmse_fraction(truth, own).mean())
                fields["truth_vs_fill_grid_rmse_frac_mean"] = gap
            for run_name, base, gns in runs:
                rows += _reduction_rows(base, gns, truth, spacing, frames, step_spacings, gns_max_particles,
                                        {**fields, "run": run_name}, gns_on_stepped)
    return rows


def _mpm_run(material: str, scene, spacing: float, cell: float, frames: int) -> tuple[torch.Tensor, float, float]:
    """MPM on every particle of ``scene`` (a fill at ``spacing``) inside the box walls, on a grid of about
    ``cell``: its positions ``[frames + 1, N, 3]``, CPU ms per frame and the grid's actual cell."""
    from operators.mpm import MPMConfig, MPMSolver, make_material
    from operators.splat_physics.shapes import BOX_WALLS

    config = MPMConfig()
    solver = MPMSolver.for_walls(make_material(material), scene.positions.float(), scene.velocities.float(),
                                 spacing ** 3, BOX_WALLS, cell, config)
    substeps = solver.fit_substeps(config.frame_dt)
    truth, c0 = [solver.x], time.process_time()
    with torch.no_grad(), config.threads():
        for _ in range(frames):
            for _ in range(substeps):
                solver.substep()
            truth.append(solver.x)
    return torch.stack(truth), 1000 * (time.process_time() - c0) / frames, solver.dx


def reduction_summary(rows: list[dict]) -> list[dict]:
    """GIOROM against GNS per material and run over (d)'s rows that have both (mean RMSE fractions), and
    over runs: the mean of the runs' means and the standard error of their paired difference."""
    out = []
    for material in dict.fromkeys(r["material"] for r in rows):
        per_run = []
        for run in dict.fromkeys(r["run"] for r in rows if r["material"] == material):
            both = [r for r in rows if r["material"] == material and r["run"] == run and "gns_rmse_frac_mean" in r]
            if both:
                giorom = statistics.fmean(r["rmse_frac_mean"] for r in both)
                gns = statistics.fmean(r["gns_rmse_frac_mean"] for r in both)
                per_run.append({"material": material, "run": run, "trajectories": len(both),
                                "giorom_rmse_frac": giorom, "gns_rmse_frac": gns, "difference": giorom - gns})
        out += per_run
        if len(per_run) > 1:
            diffs = [r["difference"] for r in per_run]
            out.append({"material": material, "run": f"mean of {len(per_run)} runs",
                        "trajectories": per_run[0]["trajectories"],
                        "giorom_rmse_frac": statistics.fmean(r["giorom_rmse_frac"] for r in per_run),
                        "gns_rmse_frac": statistics.fmean(r["gns_rmse_frac"] for r in per_run),
                        "difference": statistics.fmean(diffs),
                        "difference_se": statistics.stdev(diffs) / math.sqrt(len(diffs))})
    return out


def _run_name(data_dir: Path | None, material: str) -> str:
    """The ``run`` of :func:`reduction_errors`' rows: the directory whose GIOROM run is read, else "bundled"."""
    return str(data_dir) if _run_checkpoint(data_dir, "giorom", material) is not None else "bundled"


def _reduction_rows(base, gns, truth: torch.Tensor, spacing: float, frames: int, step_spacings,
                    gns_max_particles: int, fields: dict, gns_on_stepped: bool = False) -> list[dict]:
    """(d)'s rows of one GIOROM checkpoint (and GNS, within ``gns_max_particles``; with ``gns_on_stepped``
    also on the points the preview moved) on one MPM run."""
    rows = []
    gns_row = (_gns_full_row(gns, truth, spacing, frames)
               if gns is not None and truth.shape[1] <= gns_max_particles else {})
    material, shape = fields["material"], fields["shape"]
    for step_spacing in step_spacings:
        if step_spacing is not None and step_spacing <= spacing:
            continue  # not a reduction of this fill
        r, idx = _reduced_preview_row(base, truth, spacing, step_spacing, frames)
        rows.append(r)
        r.update(**fields, **gns_row)
        if gns_row and gns_on_stepped:
            r.update(_gns_stepped_row(gns, truth, idx, spacing, frames))
        line = (f"  {material} {shape} at {spacing} ({fields['run']}): {r['particles']} particles, preview steps "
                f"{r['stepped_points']}; MPM {fields['mpm_cpu_ms']:.0f} ms/frame cpu, preview "
                f"{r['preview_step_cpu_ms']:.0f} + query {r['query_cpu_ms']:.0f}; RMSE mean "
                f"{100 * r['rmse_frac_mean']:.1f} %, last {100 * r['rmse_frac_last']:.1f} % (moved points "
                f"{100 * r['stepped_rmse_frac_mean']:.1f} %, query of MPM's motion "
                f"{100 * r['query_of_truth_rmse_frac_mean']:.1f} %)")
        if gns_row:
            r["gns_vs_preview_cpu"] = r["gns_cpu_ms"] / (r["preview_step_cpu_ms"] + r["query_cpu_ms"])
            line += (f"; GNS {r['gns_cpu_ms']:.0f} ms/step cpu (x{r['gns_vs_preview_cpu']:.1f} the preview), "
                     f"RMSE mean {100 * r['gns_rmse_frac_mean']:.1f} %, last {100 * r['gns_rmse_frac_last']:.1f} %")
        if "gns_stepped_rmse_frac_mean" in r:
            line += f"; GNS on the moved points {100 * r['gns_stepped_rmse_frac_mean']:.1f} %"
        print(line, flush=True)
    return rows


def _reduced_preview_row(base, truth: torch.Tensor, spacing: float, step_spacing: float | None,
                         frames: int) -> tuple[dict, torch.Tensor]:
    """The GIOROM preview of ``base`` from ``truth``'s first frames (a fill at ``spacing``), moving
    points at ``step_spacing``, queried at every particle and scored against ``truth``: its row and
    the indices of the points it moved."""
    from operators.rollout import ReducedRollout, simulate_reduced
    from operators.splat_physics.simulate import at_fill_spacing

    ckpt = at_fill_spacing(base, spacing, step_spacing)
    simulator, query = models_from_checkpoint(ckpt)
    ptype = torch.full((truth.shape[1],), int(ckpt.metadata["particle_types"][0]))
    c0 = time.process_time()
    reduced = simulate_reduced(simulator, ckpt.model_config["sparse_fraction"], "fps", truth[:W], ptype,
                               frames + 1 - W)
    step_cpu = 1000 * (time.process_time() - c0) / (frames + 1 - W)
    c0 = time.process_time()
    dense = reduced.evaluate(query)
    query_cpu = 1000 * (time.process_time() - c0) / (frames + 1)
    extent = object_size(truth[0])
    err = rmse_fraction(dense, truth, extent)
    # where the error sits: the moved points themselves, and the query moved by MPM's own motion of them
    idx = reduced.indices
    queried_truth = ReducedRollout(truth[:, idx], idx, truth[:W]).evaluate(query, truth[0])
    return {"fill_spacing": spacing, "step_spacing": step_spacing, "particles": truth.shape[1],
            "stepped_points": int(idx.numel()), "frames": frames, "preview_step_cpu_ms": step_cpu,
            "query_cpu_ms": query_cpu, "rmse_frac_mean": float(err.mean()), "rmse_frac_last": float(err[-1]),
            "stepped_rmse_frac_mean": float(rmse_fraction(reduced.sparse, truth[:, idx], extent).mean()),
            "query_of_truth_rmse_frac_mean": float(rmse_fraction(queried_truth, truth, extent).mean()),
            "checkpoint": str(ckpt.path)}, idx


def _gns_stepped_row(gns, truth: torch.Tensor, idx: torch.Tensor, spacing: float, frames: int) -> dict:
    """GNS of ``gns`` on the points the preview moved (``idx`` of ``truth``, a fill at ``spacing``), its
    radius scaled to their mean spacing, scored against MPM's motion of them as the preview's moved
    points are (``stepped_rmse_frac_mean``): the two time-steppers on the same sparse points."""
    from operators.rollout import simulate

    stepped = truth[:, idx]
    simulator = gns_at_spacing(gns, spacing * (truth.shape[1] / idx.numel()) ** (1.0 / 3.0))
    ptype = torch.full((stepped.shape[1],), int(gns.metadata["particle_types"][0]))
    with torch.no_grad():
        pred = simulate(simulator, stepped[:W], ptype, frames + 1 - W)
    return {"gns_stepped_rmse_frac_mean": float(rmse_fraction(pred, stepped, object_size(truth[0])).mean())}


def _gns_full_row(gns, truth: torch.Tensor, spacing: float, frames: int) -> dict:
    """GNS of ``gns`` on every particle of ``truth`` (a fill at ``spacing``) from its first frames,
    scored as the preview is (:func:`_reduced_preview_row`)."""
    from operators.rollout import simulate

    simulator = gns_at_spacing(gns, spacing)
    ptype = torch.full((truth.shape[1],), int(gns.metadata["particle_types"][0]))
    c0 = time.process_time()
    with torch.no_grad():
        pred = simulate(simulator, truth[:W], ptype, frames + 1 - W)
    step_cpu = 1000 * (time.process_time() - c0) / (frames + 1 - W)
    err = rmse_fraction(pred, truth)
    return {"gns_cpu_ms": step_cpu, "gns_rmse_frac_mean": float(err.mean()), "gns_rmse_frac_last": float(err[-1]),
            "gns_checkpoint": str(gns.path)}


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--gaussians", type=int, default=100000)
    p.add_argument("--materials", nargs="+", default=["jelly", "sand"])
    p.add_argument("--data-dir", default="/tmp/splatphys", help="datasets and runs of make_splat_checkpoints")
    p.add_argument("--frames", type=int, default=50, help="frames of the splat-object drops")
    p.add_argument("--skip", nargs="*", default=[], choices=["frame", "rollout", "objects", "reduction"])
    p.add_argument("--reduction-spacings", type=float, nargs="+", default=[0.02, 0.01, 0.0045],
                   help="(d) fill spacings of the held-out shapes MPM moves (0.0045: ~100k particles)")
    p.add_argument("--reduction-shapes", nargs="+", default=["torus", "capsule"],
                   help="(d) analytic shapes filled (operators.splat_physics.shapes)")
    p.add_argument("--step-spacings", type=float, nargs="*", default=[],
                   help="(d) also preview moving points at these spacings (besides the trained density)")
    p.add_argument("--reduction-test-drops", type=int, default=0, metavar="N",
                   help="(d) drop the shape datasets' first N test drops at each fill instead of the throws")
    p.add_argument("--reduction-gns", type=int, default=0, metavar="N",
                   help="(d) also roll out GNS on every particle of the fills of up to N particles")
    p.add_argument("--reduction-gns-on-stepped", action="store_true",
                   help="(d) where GNS runs, also roll it out on the points the preview moves (same resolution)")
    p.add_argument("--reduction-truth-cell", type=float, default=None, metavar="CELL",
                   help="(d) grid cell of the MPM truth (default: twice the fill's spacing; 0.04: the training "
                        "data's grid, the solver the learned models imitate)")
    p.add_argument("--reduction-more-runs", nargs="+", default=[], metavar="DIR",
                   help="(d) also score the GIOROM (and GNS) runs of these make_splat_checkpoints --work "
                        "directories (e.g. other training seeds) against the same MPM runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frame-from-runs", action="store_true",
                   help="(a) time the checkpoints of --data-dir's runs, when there, instead of the bundled ones")
    p.add_argument("--objects-from-runs", action="store_true",
                   help="(c) preview with the GIOROM checkpoint of --data-dir's run, when there, instead of the "
                        "bundled one")
    p.add_argument("--no-gns", action="store_true", help="(a) leave out the GNS step on all particles")
    p.add_argument("--fill-spacing", type=float, nargs="+", default=[COARSE],
                   help="(c) particle spacings (box units) the objects are filled at for MPM; the preview "
                        "steps at its trained density whatever the fill")
    p.add_argument("--max-particles", type=int, default=20000, help="(c) particle budget of a fill")
    p.add_argument("--objects", nargs="+", default=None, metavar="NAME",
                   help="(c) only these bundled objects (ball, crate, ring; default all)")
    p.add_argument("--rigid-contact", action="store_true",
                   help="(b) also fit the object-level contact prior on the training split and roll it out")
    p.add_argument("--compliant-contact", action="store_true",
                   help="(b) also fit the compliant object-level contact prior (operators.compliant_contact) "
                        "on the training split and roll it out")
    p.add_argument("--contact-model", nargs="+", default=[], metavar="NAME",
                   help="(b) also fit these registered wall-contact priors (operators.contact.contact_models, "
                        "e.g. granular) on the training split and roll them out")
    p.add_argument("--prior-sizes", type=int, nargs="*", default=[1000, 10000],
                   help="(b) particle counts at which each --contact-model prior's step is timed")
    p.add_argument("--contact-json", default=None, metavar="JSON",
                   help="(b) constants per contact model used instead of fitting them, "
                        "e.g. '{\"compliant\": {\"stiffness\": 2.0, ...}}'")
    p.add_argument("--fit-drops", type=int, default=None, metavar="N",
                   help="(b) fit the contact priors on N evenly spaced training drops (every k-th) instead of all; "
                        "they are still scored on the whole training split")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--figure", help="write rendered MPM / GIOROM frames of two objects here (PNG)")
    a = p.parse_args(argv)
    from operators.contact import contact_models

    unknown = sorted(set(a.contact_model) - set(contact_models()))
    if unknown:
        p.error(f"--contact-model: unknown wall contact models {unknown} (expected some of {sorted(contact_models())})")
    try:
        constants = json.loads(a.contact_json) if a.contact_json else None
    except json.JSONDecodeError as e:
        p.error(f"--contact-json is not valid JSON: {e}")
    if constants is not None and not (isinstance(constants, dict)
                                      and all(isinstance(v, dict) for v in constants.values())):
        p.error("--contact-json must map contact model names to {field: value} objects")
    if a.fit_drops is not None and a.fit_drops < 1:
        p.error(f"--fit-drops must be >= 1, got {a.fit_drops}")
    torch.set_num_threads(a.threads)
    out = {"machine": "2-core CPU, no GPU, shared with other jobs", "torch_threads": a.threads}
    if "frame" not in a.skip:
        print("(a) ms per frame")
        out["per_frame"] = [r for m in a.materials for r in per_frame(
            m, a.sizes, a.gaussians, Path(a.data_dir), from_runs=a.frame_from_runs, gns=not a.no_gns)]
        print(table(out["per_frame"], ["material", "particles", "gaussians", "mpm_ms", "mpm_cpu_ms",
                                       "sparse_points", "giorom_step_ms", "query_ms", "preview_ms",
                                       "preview_cpu_ms", "speedup_wall", "speedup_cpu", "gns_edges", "gns_ms",
                                       "gns_cpu_ms", "giorom_vs_gns_cpu", "covariance_cpu_ms"]))
    if "rollout" not in a.skip:
        print("(b) rollout error on held-out shapes, same training budget")
        contacts = tuple(m for m, on in (("rigid", a.rigid_contact), ("compliant", a.compliant_contact)) if on)
        contacts += tuple(m for m in a.contact_model if m not in contacts)
        sizes = a.prior_sizes if a.contact_model else ()
        out["rollout"] = [r for m in a.materials
                          for r in rollout_errors(m, Path(a.data_dir), contacts, sizes, constants, a.fit_drops)]
        print(table(out["rollout"], ["material", "model", "steps_trained", "steps", "batch", "frames", "rmse_frac_last",
                                     "rmse_frac_mean", "train_rmse_frac_mean", "fit_train_rmse_frac",
                                     "chamfer_frac_last", "ms_per_step", "cpu_ms_per_step", "prior_ms_per_frame"]))
    if "objects" not in a.skip:
        print("(c) bundled splat objects through the pipeline")
        out["objects"] = [r for k, sp in enumerate(a.fill_spacing) for r in splat_objects(
            a.materials, a.frames, a.figure if k == 0 else None, Path(a.data_dir) if a.objects_from_runs else None,
            sp, a.max_particles, a.objects)]
        print(table(out["objects"], ["object", "material", "fill_spacing", "gaussians", "particles", "sparse_points",
                                     "mpm_ms", "preview_ms", "deform_ms", "rmse_frac_mean", "rmse_frac_last"]))
    if "reduction" not in a.skip:
        print("(d) the preview against MPM on finer fills of the held-out shapes")
        out["reduction"] = [r for m in a.materials for r in reduction_errors(
            m, a.reduction_spacings, a.frames + W - 1, Path(a.data_dir) if a.objects_from_runs else None,
            shapes=tuple(a.reduction_shapes), step_spacings=(None, *a.step_spacings),
            gns_max_particles=a.reduction_gns, test_drops=a.reduction_test_drops,
            more_runs=tuple(a.reduction_more_runs), gns_on_stepped=a.reduction_gns_on_stepped,
            truth_cell=a.reduction_truth_cell)]
        print(table(out["reduction"], ["material", "shape", "fill_spacing", "step_spacing", "particles",
                                       "stepped_points",
                                       "mpm_cpu_ms", "preview_step_cpu_ms", "query_cpu_ms", "rmse_frac_mean",
                                       "rmse_frac_last", "stepped_rmse_frac_mean", "query_of_truth_rmse_frac_mean",
                                       "gns_cpu_ms", "gns_vs_preview_cpu", "gns_rmse_frac_mean",
                                       "gns_rmse_frac_last", "gns_stepped_rmse_frac_mean"]))
        out["reduction_summary"] = reduction_summary(out["reduction"])
        if out["reduction_summary"]:
            print(table(out["reduction_summary"], ["material", "run", "trajectories", "giorom_rmse_frac",
                                                   "gns_rmse_frac", "difference", "difference_se"]))
    if a.json:
        write_text_atomic(a.json, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
