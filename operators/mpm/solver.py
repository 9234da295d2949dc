"""Moving least squares material point method (MLS-MPM), vectorised in PyTorch.

Hu et al. 2018, "A moving least squares material point method with
displacement discontinuity and two-way rigid body coupling" (SIGGRAPH).
Quadratic B-spline weights, APIC affine momentum (Jiang et al. 2015), a
uniform background grid over the box ``[0, 1]^d`` and one code path for 2D and
3D: the ``3^d`` stencil nodes of every particle are handled as one batched
dimension and scattered with ``index_add_``.

Gravity acts along ``-y`` (axis 1) in 2D and 3D.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from operators.mpm.linalg import mm
from operators.mpm.materials import Material


@dataclass
class MPMConfig:
    """Numerical settings of the solver.

    Attributes:
        n_grid: grid cells per axis over the unit box; ``None`` picks it from
            the particle spacing (``dx = cell_particle_ratio * spacing``).
        cell_particle_ratio: grid spacing over particle spacing when ``n_grid``
            is automatic (2 gives ``2^d`` particles per cell).
        min_grid: smallest automatic ``n_grid``.
        max_grid: largest automatic ``n_grid``.
        frame_dt: seconds between written frames.
        cfl: fraction of the stability limit ``dx / wave_speed`` used as substep.
        gravity: gravitational acceleration in m/s^2 (along ``-y``).
        boundary: ``"slip"`` (separating walls, Coulomb friction from the
            material's ``wall_friction``) or ``"sticky"`` (no-slip walls).
        boundary_cells: thickness of the wall layer in grid cells; the walls
            sit at ``boundary_cells * dx`` from the box faces.
        dtype: ``torch.float32`` or ``torch.float64``.
        device: torch device string.
        num_threads: torch CPU threads while simulating (restored afterwards);
            1 is fastest for the small batched ops of MPM on a busy machine,
            ``None`` keeps the current setting.
    """

    n_grid: int | None = None
    cell_particle_ratio: float = 2.0
    min_grid: int = 16
    max_grid: int = 160
    frame_dt: float = 0.01
    cfl: float = 0.4
    gravity: float = 9.81
    boundary: str = "slip"
    boundary_cells: int = 3
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.n_grid is not None and (not isinstance(self.n_grid, int) or self.n_grid < 8):
            raise ValueError(f"n_grid must be an int >= 8 or None, got {self.n_grid!r}")
        if self.boundary not in ("slip", "sticky"):
            raise ValueError(f"boundary must be 'slip' or 'sticky', got {self.boundary!r}")
        if not (self.frame_dt > 0 and math.isfinite(self.frame_dt)):
            raise ValueError(f"frame_dt must be a positive number, got {self.frame_dt}")
        if not 0 < self.cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {self.cfl}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}")
        if not isinstance(self.boundary_cells, int) or self.boundary_cells < 2:
            raise ValueError(f"boundary_cells must be an int >= 2, got {self.boundary_cells!r}")

    @contextlib.contextmanager
    def threads(self):
        """Context that runs torch with ``num_threads`` CPU threads."""
        before = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def grid_size(self, spacing: float) -> int:
        """Cells per axis for particles spaced ``spacing`` apart."""
        if self.n_grid is not None:
            return self.n_grid
        n = round(1.0 / (self.cell_particle_ratio * spacing))
        return int(min(max(n, self.min_grid), self.max_grid))

    def wall_bounds(self, n_grid: int) -> tuple[float, float]:
        """Positions ``(lo, hi)`` of the walls along every axis."""
        pad = self.boundary_cells / n_grid
        return pad, 1.0 - pad


class MPMSolver:
    """Explicit MLS-MPM time stepping of one material in the unit box.

    Args:
        material: constitutive model.
        positions: initial particle positions,  # [N, d]
        velocities: initial particle velocities,  # [N, d]
        particle_volume: rest volume of one particle (m^3, or m^2 in 2D).
        n_grid: cells per axis.
        config: numerical settings.
        walls: apply the box walls (off only for conservation tests).
    """

    def __init__(self, material: Material, positions: Tensor, velocities: Tensor,
                 particle_volume: float, n_grid: int, config: MPMConfig,
                 walls: bool = True) -> None:
        self.material = material
        self.config = config
        dev, dt_ = torch.device(config.device), config.dtype
        self.x = positions.to(dev, dt_).clone()  # [N, d]
        self.v = velocities.to(dev, dt_).clone()  # [N, d]
        n, d = self.x.shape
        self.dim = d
        self.n_grid = n_grid
        self.dx = 1.0 / n_grid
        self.inv_dx = float(n_grid)
        self.vol = float(particle_volume)
        self.mass = self.vol * material.density
        self.C = torch.zeros(n, d, d, device=dev, dtype=dt_)  # [N, d, d]
        self.F = torch.eye(d, device=dev, dtype=dt_).repeat(n, 1, 1)  # [N, d, d]
        self.tau = torch.zeros(n, d, d, device=dev, dtype=dt_)  # [N, d, d]
        self.walls = walls
        self.dt = config.cfl * material.max_dt(self.dx, d)
        # stencil offsets [K, d], K = 3^d, and linear strides of the node grid
        self.offsets = torch.tensor(list(itertools.product(range(3), repeat=d)), device=dev)
        self.offsets_f = self.offsets.to(dt_)  # [K, d]
        self.n_nodes = n_grid + 1
        self.strides = torch.tensor([self.n_nodes ** (d - 1 - k) for k in range(d)], device=dev)
        self.offsets_lin = (self.offsets * self.strides).sum(-1)  # [K]
        self._wall_masks(dev)
        self.last_grid_momentum = torch.zeros(d, device=dev, dtype=dt_)  # [d], of the last P2G
        self.last_grid_mass = 0.0

    def _wall_masks(self, dev: torch.device) -> None:
        """Ids of the wall nodes and, per axis, which side of the box they are on."""
        d, m, b = self.dim, self.n_nodes, self.config.boundary_cells
        idx = torch.arange(m, device=dev)
        coords = torch.stack(torch.meshgrid(*([idx] * d), indexing="ij"), dim=-1).reshape(-1, d)
        lo, hi = coords < b, coords > self.n_grid - b  # [G, d]
        self.wall_nodes = torch.nonzero((lo | hi).any(-1)).squeeze(-1)  # [W]
        self.lo_wall = lo[self.wall_nodes]  # [W, d]
        self.hi_wall = hi[self.wall_nodes]  # [W, d]

    @property
    def n_particles(self) -> int:
        return self.x.shape[0]

    def _stencil(self) -> tuple[Tensor, Tensor, Tensor]:
        """Weights ``[N, K]``, node offsets ``x_i - x_p`` ``[N, K, d]``, node ids ``[N, K]``."""
        xg = self.x * self.inv_dx
        base = torch.floor(xg - 0.5)
        fx = xg - base  # [N, d] in [0.5, 1.5)
        w = torch.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2],
                        dim=1)  # [N, 3, d]
        weight = w[:, :, 0]
        for k in range(1, self.dim):  # outer product over axes, in itertools.product order
            weight = (weight[:, :, None] * w[:, None, :, k]).reshape(weight.shape[0], -1)
        dpos = (self.offsets_f[None] - fx[:, None, :]) * self.dx  # [N, K, d]
        node = (base.long() * self.strides).sum(-1, keepdim=True) + self.offsets_lin  # [N, K]
        return weight, dpos, node

    def _apply_walls(self, gv: Tensor) -> Tensor:
        """Wall velocities of the wall nodes ``gv`` [W, d] (slip with friction, or sticky)."""
        if self.config.boundary == "sticky":
            return torch.zeros_like(gv)
        mu = self.material.wall_friction
        for k in range(self.dim):
            into = (self.lo_wall[:, k] & (gv[:, k] < 0)) | (self.hi_wall[:, k] & (gv[:, k] > 0))
            tangential = gv.clone()
            tangential[:, k] = 0
            if mu > 0:
                vt = tangential.norm(dim=-1, keepdim=True)
                keep = (1.0 - mu * gv[:, k:k + 1].abs() / vt.clamp_min(1e-12)).clamp_min(0.0)
                tangential = tangential * keep
            gv = torch.where(into[:, None], tangential, gv)
        return gv

    def substep(self) -> None:
        """Advance one explicit substep ``self.dt`` (P2G, grid update, G2P, constitutive)."""
        d, dt = self.dim, self.dt
        weight, dpos, node = self._stencil()
        # P2G: APIC momentum plus the MLS force term -dt V0 (4/dx^2) tau (x_i - x_p)
        affine = (-dt * self.vol * 4.0 * self.inv_dx ** 2) * self.tau + self.mass * self.C
        mom = self.mass * self.v[:, None, :] + (affine[:, None] * dpos[..., None, :]).sum(-1)  # [N, K, d]
        payload = torch.cat([mom, torch.full_like(mom[..., :1], self.mass)], dim=-1)
        payload = payload * weight[..., None]  # [N, K, d+1]
        grid = torch.zeros(self.n_nodes ** d, d + 1, device=self.x.device, dtype=self.x.dtype)
        grid.index_add_(0, node.reshape(-1), payload.reshape(-1, d + 1))
        gm = grid[:, d:]
        self.last_grid_momentum = grid[:, :d].sum(0)
        self.last_grid_mass = float(gm.sum())
        # grid update: velocity, gravity, walls
        gv = grid[:, :d] / gm.clamp_min(1e-30)  # empty nodes: 0 (never read back)
        gv[:, 1] -= dt * self.config.gravity
        if self.walls:
            gv[self.wall_nodes] = self._apply_walls(gv[self.wall_nodes])
        # G2P: velocity, APIC affine matrix, advection, deformation gradient
        wv = gv[node] * weight[..., None]  # [N, K, d]
        self.v = wv.sum(1)
        self.C = mm(wv.transpose(-1, -2), dpos) * (4.0 * self.inv_dx ** 2)
        self.x = self.x + dt * self.v
        # keep every particle's stencil inside the grid
        self.x = self.x.clamp(self.dx, 1.0 - self.dx)
        eye = torch.eye(d, device=self.x.device, dtype=self.x.dtype)
        F_trial = mm(eye + dt * self.C, self.F)
        self.F, self.tau = self.material.update(F_trial, self.C, dt)

    def is_finite(self) -> bool:
        """Whether positions, velocities and deformation gradients are all finite."""
        return bool(torch.isfinite(self.x).all() and torch.isfinite(self.v).all()
                    and torch.isfinite(self.F).all())

    def particle_momentum(self) -> Tensor:
        """Total particle momentum ``sum m v``,  # [d]"""
        return self.mass * self.v.sum(0)

    def kinetic_energy(self) -> float:
        return float(0.5 * self.mass * (self.v ** 2).sum())
