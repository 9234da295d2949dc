"""Fourier neural operator on a regular grid (2-D or 3-D)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SpectralConv(nn.Module):
    r"""Spectral convolution of "Fourier Neural Operator for Parametric Partial
    Differential Equations" (Li et al., 2021):

    .. math:: v'(x) = \mathcal{F}^{-1}\big(R \cdot (\mathcal{F} v)\big)(x)

    keeping the lowest ``modes`` frequencies per axis (both signs on all but
    the last, real-FFT axis), with a learned complex matrix per kept mode.

    Shapes:
        - **input:** :math:`(B, C_{in}, G_1, \dots, G_d)`
        - **output:** :math:`(B, C_{out}, G_1, \dots, G_d)`
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int, dim: int):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        if modes < 1:
            raise ValueError(f"modes must be >= 1, got {modes}")
        self.in_channels, self.out_channels, self.modes, self.dim = in_channels, out_channels, modes, dim
        # One weight block per sign pattern of the non-last axes.
        self.n_blocks = 2 ** (dim - 1)
        shape = (self.n_blocks, in_channels, out_channels) + (modes,) * dim
        self.weight = nn.Parameter(torch.empty(shape, dtype=torch.cfloat))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        scale = 1.0 / (self.in_channels * self.out_channels)
        with torch.no_grad():
            self.weight.copy_(scale * torch.rand(self.weight.shape, dtype=torch.cfloat))

    def forward(self, v: Tensor) -> Tensor:
        if v.ndim != self.dim + 2 or v.shape[1] != self.in_channels:
            raise ValueError(f"v must be [B, {self.in_channels}, *grid] with {self.dim} grid axes, "
                             f"got {tuple(v.shape)}")
        grid = v.shape[2:]
        axes = tuple(range(2, 2 + self.dim))
        vh = torch.fft.rfftn(v, dim=axes, norm="ortho")
        out = torch.zeros(v.shape[0], self.out_channels, *vh.shape[2:], dtype=vh.dtype, device=v.device)
        m = [min(self.modes, g) for g in grid[:-1]] + [min(self.modes, vh.shape[-1])]
        for b in range(self.n_blocks):
            idx = []
            for a in range(self.dim - 1):
                negative = (b >> a) & 1
                idx.append(slice(grid[a] - m[a], grid[a]) if negative else slice(0, m[a]))
            idx.append(slice(0, m[-1]))
            w = self.weight[(b, slice(None), slice(None)) + tuple(slice(0, k) for k in m)]
            letters = "xyz"[: self.dim]
            out[(slice(None), slice(None)) + tuple(idx)] = torch.einsum(
                f"bi{letters},io{letters}->bo{letters}", vh[(slice(None), slice(None)) + tuple(idx)], w)
        return torch.fft.irfftn(out, s=grid, dim=axes, norm="ortho")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, modes={self.modes}, dim={self.dim})"


class FNO(nn.Module):
    """Stack of Fourier layers ``v <- gelu(K v + W v)`` (the last without activation),
    with a residual around the whole stack.

    Args:
        channels: width.
        modes: Fourier modes kept per axis.
        dim: number of grid axes.
        num_layers: Fourier layers.

    Shapes:
        - **input/output:** ``[B, channels, G_1, ..., G_d]``
    """

    def __init__(self, channels: int, modes: int, dim: int, num_layers: int = 2):
        super().__init__()
        conv = nn.Conv2d if dim == 2 else nn.Conv3d
        self.spectral = nn.ModuleList(SpectralConv(channels, channels, modes, dim) for _ in range(num_layers))
        self.pointwise = nn.ModuleList(conv(channels, channels, 1) for _ in range(num_layers))

    def forward(self, v: Tensor) -> Tensor:
        h = v
        for i, (k, w) in enumerate(zip(self.spectral, self.pointwise)):
            h = k(h) + w(h)
            if i < len(self.spectral) - 1:
                h = nn.functional.gelu(h)
        return v + h


def regular_grid(bounds: Tensor, size: int) -> Tensor:
    """Cell centres of a ``size``-per-axis grid over ``bounds`` in C order.

    Args:
        bounds: Tensor,  # [d, 2]
        size: nodes per axis.

    Returns:
        Tensor,  # [size**d, d]
    """
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    axes = [lo + (hi - lo) * (torch.arange(size, dtype=bounds.dtype, device=bounds.device) + 0.5) / size
            for lo, hi in bounds.tolist()]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def grid_spacing(bounds: Tensor, size: int) -> float:
    """Largest cell size of :func:`regular_grid`."""
    return max((hi - lo) / size for lo, hi in bounds.tolist())


__all__ = ["SpectralConv", "FNO", "regular_grid", "grid_spacing"]
