"""The appearance error splatted back onto the Gaussians through the blending weights.

A Gaussian's appearance error is ``e_i = sum_p err_p * w_ip``: the per-pixel
loss ``err_p`` integrated over its footprint with its blending weight
``w_ip = alpha_ip * T_ip``. It comes from autograd at the cost of one extra
colour channel: every Gaussian gets one more colour ``z_i = 0`` (a leaf that
requires grad), the rasterizer composites it into a channel
``Z_p = sum_i z_i w_ip`` (zero everywhere), and ``sum_p err_p Z_p`` is added
to the loss. That adds nothing to the loss or to any other gradient (every
``z_i`` is zero) while ``dL/dz_i = sum_p err_p w_ip = e_i``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from splat.core.rasterization import _gaussian_colors

__all__ = ["add_error_channel", "splatted_error"]


def add_error_channel(inputs: dict[str, Any]) -> tuple[dict[str, Any], Tensor]:
    """Rasterization inputs with one more, zero colour channel per Gaussian and camera.

    SH colours are evaluated here (as the rasterizer would) so that the
    channel can be appended; the background gets a zero in that channel.

    Args:
        inputs: keyword arguments of :func:`splat.rasterization` (colours plain or SH).

    Returns:
        ``(inputs, z)``: the new inputs and the leaf ``z`` (``[C, N, 1]``, zeros,
        requires grad) whose gradient becomes the splatted error.
    """
    out = dict(inputs)
    means, viewmats = inputs["means"], inputs["viewmats"]
    rgb = _gaussian_colors(inputs["colors"], means, viewmats, inputs.get("sh_degree"))  # [C, N, D]
    z = torch.zeros(*rgb.shape[:-1], 1, device=rgb.device, dtype=rgb.dtype, requires_grad=True)
    out["colors"] = torch.cat([rgb, z], dim=-1)
    out["sh_degree"] = None
    bg = inputs.get("backgrounds")
    if bg is not None:
        out["backgrounds"] = torch.cat([bg, bg.new_zeros(bg.shape[0], 1)], dim=-1)
    return out, z


def splatted_error(channel: Tensor, error_map: Tensor) -> Tensor:
    """The term whose gradient puts ``sum_p err_p w_ip`` into ``z.grad``; its value is 0.

    Args:
        channel: Tensor,  # [C, H, W] the rendered extra channel
        error_map: Tensor,  # [C, H, W] per-pixel loss (detached here)

    Returns:
        Tensor,  # [] to add to the loss
    """
    return (channel * error_map.detach()).sum()
