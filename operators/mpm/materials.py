"""Constitutive models for the MLS-MPM solver.

Every material maps the trial deformation gradient of each particle (after the
grid-to-particle update) to a projected deformation gradient (plasticity) and
the Kirchhoff stress ``tau = P F^T`` used in the next particle-to-grid
transfer. All functions are batched over particles and work in 2D and 3D.

Units are SI (metres, seconds, kilograms, pascals); the default box is the
unit cube.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from operators.mpm.linalg import det, mm, svd


def _eye(n: int, d: int, like: Tensor) -> Tensor:
    return torch.eye(d, dtype=like.dtype, device=like.device).expand(n, d, d)


def _sym_dev(C: Tensor) -> Tensor:
    """Deviatoric part of the symmetric velocity gradient ``sym(C)``."""
    d = C.shape[-1]
    D = 0.5 * (C + C.transpose(-1, -2))
    tr = D.diagonal(dim1=-2, dim2=-1).sum(-1)
    return D - (tr / d)[:, None, None] * _eye(C.shape[0], d, C)


def _hencky_stress(U: Tensor, eps: Tensor, mu: float, lam: float) -> Tensor:
    """Kirchhoff stress of the St. Venant-Kirchhoff model in Hencky strain."""
    tr = eps.sum(-1, keepdim=True)
    tau_diag = 2.0 * mu * eps + lam * tr  # [N, d]
    return mm(U * tau_diag[:, None, :], U.transpose(-1, -2))


def _lame(E: float, nu: float) -> tuple[float, float]:
    mu = E / (2.0 * (1.0 + nu))
    lam = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    return mu, lam


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {need} number, got {value}")


@dataclass
class Material:
    """Base class: density and the friction of the box walls against it.

    Attributes:
        density: rest density in kg/m^3.
        wall_friction: Coulomb friction coefficient applied on slip walls.
    """

    density: float = 1000.0
    wall_friction: float = 0.0
    name: str = field(default="material", init=False)
    particle_type: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        _check_positive("density", self.density)
        _check_positive("wall_friction", self.wall_friction, allow_zero=True)

    def wave_speed(self) -> float:
        """Speed of the fastest elastic/acoustic wave in m/s (sets the CFL dt)."""
        raise NotImplementedError

    def max_dt(self, dx: float, dim: int) -> float:
        """Largest stable explicit time step for grid spacing ``dx`` (before CFL factor)."""
        return dx / self.wave_speed()

    def update(self, F: Tensor, C: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        """Project the trial deformation gradient and compute the stress.

        Args:
            F: trial deformation gradients,  # [N, d, d]
            C: APIC affine velocity matrices (velocity gradient),  # [N, d, d]
            dt: substep in seconds.

        Returns:
            ``(F_projected, tau)``, both ``[N, d, d]``; ``tau`` is the Kirchhoff stress.
        """
        raise NotImplementedError

    def params(self) -> dict:
        """Parameters as a JSON-friendly dict (name included)."""
        out = asdict(self)
        out["name"] = self.name
        return out


@dataclass
class Water(Material):
    """Weakly compressible Newtonian fluid.

    Pressure from the volume ratio ``J`` (energy ``K/2 (J-1)^2``), plus a
    Newtonian viscous stress ``2 viscosity J dev(sym(grad v))``. Shear memory
    is discarded every step (``F <- J^(1/d) I``).

    Attributes:
        bulk_modulus: K in Pa; the sound speed is ``sqrt(K / density)``.
        viscosity: dynamic viscosity in Pa s.
    """

    bulk_modulus: float = 2.5e5
    viscosity: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name, self.particle_type = "water", 5
        _check_positive("bulk_modulus", self.bulk_modulus)
        _check_positive("viscosity", self.viscosity, allow_zero=True)

    def wave_speed(self) -> float:
        return math.sqrt(self.bulk_modulus / self.density)

    def max_dt(self, dx: float, dim: int) -> float:
        dt = dx / self.wave_speed()
        if self.viscosity > 0:
            dt = min(dt, self.density * dx * dx / (2.0 * dim * self.viscosity))
        return dt

    def update(self, F: Tensor, C: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        n, d = F.shape[0], F.shape[-1]
        J = det(F).clamp_min(1e-3)
        eye = _eye(n, d, F)
        F_new = J.pow(1.0 / d)[:, None, None] * eye
        tau = (self.bulk_modulus * (J - 1.0) * J)[:, None, None] * eye
        if self.viscosity > 0:
            tau = tau + 2.0 * self.viscosity * J[:, None, None] * _sym_dev(C)
        return F_new, tau


@dataclass
class Jelly(Material):
    """Elastic solid with the fixed-corotated energy (Stomakhin et al. 2012).

    ``tau = 2 mu (F - R) F^T + lam (J - 1) J I`` with ``R`` the rotation of ``F``.

    Attributes:
        youngs_modulus: E in Pa.
        poisson_ratio: nu in [0, 0.5).
    """

    youngs_modulus: float = 5.0e4
    poisson_ratio: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name, self.particle_type = "jelly", 8
        _check_positive("youngs_modulus", self.youngs_modulus)
        if not 0.0 <= self.poisson_ratio < 0.5:
            raise ValueError(f"poisson_ratio must be in [0, 0.5), got {self.poisson_ratio}")

    def wave_speed(self) -> float:
        mu, lam = _lame(self.youngs_modulus, self.poisson_ratio)
        return math.sqrt((lam + 2.0 * mu) / self.density)

    def update(self, F: Tensor, C: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        mu, lam = _lame(self.youngs_modulus, self.poisson_ratio)
        n, d = F.shape[0], F.shape[-1]
        U, _, Vh = svd(F)
        R = mm(U, Vh)
        J = det(F)
        tau = 2.0 * mu * mm(F - R, F.transpose(-1, -2))
        tau = tau + (lam * (J - 1.0) * J)[:, None, None] * _eye(n, d, F)
        return F, tau


@dataclass
class Sand(Material):
    """Cohesionless granular material: Drucker-Prager plasticity.

    Hencky (log-strain) St. Venant-Kirchhoff elasticity with the return
    mapping of Klar et al. 2016, "Drucker-Prager elastoplasticity for sand
    animation": tension projects to the cone tip, shear beyond the cone is
    projected back along the deviatoric direction.

    Attributes:
        youngs_modulus: E in Pa.
        poisson_ratio: nu in [0, 0.5).
        friction_angle: internal friction angle in degrees.
    """

    density: float = 1600.0
    wall_friction: float = 0.5
    youngs_modulus: float = 1.5e5
    poisson_ratio: float = 0.3
    friction_angle: float = 35.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name, self.particle_type = "sand", 6
        _check_positive("youngs_modulus", self.youngs_modulus)
        if not 0.0 <= self.poisson_ratio < 0.5:
            raise ValueError(f"poisson_ratio must be in [0, 0.5), got {self.poisson_ratio}")
        if not 0.0 < self.friction_angle < 90.0:
            raise ValueError("friction_angle must be in (0, 90) degrees, "
                             f"got {self.friction_angle}")

    def wave_speed(self) -> float:
        mu, lam = _lame(self.youngs_modulus, self.poisson_ratio)
        return math.sqrt((lam + 2.0 * mu) / self.density)

    def update(self, F: Tensor, C: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        mu, lam = _lame(self.youngs_modulus, self.poisson_ratio)
        d = F.shape[-1]
        s = math.sin(math.radians(self.friction_angle))
        alpha = math.sqrt(2.0 / 3.0) * 2.0 * s / (3.0 - s)
        U, S, Vh = svd(F)
        eps = torch.log(S.abs().clamp_min(1e-6))  # [N, d]
        tr = eps.sum(-1, keepdim=True)
        dev = eps - tr / d
        dev_norm = dev.norm(dim=-1, keepdim=True)
        dgamma = dev_norm + (d * lam + 2.0 * mu) / (2.0 * mu) * tr * alpha
        shifted = eps - dgamma * dev / dev_norm.clamp_min(1e-12)
        eps_new = torch.where(dgamma <= 0, eps, shifted)
        eps_new = torch.where(tr > 0, torch.zeros_like(eps), eps_new)
        F_new = mm(U * torch.exp(eps_new)[:, None, :], Vh)
        return F_new, _hencky_stress(U, eps_new, mu, lam)


@dataclass
class Plasticine(Material):
    """Elastoplastic solid with von Mises (J2) perfect plasticity.

    Hencky elasticity; when the deviatoric Kirchhoff stress exceeds the yield
    stress it is projected back radially onto the yield surface in log-strain
    space (the volumetric part stays elastic).

    Attributes:
        youngs_modulus: E in Pa.
        poisson_ratio: nu in [0, 0.5).
        yield_stress: von Mises yield stress in Pa (on ``|dev tau|``).
    """

    youngs_modulus: float = 1.0e5
    poisson_ratio: float = 0.3
    yield_stress: float = 2.0e3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name, self.particle_type = "plasticine", 4
        _check_positive("youngs_modulus", self.youngs_modulus)
        _check_positive("yield_stress", self.yield_stress)
        if not 0.0 <= self.poisson_ratio < 0.5:
            raise ValueError(f"poisson_ratio must be in [0, 0.5), got {self.poisson_ratio}")

    def _lame(self) -> tuple[float, float]:
        return _lame(self.youngs_modulus, self.poisson_ratio)

    def wave_speed(self) -> float:
        mu, lam = self._lame()
        return math.sqrt((lam + 2.0 * mu) / self.density)

    def _relaxation(self, mu: float, dt: float) -> float:
        """Fraction of the over-stress kept after one step (0: perfectly plastic)."""
        return 0.0

    def update(self, F: Tensor, C: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        mu, lam = self._lame()
        d = F.shape[-1]
        U, S, Vh = svd(F)
        eps = torch.log(S.abs().clamp_min(1e-6))  # [N, d]
        tr = eps.sum(-1, keepdim=True)
        dev = eps - tr / d
        dev_norm = dev.norm(dim=-1, keepdim=True)
        s_norm = 2.0 * mu * dev_norm
        over = (s_norm - self.yield_stress).clamp_min(0.0)
        target = self.yield_stress + over * self._relaxation(mu, dt)
        scale = torch.where(over > 0, target / s_norm.clamp_min(1e-12), torch.ones_like(s_norm))
        eps_new = tr / d + dev * scale
        F_new = mm(U * torch.exp(eps_new)[:, None, :], Vh)
        return F_new, _hencky_stress(U, eps_new, mu, lam)


@dataclass
class NonNewtonian(Plasticine):
    """Bingham viscoplastic fluid (a "goop"): yield stress plus viscous flow.

    Elastic below the yield stress; above it the deviatoric over-stress relaxes
    with a Bingham viscosity (implicit Maxwell relaxation, unconditionally
    stable): ``|s| <- yield + (|s_trial| - yield) / (1 + 2 mu dt / viscosity)``.
    A low shear modulus and a stiff bulk modulus make it flow like a thick
    paste that comes to rest on shallow slopes.

    Attributes:
        youngs_modulus: E in Pa (sets the elastic shear response).
        poisson_ratio: nu; close to 0.5 for a nearly incompressible paste.
        yield_stress: Bingham yield stress in Pa.
        viscosity: Bingham plastic viscosity in Pa s.
    """

    youngs_modulus: float = 5.0e4
    poisson_ratio: float = 0.45
    yield_stress: float = 150.0
    viscosity: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.name, self.particle_type = "non_newtonian", 7
        _check_positive("viscosity", self.viscosity, allow_zero=True)

    def _relaxation(self, mu: float, dt: float) -> float:
        if self.viscosity == 0:
            return 0.0
        return 1.0 / (1.0 + 2.0 * mu * dt / self.viscosity)


MATERIALS: dict[str, type[Material]] = {
    "water": Water,
    "non_newtonian": NonNewtonian,
    "jelly": Jelly,
    "sand": Sand,
    "plasticine": Plasticine,
}


def make_material(material: str | Material) -> Material:
    """A material instance from its name (defaults) or an instance (returned as is).

    Raises:
        ValueError: unknown name (the message lists the choices).
        TypeError: neither a string nor a :class:`Material`.
    """
    if isinstance(material, Material):
        return material
    if not isinstance(material, str):
        raise TypeError(f"material must be a name or a Material, got {type(material).__name__}")
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; choose one of {sorted(MATERIALS)}")
    return MATERIALS[material]()
