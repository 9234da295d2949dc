"""MLS-MPM ground-truth simulator: materials, solver and ``simulate``."""

from operators.mpm.materials import (
    MATERIALS,
    Jelly,
    Material,
    NonNewtonian,
    Plasticine,
    Sand,
    Water,
    make_material,
)
from operators.mpm.simulate import Trajectory, build_solver, simulate
from operators.mpm.solver import MPMConfig, MPMSolver

__all__ = [
    "MATERIALS",
    "Jelly",
    "MPMConfig",
    "MPMSolver",
    "Material",
    "NonNewtonian",
    "Plasticine",
    "Sand",
    "Trajectory",
    "Water",
    "build_solver",
    "make_material",
    "simulate",
]
