"""Moving-point motion fields: kNN interpolation plans, local deformation gradients and the
locally affine motion they carry to other points (exact for any affine motion).

Used by the GIOROM dense query (:class:`operators.giorom.DenseQuery`), the reduced-order MPM
prior (:mod:`operators.mpm_prior`) and the splat physics (:mod:`operators.splat_physics.deform`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor


def _check_points(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != 3 or x.shape[0] == 0:
        raise ValueError(f"{name} must be [N, 3] with N >= 1, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")


@dataclass
class InterpolationPlan:
    """Neighbours and weights from source points to query points, fixed in the reference frame.

    Attributes:
        index: Tensor,  # [Q, k] source neighbours of each query point
        weight: Tensor,  # [Q, k] normalised weights (rows sum to 1)
        offset: Tensor,  # [Q, k, 3] query minus source position, reference frame
    """

    index: Tensor
    weight: Tensor
    offset: Tensor


def interpolation_plan(source: Tensor, query: Tensor, k: int = 8) -> InterpolationPlan:
    """kNN plan with Gaussian-kernel weights (width: the mean neighbour distance).

    Args:
        source: Tensor,  # [N, 3] reference positions of the moving points
        query: Tensor,  # [Q, 3] reference positions to carry along
        k: neighbours per query point (at most N).
    """
    _check_points("source", source)
    _check_points("query", query)
    k = int(min(k, source.shape[0]))
    tree = cKDTree(source.detach().double().numpy())
    dist, idx = tree.query(query.detach().double().numpy(), k=k)
    dist, idx = dist.reshape(len(query), k), idx.reshape(len(query), k)
    h = max(float(np.mean(dist)), 1e-12)
    w = np.exp(-0.5 * (dist / h) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    index = torch.from_numpy(idx).long()
    offset = (query[:, None, :].double() - source.double()[index]).float()
    return InterpolationPlan(index, torch.from_numpy(w).float(), offset)


@dataclass
class GradientPlan:
    """What the deformation gradients of a point set need from its reference configuration.

    Attributes:
        index: Tensor,  # [N, k] reference neighbours of each point (itself excluded)
        weight: Tensor,  # [N, k] float64 weights
        offset: Tensor,  # [N, k, 3] float64 neighbour minus point, reference frame
        inverse: Tensor,  # [N, 3, 3] float64 ``(Σ w dX dXᵀ)⁻¹``
    """

    index: Tensor
    weight: Tensor
    offset: Tensor
    inverse: Tensor

    @property
    def n_points(self) -> int:
        return self.index.shape[0]


def gradient_plan(reference: Tensor, k: int = 12) -> GradientPlan:
    """The neighbours and normal matrices of :func:`local_deformation_gradients`, computed once
    for a reference configuration (``reference``: Tensor [N, 3], N >= 4)."""
    _check_points("reference", reference)
    n = reference.shape[0]
    if n < 4:
        raise ValueError(f"at least 4 points are needed for deformation gradients, got {n}")
    plan = interpolation_plan(reference, reference, k=min(k + 1, n))
    idx, w = plan.index[:, 1:], plan.weight[:, 1:].double()  # drop the point itself
    ref = reference.double()
    dX = ref[idx] - ref[:, None, :]  # neighbour minus point, [N, k, 3]
    A = torch.einsum("nk,nki,nkj->nij", w, dX, dX)
    A = A + 1e-9 * A.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None] * torch.eye(3, dtype=A.dtype)
    return GradientPlan(idx, w, dX, torch.linalg.inv(A))


def deformation_gradients(plan: GradientPlan, current: Tensor) -> Tensor:
    """Deformation gradients ``[..., N, 3, 3]`` (float64) of the points of ``plan`` at ``current``
    (Tensor [N, 3] or [T, N, 3])."""
    if current.shape[-2:] != (plan.n_points, 3):
        raise ValueError(f"current must be [..., {plan.n_points}, 3], got {tuple(current.shape)}")
    cur = current.double()
    dx = cur[..., plan.index, :] - cur[..., :, None, :]  # [..., N, k, 3]
    B = torch.einsum("nk,...nki,nkj->...nij", plan.weight, dx, plan.offset)
    return B @ plan.inverse


def local_deformation_gradients(reference: Tensor, current: Tensor, k: int = 12) -> Tensor:
    """Deformation gradient of the motion ``reference -> current`` at every point.

    A weighted least-squares fit over each point's ``k`` nearest reference
    neighbours: ``F = (Σ w dx dXᵀ)(Σ w dX dXᵀ)⁻¹`` with ``dX``/``dx`` the
    neighbour offsets before/after. Exact for any affine motion. For many
    motions of one reference, :func:`gradient_plan` once and
    :func:`deformation_gradients` per motion.

    Args:
        reference: Tensor,  # [N, 3]
        current: Tensor,  # [N, 3] or [T, N, 3]

    Returns:
        Tensor,  # [N, 3, 3] or [T, N, 3, 3] (float64)
    """
    _check_points("reference", reference)
    if current.shape[-2:] != reference.shape:
        raise ValueError(f"current must be [..., {reference.shape[0]}, 3], got {tuple(current.shape)}")
    return deformation_gradients(gradient_plan(reference, k), current)


def interpolate_motion(plan: InterpolationPlan, current: Tensor, gradients: Tensor) -> tuple[Tensor, Tensor]:
    """Positions and deformation gradients at the query points of ``plan``.

    Each query point follows the locally affine motion of its neighbours,
    ``x_q = Σ_j w_j (x_j + F_j (X_q - X_j))``, and gets ``F_q = Σ_j w_j F_j``.

    Args:
        plan: from :func:`interpolation_plan` (source = the moving points).
        current: Tensor,  # [N, 3] current source positions
        gradients: Tensor,  # [N, 3, 3] their deformation gradients

    Returns:
        (Tensor [Q, 3], Tensor [Q, 3, 3]) in float32.
    """
    F = gradients.float()[plan.index]  # [Q, k, 3, 3]
    x = current.float()[plan.index] + (F * plan.offset[..., None, :]).sum(-1)
    w = plan.weight[..., None]
    return (w * x).sum(1), (w[..., None] * F).sum(1)
