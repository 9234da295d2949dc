"""Carrying a particle motion to Gaussians: the covariance update ``Σ' = F Σ Fᵀ`` (as
PhysGaussian) under the local deformation gradients of :mod:`operators.deformation`.

Everything here is expressed in one frame of reference (the simulation box);
:mod:`operators.splat_physics.particles` maps to and from the splat's world.
"""

from __future__ import annotations

import itertools
import torch
from torch import Tensor

from operators.mpm.linalg import det, svd
from splat.core.quaternion import quat_to_rotmat, rotmat_to_quat

_PERMS = torch.tensor(list(itertools.permutations(range(3))))  # [6, 3]


def transform_covariances(quats: Tensor, scales: Tensor, F: Tensor) -> tuple[Tensor, Tensor]:
    """Rotations and scales of the Gaussians after a deformation ``F``: ``Σ' = F Σ Fᵀ``.

    ``M = F R S = U diag(s) Vᵀ`` gives ``Σ' = M Mᵀ = U diag(s²) Uᵀ``; the
    columns of ``U`` are ordered and signed to follow the deformed axes
    ``F R``, so ``F = I`` returns the input axes and a smooth motion gives
    smoothly varying quaternions. Computed in float32, or float64 if any input is.

    Args:
        quats: Tensor,  # [G, 4] wxyz (need not be unit)
        scales: Tensor,  # [G, 3] standard deviations (activated)
        F: Tensor,  # [G, 3, 3]

    Returns:
        (quats Tensor [G, 4] unit wxyz, scales Tensor [G, 3]) in the dtype of ``scales``.
    """
    g = quats.shape[0]
    if quats.shape != (g, 4) or scales.shape != (g, 3) or F.shape != (g, 3, 3):
        raise ValueError(f"expected quats [G, 4], scales [G, 3], F [G, 3, 3]; got {tuple(quats.shape)}, "
                         f"{tuple(scales.shape)}, {tuple(F.shape)}")
    if g == 0:
        return quats.clone(), scales.clone()
    dtype = torch.promote_types(torch.promote_types(quats.dtype, scales.dtype),
                                torch.promote_types(F.dtype, torch.float32))
    Fd = F.to(dtype)
    R = quat_to_rotmat(quats.to(dtype))
    target = Fd @ R  # the input axes carried by F
    M = target * scales.to(dtype)[:, None, :]
    U, s, _ = svd(M)
    s = s.abs()
    D = (target.transpose(-1, -2) @ U).abs()  # D[i, j] = |<target axis i, U axis j>|
    score = torch.stack([D[:, [0, 1, 2], p].sum(-1) for p in _PERMS.tolist()], dim=-1)  # [G, 6]
    perm = _PERMS[score.argmax(-1)]  # [G, 3]
    U = U.gather(2, perm[:, None, :].expand(-1, 3, -1))
    s = s.gather(1, perm)
    sign = torch.sign((target * U).sum(1))
    sign[sign == 0] = 1
    U = U * sign[:, None, :]
    flip = det(U) < 0  # only for degenerate alignments: flip the least aligned axis
    if flip.any():
        worst = (target * U).sum(1).abs().argmin(-1)
        U[flip, :, worst[flip]] *= -1
    q = rotmat_to_quat(U)
    q = torch.where(((q * torch.nn.functional.normalize(quats.to(dtype), dim=-1)).sum(-1) < 0)[:, None], -q, q)
    return q.to(scales.dtype), s.to(scales.dtype)


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """``Σ = R S² Rᵀ`` of Gaussians,  # [G, 3, 3] (float64)"""
    R = quat_to_rotmat(quats.double())
    return (R * scales.double()[:, None, :] ** 2) @ R.transpose(-1, -2)
