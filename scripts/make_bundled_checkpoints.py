"""Make the small checkpoints shipped in ``assets/checkpoints``.

For each requested (model, material, dim): simulate a dataset with the MPM
engine (``operators.datasets.generate_dataset``), train, roll out on the
validation split, and write ``<model>_<material>_<dim>d.pt`` with a JSON
of the training settings and the validation rollout MSE beside it.

    python scripts/make_bundled_checkpoints.py --model giorom --material water --dim 2 \
        --steps 4000 --work /tmp/bundled
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.checkpoints import BUNDLED_DIR, load_checkpoint  # noqa: E402
from operators.datasets import generate_dataset  # noqa: E402
from operators.rollout import rollout  # noqa: E402
from operators.train import train  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402

SPLITS = {"train": 0.8, "valid": 0.1, "test": 0.1}
SCENE = "dam_break"


def make_dataset(material: str, dim: int, n_traj: int, n_particles: int, n_frames: int,
                 out_dir: Path, seed: int = 0) -> Path:
    if (out_dir / "metadata.json").is_file():
        return out_dir
    generate_dataset(material=material, scene=SCENE, dim=dim, n_trajectories=n_traj,
                     n_particles=n_particles, n_frames=n_frames, seed=seed, out_dir=out_dir)
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
    write_json_atomic(dest.with_suffix(".json"), info, indent=1)
    print(json.dumps({k: info[k] for k in ("steps", "final_train_loss", "valid_rollout_mse")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
