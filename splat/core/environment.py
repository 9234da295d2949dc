"""An environment behind the Gaussians: a spherical-harmonic colour of the ray direction.

Each pixel of a render made over black gets ``(1 - alpha) * env(d)``, with
``d`` the pixel's world-space ray direction and
``env(d) = max(SH(d) . coeffs + 0.5, 0)`` (the colour convention of the
Gaussians' own SH). Pure maths on tensors: learning the coefficients lives in
:mod:`splat.methods.background`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.core.sh import spherical_harmonics

__all__ = ["pixel_directions", "environment_colors", "over_environment"]


def pixel_directions(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """World-space unit ray directions through every pixel centre.

    Args:
        viewmats: Tensor,  # [C, 4, 4] world-to-camera (OpenCV axes)
        Ks: Tensor,  # [C, 3, 3] intrinsics in pixels
        width: image width.
        height: image height.

    Returns:
        Tensor,  # [C, H, W, 3]
    """
    device, dtype = viewmats.device, viewmats.dtype
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype) + 0.5,
                          torch.arange(width, device=device, dtype=dtype) + 0.5, indexing="ij")
    fx, fy = Ks[:, 0, 0, None, None], Ks[:, 1, 1, None, None]
    cx, cy = Ks[:, 0, 2, None, None], Ks[:, 1, 2, None, None]
    x, y = (u - cx) / fx, (v - cy) / fy  # [C, H, W] each
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    rot = viewmats[:, :3, :3].detach()  # [C, 3, 3]; the camera-to-world rotation is its transpose
    world = torch.einsum("cji,chwj->chwi", rot, cam)
    return torch.nn.functional.normalize(world, dim=-1)


def environment_colors(coeffs: Tensor, dirs: Tensor, degree: int) -> Tensor:
    """``max(SH(dirs) . coeffs + 0.5, 0)``: ``coeffs [K, 3]``, ``dirs [..., 3]`` -> ``[..., 3]``."""
    return (spherical_harmonics(degree, dirs, coeffs) + 0.5).clamp_min(0.0)


def over_environment(render: Tensor, alphas: Tensor, coeffs: Tensor, degree: int, viewmats: Tensor,
                     Ks: Tensor) -> Tensor:
    """Composites ``render [C, H, W, 3]`` (rendered over black) over the environment.

    Args:
        render: Tensor,  # [C, H, W, 3] premultiplied colour over a black background
        alphas: Tensor,  # [C, H, W, 1] accumulated opacity
        coeffs: Tensor,  # [K, 3] SH coefficients, K >= (degree + 1)**2
        degree: SH degree used.
        viewmats: Tensor,  # [C, 4, 4]
        Ks: Tensor,  # [C, 3, 3]

    Returns:
        Tensor,  # [C, H, W, 3]

    >>> import torch
    >>> K = torch.tensor([[[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]]])
    >>> black, alpha = torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2, 1)
    >>> grey = torch.zeros(1, 3)  # degree 0: SH . 0 + 0.5 everywhere
    >>> over_environment(black, alpha, grey, 0, torch.eye(4)[None], K)[0, 0, 0].tolist()
    [0.5, 0.5, 0.5]
    """
    c, h, w = render.shape[:3]
    dirs = pixel_directions(viewmats, Ks, w, h)
    return render + (1.0 - alphas) * environment_colors(coeffs, dirs, degree)
