"""Initial conditions for the MPM simulator: particles filling boxes in the unit box.

A scene is a function ``(dim, n_particles, seed, randomize, wall) -> SceneInit``.
Particles are drawn from a scrambled Sobol sequence inside each body, so the
fill is even (no clumps) and reproducible from the seed. With
``randomize=True`` the geometry and initial velocities are jittered from the
seed (used to make varied training trajectories); with ``False`` the scene is
the canonical one.

Scenes:
    ``dam_break``: a square water column of width ``a`` in the lower-left corner.
    ``falling_blocks``: one to three blocks dropped from different heights.
    ``colliding_blocks``: two blocks thrown at each other above the floor.
    ``column_collapse``: a granular column against the left wall (aspect ratio ~1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass
class SceneInit:
    """Initial particle state of a scene.

    Attributes:
        positions: particle positions in the unit box,  # [N, d]
        velocities: initial velocities in m/s,  # [N, d]
        particle_volume: rest volume of one particle.
        spacing: mean particle spacing ``particle_volume ** (1/d)``.
        info: scene parameters (JSON-friendly), e.g. the column width.
    """

    positions: Tensor
    velocities: Tensor
    particle_volume: float
    spacing: float
    info: dict = field(default_factory=dict)


def _fill_boxes(boxes: list[tuple[np.ndarray, np.ndarray]], velocities: list[np.ndarray],
                n_particles: int, seed: int) -> SceneInit:
    """Fill axis-aligned boxes ``(lo, hi)`` with ``n_particles`` split by volume."""
    dim = len(boxes[0][0])
    volumes = np.array([float(np.prod(hi - lo)) for lo, hi in boxes])
    counts = np.floor(n_particles * volumes / volumes.sum()).astype(int)
    counts[np.argmax(volumes)] += n_particles - counts.sum()
    pos, vel = [], []
    for i, ((lo, hi), v, c) in enumerate(zip(boxes, velocities, counts)):
        if c == 0:
            continue
        sobol = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed * 7919 + i)
        u = sobol.draw(int(c), dtype=torch.float64)
        pos.append(torch.from_numpy(lo) + u * torch.from_numpy(hi - lo))
        vel.append(torch.from_numpy(np.asarray(v, dtype=np.float64)).expand(int(c), dim))
    positions = torch.cat(pos).float()
    volume = float(volumes.sum()) / n_particles
    return SceneInit(positions, torch.cat(vel).float(), volume, volume ** (1.0 / dim))


def _zeros(dim: int) -> np.ndarray:
    return np.zeros(dim)


def dam_break(dim: int, n_particles: int, seed: int = 0, randomize: bool = False,
              wall: float = 0.05, width: float = 0.3, height: float | None = None) -> SceneInit:
    """Column of ``width`` x ``height`` (square by default) in the corner at the walls."""
    rng = np.random.default_rng(seed)
    a = width if not randomize else rng.uniform(0.2, 0.35)
    h = (height or a) if not randomize else a * rng.uniform(0.8, 1.6)
    lo = np.full(dim, wall)
    hi = lo.copy()
    hi[0] += a
    hi[1] += h
    for k in range(2, dim):
        hi[k] = 1.0 - wall if not randomize else wall + rng.uniform(0.4, 0.9) * (1 - 2 * wall)
    init = _fill_boxes([(lo, hi)], [_zeros(dim)], n_particles, seed)
    init.info = {"width": a, "height": h, "origin": lo.tolist()}
    return init


def falling_blocks(dim: int, n_particles: int, seed: int = 0, randomize: bool = False,
                   wall: float = 0.05) -> SceneInit:
    """One block (canonical) or one to three stacked, non-overlapping blocks (randomised)."""
    rng = np.random.default_rng(seed)
    n_blocks = 1 if not randomize else int(rng.integers(1, 4))
    boxes, vels = [], []
    span = 1.0 - 2 * wall
    for b in range(n_blocks):
        size = np.full(dim, 0.25) if not randomize else rng.uniform(0.12, 0.2, dim)
        lo = np.empty(dim)
        for k in range(dim):
            lo[k] = 0.5 - size[k] / 2 if not randomize else wall + rng.uniform(0, span - size[k])
        # one vertical slot per block, so blocks never overlap
        lo[1] = 0.45 if not randomize else wall + 0.25 + 0.23 * b
        hi = lo + size
        hi[1] = min(hi[1], 1.0 - wall - 0.02)
        v = _zeros(dim) if not randomize else np.concatenate(
            [rng.uniform(-1, 1, 1), [rng.uniform(-1.5, 0)], rng.uniform(-1, 1, dim - 2)])
        boxes.append((lo, hi))
        vels.append(v)
    init = _fill_boxes(boxes, vels, n_particles, seed)
    init.info = {"blocks": [[lo.tolist(), hi.tolist()] for lo, hi in boxes]}
    return init


def colliding_blocks(dim: int, n_particles: int, seed: int = 0, randomize: bool = False,
                     wall: float = 0.05) -> SceneInit:
    """Two blocks moving towards each other, the right one slightly higher."""
    rng = np.random.default_rng(seed)
    size = 0.2 if not randomize else rng.uniform(0.14, 0.24)
    speed = 2.0 if not randomize else rng.uniform(1.0, 3.0)
    y0 = 0.3 if not randomize else rng.uniform(0.2, 0.45)
    dy = 0.08 if not randomize else rng.uniform(-0.1, 0.1)
    mid = np.full(dim, 0.5)
    lo1, lo2 = mid - size / 2, mid - size / 2
    lo1[0], lo2[0] = 0.15, 0.85 - size
    lo1[1], lo2[1] = y0, y0 + dy
    boxes = [(lo1, lo1 + size), (lo2, lo2 + size)]
    v1, v2 = _zeros(dim), _zeros(dim)
    v1[0], v2[0] = speed, -speed
    init = _fill_boxes(boxes, [v1, v2], n_particles, seed)
    init.info = {"size": size, "speed": speed}
    return init


def column_collapse(dim: int, n_particles: int, seed: int = 0, randomize: bool = False,
                    wall: float = 0.05, width: float = 0.2, aspect: float = 1.0) -> SceneInit:
    """Granular column of ``width`` and height ``aspect * width`` against the left wall."""
    rng = np.random.default_rng(seed)
    width = width if not randomize else rng.uniform(0.15, 0.25)
    aspect = aspect if not randomize else rng.uniform(0.5, 2.0)
    height = min(width * aspect, 0.8)
    lo = np.full(dim, wall)
    hi = lo.copy()
    hi[0] += width
    hi[1] += height
    for k in range(2, dim):
        lo[k], hi[k] = 0.5 - 0.1, 0.5 + 0.1
    init = _fill_boxes([(lo, hi)], [_zeros(dim)], n_particles, seed)
    init.info = {"width": width, "height": height, "aspect": height / width,
                 "origin": lo.tolist()}
    return init


SCENES = {
    "dam_break": dam_break,
    "falling_blocks": falling_blocks,
    "colliding_blocks": colliding_blocks,
    "column_collapse": column_collapse,
}


def make_scene(scene: str, dim: int, n_particles: int, seed: int = 0,
               randomize: bool = False, wall: float = 0.05, **params) -> SceneInit:
    """Build a scene by name.

    Args:
        scene: one of :data:`SCENES`.
        dim: 2 or 3.
        n_particles: number of particles (> 0).
        seed: seed of the particle sampling (and of the geometry if ``randomize``).
        randomize: jitter geometry and velocities from the seed.
        wall: position of the box walls from each face.
        **params: scene-specific geometry, e.g. ``width``/``height`` of
            ``dam_break``, ``width``/``aspect`` of ``column_collapse``.

    Raises:
        ValueError: unknown scene, bad ``dim`` or ``n_particles``.
    """
    if not isinstance(scene, str):
        raise TypeError(f"scene must be a string, got {type(scene).__name__}")
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; choose one of {sorted(SCENES)}")
    if dim not in (2, 3) or isinstance(dim, bool):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    if not isinstance(n_particles, int) or isinstance(n_particles, bool) or n_particles <= 0:
        raise ValueError(f"n_particles must be a positive int, got {n_particles!r}")
    if not 0 < wall < 0.25 or not math.isfinite(wall):
        raise ValueError(f"wall must be in (0, 0.25), got {wall}")
    return SCENES[scene](dim, n_particles, seed=int(seed), randomize=randomize, wall=wall, **params)
