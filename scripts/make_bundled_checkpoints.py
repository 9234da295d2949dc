"""Make the small checkpoints shipped in ``assets/checkpoints``.

For each requested (model, material, dim): simulate a dataset with the MPM
engine (``operators.datasets.generate_dataset`` when available, else the
same layout written here from ``operators.mpm.simulate``), train, roll out on
the validation split, and write ``<model>_<material>_<dim>d.pt`` with a JSON
of the training settings and the validation rollout MSE beside it.

    python scripts/make_bundled_checkpoints.py --model giorom --material water --dim 2 \
        --steps 4000 --work /tmp/bundled
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.checkpoints import BUNDLED_DIR, load_checkpoint  # noqa: E402
from operators.rollout import rollout  # noqa: E402
from operators.train import train  # noqa: E402

SPLITS = {"train": 0.8, "valid": 0.1, "test": 0.1}
SCENE = "dam_break"


def _write_layout(trajs, material: str, out_dir: Path) -> None:
    """GNS layout from ``operators.mpm.Trajectory`` objects (stats over the train split)."""
    n = len(trajs)
    n_valid = max(1, round(SPLITS["valid"] * n))
    n_test = max(1, round(SPLITS["test"] * n))
    parts = {"train": trajs[: n - n_valid - n_test], "valid": trajs[n - n_valid - n_test: n - n_test],
             "test": trajs[n - n_test:]}
    tmp = Path(tempfile.mkdtemp(prefix=".tmp", dir=out_dir.parent))
    for name, group in parts.items():
        arrays = {}
        for i, tr in enumerate(group):
            arrays[f"positions_{i}"] = tr.positions.numpy().astype(np.float32)
            arrays[f"particle_type_{i}"] = tr.particle_type.numpy().astype(np.int64)
        np.savez(tmp / f"{name}.npz", **arrays)
    pos = [tr.positions.numpy().astype(np.float64) for tr in parts["train"]]
    dim = pos[0].shape[2]
    vel = np.concatenate([np.diff(p, axis=0).reshape(-1, dim) for p in pos])
    acc = np.concatenate([np.diff(p, n=2, axis=0).reshape(-1, dim) for p in pos])
    spacing = float(np.median([np.sort(np.linalg.norm(p[0][:200, None] - p[0][None], axis=-1), 1)[:, 1]
                               for p in pos[:1]]))
    meta = {"dim": dim, "dt": trajs[0].dt, "bounds": trajs[0].bounds, "sequence_length": pos[0].shape[0],
            "default_connectivity_radius": round(3.0 * spacing, 5), "material": material,
            "vel_mean": vel.mean(0).tolist(), "vel_std": vel.std(0).tolist(),
            "acc_mean": acc.mean(0).tolist(), "acc_std": acc.std(0).tolist()}
    (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out_dir)


def make_dataset(material: str, dim: int, n_traj: int, n_particles: int, n_frames: int,
                 out_dir: Path, seed: int = 0) -> Path:
    if (out_dir / "metadata.json").is_file():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        from operators.datasets import generate_dataset
    except ImportError:
        generate_dataset = None
    if generate_dataset is not None:
        generate_dataset(material=material, scene=SCENE, dim=dim, n_trajectories=n_traj,
                         n_particles=n_particles, n_frames=n_frames, seed=seed, out_dir=out_dir)
        return out_dir
    from operators.mpm import simulate
    from tqdm.auto import tqdm
    trajs = [simulate(material, SCENE, dim=dim, n_particles=n_particles, n_frames=n_frames,
                      seed=seed + i, randomize=True, progress=False)
             for i in tqdm(range(n_traj), desc=f"mpm {material} {dim}d")]
    _write_layout(trajs, material, out_dir)
    return out_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("giorom", "gns"), default="giorom")
    p.add_argument("--material", default="water")
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--trajectories", type=int, default=14)
    p.add_argument("--particles", type=int, default=1000)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="/tmp/splatops_bundled")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--data-only", action="store_true")
    p.add_argument("--model-config", default="{}", help="JSON overrides of the model config")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    data = make_dataset(a.material, a.dim, a.trajectories, a.particles, a.frames,
                        work / f"data_{a.material}_{a.dim}d")
    if a.data_only:
        return 0
    run = work / f"run_{a.model}_{a.material}_{a.dim}d"
    t0 = time.time()
    res = train(a.model, data, run, a.steps, resume=a.resume, model_config=json.loads(a.model_config),
                checkpoint_every=250, batch_size=2)
    train_seconds = time.time() - t0
    ckpt = load_checkpoint(res.checkpoint)
    val = rollout(ckpt, data, split="valid", progress=False)
    # ship the weights without the optimizer state (smaller)
    ckpt.optimizer = None
    from operators.checkpoints import save_checkpoint
    name = f"{a.model}_{a.material}_{a.dim}d"
    dest = save_checkpoint(ckpt, BUNDLED_DIR / f"{name}.pt")
    info = {"model": a.model, "material": a.material, "dim": a.dim, "scene": SCENE,
            "dataset": {"trajectories": a.trajectories, "particles": a.particles, "frames": a.frames + 1,
                        "splits": SPLITS},
            "model_config": ckpt.model_config, "train_config": ckpt.train_config, "steps": ckpt.step,
            "train_seconds_this_run": round(train_seconds, 1), "final_train_loss": res.loss,
            "valid_rollout_mse": val.mean_mse, "valid_rollout_steps": len(val.mse_per_step[0]),
            "machine": "2-core CPU shared with other jobs, no GPU", "torch_threads": a.threads}
    tmp = dest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, dest.with_suffix(".json"))
    print(json.dumps({k: info[k] for k in ("steps", "final_train_loss", "valid_rollout_mse")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
