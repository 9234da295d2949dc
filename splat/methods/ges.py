"""Generalized Exponential Splatting (Hamdi et al., CVPR 2024) on the 3DGS loop.

Each Gaussian carries one more learnable value, its *shape* ``s`` (stored raw in
``gaussians.params["shape"]``, ``[N]``). The generalized exponential
``exp(-|x / a|^beta)`` is not rasterized directly: as in the reference
implementation, its effect on the footprint is approximated by modulating
the scales handed to the stock Gaussian rasterizer::

    effective_scale = exp(params["scales"]) * f(s),   f(s) = 2 * sigmoid(k * s)

with ``k = shape_strength``. ``s = 0`` gives ``f = 1`` (plain 3DGS); negative
shapes shrink the footprint towards sharp, peaked kernels (small beta), positive
ones widen it towards flat-topped kernels (large beta); ``f`` stays in ``(0, 2)``.

The loss adds the *frequency-modulated* term to 3DGS's ``(1 - l) L1 + l D-SSIM``:
an L1 error weighted by the normalised magnitude of the Laplacian of Gaussian
of the ground truth (edges and texture), with a weight that ramps linearly from
``freq_lambda_start`` to ``freq_lambda_end`` over the fit, so that the
high-frequency detail is emphasised progressively.

Density control, learning rates and SH schedule are inherited from
:class:`~splat.methods.gs3d.GS3D`; the shape entry is cloned and split with
every other per-Gaussian entry and saved in checkpoints with them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splat.core.gaussians import Gaussians
from splat.io.atomic import write_bytes_atomic
from splat.io.ply import _read_header, load_ply, ply_property_names
from splat.methods.base import MethodState, StepContext
from splat.methods.gs3d import GS3D
from splat.methods.registry import register_method

__all__ = ["GES", "shape_factor", "effective_scales", "log_filter", "save_ges_ply", "load_ges_ply"]

SHAPE_KEY = "shape"


def shape_factor(shape: Tensor, strength: float) -> Tensor:
    """Scale multiplier ``2 sigmoid(strength * shape)`` of each Gaussian.

    Args:
        shape: Tensor,  # [N] raw shape parameters
        strength: steepness ``k`` of the modulation (> 0).

    Returns:
        Tensor,  # [N] factors in (0, 2); 1 at shape 0.
    """
    return 2.0 * torch.sigmoid(strength * shape)


def effective_scales(gaussians: Gaussians, strength: float) -> Tensor:
    """Activated scales modulated by each Gaussian's shape.

    Returns:
        Tensor,  # [N, 3]
    """
    if SHAPE_KEY not in gaussians.params:
        raise ValueError(f"gaussians have no {SHAPE_KEY!r} parameter; entries: {list(gaussians.params)}")
    return gaussians.scales * shape_factor(gaussians.params[SHAPE_KEY], strength)[:, None]


def _log_kernel(sigma: float, dtype=torch.float32) -> Tensor:  # [K, K], zero-sum
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    r2 = (xx**2 + yy**2) / (2.0 * sigma**2)
    kernel = (r2 - 1.0) * torch.exp(-r2)
    return kernel - kernel.mean()


def log_filter(images: Tensor, sigma: float = 1.0) -> Tensor:
    """Laplacian-of-Gaussian response of the luminance of ``images``.

    Args:
        images: Tensor,  # [C, H, W, 3] in [0, 1]
        sigma: standard deviation of the Gaussian in pixels (> 0).

    Returns:
        Tensor,  # [C, H, W] (replicate-padded, same size as the input)
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a [C, H, W, 3] tensor, got {got}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    gray = images.mean(dim=-1, keepdim=True).permute(0, 3, 1, 2)  # [C, 1, H, W]
    kernel = _log_kernel(sigma, images.dtype).to(images.device)
    pad = kernel.shape[-1] // 2
    gray = F.pad(gray, (pad, pad, pad, pad), mode="replicate")
    return F.conv2d(gray, kernel[None, None])[:, 0]


@register_method("ges")
@dataclass
class GES(GS3D):
    """GES hyper-parameters: 3DGS's plus the shape and the frequency loss.

    Attributes:
        lr_shape: Adam learning rate of the raw shape parameter.
        shape_strength: steepness ``k`` of ``f(s) = 2 sigmoid(k s)``.
        shape_init: initial raw shape of every Gaussian (0: plain Gaussians).
        freq_lambda_start: weight of the frequency-modulated loss at step 0.
        freq_lambda_end: its weight at the last step (linear in between).
        freq_sigma: pixel sigma of the Laplacian of Gaussian.
    """

    lr_shape: float = 1e-3
    shape_strength: float = 0.7
    shape_init: float = 0.0
    freq_lambda_start: float = 0.0
    freq_lambda_end: float = 0.5
    freq_sigma: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr_shape >= 0:
            raise ValueError(f"lr_shape must be >= 0, got {self.lr_shape}")
        if not self.shape_strength > 0:
            raise ValueError(f"shape_strength must be > 0, got {self.shape_strength}")
        if not math.isfinite(self.shape_init):
            raise ValueError(f"shape_init must be finite, got {self.shape_init}")
        for name in ("freq_lambda_start", "freq_lambda_end"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.freq_sigma > 0:
            raise ValueError(f"freq_sigma must be > 0, got {self.freq_sigma}")

    # ----------------------------------------------------------------- hooks
    def init(self, scene, gaussians: Gaussians) -> MethodState:
        if SHAPE_KEY not in gaussians.params:
            n, device = gaussians.num_gaussians, gaussians.device
            gaussians.params[SHAPE_KEY] = torch.nn.Parameter(torch.full((n,), float(self.shape_init), device=device))
        return super().init(scene, gaussians)

    def trainable(self, gaussians: Gaussians, state: MethodState) -> dict[str, float]:
        lrs = super().trainable(gaussians, state)
        lrs[SHAPE_KEY] = self.lr_shape
        return lrs

    def render_inputs(self, ctx: StepContext) -> dict:
        inputs = super().render_inputs(ctx)
        inputs["scales"] = effective_scales(ctx.gaussians, self.shape_strength)
        return inputs

    def freq_lambda(self, step: int, total_steps: int) -> float:
        """Weight of the frequency-modulated loss at ``step`` (linear ramp)."""
        t = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
        return (1.0 - t) * self.freq_lambda_start + t * self.freq_lambda_end

    def export_ply(self, gaussians: Gaussians, path) -> Path:
        """Writes the GES PLY: modulated ``scale_*`` plus the raw ``shape`` property."""
        return save_ges_ply(gaussians, path, self.shape_strength)

    def loss(self, ctx: StepContext) -> Tensor:
        base = super().loss(ctx)
        weight = self.freq_lambda(ctx.step, ctx.total_steps)
        if weight == 0:
            return base
        with torch.no_grad():
            mask = log_filter(ctx.gt_images, self.freq_sigma).abs()  # [C, H, W]
            mask = mask / mask.amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
        freq = (mask[..., None] * (ctx.render - ctx.gt_images).abs()).mean()
        ctx.info["freq_loss"] = float(freq.detach())
        return base + weight * freq


# ------------------------------------------------------------------- export
def save_ges_ply(gaussians: Gaussians, path: str | os.PathLike, shape_strength: float = 0.7) -> Path:
    """Writes GES Gaussians as a 3DGS PLY with an extra ``shape`` property (atomically).

    ``scale_*`` hold the logs of the *modulated* scales, so viewers that ignore
    ``shape`` draw the footprint the fit rendered; ``shape`` holds the raw value.

    Args:
        gaussians: Gaussians with a ``shape`` entry ``[N]``.
        path: destination ``.ply``.
        shape_strength: the ``k`` the Gaussians were fitted with.
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be splat.core.gaussians.Gaussians, got {type(gaussians).__name__}")
    if not shape_strength > 0:
        raise ValueError(f"shape_strength must be > 0, got {shape_strength}")
    if SHAPE_KEY not in gaussians.params:
        raise ValueError(f"gaussians have no {SHAPE_KEY!r} parameter; entries: {list(gaussians.params)}")
    with torch.no_grad():
        p = {k: v.detach().cpu().float() for k, v in gaussians.params.items()}
        shape = p[SHAPE_KEY]
        scales = p["scales"] + torch.log(shape_factor(shape, shape_strength))[:, None]
        n = shape.shape[0]
        rest = p["shN"].transpose(1, 2).reshape(n, -1)
        table = torch.cat(
            [p["means"], torch.zeros(n, 3), p["sh0"].reshape(n, 3), rest, p["opacities"][:, None], scales,
             p["quats"], shape[:, None]],
            dim=1,
        ).numpy().astype("<f4")
    names = ply_property_names(rest.shape[1]) + [SHAPE_KEY]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    data = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(table).tobytes()
    return write_bytes_atomic(path, data)


def load_ges_ply(path: str | os.PathLike, shape_strength: float = 0.7) -> Gaussians:
    """Reads a PLY written by :func:`save_ges_ply` back into fit-ready Gaussians.

    The raw scales are recovered by dividing out the shape factor, so
    ``save_ges_ply`` then ``load_ges_ply`` is the identity (up to float32).

    Raises:
        ValueError: if the file has no ``shape`` property, or is not a 3DGS PLY.
    """
    if not shape_strength > 0:
        raise ValueError(f"shape_strength must be > 0, got {shape_strength}")
    path = Path(path)
    g = load_ply(path)  # validates the standard layout
    with open(path, "rb") as f:
        fmt, count, props = _read_header(f, path)
        endian = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(name, endian + t) for name, t in props])
        data = np.frombuffer(f.read(dtype.itemsize * count), dtype=dtype, count=count)
    if SHAPE_KEY not in dtype.names:
        raise ValueError(f"{path}: no {SHAPE_KEY!r} vertex property; not a GES PLY")
    shape = torch.from_numpy(data[SHAPE_KEY].astype(np.float32))
    params = {k: v.detach().clone() for k, v in g.params.items()}
    params["scales"] = params["scales"] - torch.log(shape_factor(shape, shape_strength))[:, None]
    params[SHAPE_KEY] = shape
    return Gaussians(params)
