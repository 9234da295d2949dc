"""Projection of a per-particle field onto each object's affine field.

A falling jelly moves almost as a rigid body (the best rigid fit of its
initial shape follows MPM to ~1 % of its size over 50 frames); a learned
per-particle acceleration residual, fitted on a few thousand windows, adds
uncorrelated per-particle noise that tears and drifts the object.
:func:`project_affine` keeps only the part of a field ``f(x)`` that is affine
in the position over each object, ``a + B (x - c)`` (12 numbers in 3-D:
translation, rotation, stretch and shear), a reduced-order output that
averages the network's prediction over all of an object's particles.
"""

from __future__ import annotations

import torch
from torch import Tensor


def project_affine(values: Tensor, positions: Tensor, batch: Tensor | None = None,
                   ridge: float = 1e-6) -> Tensor:
    """Least-squares affine fit of ``values`` over the positions of each object.

    Args:
        values: Tensor,  # [N, k] the field to project (e.g. accelerations)
        positions: Tensor,  # [N, d] where it is sampled
        batch: Tensor | None,  # [N] object index of each particle (None: one object)
        ridge: Tikhonov term (relative to the mean squared spread) that keeps flat or
            tiny objects well posed; an object of one particle gets its own value back.

    Returns:
        Tensor,  # [N, k] the affine field ``a + B (x - c)`` of each object at its particles
    """
    if values.ndim != 2 or positions.ndim != 2 or values.shape[0] != positions.shape[0]:
        raise ValueError(f"values [N, k] and positions [N, d] must match, got {tuple(values.shape)} "
                         f"and {tuple(positions.shape)}")
    n, d = positions.shape
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=positions.device)
    n_obj = int(batch.max()) + 1 if n else 0
    count = torch.zeros(n_obj, device=positions.device, dtype=positions.dtype).index_add_(
        0, batch, torch.ones_like(positions[:, 0])).clamp_min(1)[:, None]
    centre = torch.zeros(n_obj, d, device=positions.device, dtype=positions.dtype).index_add_(
        0, batch, positions) / count
    mean = torch.zeros(n_obj, values.shape[1], device=values.device, dtype=values.dtype).index_add_(
        0, batch, values) / count
    p = positions - centre[batch]  # [N, d]
    dv = values - mean[batch]  # [N, k]
    cov = torch.zeros(n_obj, d, d, device=p.device, dtype=p.dtype).index_add_(
        0, batch, p[:, :, None] * p[:, None, :])  # [O, d, d]
    cross = torch.zeros(n_obj, d, values.shape[1], device=p.device, dtype=p.dtype).index_add_(
        0, batch, p[:, :, None] * dv[:, None, :])  # [O, d, k]
    scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)  # [O]
    eye = torch.eye(d, device=p.device, dtype=p.dtype)
    coef = torch.linalg.solve(cov + (ridge * scale)[:, None, None] * eye, cross)  # [O, d, k]
    return mean[batch] + torch.einsum("nd,ndk->nk", p, coef[batch])
