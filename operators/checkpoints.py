"""Checkpoints of the learned simulators: save, load, validate, rebuild, bundled."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from splat.io.atomic import atomic_path
from splatops_assets import asset_path

from operators.features import Normalization
from operators.giorom import DenseQuery, GIOROMConfig, GIOROMNet
from operators.gns import GNS, GNSConfig
from operators.simulator import LearnedSimulator

FORMAT = "splatops-learned-simulator"
VERSION = 1
MODELS = ("gns", "giorom")
BUNDLED_DIR = asset_path("checkpoints")
_REQUIRED = ("format", "version", "model", "model_config", "metadata", "stats", "state_dict", "step")


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint.

    Attributes:
        model: ``"gns"`` or ``"giorom"``.
        model_config: fields of :class:`GNSConfig` or :class:`GIOROMConfig`.
        metadata: dataset facts: ``dim``, ``dt``, ``bounds``,
            ``default_connectivity_radius``, ``particle_types``, ``material``.
        stats: normalisation statistics (noise-corrected).
        state_dict: weights of the simulator (and ``query.*`` for GIOROM).
        step: optimisation steps done.
        optimizer: optimizer state, or None.
        train_config: training settings.
        history: ``[step, loss]`` pairs logged during training.
        path: file it was read from.
    """

    model: str
    model_config: dict
    metadata: dict
    stats: dict
    state_dict: dict
    step: int
    optimizer: dict | None = None
    train_config: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    path: Path | None = None

    @property
    def dim(self) -> int:
        return int(self.metadata["dim"])

    def to_payload(self) -> dict:
        d = asdict(self)
        d.pop("path")
        d.update(format=FORMAT, version=VERSION)
        return d


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write ``ckpt`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt.to_payload(), tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a splatops simulator checkpoint, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or not a torch file
        raise ValueError(f"checkpoint {path} could not be read: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a {FORMAT} checkpoint")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint {path} is missing {missing}")
    if payload["version"] != VERSION:
        raise ValueError(f"checkpoint {path} has version {payload['version']}, expected {VERSION}")
    if payload["model"] not in MODELS:
        raise ValueError(f"checkpoint {path} has model {payload['model']!r}, expected one of {MODELS}")
    meta = payload["metadata"]
    for key in ("dim", "bounds", "default_connectivity_radius", "particle_types"):
        if key not in meta:
            raise ValueError(f"checkpoint {path} metadata is missing {key!r}")
    payload.pop("format"), payload.pop("version")
    return Checkpoint(path=path, **payload)


def check_compatible(ckpt: Checkpoint, metadata: dict, particle_types) -> None:
    """Raise ``ValueError`` if data of ``metadata`` cannot be simulated by ``ckpt``.

    Args:
        ckpt: loaded checkpoint.
        metadata: the dataset's metadata (``dim`` and optionally ``material``).
        particle_types: particle types present in the data.
    """
    dim = int(metadata.get("dim", -1))
    if dim != ckpt.dim:
        raise ValueError(f"checkpoint was trained on {ckpt.dim}-D data but the data is {dim}-D")
    known = set(int(t) for t in ckpt.metadata["particle_types"])
    types = set(int(t) for t in particle_types)
    if not types <= known:
        raise ValueError(f"checkpoint knows particle types {sorted(known)} but the data has "
                         f"{sorted(types)} (another material set)")
    mat_ckpt, mat_data = ckpt.metadata.get("material"), metadata.get("material")
    if mat_ckpt is not None and mat_data is not None and mat_ckpt != mat_data:
        raise ValueError(f"checkpoint was trained on material {mat_ckpt!r} but the data is {mat_data!r}")


def build_models(model: str, model_config: dict, metadata: dict,
                 stats: Normalization) -> tuple[LearnedSimulator, DenseQuery | None]:
    """Fresh simulator (and GIOROM's dense query) for a model name and config."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    dim = int(metadata["dim"])
    bounds = torch.as_tensor(metadata["bounds"], dtype=torch.float32)
    r = float(metadata["default_connectivity_radius"])
    node_in = LearnedSimulator.num_node_features(dim)
    edge_in = dim + 1
    ext = metadata.get("external_acceleration")
    if model == "gns":
        gcfg = GNSConfig(**model_config)
        net: nn.Module = GNS(node_in, edge_in, dim, gcfg)
        return LearnedSimulator(net, dim, r, bounds, stats, external_acceleration=ext,
                                **gcfg.simulator_kwargs()), None
    cfg = GIOROMConfig(**model_config)
    r_sparse = cfg.sparse_radius(r, dim)
    net = GIOROMNet(node_in, edge_in, dim, bounds, cfg)
    sim = LearnedSimulator(net, dim, r_sparse, bounds, stats, external_acceleration=ext,
                           **cfg.sparse_simulator_kwargs(dim))
    query = DenseQuery(dim, k=cfg.query_k, hidden=cfg.query_hidden, scale=0.5 * r_sparse, affine=cfg.query_affine)
    return sim, query


def models_from_checkpoint(ckpt: Checkpoint) -> tuple[LearnedSimulator, DenseQuery | None]:
    """Rebuild the networks of ``ckpt`` and load its weights (eval mode)."""
    stats = Normalization(**{k: torch.tensor(v, dtype=torch.float32) for k, v in ckpt.stats.items()})
    sim, query = build_models(ckpt.model, ckpt.model_config, ckpt.metadata, stats)
    sim_state = {k[len("simulator."):]: v for k, v in ckpt.state_dict.items() if k.startswith("simulator.")}
    sim.load_state_dict(sim_state)
    if query is not None:
        query.load_state_dict({k[len("query."):]: v for k, v in ckpt.state_dict.items()
                               if k.startswith("query.")})
        query.eval()
    sim.eval()
    return sim, query


def bundled_checkpoint(material: str, dim: int, model: str = "giorom") -> Path:
    """Path of a checkpoint shipped in ``assets/checkpoints``.

    Args:
        material: e.g. ``"water"`` or ``"sand"``.
        dim: 2 or 3.
        model: ``"giorom"`` or ``"gns"``.

    Raises:
        ValueError: no bundled checkpoint for that combination (lists what exists).
    """
    if not isinstance(material, str):
        raise TypeError(f"material must be a str, got {type(material).__name__}")
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    path = BUNDLED_DIR / f"{model}_{material}_{dim}d.pt"
    if not path.is_file():
        have = sorted(p.stem for p in BUNDLED_DIR.glob("*.pt")) if BUNDLED_DIR.is_dir() else []
        raise ValueError(f"no bundled {model} checkpoint for material={material!r}, dim={dim}; "
                         f"available: {have}")
    return path
