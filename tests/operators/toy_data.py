"""Tiny GNS-layout datasets for the learned-simulator tests: particles
falling under gravity and bouncing off the walls of a unit box."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def bouncing_trajectory(n: int, frames: int, dim: int, rng: np.random.Generator,
                        drag: float = 0.05, repulsion: float = 2e-3) -> np.ndarray:
    """``[frames, n, dim]`` positions of particles under gravity, drag and a soft
    pairwise repulsion (radius 0.1), reflected by the walls of ``[0.1, 0.9]^dim``."""
    pos = rng.uniform(0.3, 0.7, size=(n, dim))
    vel = rng.normal(0.0, 0.004, size=(n, dim))
    g = np.zeros(dim)
    g[1] = -0.0002
    out = np.empty((frames, n, dim))
    for t in range(frames):
        out[t] = pos
        diff = pos[:, None] - pos[None]
        dist = np.linalg.norm(diff, axis=-1) + np.eye(n)
        push = np.clip(1.0 - dist / 0.1, 0.0, None) * (1 - np.eye(n))
        acc = g - drag * vel + repulsion * (push[..., None] * diff / dist[..., None]).sum(1)
        vel = vel + acc
        pos = pos + vel
        low, high = pos < 0.1, pos > 0.9
        pos = np.where(low, 0.2 - pos, np.where(high, 1.8 - pos, pos))
        vel = np.where(low | high, -0.8 * vel, vel)
    return out.astype(np.float32)


def write_toy_dataset(root: Path, dim: int = 2, n: int = 48, frames: int = 16,
                      n_train: int = 3, n_test: int = 1, ptype: int = 5, seed: int = 0,
                      material: str = "toy", drag: float = 0.05, repulsion: float = 2e-3) -> Path:
    """Write ``metadata.json``, ``train.npz``, ``valid.npz``, ``test.npz`` under ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits = {"train": n_train, "valid": n_test, "test": n_test}
    all_pos = []
    for name, count in splits.items():
        arrays = {}
        for i in range(count):
            p = bouncing_trajectory(n, frames, dim, rng, drag, repulsion)
            arrays[f"positions_{i}"] = p
            arrays[f"particle_type_{i}"] = np.full(n, ptype, dtype=np.int64)
            all_pos.append(p)
        np.savez(root / f"{name}.npz", **arrays)
    vel = np.concatenate([np.diff(p, axis=0).reshape(-1, dim) for p in all_pos])
    acc = np.concatenate([np.diff(p, n=2, axis=0).reshape(-1, dim) for p in all_pos])
    meta = {"dim": dim, "dt": 0.01, "bounds": [[0.1, 0.9]] * dim, "sequence_length": frames - 1,
            "default_connectivity_radius": 0.1, "material": material,
            "vel_mean": vel.mean(0).tolist(), "vel_std": vel.std(0).tolist(),
            "acc_mean": acc.mean(0).tolist(), "acc_std": acc.std(0).tolist()}
    (root / "metadata.json").write_text(json.dumps(meta))
    return root
