"""The frequency-modulated loss of GES: a band-pass mask whose band moves from low to high frequency.

At a fraction ``t`` of the fit the mask is the normalised magnitude of a
difference of Gaussians (DoG, standard deviations ``sigma`` and ``2 sigma``)
of the ground truth's luminance, with ``sigma`` moving geometrically from a
coarse band (a fraction of the shorter image side) to a fine one (in
pixels)::

    sigma(t) = sigma_coarse * (sigma_fine / sigma_coarse) ** t

Early on the mask picks out large structures (object outlines, shading
boundaries), late in the fit fine texture and edges. The loss term is the
L1 error weighted by the mask (a weighted mean, so its size does not depend
on how much of the image the band covers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["band_sigma", "gaussian_blur", "dog_mask", "masked_l1"]


def band_sigma(step: int, total_steps: int, coarse_px: float, fine_px: float) -> float:
    """Pixel sigma of the DoG band at ``step`` (geometric from ``coarse_px`` to ``fine_px``).

    >>> band_sigma(0, 11, 8.0, 0.5), band_sigma(10, 11, 8.0, 0.5)
    (8.0, 0.5)
    """
    if not (coarse_px > 0 and fine_px > 0):
        raise ValueError(f"band sigmas must be > 0, got coarse {coarse_px}, fine {fine_px}")
    t = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    return coarse_px * (fine_px / coarse_px) ** t


def _kernel_1d(sigma: float, dtype, device) -> Tensor:  # [K], sums to 1
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(gray: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with replicate padding.

    Args:
        gray: Tensor,  # [C, 1, H, W]
        sigma: standard deviation in pixels (> 0).

    Returns:
        Tensor,  # [C, 1, H, W]
    """
    k = _kernel_1d(sigma, gray.dtype, gray.device).tolist()
    r = len(k) // 2
    h, w = gray.shape[-2:]
    # weighted sums of shifted slices: faster on the CPU than a one-channel conv2d
    padded = F.pad(gray, (r, r, 0, 0), mode="replicate")
    out = sum(weight * padded[..., i : i + w] for i, weight in enumerate(k))
    padded = F.pad(out, (0, 0, r, r), mode="replicate")
    return sum(weight * padded[..., i : i + h, :] for i, weight in enumerate(k))


@torch.no_grad()
def dog_mask(images: Tensor, sigma: float) -> Tensor:
    """``|G_sigma * Y - G_2sigma * Y|`` of the luminance ``Y``, scaled to ``[0, 1]`` per image.

    Wide bands are computed on a downsampled image (by the largest power of
    two not above ``sigma``) and upsampled bilinearly, so the cost does not
    grow with the band.

    Args:
        images: Tensor,  # [C, H, W, 3] in [0, 1]
        sigma: the band's inner standard deviation in pixels (> 0).

    Returns:
        Tensor,  # [C, H, W]
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a [C, H, W, 3] tensor, got {got}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = images.shape[1:3]
    gray = images.mean(dim=-1)[:, None]  # [C, 1, H, W]
    factor = 2 ** int(math.floor(math.log2(max(sigma, 1.0))))
    factor = max(1, min(factor, h // 4, w // 4))
    if factor > 1:
        gray = F.avg_pool2d(gray, factor, ceil_mode=True)
    s = sigma / factor
    band = (gaussian_blur(gray, s) - gaussian_blur(gray, 2.0 * s)).abs()
    if factor > 1:
        band = F.interpolate(band, size=(h, w), mode="bilinear", align_corners=False)
    band = band[:, 0]
    return band / band.amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)


def masked_l1(render: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mask-weighted mean absolute error: ``sum(M |r - t|) / (3 sum(M))``.

    Args:
        render: Tensor,  # [C, H, W, 3]
        target: Tensor,  # [C, H, W, 3]
        mask: Tensor,  # [C, H, W] in [0, 1]
    """
    err = (render - target).abs().sum(dim=-1)  # [C, H, W]
    return (mask * err).sum() / (3.0 * mask.sum().clamp_min(1e-8))
