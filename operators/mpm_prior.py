"""A reduced-order MPM prior: the material's own solver on the point set that is stepped.

The contact priors (:mod:`operators.contact` and the object-level ones) replace the
material by a few fitted constants, and each leaves 17-20 % of the object's size
of rollout error on held-out shapes (docs/giorom.md). :class:`ReducedMPM` keeps
the material: it runs MLS-MPM (:mod:`operators.mpm`) on the points the learned
simulator steps (GIOROM's sparse graph, or every particle), each carrying the
volume of the object it stands for (``spacing ** 3``), on a grid scaled to their
spacing (``cell_ratio * spacing``) whose wall layer stops particles at the
dataset's walls (:meth:`operators.mpm.MPMSolver.for_walls`). This is the
reduced-order idea itself: the same physics on a graph many times sparser,
cheaper by the cube of the spacing ratio and, through the coarser grid, by
larger substeps.

A solver carries state the window of positions does not hold (the deformation
gradient, APIC's affine velocity). The prior therefore keeps its solver between
calls while the frames it is given continue the ones it produced (a rollout:
the window's second-last frame is the last one it was given, its last frame is
within ``continuation_tolerance`` spacings of the one it produced): frames that
differ by a learned residual are taken as given, the difference added to the
velocity. A window that does not continue them (a training batch,
a new rollout) starts a solver at rest shape: velocity from the last two
frames (moved to the end of the frame by gravity), APIC's affine velocity the
local velocity gradient over the last frame, deformation gradient the identity.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from operators.contact import checked_grid, grid_search_prior
from operators.deformation import local_deformation_gradients
from operators.rigid_contact import ObjectContactPrior, rigid_prior_rollout

#: Particle spacing of the shape datasets (``operators.splat_physics.shapes.DEFAULT_SPACING``).
DATASET_SPACING = 0.02

#: Grid searched by :func:`fit_reduced_mpm` (grid cell over point spacing).
DEFAULT_GRID = {"cell_ratio": (1.5, 2.0, 2.5, 3.0)}


@dataclass
class ReducedMPM(ObjectContactPrior):
    """MLS-MPM of ``material`` on the stepped points, on a grid scaled to their spacing.

    Attributes:
        material: an MPM material name (:data:`operators.mpm.MATERIALS`), with its default
            parameters (those the datasets and the splat simulation use).
        spacing: spacing of the stepped points, box units; each carries ``spacing ** 3`` of
            volume (the datasets fill at 0.02; a sparser point set needs its own,
            :func:`operators.contact.contact_for_point_set`).
        cell_ratio: grid cell over ``spacing`` (MPM's own default is 2: eight points a cell).
        frame_dt: seconds per frame (converts the known per-frame acceleration to gravity).
        cfl: fraction of the material's stable substep used.
        continuation_tolerance: largest distance, as a fraction of ``spacing``, between the frame
            given and the one produced last for the solver's state to be carried on.
    """

    material: str = "jelly"
    spacing: float = DATASET_SPACING
    cell_ratio: float = 2.0
    frame_dt: float = 0.01
    cfl: float = 0.4
    continuation_tolerance: float = 0.5

    def __post_init__(self):
        from operators.mpm import MATERIALS

        if self.material not in MATERIALS:
            raise ValueError(f"reduced MPM material must be one of {sorted(MATERIALS)}, got {self.material!r}")
        for name in ("spacing", "cell_ratio", "frame_dt", "continuation_tolerance"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
                raise ValueError(f"reduced MPM {name} must be a number > 0, got {v!r}")
        if isinstance(self.cfl, bool) or not isinstance(self.cfl, (int, float)) or not 0 < self.cfl <= 1:
            raise ValueError(f"reduced MPM cfl must be in (0, 1], got {self.cfl!r}")
        self._solver = None  # the running solver, its substeps per frame, the frame it produced last
        self._substeps = 1  # and the last frame it was given
        self._produced = None
        self._given = None

    def as_dict(self) -> dict:
        return {"model": "mpm", **asdict(self)}

    def _gravity(self, external: Tensor) -> float:
        ext = torch.as_tensor(external, dtype=torch.float64).reshape(-1)
        if ext.numel() != 3 or float(ext[0].abs() + ext[2].abs()) > 1e-12:
            raise ValueError(f"reduced MPM needs a 3-D acceleration along -y, got {ext.tolist()}")
        return float(-ext[1]) / self.frame_dt ** 2

    @staticmethod
    def _walls(bounds: Tensor) -> tuple[float, float]:
        b = torch.as_tensor(bounds, dtype=torch.float64)
        if b.shape != (3, 2) or not torch.allclose(b, b[:1].expand(3, 2), atol=1e-9):
            raise ValueError(f"reduced MPM needs the same walls on every axis, got {b.tolist()}")
        return float(b[0, 0]), float(b[0, 1])

    def _start(self, prev: Tensor, last: Tensor, external: Tensor, bounds: Tensor):
        from operators.mpm import MPMConfig, MPMSolver, make_material

        gravity = self._gravity(external)
        config = MPMConfig(cfl=self.cfl, frame_dt=self.frame_dt, gravity=gravity)
        # the last frame's mean velocity, moved on to its end by half a frame of gravity
        velocity = (last - prev) / self.frame_dt
        velocity[:, 1] -= 0.5 * gravity * self.frame_dt
        solver = MPMSolver.for_walls(make_material(self.material), last, velocity, self.spacing ** 3,
                                     self._walls(bounds), self.cell_ratio * self.spacing, config)
        if last.shape[0] >= 4:  # APIC's affine velocity: the local velocity gradient over the last frame
            grad = local_deformation_gradients(prev.float(), last.float()) - torch.eye(3, dtype=torch.float64)
            solver.C = (grad / self.frame_dt).to(solver.C.dtype)
        self._substeps = solver.fit_substeps(self.frame_dt)
        return solver

    def _continues(self, prev: Tensor, last: Tensor) -> bool:
        """Whether ``(prev, last)`` is the next window of the rollout the solver runs: ``prev`` the
        frame it was given last, ``last`` close to the one it produced."""
        if self._solver is None or self._produced is None or self._produced.shape != last.shape:
            return False
        if self._given is None or self._given.shape != prev.shape or not torch.equal(prev, self._given):
            return False
        gap = float((last.to(self._produced.dtype) - self._produced).abs().max())
        return gap <= self.continuation_tolerance * self.spacing

    @torch.no_grad()
    def step(self, prev: Tensor, last: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """The points' positions one frame after ``last``.

        Args:
            prev: Tensor,  # [N, 3] positions a frame before ``last``
            last: Tensor,  # [N, 3]
            external: Tensor,  # [3] known acceleration per frame squared (gravity along -y)
            bounds: Tensor,  # [3, 2] walls, the same on every axis

        Returns:
            Tensor,  # [N, 3] in ``last``'s dtype
        """
        if self._continues(prev, last):
            solver = self._solver
            shift = last.to(self._produced.dtype) - self._produced  # what a learned residual changed
            if float(shift.abs().max()) > 0:
                # taken as given: from the solver's own positions (the walls may have clamped them)
                solver.displace(last.to(self._produced.dtype) - solver.x, shift / self.frame_dt)
        else:
            solver = self._solver = self._start(prev, last, external, bounds)
        with solver.config.threads():
            for _ in range(self._substeps):
                solver.substep()
        if not solver.is_finite():
            self._solver = None
            raise ValueError("reduced MPM became NaN/Inf; lower its cfl")
        # the walls the learned simulators clamp to: a frame given back unchanged then continues exactly
        b = torch.as_tensor(bounds, dtype=solver.x.dtype)
        self._produced = torch.maximum(torch.minimum(solver.x, b[:, 1]), b[:, 0])
        self._given = last.detach().clone()
        return self._produced.to(last.dtype)


def mpm_prior_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor,
                      contact: ReducedMPM) -> Tensor:
    """Roll the reduced MPM prior alone out (``[W + n_steps, N, 3]``), from the last two given frames.

    Args:
        initial_positions: Tensor,  # [W, N, 3] with W >= 2
        n_steps: frames to predict.
        external: Tensor,  # [3]
        bounds: Tensor,  # [3, 2]
        contact: the prior (a fresh solver is started from the window).
    """
    contact._solver = None
    return rigid_prior_rollout(initial_positions, n_steps, external, bounds, contact)


def fit_reduced_mpm(trajectories: list[Tensor], external, bounds, n_steps: int = 50, grid: dict | None = None, *,
                    material: str, spacing: float = DATASET_SPACING) -> tuple[ReducedMPM, float]:
    """Choose the grid resolution (``cell_ratio``) whose reduced MPM rolls out closest to ``trajectories``.

    The material is the data's, not fitted. Same protocol as the contact priors
    (:func:`operators.contact.grid_search_prior`): each trajectory starts from its first frames,
    the score is the mean relative RMSE.

    Args:
        trajectories: positions ``[T, N, 3]`` (a dataset's training split).
        external: ``[3]`` known acceleration per frame squared.
        bounds: ``[3, 2]`` walls.
        n_steps: predicted frames scored.
        grid: values per field of :class:`ReducedMPM` (default :data:`DEFAULT_GRID`).
        material: the data's material.
        spacing: the data's particle spacing.

    Returns:
        (best ReducedMPM, its mean relative RMSE)
    """
    grid = checked_grid(DEFAULT_GRID, grid, ReducedMPM, "reduced MPM")
    names = list(grid)

    def make(*values):
        return ReducedMPM(**{"material": material, "spacing": spacing, **dict(zip(names, values))})

    return grid_search_prior(trajectories, external, bounds, n_steps, grid, make, mpm_prior_rollout,
                             "the reduced MPM")
