"""A learned background: a low-degree spherical-harmonic colour of the viewing direction.

Scenes without a known background (a sky, distant surroundings) would
otherwise have to be painted by Gaussians that sit far away and are seen by
few views. Here the Gaussians are rendered over black and every pixel adds
``(1 - alpha) * env(d)``, where ``d`` is the pixel's world-space ray
direction and ``env(d) = max(SH(d) . coeffs + 0.5, 0)`` (the colour
convention of the Gaussians' own SH). Degree 0 is one learned colour; degree
2 also models a sky whose colour changes with elevation and azimuth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.core.sh import num_sh_bases, spherical_harmonics

__all__ = ["pixel_directions", "environment_colors", "over_environment", "init_environment"]


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
    """
    c, h, w = render.shape[:3]
    dirs = pixel_directions(viewmats, Ks, w, h)
    return render + (1.0 - alphas) * environment_colors(coeffs, dirs, degree)


def init_environment(degree: int, color=(0.5, 0.5, 0.5)) -> Tensor:
    """SH coefficients ``[K, 3]`` of a uniform environment of ``color``."""
    from splat.core.sh import SH_C0

    coeffs = torch.zeros(num_sh_bases(degree), 3)
    coeffs[0] = (torch.as_tensor(color, dtype=torch.float32) - 0.5) / SH_C0
    return coeffs
