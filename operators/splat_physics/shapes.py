"""Solid shapes filled with particles, and 3-D MPM datasets of many shapes.

The learned simulators that preview splat physics must generalise over the
objects a user brings: different shapes, sizes, orientations and initial
velocities. :func:`shape_scene` fills one shape (signed distance function,
scrambled Sobol candidates kept inside) at a fixed particle spacing, so the
particle count follows the volume; :func:`generate_shape_dataset` simulates
randomised drops of several shapes with MPM and writes a GNS-layout dataset
whose test split holds shapes never seen in training.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from operators.scenes import SceneInit

#: Default particle spacing (unit box) of the shape datasets and of splat fills.
DEFAULT_SPACING = 0.02
#: Default particle spacing of a splat object's fill for MPM: twice as fine as the training data, so
#: MPM resolves the object with 8x its particles while the GIOROM preview keeps stepping at its
#: trained density (``operators.splat_physics.simulate.default_step_spacing``).
SPLAT_FILL_SPACING = 0.01
#: Effective walls (every axis) of a shape dataset filled at ``DEFAULT_SPACING`` (its MPM grid has
#: ``1 / (2 * spacing)`` cells), where the bundled checkpoints were trained; splat objects are
#: simulated between them at any fill spacing.
BOX_WALLS = (0.08, 0.92)
#: Shapes seen in training, and shapes held out for evaluation.
TRAIN_SHAPES = ("box", "sphere", "ellipsoid", "cylinder")
HELD_OUT_SHAPES = ("torus", "capsule")
#: A more varied training set (none of them held out): the training shapes plus a cone, an
#: octahedron, a flat disc and a bar.
VARIED_TRAIN_SHAPES = TRAIN_SHAPES + ("cone", "octahedron", "disc", "rod")


def _sdf(shape: str, p: np.ndarray) -> np.ndarray:
    """Signed distance-like value (< 0 inside) of a unit-size shape centred at 0, p [N, 3]."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if shape == "box":
        return np.abs(p).max(axis=1) - 0.5
    if shape == "sphere":
        return np.linalg.norm(p, axis=1) - 0.5
    if shape == "ellipsoid":
        return np.sqrt((x / 0.5) ** 2 + (y / 0.3) ** 2 + (z / 0.4) ** 2) - 1.0
    if shape == "cylinder":
        return np.maximum(np.hypot(x, z) - 0.35, np.abs(y) - 0.5)
    if shape == "cone":  # apex up, base radius 0.5
        return np.maximum(np.hypot(x, z) - 0.5 * (0.5 - y), np.abs(y) - 0.5)
    if shape == "octahedron":
        return np.abs(p).sum(axis=1) - 0.5
    if shape == "disc":
        return np.maximum(np.hypot(x, z) - 0.5, np.abs(y) - 0.2)
    if shape == "rod":
        return np.maximum(np.abs(x) - 0.5, np.maximum(np.abs(y), np.abs(z)) - 0.2)
    if shape == "torus":
        return np.hypot(np.hypot(x, z) - 0.33, y) - 0.17
    if shape == "capsule":
        yc = np.clip(y, -0.25, 0.25)
        return np.sqrt(x ** 2 + (y - yc) ** 2 + z ** 2) - 0.25
    raise ValueError(f"unknown shape {shape!r}; choose one of {sorted(VARIED_TRAIN_SHAPES + HELD_OUT_SHAPES)}")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def shape_scene(shape: str, size: float, spacing: float = DEFAULT_SPACING,
                rotation: np.ndarray | None = None, bottom: float = 0.3,
                velocity=(0.0, 0.0, 0.0), seed: int = 0, wall: float = 0.05,
                spin=(0.0, 0.0, 0.0)) -> SceneInit:
    """Fill one shape with particles at ``spacing`` and place it in the unit box.

    Args:
        shape: one of :data:`TRAIN_SHAPES` or :data:`HELD_OUT_SHAPES`.
        size: edge of the shape's unit bounding cube in box units.
        spacing: mean particle spacing (particle volume ``spacing**3``).
        rotation: ``[3, 3]`` rotation applied about the centre (None: identity).
        bottom: height of the lowest particle above the floor wall.
        velocity: initial velocity ``[3]`` in m/s (all particles).
        seed: seed of the Sobol scrambling.
        wall: wall position (particles are kept clear of it).
        spin: initial angular velocity ``[3]`` in rad/s about the particles' centroid.

    Returns:
        SceneInit with ``info`` holding the shape parameters.
    """
    if not 0 < size < 1 - 2 * wall:
        raise ValueError(f"size must be in (0, {1 - 2 * wall:g}), got {size}")
    if not 0 < spacing < size:
        raise ValueError(f"spacing must be in (0, size), got {spacing}")
    n_candidates = int(math.ceil((size / spacing) ** 3))
    sobol = torch.quasirandom.SobolEngine(3, scramble=True, seed=seed)
    u = sobol.draw(n_candidates, dtype=torch.float64).numpy() - 0.5
    inside = u[_sdf(shape, u) < 0]
    if inside.shape[0] == 0:
        raise ValueError(f"shape {shape!r} at size {size} holds no particle at spacing {spacing}")
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    pts = inside @ rot.T * size
    pts[:, 0] += 0.5 - 0.5 * (pts[:, 0].max() + pts[:, 0].min())
    pts[:, 2] += 0.5 - 0.5 * (pts[:, 2].max() + pts[:, 2].min())
    pts[:, 1] += wall + bottom - pts[:, 1].min()
    if pts.max() > 1 - wall or pts.min() < wall:
        raise ValueError(f"shape {shape!r} of size {size} at bottom {bottom} leaves the box")
    omega = np.asarray(spin, dtype=np.float64)
    if omega.shape != (3,) or not np.isfinite(omega).all():
        raise ValueError(f"spin must be 3 finite numbers (rad/s), got {spin!r}")
    vel = np.asarray(velocity, dtype=np.float64) + np.cross(omega, pts - pts.mean(axis=0))
    vol = spacing ** 3
    info = {"shape": shape, "size": float(size), "bottom": float(bottom),
            "velocity": [float(v) for v in np.asarray(velocity)], "rotation": rot.tolist(),
            "spin": omega.tolist()}
    return SceneInit(torch.from_numpy(pts).float(), torch.from_numpy(vel.copy()).float(), vol,
                     spacing, info)


def random_shape_scene(shape: str, seed: int, spacing: float = DEFAULT_SPACING,
                       size_range=(0.15, 0.28), max_spin: float = 0.0) -> SceneInit:
    """A randomised drop of ``shape``: size, orientation, height and velocity from ``seed``;
    with ``max_spin > 0`` also a spin about a random axis, up to ``max_spin`` rad/s (drawn after
    the rest, so the other draws of a seed do not depend on it)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(*size_range)
    velocity = [rng.uniform(-1, 1), rng.uniform(-1.5, 0.5), rng.uniform(-1, 1)]
    rotation, bottom = random_rotation(rng), rng.uniform(0.05, 0.35)
    spin = np.zeros(3)
    if max_spin > 0:
        axis = rng.normal(size=3)
        spin = axis / np.linalg.norm(axis) * rng.uniform(0.0, max_spin)
    return shape_scene(shape, size, spacing, rotation, bottom=bottom, velocity=velocity, seed=seed, spin=spin)


#: seed offset of the test split's drops in :func:`generate_shape_dataset`
TEST_SEED_OFFSET = 900


def held_out_drop(i: int, spacing: float = DEFAULT_SPACING, seed: int = 0,
                  test_shapes=HELD_OUT_SHAPES) -> tuple[str, SceneInit]:
    """The ``i``-th test drop of the shape dataset of ``seed`` (its shape and scene), at any
    particle spacing: the same size, orientation, height and velocity as in the dataset."""
    shape = test_shapes[i % len(test_shapes)]
    return shape, random_shape_scene(shape, seed * 1000 + TEST_SEED_OFFSET + i, spacing)


def gravity_per_frame(config=None, dim: int = 3) -> list[float]:
    """Gravity as a displacement per frame squared in box units (``-g dt^2`` along +y),
    the ``external_acceleration`` of the shape datasets.

    Args:
        config: an :class:`operators.mpm.MPMConfig` (None: the default one).
        dim: 2 or 3.
    """
    from operators.mpm import MPMConfig

    cfg = config or MPMConfig()
    out = [0.0] * dim
    out[1] = -float(cfg.gravity) * float(cfg.frame_dt) ** 2
    return out


def generate_shape_dataset(material: str, out_dir: str | os.PathLike, n_train: int = 12,
                           n_valid: int = 2, n_test: int = 4, n_frames: int = 60,
                           spacing: float = DEFAULT_SPACING, seed: int = 0,
                           train_shapes=TRAIN_SHAPES, test_shapes=HELD_OUT_SHAPES,
                           train_size_range=(0.15, 0.28), train_max_spin: float = 0.0,
                           progress: bool = True) -> Path:
    """Simulate randomised drops of several shapes with MPM into a GNS-layout dataset.

    Train and valid trajectories cycle through ``train_shapes``; the test split
    cycles through ``test_shapes`` (held out). Every trajectory has its own
    size, orientation, drop height and initial velocity; all share one grid
    (``n_grid`` from ``spacing``) and hence the walls in ``bounds``.

    Args:
        material: an MPM material name (``"jelly"``, ``"sand"``, ...).
        out_dir: dataset folder to create (must not exist).
        n_train, n_valid, n_test: trajectories per split (>= 1 each).
        n_frames: frames after the initial one.
        spacing: particle spacing in box units.
        seed: base seed (trajectory ``i`` of a split uses ``seed * 1000 + offset + i``).
        train_shapes, test_shapes: shape names.
        train_size_range, train_max_spin: sizes and largest initial spin (rad/s) of the train and
            valid drops (:func:`random_shape_scene`); the test drops keep the defaults, so the
            held-out split of a seed is the same whatever the training variety.
        progress: show a progress bar.

    Returns:
        The dataset folder.
    """
    from tqdm.auto import tqdm

    from operators.datasets import write_dataset
    from operators.mpm import MPMConfig, simulate

    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out.name} already exists")
    for name, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be an int >= 1, got {n!r}")
    config = MPMConfig(n_grid=int(round(1.0 / (2.0 * spacing))))
    plan = ([("train", train_shapes[i % len(train_shapes)], 0 + i) for i in range(n_train)]
            + [("valid", train_shapes[i % len(train_shapes)], 500 + i) for i in range(n_valid)]
            + [("test", test_shapes[i % len(test_shapes)], TEST_SEED_OFFSET + i) for i in range(n_test)])
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    bounds = None
    for split, shape, offset in tqdm(plan, desc=f"{material} shapes", disable=not progress):
        variety = {} if split == "test" else {"size_range": train_size_range, "max_spin": train_max_spin}
        init = random_shape_scene(shape, seed * 1000 + offset, spacing, **variety)
        traj = simulate(material, init, dim=3, n_frames=n_frames, config=config, progress=False)
        bounds = traj.bounds
        splits[split].append((traj.positions.numpy(), traj.particle_type.numpy()))
    extra = {"material": material, "scene": "shape_drops", "seed": seed, "particle_spacing": spacing,
             "external_acceleration": gravity_per_frame(config),
             "train_shapes": list(train_shapes), "test_shapes": list(test_shapes),
             "train_size_range": [float(v) for v in train_size_range], "train_max_spin": float(train_max_spin),
             "n_grid": config.n_grid, "generator": "operators.splat_physics.shapes"}
    return write_dataset(out, splits, dt=config.frame_dt, bounds=bounds, extra=extra)
