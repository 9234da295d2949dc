"""Lagrangian trajectory datasets in the layout of the GNS datasets.

The layout follows DeepMind's ``learning_to_simulate`` datasets as converted to
NumPy by the common PyTorch ports::

    DIR/metadata.json   dim, dt, bounds, sequence_length, default_connectivity_radius,
                        vel_mean, vel_std, acc_mean, acc_std (+ material, scene,
                        particle_count, seed, generator, material_params)
    DIR/train.npz       positions_<i> [T, N, d] float32, particle_type_<i> [N] int64
    DIR/valid.npz       same
    DIR/test.npz        same

``T = sequence_length + 1`` (the initial frame plus ``sequence_length``
steps). Velocity and acceleration statistics are those of the finite
differences of positions per frame (``x[t] - x[t-1]``, no division by ``dt``),
over the training split, as in ``learning_to_simulate``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from splat.io.atomic import atomic_dir, atomic_path, write_json_atomic

SPLITS = ("train", "valid", "test")
REQUIRED_KEYS = ("dim", "dt", "bounds", "sequence_length", "default_connectivity_radius",
                 "vel_mean", "vel_std", "acc_mean", "acc_std")


@dataclass
class TrajectoryRecord:
    """One trajectory of a dataset split.

    Attributes:
        positions: particle positions per frame,  # [T, N, d] float32
        particle_type: type id of every particle,  # [N] int64
    """

    positions: Tensor
    particle_type: Tensor


@dataclass
class LagrangianDataset:
    """A loaded dataset folder.

    Attributes:
        path: the folder.
        metadata: the parsed ``metadata.json``.
        train: training trajectories.
        valid: validation trajectories.
        test: test trajectories.
    """

    path: Path
    metadata: dict
    train: list[TrajectoryRecord] = field(default_factory=list)
    valid: list[TrajectoryRecord] = field(default_factory=list)
    test: list[TrajectoryRecord] = field(default_factory=list)

    def split(self, name: str) -> list[TrajectoryRecord]:
        """Trajectories of split ``name`` (``"train"``, ``"valid"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {name!r}")
        return getattr(self, name)

    @property
    def dim(self) -> int:
        return int(self.metadata["dim"])

    @property
    def dt(self) -> float:
        return float(self.metadata["dt"])


def _as_numpy_positions(name: str, positions) -> np.ndarray:
    if isinstance(positions, Tensor):
        positions = positions.detach().cpu().numpy()
    arr = np.asarray(positions)
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise ValueError(f"{name} must be [T, N, 2|3], got shape {arr.shape}")
    if arr.shape[0] < 3:
        raise ValueError(f"{name} needs at least 3 frames for accelerations, got {arr.shape[0]}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has zero particles")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _as_numpy_types(name: str, types, n: int) -> np.ndarray:
    arr = types.detach().cpu().numpy() if isinstance(types, Tensor) else np.asarray(types)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be [{n}], got shape {arr.shape}")
    return arr.astype(np.int64)


def finite_difference_stats(trajectories: list[np.ndarray]) -> dict:
    """Mean and std per axis of velocities ``x[t]-x[t-1]`` and accelerations.

    Args:
        trajectories: position arrays ``[T, N, d]``.

    Returns:
        ``{"vel_mean", "vel_std", "acc_mean", "acc_std"}``, each a list of ``d`` floats.
    """
    if not trajectories:
        raise ValueError("trajectories must hold at least one trajectory")
    d = trajectories[0].shape[-1]
    vel = np.concatenate([np.diff(p.astype(np.float64), axis=0).reshape(-1, d)
                          for p in trajectories])
    acc = np.concatenate([np.diff(p.astype(np.float64), n=2, axis=0).reshape(-1, d)
                          for p in trajectories])
    return {"vel_mean": vel.mean(0).tolist(), "vel_std": vel.std(0).tolist(),
            "acc_mean": acc.mean(0).tolist(), "acc_std": acc.std(0).tolist()}


def _median_neighbour_distance(points: np.ndarray) -> float:
    """Median distance from each point to its nearest neighbour (``points`` [N, d])."""
    from scipy.spatial import cKDTree

    if points.shape[0] < 2:
        return 0.01
    dist, _ = cKDTree(points.astype(np.float64)).query(points.astype(np.float64), k=2)
    return float(np.median(dist[:, 1]))


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes an ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_dataset(out_dir: str | os.PathLike, splits: dict[str, list], dt: float,
                  bounds: list, connectivity_radius: float | None = None,
                  extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write a dataset folder atomically.

    Everything is written into a temporary sibling folder which is renamed to
    ``out_dir`` at the end, so an interrupted write leaves no partial dataset.

    Args:
        out_dir: destination folder (must not exist unless ``overwrite``).
        splits: ``{"train": [...], "valid": [...], "test": [...]}``, each a list
            of ``(positions [T, N, d], particle_type [N])`` pairs, a
            :class:`TrajectoryRecord` or a ``Trajectory`` (anything with
            ``positions`` and ``particle_type``). All three splits need at
            least one trajectory; all trajectories share ``T`` and ``d``.
        dt: seconds between frames.
        bounds: ``[[lo, hi]] * d``.
        connectivity_radius: default graph radius; ``None`` uses 3x the median
            nearest-neighbour distance in the first frame of the first
            training trajectory.
        extra: more metadata keys (material, scene, seed, ...).
        overwrite: replace an existing ``out_dir``.

    Returns:
        The dataset folder.
    """
    out = Path(out_dir)
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        got = sorted(splits) if isinstance(splits, dict) else type(splits).__name__
        raise ValueError(f"splits must be a dict with keys {list(SPLITS)}, got {got}")
    if not (isinstance(dt, (int, float)) and dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True to replace it)")
    arrays: dict[str, dict[str, np.ndarray]] = {}
    shape = None
    for split in SPLITS:
        items = splits[split]
        if not items:
            raise ValueError(f"split {split!r} has no trajectories")
        arrays[split] = {}
        for i, item in enumerate(items):
            if isinstance(item, (tuple, list)) and len(item) == 2:
                pos, types = item
            elif hasattr(item, "positions") and hasattr(item, "particle_type"):
                pos, types = item.positions, item.particle_type
            else:
                raise TypeError(f"{split}[{i}] must be (positions, particle_type) or have those "
                                f"attributes, got {type(item).__name__}")
            p = _as_numpy_positions(f"{split}[{i}].positions", pos)
            if shape is None:
                shape = (p.shape[0], p.shape[2])
            elif (p.shape[0], p.shape[2]) != shape:
                raise ValueError(f"{split}[{i}].positions has T={p.shape[0]}, d={p.shape[2]}; "
                                 f"expected T={shape[0]}, d={shape[1]} like the first trajectory")
            arrays[split][f"positions_{i}"] = p
            arrays[split][f"particle_type_{i}"] = _as_numpy_types(
                f"{split}[{i}].particle_type", types, p.shape[1])
    T, d = shape
    bounds = [[float(lo), float(hi)] for lo, hi in bounds]
    if len(bounds) != d:
        raise ValueError(f"bounds must have {d} [lo, hi] pairs, got {len(bounds)}")
    train = [a for k, a in arrays["train"].items() if k.startswith("positions_")]
    if connectivity_radius is None:
        connectivity_radius = 3.0 * _median_neighbour_distance(train[0][0])
    metadata = {
        "dim": d,
        "dt": float(dt),
        "bounds": bounds,
        "sequence_length": T - 1,
        "default_connectivity_radius": float(connectivity_radius),
        **finite_difference_stats(train),
    }
    metadata.update(extra or {})
    with atomic_dir(out) as tmp:
        for split in SPLITS:
            _save_npz(tmp / f"{split}.npz", arrays[split])
        write_json_atomic(tmp / "metadata.json", metadata)
    return out


def _load_split(path: Path, meta: dict) -> list[TrajectoryRecord]:
    try:
        npz = np.load(path, allow_pickle=False)
        keys = set(npz.files)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    pos_ids = sorted(int(k[len("positions_"):]) for k in keys
                     if k.startswith("positions_") and k[len("positions_"):].isdigit())
    if not pos_ids or pos_ids != list(range(len(pos_ids))):
        npz.close()
        if not pos_ids:
            raise ValueError(f"{path}: no positions_<i> arrays")
        raise ValueError(f"{path}: positions_<i> indices are not 0..{len(pos_ids) - 1}")
    try:
        return _read_records(path, npz, keys, pos_ids, meta)
    finally:
        npz.close()


def _read_records(path: Path, npz, keys: set, pos_ids: list[int],
                  meta: dict) -> list[TrajectoryRecord]:
    d, T = int(meta["dim"]), int(meta["sequence_length"]) + 1
    records = []
    for i in pos_ids:
        if f"particle_type_{i}" not in keys:
            raise ValueError(f"{path}: positions_{i} has no particle_type_{i}")
        p, t = npz[f"positions_{i}"], npz[f"particle_type_{i}"]
        if p.ndim != 3 or p.shape[2] != d:
            raise ValueError(f"{path}: positions_{i} must be [T, N, {d}], got {p.shape}")
        if p.shape[0] != T:
            raise ValueError(f"{path}: positions_{i} has {p.shape[0]} frames, metadata "
                             f"sequence_length {T - 1} implies {T}")
        if p.shape[1] == 0:
            raise ValueError(f"{path}: positions_{i} has zero particles")
        if t.shape != (p.shape[1],):
            raise ValueError(f"{path}: particle_type_{i} must be [{p.shape[1]}], got {t.shape}")
        if not np.isfinite(p).all():
            raise ValueError(f"{path}: positions_{i} contains NaN or Inf")
        records.append(TrajectoryRecord(torch.from_numpy(p.astype(np.float32)),
                                        torch.from_numpy(t.astype(np.int64))))
    return records


def read_metadata(path: str | os.PathLike) -> dict:
    """Reads and checks ``metadata.json`` of a dataset folder.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the file is missing, not JSON, lacks a key of
            :data:`REQUIRED_KEYS`, or holds a bad ``dim``, ``bounds``, radius or statistics.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    meta_path = root / "metadata.json"
    if not meta_path.is_file():
        raise ValueError(f"{meta_path}: missing (not a dataset folder)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: invalid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{meta_path}: missing keys {missing}")
    d = meta["dim"]
    if d not in (2, 3):
        raise ValueError(f"{meta_path}: dim must be 2 or 3, got {d!r}")
    try:
        bounds = np.asarray(meta["bounds"], dtype=float)
    except (TypeError, ValueError):
        bounds = np.zeros(0)
    if bounds.shape != (d, 2) or not np.all(bounds[:, 0] < bounds[:, 1]):
        raise ValueError(f"{meta_path}: bounds must have {d} pairs [lo, hi] with lo < hi, "
                         f"got {meta['bounds']!r}")
    for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
        if len(meta[key]) != d:
            raise ValueError(f"{meta_path}: {key} must have {d} entries, got {len(meta[key])}")
    if not float(meta["default_connectivity_radius"]) > 0:
        raise ValueError(f"{meta_path}: default_connectivity_radius must be positive, "
                         f"got {meta['default_connectivity_radius']!r}")
    return meta


def read_split(path: str | os.PathLike, split: str, metadata: dict | None = None,
               min_frames: int = 1) -> list[TrajectoryRecord]:
    """Reads and checks the trajectories of ``<path>/<split>.npz``.

    Args:
        path: the dataset folder.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        metadata: the folder's :func:`read_metadata` (read when None).
        min_frames: frames each trajectory needs (training and rollouts need a
            window of six past frames and one more).

    Raises:
        ValueError: a missing or unreadable file, naming it and the problem.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    meta = read_metadata(path) if metadata is None else metadata
    f = Path(path) / f"{split}.npz"
    if not f.is_file():
        raise ValueError(f"{f}: missing split file")
    records = _load_split(f, meta)
    frames = records[0].positions.shape[0]
    if frames < min_frames:
        raise ValueError(f"{f}: trajectories have {frames} frames; need at least {min_frames}")
    return records


def load_dataset(path: str | os.PathLike) -> LagrangianDataset:
    """Loads and validates a dataset folder written by :func:`write_dataset`.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: a malformed folder, naming the file and the problem (missing
            files or metadata keys, shapes that disagree, NaN, zero particles).
    """
    meta = read_metadata(path)
    return LagrangianDataset(Path(path), meta, **{s: read_split(path, s, meta) for s in SPLITS})


def _split_counts(n: int) -> tuple[int, int, int]:
    n_held = max(1, round(0.1 * n))
    return n - 2 * n_held, n_held, n_held


def generate_dataset(material: str, scene: str, dim: int, n_trajectories: int,
                     n_particles: int, n_frames: int, seed: int, out_dir: str | os.PathLike,
                     progress: bool = True, resume: bool = False, config=None) -> Path:
    """Simulate several randomised trajectories with MPM and write a dataset folder.

    Trajectory ``i`` uses seed ``seed * 1000 + i`` for its jittered geometry,
    initial velocities and particle sampling; all share one grid resolution
    (from the canonical scene) so that they share the walls in ``bounds``.
    Trajectories are split by trajectory: 10% (at least one) each to valid
    and test, the rest to train.

    Each finished trajectory is kept in the work folder ``.<name>.partial``
    next to ``out_dir``; with ``resume=True`` an interrupted generation
    continues from there. The dataset folder appears atomically at the end and
    the work folder is removed.

    Args:
        material: material name (see :data:`operators.mpm.MATERIALS`).
        scene: scene name (see :data:`operators.scenes.SCENES`).
        dim: 2 or 3.
        n_trajectories: number of trajectories (>= 3).
        n_particles: particles per trajectory.
        n_frames: frames per trajectory after the initial one (>= 2).
        seed: base seed.
        out_dir: dataset folder to create (must not exist).
        progress: show a progress bar over trajectories.
        resume: continue an interrupted generation instead of restarting it.
        config: an :class:`operators.mpm.MPMConfig` (its ``n_grid`` is fixed here).

    Returns:
        The dataset folder.
    """
    import dataclasses

    from operators.mpm import MPMConfig, make_material, simulate
    from operators.scenes import make_scene

    mat = make_material(material)
    make_scene(scene, dim, n_particles)  # validates scene, dim, n_particles
    for name, value, low in (("n_trajectories", n_trajectories, 3), ("n_frames", n_frames, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another output folder")
    config = config or MPMConfig()
    if config.n_grid is None:
        canonical = make_scene(scene, dim, n_particles, seed)
        config = dataclasses.replace(config, n_grid=config.grid_size(canonical.spacing))
    spec = {"material": mat.name, "material_params": mat.params(), "scene": scene, "dim": dim,
            "n_trajectories": n_trajectories, "n_particles": n_particles,
            "n_frames": n_frames, "seed": seed, "n_grid": config.n_grid,
            "frame_dt": config.frame_dt, "cfl": config.cfl, "boundary": config.boundary}
    work = out.parent / f".{out.name}.partial"
    if work.exists() and not resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / "spec.json"
    if spec_path.exists():
        old = json.loads(spec_path.read_text())
        if old != json.loads(json.dumps(spec)):
            raise ValueError(f"{work} holds a generation with different parameters "
                             f"({old}); rerun without resume to start over")
    else:
        write_json_atomic(spec_path, spec)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_trajectories, desc=f"{mat.name}/{scene} trajectories", unit="traj")
    for i in range(n_trajectories):
        f = work / f"traj_{i:05d}.npz"
        if f.exists():
            if bar is not None:
                bar.update(1)
            continue
        traj = simulate(mat, scene, dim=dim, n_particles=n_particles, n_frames=n_frames,
                        seed=seed * 1000 + i, progress=False, config=config, randomize=True)
        _save_npz(f, {"positions": traj.positions.numpy(),
                      "particle_type": traj.particle_type.numpy(),
                      "bounds": np.asarray(traj.bounds, dtype=np.float64),
                      "dt": np.asarray(traj.dt)})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    records = []
    for i in range(n_trajectories):
        with np.load(work / f"traj_{i:05d}.npz") as z:
            records.append((z["positions"], z["particle_type"]))
            bounds, dt = z["bounds"].tolist(), float(z["dt"])
    n_train, n_valid, _ = _split_counts(n_trajectories)
    splits = {"train": records[:n_train], "valid": records[n_train:n_train + n_valid],
              "test": records[n_train + n_valid:]}
    extra = {"material": mat.name, "scene": scene, "particle_count": n_particles,
             "seed": seed, "generator": "splatops MLS-MPM", "material_params": mat.params(),
             "n_grid": config.n_grid, "substep_cfl": config.cfl,
             "split_sizes": {k: len(v) for k, v in splits.items()}}
    write_dataset(out, splits, dt=dt, bounds=bounds, extra=extra)
    shutil.rmtree(work, ignore_errors=True)
    return out
