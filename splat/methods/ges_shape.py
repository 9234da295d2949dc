"""The GES shape parameter and its effective-scale mapping on a Gaussian rasterizer.

A generalized exponential (GEF) primitive has, along each principal axis,
the profile ``exp(-1/2 |x / a|^beta)``: ``beta = 2`` is the 3DGS Gaussian of
standard deviation ``a``, ``beta < 2`` is peaked with heavy tails (``1``:
Laplacian), ``beta > 2`` flat-topped with a sharp fall-off (``-> inf``: a box
of half-width ``a``). The stock rasterizer only draws Gaussians, so each GEF
is drawn as the Gaussian of the same second moment (the same spread): its
standard deviation is ``a * rho(beta)`` with

    rho(beta) = sqrt(2^(2 / beta) * Gamma(3 / beta) / Gamma(1 / beta))

``rho(2) = 1``; ``rho`` falls towards ``1 / sqrt(3)`` as ``beta`` grows (a box
is narrower than its half-width) and grows without bound as ``beta -> 0``
(``rho(1) = 2 sqrt(2)``, ``rho(0.5) ~ 43.8``), so a heavy-tailed primitive can
cover a wide, smooth region on its own. The kernel drawn stays a Gaussian:
what the shape changes is the footprint, not the profile.

The raw per-Gaussian parameter ``s`` (``gaussians.params["shape"]``, ``[N]``)
is ``log(beta / 2)``, so ``s = 0`` is the Gaussian; ``beta`` is clamped to
``[beta_min, beta_max]`` before the mapping (the gradient stops there).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from splat.core.gaussians import Gaussians

__all__ = [
    "SHAPE_KEY", "shape_to_beta", "beta_to_shape", "gef_scale_factor", "shape_factor", "effective_scales",
    "collapsed", "reset_shapes", "folded_scales",
]

SHAPE_KEY = "shape"


def shape_to_beta(shape: Tensor, beta_min: float = 0.5, beta_max: float = 16.0) -> Tensor:
    """``beta = 2 exp(shape)`` clamped to ``[beta_min, beta_max]``.

    Args:
        shape: Tensor,  # [N] raw shape parameters
        beta_min: smallest ``beta`` used (> 0).
        beta_max: largest ``beta`` used (>= beta_min).

    Returns:
        Tensor,  # [N]
    """
    return (2.0 * torch.exp(shape)).clamp(beta_min, beta_max)


def beta_to_shape(beta: float) -> float:
    """Raw shape value of a given ``beta`` (inverse of :func:`shape_to_beta` inside the clamp)."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return math.log(beta / 2.0)


def gef_scale_factor(beta: Tensor) -> Tensor:
    """``rho(beta)``: standard deviation of ``exp(-|x/a|^beta / 2)`` in units of ``a``.

    >>> round(float(gef_scale_factor(torch.tensor(2.0))), 6)
    1.0

    Args:
        beta: Tensor,  # [N] shape exponents (> 0)

    Returns:
        Tensor,  # [N] in (1 / sqrt(3), inf), decreasing in beta
    """
    def log_rho(b: Tensor) -> Tensor:
        inv = 1.0 / b
        return 0.5 * (2.0 * inv * math.log(2.0) + torch.lgamma(3.0 * inv) - torch.lgamma(inv))

    # divided by its own value at 2 (1 up to rounding), so beta = 2 gives exactly 1: plain 3DGS
    return torch.exp(log_rho(beta)) / torch.exp(log_rho(beta.new_tensor(2.0)))


def shape_factor(shape: Tensor, beta_min: float = 0.5, beta_max: float = 16.0) -> Tensor:
    """Scale multiplier of each primitive: ``rho(shape_to_beta(shape))``.

    Returns:
        Tensor,  # [N]; 1 at shape 0, in [rho(beta_max), rho(beta_min)]
    """
    return gef_scale_factor(shape_to_beta(shape, beta_min, beta_max))


def effective_scales(gaussians: Gaussians, beta_min: float = 0.5, beta_max: float = 16.0) -> Tensor:
    """Activated scales times each primitive's shape factor (what is rasterized).

    Returns:
        Tensor,  # [N, 3]

    Raises:
        ValueError: if the Gaussians have no ``shape`` entry.
    """
    if SHAPE_KEY not in gaussians.params:
        raise ValueError(f"gaussians have no {SHAPE_KEY!r} parameter; entries: {list(gaussians.params)}")
    return gaussians.scales * shape_factor(gaussians.params[SHAPE_KEY], beta_min, beta_max)[:, None]


def collapsed(shape: Tensor, beta_collapse: float) -> Tensor:
    """Primitives whose shape has collapsed towards a spike: ``beta <= beta_collapse``.

    Their moment-matched Gaussian is a wide, faint haze that stands for no
    surface; GES prunes them.

    Returns:
        Tensor,  # [N] bool
    """
    return 2.0 * torch.exp(shape.detach()) <= beta_collapse


@torch.no_grad()
def reset_shapes(gaussians: Gaussians, optimizers: dict, keep_footprint: bool = True,
                 beta_min: float = 0.5, beta_max: float = 16.0) -> None:
    """Sets every shape back to the Gaussian (``beta = 2``) and clears its Adam moments.

    Args:
        gaussians: Gaussians with a ``shape`` entry.
        optimizers: the fit's optimizers (``"shape"`` and ``"scales"`` states are edited).
        keep_footprint: fold the current factor into the raw scales first, so
            the rendered image does not change; False drops it (the footprint
            jumps back to the raw scale, as an opacity reset does to opacity).
    """
    shape = gaussians.params[SHAPE_KEY]
    if keep_footprint:
        log_factor = torch.log(shape_factor(shape.detach(), beta_min, beta_max))[:, None]
        gaussians.params["scales"].data.add_(log_factor)
    shape.data.zero_()
    opt = optimizers.get(SHAPE_KEY)
    if opt is not None:
        for state in opt.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor) and value.ndim:
                    value.zero_()


@contextmanager
def folded_scales(gaussians: Gaussians, beta_min: float = 0.5, beta_max: float = 16.0) -> Iterator[None]:
    """Inside the block ``params["scales"]`` hold the effective (shape-folded) log-scales.

    Density control written for plain Gaussians (split sizes, clone/split
    choice, pruning of oversized primitives) then acts on the footprint that
    is rendered. On exit the factor of each primitive's (possibly new or
    copied) shape is divided out again, so rows added inside the block must
    carry their parent's shape.
    """
    with torch.no_grad():
        gaussians.params["scales"].data.add_(
            torch.log(shape_factor(gaussians.params[SHAPE_KEY], beta_min, beta_max))[:, None])
    try:
        yield
    finally:
        with torch.no_grad():
            gaussians.params["scales"].data.sub_(
                torch.log(shape_factor(gaussians.params[SHAPE_KEY], beta_min, beta_max))[:, None])
