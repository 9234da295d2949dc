"""The appearance error splatted back onto the Gaussians through the blending weights.

A Gaussian's appearance error is ``e_i = sum_p err_p * w_ip``: the per-pixel
loss ``err_p`` integrated over its footprint with its blending weight
``w_ip = alpha_ip * T_ip``; its footprint weight is ``W_i = sum_p w_ip``, so
``e_i / W_i`` is the mean error of the pixels it draws. Both come from
autograd at the cost of two extra colour channels: every Gaussian gets two
more colours ``z_i = (0, 0)`` (a leaf that requires grad), the rasterizer
composites them into channels ``Z_p = sum_i z_i w_ip`` (zero everywhere), and
``sum_p (err_p Z_p0 + Z_p1)`` is added to the loss. That adds nothing to the
loss or to any other gradient (every ``z_i`` is zero) while
``dL/dz_i = (e_i, W_i)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from splat.core.rasterization import _gaussian_colors

__all__ = ["CHANNELS", "add_error_channel", "relative_error", "splatted_error"]


CHANNELS = 2  # splatted error, footprint weight


def add_error_channel(inputs: dict[str, Any]) -> tuple[dict[str, Any], Tensor]:
    """Rasterization inputs with two more, zero colour channels per Gaussian and camera.

    SH colours are evaluated here (as the rasterizer would) so that the
    channel can be appended; the background gets a zero in that channel.

    Args:
        inputs: keyword arguments of :func:`splat.rasterization` (colours plain or SH).

    Returns:
        ``(inputs, z)``: the new inputs and the leaf ``z`` (``[C, N, 2]``, zeros,
        requires grad) whose gradient becomes ``(e_i, W_i)``.
    """
    out = dict(inputs)
    means, viewmats = inputs["means"], inputs["viewmats"]
    rgb = _gaussian_colors(inputs["colors"], means, viewmats, inputs.get("sh_degree"))  # [C, N, D]
    z = torch.zeros(*rgb.shape[:-1], CHANNELS, device=rgb.device, dtype=rgb.dtype, requires_grad=True)
    out["colors"] = torch.cat([rgb, z], dim=-1)
    out["sh_degree"] = None
    bg = inputs.get("backgrounds")
    if bg is not None:
        out["backgrounds"] = torch.cat([bg, bg.new_zeros(bg.shape[0], CHANNELS)], dim=-1)
    return out, z


def splatted_error(channels: Tensor, error_map: Tensor) -> Tensor:
    """The term whose gradient puts ``(sum_p err_p w_ip, sum_p w_ip)`` into ``z.grad``; its value is 0.

    Args:
        channels: Tensor,  # [C, H, W, 2] the rendered extra channels
        error_map: Tensor,  # [C, H, W] per-pixel loss (detached here)

    Returns:
        Tensor,  # [] to add to the loss
    """
    return (channels[..., 0] * error_map.detach()).sum() + channels[..., 1].sum()


def relative_error(grads: Tensor, image_error: Tensor) -> Tensor:
    """Mean error under each Gaussian's footprint over the image's mean error.

    Args:
        grads: Tensor,  # [M, 2] ``(e_i, W_i)`` from ``z.grad``
        image_error: Tensor,  # [M] or [] the mean per-pixel error of the image each Gaussian is in

    Returns:
        Tensor,  # [M] ``(e_i / W_i) / image_error`` (0 where the footprint is empty)
    """
    e, w = grads[..., 0].clamp_min(0.0), grads[..., 1]
    mean_under = torch.where(w > 1e-8, e / w.clamp_min(1e-8), torch.zeros_like(e))
    return mean_under / image_error.clamp_min(1e-8)
