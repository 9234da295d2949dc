"""Small batched linear algebra for 2x2 and 3x3 matrices.

LAPACK/BLAS batch calls carry a per-matrix overhead that dominates for tiny
matrices on the CPU; broadcasting formulas are several times faster here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mm(A: Tensor, B: Tensor) -> Tensor:
    """Batched matrix product by broadcasting,  # [..., n, k] x [..., k, m] -> [..., n, m]"""
    return (A.unsqueeze(-1) * B.unsqueeze(-3)).sum(-2)


def det(F: Tensor) -> Tensor:
    """Determinant of ``[..., d, d]`` matrices, d in {2, 3},  # [...]"""
    if F.shape[-1] == 2:
        return F[..., 0, 0] * F[..., 1, 1] - F[..., 0, 1] * F[..., 1, 0]
    return (F[..., 0, 0] * (F[..., 1, 1] * F[..., 2, 2] - F[..., 1, 2] * F[..., 2, 1])
            - F[..., 0, 1] * (F[..., 1, 0] * F[..., 2, 2] - F[..., 1, 2] * F[..., 2, 0])
            + F[..., 0, 2] * (F[..., 1, 0] * F[..., 2, 1] - F[..., 1, 1] * F[..., 2, 0]))


def _eigh2(A: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form eigen-decomposition of symmetric 2x2 matrices (ascending)."""
    a, b, c = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
    mean = 0.5 * (a + c)
    r = torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    evals = torch.stack([mean - r, mean + r], dim=-1)
    theta = 0.5 * torch.atan2(2.0 * b, a - c)  # angle of the largest eigenvector
    cs, sn = torch.cos(theta), torch.sin(theta)
    V = torch.stack([torch.stack([sn, -cs], -1), torch.stack([cs, sn], -1)], dim=-1)
    return evals, V  # columns: eigenvectors for evals[0], evals[1]


def svd(F: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SVD ``F = U diag(S) V^T`` with ``U`` and ``V`` proper rotations.

    From the symmetric eigenproblem ``F^T F = V S^2 V^T`` (closed form in 2D,
    batched ``eigh`` in 3D), then ``U = F V S^-1``, orthonormal even when
    singular values coincide. An inversion (``det F < 0``) is carried by a
    negative smallest singular value.

    Args:
        F: matrices,  # [N, d, d]

    Returns:
        ``(U [N, d, d], S [N, d], Vh [N, d, d])``, ``S[:, 0]`` the smallest.
    """
    FtF = mm(F.transpose(-1, -2), F)
    if F.shape[-1] == 2:
        evals, V = _eigh2(FtF)
    else:
        evals, V = torch.linalg.eigh(FtF)
        V = V.clone()
        V[:, :, 0] *= torch.sign(det(V))[:, None]
    S = evals.clamp_min(1e-12).sqrt()
    S = torch.cat([S[:, :1] * torch.where(det(F) < 0, -1.0, 1.0).to(S.dtype)[:, None], S[:, 1:]],
                  dim=-1)
    U = mm(F, V) / S[:, None, :]
    return U, S, V.transpose(-1, -2)
