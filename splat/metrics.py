"""Image quality metrics: PSNR and SSIM as 3DGS reports them.

SSIM uses an 11x11 Gaussian window with sigma 1.5, population covariances and
``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, averaged over the pixels whose window
lies inside the image and over channels. This is exactly
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L, channel_axis=-1)``. Both functions
are differentiable, so SSIM doubles as a training loss.

LPIPS is not provided: it needs pretrained network weights, which this
project does not download.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["psnr", "ssim", "gaussian_window"]


def _check_pair(img: Tensor, ref: Tensor) -> None:
    for name, x in (("img", img), ("ref", ref)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim not in (3, 4) or x.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{name} must be [H, W, C] or [B, H, W, C] with C in (1, 3, 4), got {list(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if img.shape != ref.shape:
        raise ValueError(f"img and ref must have the same shape, got {list(img.shape)} and {list(ref.shape)}")


def _check_range(data_range: float) -> None:
    if not isinstance(data_range, (int, float)) or not data_range > 0:
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")


def psnr(img: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(L^2 / MSE)``.

    Args:
        img: ``[H, W, C]`` or ``[B, H, W, C]`` image.
        ref: reference of the same shape.
        data_range: ``L``, the span of pixel values (1 for images in ``[0, 1]``).

    Returns:
        A scalar for one image, ``[B]`` for a batch (each image on its own).
    """
    _check_pair(img, ref)
    _check_range(data_range)
    mse = ((img - ref) ** 2).flatten(-3).mean(-1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> Tensor:
    """Normalised 1-D Gaussian taps, ``[size]``."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return (w / w.sum()).to(dtype)


def _blur_valid(x: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter without padding: ``[B, C, H, W] -> [B, C, H-k+1, W-k+1]``."""
    c = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(
    img: Tensor,
    ref: Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
) -> Tensor:
    """Structural similarity with a Gaussian window (3DGS / skimage convention).

    Args:
        img: ``[H, W, C]`` or ``[B, H, W, C]`` image.
        ref: reference of the same shape.
        data_range: span of pixel values.
        window_size: odd window width (the image must be at least this big).
        sigma: standard deviation of the window.

    Returns:
        A scalar for one image, ``[B]`` for a batch; 1 for identical images.
    """
    _check_pair(img, ref)
    _check_range(data_range)
    if window_size % 2 == 0 or window_size < 3:
        raise ValueError(f"window_size must be an odd integer >= 3, got {window_size}")
    if min(img.shape[-3], img.shape[-2]) < window_size:
        raise ValueError(
            f"img must be at least {window_size}x{window_size} pixels for SSIM, got {img.shape[-3]}x{img.shape[-2]}"
        )
    single = img.ndim == 3
    x = (img[None] if single else img).permute(0, 3, 1, 2)
    y = (ref[None] if single else ref).permute(0, 3, 1, 2)
    w = gaussian_window(window_size, sigma, dtype=x.dtype).to(x.device)
    mu_x, mu_y = _blur_valid(x, w), _blur_valid(y, w)
    var_x = _blur_valid(x * x, w) - mu_x**2
    var_y = _blur_valid(y * y, w) - mu_y**2
    cov = _blur_valid(x * y, w) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    out = s.flatten(1).mean(-1)
    return out[0] if single else out

