"""A pretrained CGS pressure solver for pore networks, and one solved example.

The bundled model (``assets/checkpoints/cgs_porous.pt``) is trained by
``scripts/make_cgs_checkpoint.py`` on small random networks with
:func:`train_porous_model`; :func:`porous_demo` solves a larger, unseen network
with it beside SciPy's exact solve (the browser app's Graphs tab).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from splat.io.atomic import atomic_path
from splatops_assets import asset_path

from .experiments import GraphExperiment, evaluate_regression, porous_setting
from .model import CGS, CGSConfig
from .tasks.porous import make_pore_network, make_porous_dataset
from .training import predict, train

BUNDLED_PATH = asset_path("checkpoints", "cgs_porous.pt")


def train_porous_model(setting: GraphExperiment | None = None, seed: int = 0) -> tuple[CGS, dict]:
    """Trains a CGS on random small pore networks.

    Returns:
        The model and a summary (settings, train seconds, held-out errors on larger networks).
    """
    s = setting or porous_setting()
    torch.manual_seed(seed)
    model = CGS(s.model)
    result = train(model, make_porous_dataset(s.train_graphs, s.train_sizes, seed=seed), s.train,
                   seed=seed, desc="cgs porous")
    held_out = evaluate_regression(model, make_porous_dataset(s.test_graphs, s.test_sizes,
                                                              seed=seed + 10_000))
    info = {"train_graphs": s.train_graphs, "train_sizes": list(s.train_sizes),
            "test_sizes": list(s.test_sizes), "epochs": s.train.epochs,
            "train_seconds": result.seconds, "held_out": held_out, "seed": seed}
    return model, info


def save_porous_model(model: CGS, info: dict, path: str | os.PathLike) -> Path:
    """Writes the model, its config and summary atomically."""
    path = Path(path)
    payload = {"format": "splatops-cgs", "config": asdict(model.config), "info": info,
               "state_dict": model.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_porous_model(path: str | os.PathLike | None = None) -> tuple[CGS, dict]:
    """Loads a model written by :func:`save_porous_model` (default: the bundled one)."""
    path = Path(path) if path is not None else BUNDLED_PATH
    if not path.is_file():
        raise FileNotFoundError(f"no CGS checkpoint at {path}; run scripts/make_cgs_checkpoint.py")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != "splatops-cgs":
        raise ValueError(f"{path} is not a splatops CGS checkpoint")
    config = CGSConfig(**payload["config"])
    model = CGS(config)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["info"]


def porous_demo(num_pores: int = 300, seed: int = 0, checkpoint: str | os.PathLike | None = None) -> dict:
    """Solves one random pore network with the pretrained CGS and with SciPy.

    Args:
        num_pores: pores in the network (>= 10).
        seed: seed of the network.
        checkpoint: a CGS checkpoint (default: the bundled one).

    Returns:
        dict with ``positions [N, 3]``, ``edges [2, M]`` (undirected, once each),
        ``predicted [N]``, ``exact [N]``, ``mae``, ``iterations``, ``solve_seconds``,
        ``train_seconds`` and ``train_sizes`` of the model.
    """
    model, info = load_porous_model(checkpoint)
    data = make_pore_network(num_pores, seed=seed + 1_000_000)
    start = time.perf_counter()
    pred, iterations = predict(model, data)
    seconds = time.perf_counter() - start
    predicted = pred.view(-1).double().numpy()
    exact = data.y.view(-1).double().numpy()
    ei = data.edge_index.numpy()
    once = ei[:, ei[0] < ei[1]]
    return {"positions": data.pos.numpy(), "edges": once, "predicted": predicted, "exact": exact,
            "mae": float(np.abs(predicted - exact).mean()), "iterations": iterations,
            "solve_seconds": seconds, "train_seconds": info["train_seconds"],
            "train_sizes": tuple(info["train_sizes"])}
