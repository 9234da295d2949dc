"""Small batched linear algebra for 2x2 and 3x3 matrices.

LAPACK/BLAS batch calls carry a per-matrix overhead that dominates for tiny
matrices on the CPU; broadcasting formulas are several times faster here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mm(A: Tensor, B: Tensor) -> Tensor:
    """Batched matrix product of same-batch stacks,  # [N, n, k] x [N, k, m] -> [N, n, m]"""
    return torch.bmm(A, B)


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


def _eigh3(A: Tensor, sweeps: int = 4) -> tuple[Tensor, Tensor]:
    """Cyclic Jacobi eigen-decomposition of symmetric 3x3 matrices (ascending).

    Works on the six distinct entries as contiguous ``[N]`` rows, so each
    rotation is a handful of vector operations; four sweeps reach float32
    round-off for the well-conditioned ``F^T F`` of MPM particles. Much faster
    on the CPU than batched LAPACK ``eigh`` for many tiny matrices.
    """
    a = [[A[:, i, j].contiguous() for j in range(3)] for i in range(3)]
    one, zero = torch.ones_like(a[0][0]), torch.zeros_like(a[0][0])
    V = [[one if i == j else zero for j in range(3)] for i in range(3)]
    tiny = torch.finfo(A.dtype).tiny
    for _ in range(sweeps):
        for p, q, r in ((0, 1, 2), (0, 2, 1), (1, 2, 0)):
            apq = a[p][q]
            small = apq.abs() <= tiny
            zeta = (a[q][q] - a[p][p]) / torch.where(small, one, 2.0 * apq)
            t = torch.where(zeta >= 0, one, -one) / (zeta.abs() + torch.sqrt(1.0 + zeta * zeta))
            t = torch.where(small, zero, t)
            c = torch.rsqrt(1.0 + t * t)
            s = t * c
            app, aqq = a[p][p] - t * apq, a[q][q] + t * apq
            arp, arq = c * a[r][p] - s * a[r][q], s * a[r][p] + c * a[r][q]
            a[p][p], a[q][q] = app, aqq
            a[p][q] = a[q][p] = zero
            a[r][p] = a[p][r] = arp
            a[r][q] = a[q][r] = arq
            for i in range(3):
                vp, vq = V[i][p], V[i][q]
                V[i][p], V[i][q] = c * vp - s * vq, s * vp + c * vq
    evals = torch.stack([a[0][0], a[1][1], a[2][2]], dim=-1)  # [N, 3]
    vecs = torch.stack([torch.stack(row, dim=-1) for row in V], dim=-2)  # [N, 3, 3]
    order = evals.argsort(dim=-1)
    evals = evals.gather(-1, order)
    vecs = vecs.gather(-1, order[:, None, :].expand(-1, 3, -1))
    return evals, vecs


def svd(F: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SVD ``F = U diag(S) V^T`` with ``U`` and ``V`` proper rotations.

    From the symmetric eigenproblem ``F^T F = V S^2 V^T`` (closed form in 2D,
    Jacobi sweeps in 3D), then ``U = F V S^-1``, orthonormal even when
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
        evals, V = _eigh3(FtF)
        V = V.clone()
        V[:, :, 0] *= torch.sign(det(V))[:, None]
    S = evals.clamp_min(1e-12).sqrt()
    S = torch.cat([S[:, :1] * torch.where(det(F) < 0, -1.0, 1.0).to(S.dtype)[:, None], S[:, 1:]],
                  dim=-1)
    U = mm(F, V) / S[:, None, :]
    return U, S, V.transpose(-1, -2)
