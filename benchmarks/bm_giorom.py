"""GIOROM vs GNS: time per rollout step, rollout MSE, dense-query cost, MPM cost.

    python benchmarks/bm_giorom.py [--data DIR] [--json PATH]

(a) seconds per rollout step of GNS on the full particle graph vs GIOROM
(sparse step + dense query back to every particle) at the same particle
count; (b) rollout position MSE of both on held-out trajectories; (c) the
dense query from ~1k sparse points to 1k, 10k and 100k points; (d) MPM
seconds per frame. Uses the bundled checkpoints in ``assets/checkpoints``.
Without ``--data`` a held-out test set is simulated with MPM (seeds unseen
in training).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint  # noqa: E402
from operators.features import INPUT_SEQUENCE_LENGTH  # noqa: E402
from operators.gns import GNS, GNSConfig  # noqa: E402
from splat.io.atomic import write_text_atomic  # noqa: E402
from operators.giorom import sample_sparse  # noqa: E402
from operators.rollout import rollout  # noqa: E402
from operators.simulator import LearnedSimulator  # noqa: E402
from operators.datasets import read_metadata, read_split  # noqa: E402


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_test_data(material: str, out: Path, n_traj: int, n_particles: int, n_frames: int) -> tuple[Path, list]:
    """Held-out MPM trajectories (seeds 1000+, unseen in training) as a ``test`` split;
    returns the folder and the MPM seconds of every frame."""
    from operators.mpm import simulate

    trajs = [simulate(material, "dam_break", dim=2, n_particles=n_particles, n_frames=n_frames,
                      seed=1000 + i, randomize=True, progress=False) for i in range(n_traj)]
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, t in enumerate(trajs):
        arrays[f"positions_{i}"] = t.positions.numpy()
        arrays[f"particle_type_{i}"] = t.particle_type.numpy()
    np.savez(out / "test.npz", **arrays)
    pos = [t.positions.numpy().astype(np.float64) for t in trajs]
    vel = np.concatenate([np.diff(q, axis=0).reshape(-1, 2) for q in pos])
    acc = np.concatenate([np.diff(q, n=2, axis=0).reshape(-1, 2) for q in pos])
    ck = load_checkpoint(bundled_checkpoint(material, 2, "giorom"))
    meta = {"dim": 2, "dt": trajs[0].dt, "bounds": trajs[0].bounds, "material": material,
            "default_connectivity_radius": ck.metadata["default_connectivity_radius"],
            "vel_mean": vel.mean(0).tolist(), "vel_std": vel.std(0).tolist(),
            "acc_mean": acc.mean(0).tolist(), "acc_std": acc.std(0).tolist()}
    (out / "metadata.json").write_text(json.dumps(meta))
    return out, [s for t in trajs for s in t.frame_seconds]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="GNS-layout dataset whose test split is held out")
    p.add_argument("--material", default="water")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-trajectories", type=int, default=2)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    results: dict = {"machine": "2-core CPU shared with other jobs, no GPU", "torch_threads": a.threads}

    # (d) MPM, and held-out data
    from operators.mpm import simulate
    if a.data is None:
        tmp = Path(tempfile.mkdtemp())
        data, frame_seconds = make_test_data(a.material, tmp / "test", 2, 1000, 100)
    else:
        data = Path(a.data)
        frame_seconds = simulate(a.material, "dam_break", dim=2, n_particles=1000, n_frames=10, seed=1000,
                                 progress=False).frame_seconds
    results["mpm_seconds_per_step"] = statistics.median(frame_seconds)

    gio_ck = load_checkpoint(bundled_checkpoint(a.material, 2, "giorom"))
    gns_ck = load_checkpoint(bundled_checkpoint(a.material, 2, "gns"))
    gio_sim, query = models_from_checkpoint(gio_ck)
    gns_sim, _ = models_from_checkpoint(gns_ck)
    meta = read_metadata(data)
    traj = read_split(data, "test", meta)[0]
    w = INPUT_SEQUENCE_LENGTH
    start = 40 if traj.positions.shape[0] > 40 + w else 0
    window = traj.positions[start: start + w].transpose(0, 1).contiguous()  # [N, W, d]
    ptype = traj.particle_type
    n = window.shape[0]
    ref = traj.positions[0]

    # (a) time per rollout step at the same particle count
    frac, sampler = gio_ck.model_config["sparse_fraction"], gio_ck.model_config["sampler"]
    idx = sample_sparse(ref, frac, sampler, random_start=False)
    plan = query.plan(ref[idx], ref)
    sparse_window, sparse_type = window[idx], ptype[idx]
    with torch.no_grad():
        def gio_step():
            nxt = gio_sim.predict_positions(sparse_window, sparse_type)
            return ref + query.apply(plan, nxt - ref[idx])

        def gns_step():
            return gns_sim.predict_positions(window, ptype)

        paper_gns = LearnedSimulator(GNS(LearnedSimulator.num_node_features(2), 3, 2,
                                         GNSConfig(latent=128, mp_steps=10)),
                                     2, gns_sim.radius, gns_sim.bounds, gns_sim.stats).eval()

        def paper_gns_step():
            return paper_gns.predict_positions(window, ptype)

        t_gio = median_seconds(gio_step, a.repeats)
        t_gns = median_seconds(gns_step, a.repeats)
        t_gns_paper = median_seconds(paper_gns_step, max(3, a.repeats // 2), warmup=1)
        t_plan = median_seconds(lambda: query.plan(ref[idx], ref), a.repeats)
    results["particles"] = n
    results["sparse_particles"] = int(len(idx))
    results["step_seconds"] = {"giorom": t_gio, "gns_bundled": t_gns, "gns_paper_size": t_gns_paper}
    results["query_plan_seconds_once"] = t_plan
    results["speedup_vs_gns"] = t_gns / t_gio
    results["speedup_vs_gns_paper_size"] = t_gns_paper / t_gio
    results["gns_bundled_config"] = gns_ck.model_config
    results["giorom_config"] = gio_ck.model_config

    # (b) rollout MSE on held-out trajectories (all particles)
    t0 = time.perf_counter()
    r_gio = rollout(gio_ck, data, split="test", max_trajectories=a.max_trajectories, progress=False)
    r_gns = rollout(gns_ck, data, split="test", max_trajectories=a.max_trajectories, progress=False)
    results["rollout_mse_giorom"] = r_gio.mean_mse
    results["rollout_mse_gns"] = r_gns.mean_mse
    results["rollout_steps"] = len(r_gio.mse_per_step[0])
    results["rollout_trajectories"] = len(r_gio.predictions)
    results["rollout_seconds_both"] = time.perf_counter() - t0

    # (c) dense query from ~1k sparse points to 1k, 10k, 100k points
    g = torch.Generator().manual_seed(0)
    lo, hi = ref.min(0).values, ref.max(0).values
    sparse_ref = lo + (hi - lo) * torch.rand(1000, 2, generator=g)
    disp = 0.01 * torch.randn(1000, 2, generator=g)
    big_window = sparse_ref[:, None].repeat(1, w, 1) + 0.001 * torch.randn(1000, w, 2, generator=g)
    big_type = torch.full((1000,), int(ptype[0]))
    dense_query, dense_plan, dense_step = {}, {}, {}
    with torch.no_grad():
        t_sparse_step = median_seconds(lambda: gio_sim.predict_positions(big_window, big_type), a.repeats)
        for q in (1_000, 10_000, 100_000):
            pts = lo + (hi - lo) * torch.rand(q, 2, generator=g)
            qplan = query.plan(sparse_ref, pts)
            dense_plan[q] = median_seconds(lambda: query.plan(sparse_ref, pts), 3, warmup=1)
            dense_query[q] = median_seconds(lambda: query.apply(qplan, disp), a.repeats)
            dense_step[q] = t_sparse_step + dense_query[q]
    results["dense_query_seconds"] = dense_query
    results["dense_plan_seconds_once"] = dense_plan
    results["sparse_step_seconds_1k"] = t_sparse_step
    results["dense_step_seconds"] = dense_step
    results["dense_query_ratio_100k_vs_1k"] = dense_query[100_000] / dense_query[1_000]
    results["dense_step_ratio_100k_vs_1k"] = dense_step[100_000] / dense_step[1_000]

    rows = [
        ("particles (sparse for GIOROM)", f"{n} ({len(idx)})", ""),
        ("GNS step, bundled (s)", f"{t_gns:.4f}", ""),
        ("GNS step, paper size 128x10 (s)", f"{t_gns_paper:.4f}", ""),
        ("GIOROM step + dense query (s)", f"{t_gio:.4f}", ""),
        ("speed-up vs bundled GNS", f"{results['speedup_vs_gns']:.1f}x", ">= 10x"),
        ("speed-up vs paper-size GNS", f"{results['speedup_vs_gns_paper_size']:.1f}x", ">= 10x"),
        ("rollout MSE GIOROM", f"{r_gio.mean_mse:.3e}", "<= 2x GNS"),
        ("rollout MSE GNS", f"{r_gns.mean_mse:.3e}", ""),
        ("MSE ratio GIOROM/GNS", f"{r_gio.mean_mse / r_gns.mean_mse:.2f}", "<= 2"),
    ]
    for q in dense_query:
        rows.append((f"query 1k->{q // 1000}k apply / step (s)", f"{dense_query[q]:.5f} / {dense_step[q]:.4f}", ""))
    rows.append(("100k/1k ratio: apply / step", f"{results['dense_query_ratio_100k_vs_1k']:.1f} / "
                 f"{results['dense_step_ratio_100k_vs_1k']:.2f}", "< 3"))
    rows.append(("MPM seconds per frame (1k particles)", f"{results['mpm_seconds_per_step']:.3f}", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  target")
    for name, val, target in rows:
        print(f"{name:<{width}}  {val:>22}  {target}")
    if a.json:
        write_text_atomic(a.json, json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
