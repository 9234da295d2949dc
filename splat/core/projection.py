"""EWA projection of 3D Gaussians to image-space 2D Gaussians (pure PyTorch).

Every backend shares this step; it follows gsplat's pinhole projection
(``fully_fused_projection`` with ``packed=False``) and is differentiable
w.r.t. means, quats, scales and viewmats through autograd.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from splat.core.quaternion import quat_to_rotmat
from splat.core.validation import check_positive_int, check_shape, check_tensor

# A 2D Gaussian is drawn where its alpha reaches 1/255 (the compositing threshold).
ALPHA_THRESHOLD = 1.0 / 255.0
# Radii cover 3.33 standard deviations, as gsplat.
RADIUS_SIGMAS = 3.33
# The Jacobian is evaluated no further off-axis than 1.3x the half field of view.
FOV_CLAMP_MARGIN = 0.3


class Projection(NamedTuple):
    """Projected Gaussians, ``[C, N, ...]`` per camera (gsplat's unpacked layout)."""

    radii: Tensor  # [C, N, 2] int32, 0 when culled
    means2d: Tensor  # [C, N, 2] pixel coordinates
    depths: Tensor  # [C, N] camera-space z
    conics: Tensor  # [C, N, 3] inverse 2D covariance (a, b, c)
    compensations: Optional[Tensor]  # [C, N] or None


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariances ``R S S^T R^T``.

    Args:
        quats: Tensor,  # [..., 4] wxyz
        scales: Tensor,  # [..., 3] standard deviations along the local axes

    Returns:
        Tensor,  # [..., 3, 3]
    """
    M = quat_to_rotmat(quats) * scales.unsqueeze(-2)  # R @ diag(s)
    return M @ M.transpose(-1, -2)


def world_to_camera(
    means: Tensor,  # [N, 3]
    covars: Tensor,  # [N, 3, 3]
    viewmats: Tensor,  # [C, 4, 4]
) -> tuple[Tensor, Tensor]:
    """Moves means and covariances into each camera's frame.

    Returns:
        means_c: Tensor,  # [C, N, 3]
        covars_c: Tensor,  # [C, N, 3, 3]
    """
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covars, R)
    return means_c, covars_c


def perspective_project(
    means_c: Tensor,  # [C, N, 3]
    covars_c: Tensor,  # [C, N, 3, 3]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:
    """Pinhole projection of means and the EWA (local affine) projection of covariances.

    The Jacobian is evaluated at the mean with x/z and y/z clamped to the image's
    half field of view plus 30% on each side, as gsplat, so Gaussians far off
    screen do not blow up.

    Returns:
        means2d: Tensor,  # [C, N, 2] pixels
        covars2d: Tensor,  # [C, N, 2, 2]
    """
    x, y, z = means_c.unbind(-1)  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    margin_x = FOV_CLAMP_MARGIN * 0.5 * width / fx
    margin_y = FOV_CLAMP_MARGIN * 0.5 * height / fy
    tx = z * torch.clamp(x / z, min=-(cx / fx + margin_x), max=(width - cx) / fx + margin_x)
    ty = z * torch.clamp(y / z, min=-(cy / fy + margin_y), max=(height - cy) / fy + margin_y)
    zero = torch.zeros_like(z)
    J = torch.stack(
        [fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], dim=-1
    ).reshape(z.shape + (2, 3))
    covars2d = J @ covars_c @ J.transpose(-1, -2)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    return means2d, covars2d


def _check_inputs(means, quats, scales, viewmats, Ks, width, height, opacities) -> None:
    for name, value in (("means", means), ("quats", quats), ("scales", scales), ("viewmats", viewmats), ("Ks", Ks)):
        check_tensor(name, value)
    check_shape("means", means, (None, 3), "[N, 3]")
    N = means.shape[0]
    check_shape("quats", quats, (N, 4), f"[N, 4] with N={N} (from means)")
    check_shape("scales", scales, (N, 3), f"[N, 3] with N={N} (from means)")
    check_shape("viewmats", viewmats, (None, 4, 4), "[C, 4, 4]")
    check_shape("Ks", Ks, (viewmats.shape[0], 3, 3), f"[C, 3, 3] with C={viewmats.shape[0]} (from viewmats)")
    if opacities is not None:
        check_tensor("opacities", opacities)
        check_shape("opacities", opacities, (N,), f"[N] with N={N} (from means)")
    check_positive_int("width", width)
    check_positive_int("height", height)


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    opacities: Optional[Tensor] = None,  # [N]
    calc_compensations: bool = False,
) -> Projection:
    """Projects 3D Gaussians into every camera, with gsplat's culling rules.

    Steps: covariance from quaternion and scale; world to camera; EWA projection;
    ``eps2d`` added to the 2D covariance diagonal (the antialiasing compensation
    ``sqrt(det(S) / det(S + eps2d I))`` is returned if asked); conic = inverse 2D
    covariance; per-axis radius ``ceil(3.33 * sigma)``. When ``opacities`` is
    given the radius is tightened to where the alpha can still reach 1/255
    (gsplat's CUDA projection does this), and Gaussians too faint to ever
    reach it are culled. A culled Gaussian (behind the near plane, beyond the
    far plane, degenerate, radius <= ``radius_clip``, or off screen) gets radii
    0; its other outputs are still computed.

    Returns:
        :class:`Projection` ``(radii, means2d, depths, conics, compensations)``.

    Raises:
        TypeError, ValueError: a tensor of the wrong kind or shape, or a bad size.
    """
    _check_inputs(means, quats, scales, viewmats, Ks, width, height, opacities)
    return project_gaussians_unchecked(
        means, quats, scales, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
        far_plane=far_plane, radius_clip=radius_clip, opacities=opacities, calc_compensations=calc_compensations,
    )  # fmt: skip


def project_gaussians_unchecked(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    opacities: Optional[Tensor] = None,
    calc_compensations: bool = False,
) -> Projection:
    """:func:`project_gaussians` without the argument checks, for callers that validated already."""
    covars = covariance_3d(quats, scales)
    means_c, covars_c = world_to_camera(means, covars, viewmats)
    depths = means_c[..., 2]
    # Culled-by-depth Gaussians are projected from z = 1 instead, so that a
    # Gaussian at z = 0 yields no inf (and no NaN gradient through 0 * inf).
    in_front = ((depths >= near_plane) & (depths > 0)).unsqueeze(-1)
    unit_z = torch.cat([means_c[..., :2], torch.ones_like(means_c[..., 2:])], dim=-1)
    safe_means_c = torch.where(in_front, means_c, unit_z)
    means2d, cov2d = perspective_project(safe_means_c, covars_c, Ks, width, height)

    det_orig = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    det_raw = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    det = det_raw.clamp(min=1e-10)
    compensations = None
    if calc_compensations:
        ratio = det_orig / det
        positive = ratio > 0
        # The double where keeps the gradient finite where the ratio is clamped to 0.
        compensations = torch.where(positive, torch.sqrt(torch.where(positive, ratio, 1.0)), 0.0)
    conics = torch.stack(
        [
            cov2d[..., 1, 1] / det,
            -0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]) / det,
            cov2d[..., 0, 0] / det,
        ],
        dim=-1,
    )

    with torch.no_grad():
        extend = torch.full_like(depths, RADIUS_SIGMAS)
        visible = (det_raw > 0) & (depths >= near_plane) & (depths <= far_plane)
        if opacities is not None:
            opac = opacities.detach().expand_as(depths)
            if compensations is not None:
                opac = opac * compensations.detach()
            visible &= opac >= ALPHA_THRESHOLD
            # alpha >= 1/255 only where sigma <= log(opacity * 255).
            reach = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
            extend = torch.minimum(extend, reach)
        sigmas = torch.sqrt(torch.diagonal(cov2d, dim1=-2, dim2=-1).clamp(min=0))  # [C, N, 2]
        radius = torch.ceil(extend[..., None] * sigmas)
        visible &= (radius > radius_clip).any(dim=-1)
        m = means2d.detach()
        visible &= (m[..., 0] + radius[..., 0] > 0) & (m[..., 0] - radius[..., 0] < width)
        visible &= (m[..., 1] + radius[..., 1] > 0) & (m[..., 1] - radius[..., 1] < height)
        radii = torch.where(visible[..., None], radius, torch.zeros_like(radius)).to(torch.int32)
    return Projection(radii, means2d, depths, conics, compensations)
