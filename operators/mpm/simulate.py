"""One call from a material and a scene name to a trajectory of particle positions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from splat.utils.checks import check_int

from operators.mpm.materials import Material, make_material
from operators.mpm.solver import MPMConfig, MPMSolver
from operators.scenes import SCENES, SceneInit, make_scene


@dataclass
class Trajectory:
    """A simulated trajectory.

    Attributes:
        positions: particle positions of every frame, frame 0 the initial
            state,  # [T, N, d] float32 (T = n_frames + 1)
        particle_type: particle type id of each particle,  # [N] int64
        dt: seconds between frames.
        bounds: ``[[lo, hi]] * d`` wall positions.
        material: material name.
        scene: scene name.
        frame_seconds: wall-clock seconds spent on each simulated frame (len T - 1).
        substeps_per_frame: MPM substeps per frame.
        substep_dt: MPM substep in seconds.
        n_grid: grid cells per axis.
        material_params: material parameters (JSON-friendly).
        scene_info: scene geometry (JSON-friendly).
    """

    positions: Tensor
    particle_type: Tensor
    dt: float
    bounds: list
    material: str
    scene: str
    frame_seconds: list = field(default_factory=list)
    substeps_per_frame: int = 1
    substep_dt: float = 0.0
    n_grid: int = 0
    material_params: dict = field(default_factory=dict)
    scene_info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0] - 1

    @property
    def n_particles(self) -> int:
        return self.positions.shape[1]


def build_solver(material: str | Material, scene: str | SceneInit, dim: int = 2,
                 n_particles: int = 3000, seed: int = 0, randomize: bool = False,
                 config: MPMConfig | None = None, walls: bool = True,
                 scene_params: dict | None = None) -> tuple[MPMSolver, SceneInit]:
    """Set up a solver for a material in a scene (the first half of :func:`simulate`).

    The grid resolution follows from the particle spacing, the walls from the
    grid; the scene is then laid out against those walls.
    """
    mat = make_material(material)
    config = config or MPMConfig()
    if not isinstance(config, MPMConfig):
        raise TypeError(f"config must be an MPMConfig, got {type(config).__name__}")
    if isinstance(scene, SceneInit):
        init = scene
        if init.positions.ndim != 2 or init.positions.shape[1] not in (2, 3):
            raise ValueError(f"scene positions must be [N, 2|3], got {tuple(init.positions.shape)}")
        if init.positions.shape[0] == 0:
            raise ValueError("scene has zero particles")
        n_grid = config.grid_size(init.spacing)
    else:
        if not isinstance(scene, str):
            raise TypeError(f"scene must be a name or a SceneInit, got {type(scene).__name__}")
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {sorted(SCENES)}")
        if isinstance(dim, bool) or dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        check_int("n_particles", n_particles, minimum=1)
        params = scene_params or {}
        probe = make_scene(scene, dim, n_particles, seed, randomize, **params)
        n_grid = config.grid_size(probe.spacing)
        wall, _ = config.wall_bounds(n_grid)
        init = make_scene(scene, dim, n_particles, seed, randomize, wall=wall, **params)
    for name, t in (("positions", init.positions), ("velocities", init.velocities)):
        if not torch.isfinite(t).all():
            raise ValueError(f"initial {name} contain NaN or Inf")
    solver = MPMSolver(mat, init.positions, init.velocities, init.particle_volume, n_grid,
                       config, walls=walls)
    return solver, init


def simulate(material: str | Material, scene: str | SceneInit, dim: int = 2,
             n_particles: int = 3000, n_frames: int = 100, seed: int = 0,
             progress: bool | None = None, config: MPMConfig | None = None,
             randomize: bool = False, scene_params: dict | None = None) -> Trajectory:
    """Simulate a material in a scene with MLS-MPM and return the frames.

    Args:
        material: ``"water"``, ``"non_newtonian"``, ``"jelly"``, ``"sand"``,
            ``"plasticine"``, or a :class:`Material` instance.
        scene: ``"dam_break"``, ``"falling_blocks"``, ``"colliding_blocks"``,
            ``"column_collapse"``, or a :class:`~operators.scenes.SceneInit`.
        dim: 2 or 3.
        n_particles: number of particles.
        n_frames: frames to simulate after the initial one.
        seed: seed of the particle sampling (and geometry when ``randomize``).
        progress: show a tqdm bar (``None``: only for runs of more than ~5 s).
        config: numerical settings (:class:`MPMConfig`).
        randomize: jitter the scene geometry and velocities from ``seed``.
        scene_params: scene geometry keywords (see :func:`operators.scenes.make_scene`).

    Returns:
        A :class:`Trajectory` with ``n_frames + 1`` frames.

    Raises:
        ValueError: unknown material or scene (the choices are listed), ``dim``
            not 2 or 3, ``n_particles`` or ``n_frames`` < 1, or a state that
            became NaN (the message says at which frame).

    >>> traj = simulate("water", "dam_break", dim=2, n_particles=500, n_frames=3)
    >>> tuple(traj.positions.shape)
    (4, 500, 2)
    """
    check_int("n_frames", n_frames, minimum=1)
    solver, init = build_solver(material, scene, dim, n_particles, seed, randomize, config,
                                scene_params=scene_params)
    cfg = solver.config
    substeps = solver.fit_substeps(cfg.frame_dt)
    frames = [solver.x.float().cpu().clone()]
    seconds = []
    bar = None
    work = solver.n_particles * substeps * n_frames * (3 ** solver.dim)
    if progress or (progress is None and work > 2e8):
        from tqdm.auto import tqdm
        bar = tqdm(total=n_frames, desc=f"mpm {solver.material.name}", unit="frame")
    with torch.no_grad(), cfg.threads():
        for f in range(n_frames):
            t0 = time.perf_counter()
            try:
                for _ in range(substeps):
                    solver.substep()
            except (RuntimeError, IndexError) as exc:  # NaN positions index outside the grid
                if solver.is_finite():
                    raise
                raise ValueError(f"MPM state became NaN/Inf at frame {f + 1}; "
                                 "lower MPMConfig.cfl") from exc
            if not solver.is_finite():
                raise ValueError(f"MPM state became NaN/Inf at frame {f + 1}; lower MPMConfig.cfl")
            frames.append(solver.x.float().cpu().clone())
            seconds.append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    lo, hi = cfg.wall_bounds(solver.n_grid)
    n = solver.n_particles
    return Trajectory(
        positions=torch.stack(frames),
        particle_type=torch.full((n,), solver.material.particle_type, dtype=torch.int64),
        dt=cfg.frame_dt,
        bounds=[[lo, hi] for _ in range(solver.dim)],
        material=solver.material.name,
        scene=scene if isinstance(scene, str) else "custom",
        frame_seconds=seconds,
        substeps_per_frame=substeps,
        substep_dt=solver.dt,
        n_grid=solver.n_grid,
        material_params=solver.material.params(),
        scene_info=dict(init.info),
    )
