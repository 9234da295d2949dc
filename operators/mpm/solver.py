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
        boundary_cells: thickness of the wall layer in grid nodes. Particles
            come to rest about ``(boundary_cells - 1) * dx`` from the box faces
            (their stencils then reach mostly wall nodes); that is where the
            walls are reported (:meth:`wall_bounds`) and scenes are laid out.
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
        """Positions ``(lo, hi)`` of the effective walls along every axis."""
        pad = (self.boundary_cells - 1) / n_grid
        return pad, 1.0 - pad


class MPMSolver:
    """Explicit MLS-MPM time stepping of one material in the unit box.

    Particle vectors are stored component-major (``[d, N]``) and stencil
    quantities as ``[d, K, N]`` so that every broadcast runs over contiguous
    particle rows; :attr:`x` and :attr:`v` give the usual ``[N, d]`` views.

    Args:
        material: constitutive model.
        positions: initial particle positions,  # [N, d]
        velocities: initial particle velocities,  # [N, d]
        particle_volume: rest volume of one particle (m^3, or m^2 in 2D).
        n_grid: cells per axis.
        config: numerical settings.
        walls: apply the box walls (off only for conservation tests).
        cell_size: grid spacing (default ``1 / n_grid``: the grid covers the unit box).
        origin: position of grid node 0 on every axis (default 0). With
            ``cell_size`` it places a grid of any resolution so that its wall
            layer stops particles at chosen walls (:meth:`for_walls`).
    """

    def __init__(self, material: Material, positions: Tensor, velocities: Tensor,
                 particle_volume: float, n_grid: int, config: MPMConfig,
                 walls: bool = True, cell_size: float | None = None, origin: float = 0.0) -> None:
        self.material = material
        self.config = config
        dev, dt_ = torch.device(config.device), config.dtype
        n, d = positions.shape
        self.origin = float(origin)
        # particles are stored relative to the grid's node 0
        self._x = (positions.to(dev, dt_) - self.origin).T.contiguous()  # [d, N]
        self._v = velocities.to(dev, dt_).T.contiguous()  # [d, N]
        self.dim = d
        self.n_grid = n_grid
        self.dx = float(cell_size) if cell_size is not None else 1.0 / n_grid
        if not self.dx > 0:
            raise ValueError(f"cell_size must be > 0, got {cell_size!r}")
        self.inv_dx = 1.0 / self.dx
        self.vol = float(particle_volume)
        self.mass = self.vol * material.density
        self.C = torch.zeros(n, d, d, device=dev, dtype=dt_)  # [N, d, d]
        self.F = torch.eye(d, device=dev, dtype=dt_).repeat(n, 1, 1)  # [N, d, d]
        self.tau = torch.zeros(n, d, d, device=dev, dtype=dt_)  # [N, d, d]
        self.walls = walls
        self.dt = config.cfl * material.max_dt(self.dx, d)
        # stencil offsets, K = 3^d in itertools.product order, and grid strides
        offsets = torch.tensor(list(itertools.product(range(3), repeat=d)), device=dev)  # [K, d]
        self.n_nodes = n_grid + 1
        self.n_grid_nodes = self.n_nodes ** d
        self.strides = torch.tensor([self.n_nodes ** (d - 1 - k) for k in range(d)], device=dev)
        self.offsets_t = offsets.T.to(dt_).contiguous()  # [d, K]
        self.offsets_lin = (offsets * self.strides).sum(-1)  # [K]
        self.component_base = torch.arange(d, device=dev) * self.n_grid_nodes  # [d]
        self._wall_masks(dev)
        self._grid_m = torch.zeros(1, device=dev, dtype=dt_)
        self._grid_mv = torch.zeros(d, 1, device=dev, dtype=dt_)

    def _wall_masks(self, dev: torch.device) -> None:
        """Ids of the wall nodes and, per axis, which side of the box they are on."""
        d, m, b = self.dim, self.n_nodes, self.config.boundary_cells
        idx = torch.arange(m, device=dev)
        coords = torch.stack(torch.meshgrid(*([idx] * d), indexing="ij"), dim=-1).reshape(-1, d)
        lo, hi = coords < b, coords > self.n_grid - b  # [G, d]
        self.wall_nodes = torch.nonzero((lo | hi).any(-1)).squeeze(-1)  # [W]
        self.lo_wall = lo[self.wall_nodes]  # [W, d]
        self.hi_wall = hi[self.wall_nodes]  # [W, d]

    @classmethod
    def for_walls(cls, material: Material, positions: Tensor, velocities: Tensor, particle_volume: float,
                  walls: tuple[float, float], cell_size: float, config: MPMConfig) -> "MPMSolver":
        """A solver whose effective walls are at ``walls = (lo, hi)`` on every axis, on a grid of
        about ``cell_size`` (adjusted so that a whole number of cells spans the walls).

        The wall layer's innermost node sits on each wall, as :meth:`MPMConfig.wall_bounds` places
        it for a grid over the unit box, so a coarse grid stops particles where a fine one does.
        """
        lo, hi = float(walls[0]), float(walls[1])
        if not (hi > lo and cell_size > 0):
            raise ValueError(f"walls must be (lo, hi) with hi > lo and cell_size > 0, got {walls}, {cell_size}")
        inner = max(2, round((hi - lo) / cell_size))
        dx = (hi - lo) / inner
        pad = config.boundary_cells - 1
        return cls(material, positions, velocities, particle_volume, inner + 2 * pad, config,
                   cell_size=dx, origin=lo - pad * dx)

    @property
    def x(self) -> Tensor:
        """Particle positions,  # [N, d]"""
        return (self._x + self.origin).T.contiguous()

    @property
    def v(self) -> Tensor:
        """Particle velocities,  # [N, d]"""
        return self._v.T.contiguous()

    @property
    def n_particles(self) -> int:
        return self._x.shape[1]

    def _stencil(self) -> tuple[Tensor, Tensor, Tensor]:
        """Weights ``[K, N]``, node offsets ``x_i - x_p`` ``[d, K, N]``, node ids ``[K, N]``."""
        n = self._x.shape[1]
        xg = self._x * self.inv_dx
        base = torch.floor(xg - 0.5)
        fx = xg - base  # [d, N] in [0.5, 1.5)
        w = torch.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2])
        weight = w[:, 0]  # [3, N]; w is [3, d, N]
        for k in range(1, self.dim):  # outer product over axes, last axis fastest
            weight = (weight[:, None, :] * w[None, :, k]).reshape(-1, n)
        dpos = (self.offsets_t[:, :, None] - fx[:, None, :]) * self.dx  # [d, K, N]
        node = (base.long() * self.strides[:, None]).sum(0) + self.offsets_lin[:, None]  # [K, N]
        return weight, dpos, node

    def _apply_walls(self, gv: Tensor, occupied: Tensor) -> Tensor:
        """Velocities ``gv`` [W', d] of the occupied wall nodes after the wall condition.

        Slip: the velocity components into a wall are removed and the rest is
        slowed by Coulomb friction, ``|v_t| <- max(0, |v_t| - mu |v_n|)``.
        """
        if self.config.boundary == "sticky":
            return torch.zeros_like(gv)
        lo, hi = self.lo_wall[occupied], self.hi_wall[occupied]
        into = (lo & (gv < 0)) | (hi & (gv > 0))  # [W', d]
        normal = torch.where(into, gv, torch.zeros_like(gv))
        tangential = gv - normal
        mu = self.material.wall_friction
        if mu > 0:
            vn = normal.norm(dim=-1, keepdim=True)
            vt = tangential.norm(dim=-1, keepdim=True)
            tangential = tangential * (1.0 - mu * vn / vt.clamp_min(1e-12)).clamp_min(0.0)
        return tangential

    def fit_substeps(self, frame_dt: float) -> int:
        """Shorten ``dt`` to a whole number of substeps per frame of ``frame_dt``; returns that number."""
        substeps = max(1, math.ceil(frame_dt / self.dt - 1e-9))
        self.dt = frame_dt / substeps
        return substeps

    def substep(self) -> None:
        """Advance one explicit substep ``self.dt`` (P2G, grid update, G2P, constitutive)."""
        d, dt, G = self.dim, self.dt, self.n_grid_nodes
        weight, dpos, node = self._stencil()
        like = dict(device=self._x.device, dtype=self._x.dtype)
        # P2G: APIC momentum plus the MLS force term -dt V0 (4/dx^2) tau (x_i - x_p)
        affine = (-dt * self.vol * 4.0 * self.inv_dx ** 2) * self.tau + self.mass * self.C
        A = affine.permute(1, 2, 0).contiguous()  # [d, d, N]
        mom = self.mass * self._v[:, None, :] + A[:, 0, None, :] * dpos[0]  # [d, K, N]
        for j in range(1, d):
            mom = mom + A[:, j, None, :] * dpos[j]
        mom = mom * weight
        node_c = (node[None] + self.component_base[:, None, None]).reshape(-1)  # [d*K*N]
        node_mass = (weight * self.mass).reshape(-1)
        gm = torch.zeros(G, **like).index_add_(0, node.reshape(-1), node_mass)
        gmv = torch.zeros(d * G, **like).index_add_(0, node_c, mom.reshape(-1)).view(d, G)
        self._grid_m, self._grid_mv = gm, gmv  # [G], [d, G]
        # grid update: velocity, gravity, walls
        gv = gmv / gm.clamp_min(1e-30)  # [d, G]; empty nodes: 0 (never read back)
        gv[1] -= dt * self.config.gravity
        if self.walls:
            occupied = gm[self.wall_nodes] > 0  # only wall nodes that carry mass matter
            wn = self.wall_nodes[occupied]
            gv[:, wn] = self._apply_walls(gv[:, wn].T, occupied).T
        # G2P: velocity, APIC affine matrix, advection, deformation gradient
        wv = gv.reshape(-1)[node_c].view(d, *node.shape) * weight  # [d, K, N]
        self._v = wv.sum(1)
        C = torch.stack([(wv * dpos[j]).sum(1) for j in range(d)], dim=1)  # [d, d, N]
        C = C * (4.0 * self.inv_dx ** 2)
        self.C = C.permute(2, 0, 1).contiguous()  # [N, d, d]
        # advect; keep every particle's stencil inside the grid
        self._x = (self._x + dt * self._v).clamp(self.dx, (self.n_grid - 1) * self.dx)
        F_trial = self.F + dt * mm(self.C, self.F)
        self.F, self.tau = self.material.update(F_trial, self.C, dt)

    def displace(self, displacement: Tensor, velocity_change: Tensor) -> None:
        """Move the particles by ``displacement`` and change their velocities by ``velocity_change``
        (a correction from outside the solver, both ``[N, d]``); the rest of the state is kept."""
        like = dict(device=self._x.device, dtype=self._x.dtype)
        self._x = self._x + displacement.to(**like).T
        self._v = self._v + velocity_change.to(**like).T

    @property
    def last_grid_mass(self) -> float:
        """Total grid mass after the last particle-to-grid transfer."""
        return float(self._grid_m.double().sum())

    @property
    def last_grid_momentum(self) -> Tensor:
        """Total grid momentum after the last particle-to-grid transfer,  # [d]"""
        return self._grid_mv.double().sum(1)

    def is_finite(self) -> bool:
        """Whether positions, velocities and deformation gradients are all finite."""
        return bool(torch.isfinite(self._x).all() and torch.isfinite(self._v).all()
                    and torch.isfinite(self.F).all())

    def particle_momentum(self) -> Tensor:
        """Total particle momentum ``sum m v``,  # [d]"""
        return self.mass * self._v.sum(1)

    def angular_momentum(self) -> Tensor:
        """Total APIC angular momentum about the origin, float64,  # [1] in 2D, [3] in 3D

        ``sum m x × v`` plus the affine part ``m (dx^2/4) eps_ijk C_kj`` that
        APIC carries in ``C`` (quadratic B-splines: ``D = dx^2/4 I``).
        """
        x, v, C = self._x.double(), self._v.double(), self.C.double()
        D = 0.25 * self.dx * self.dx
        if self.dim == 2:
            orbit = (x[0] * v[1] - x[1] * v[0]).sum()
            spin = (C[:, 1, 0] - C[:, 0, 1]).sum() * D
            return (self.mass * (orbit + spin)).reshape(1)
        orbit = torch.linalg.cross(x.T, v.T).sum(0)
        spin = torch.stack([C[:, 2, 1] - C[:, 1, 2], C[:, 0, 2] - C[:, 2, 0],
                            C[:, 1, 0] - C[:, 0, 1]], dim=-1).sum(0) * D
        return self.mass * (orbit + spin)

    def kinetic_energy(self) -> float:
        return float(0.5 * self.mass * (self._v ** 2).sum())
