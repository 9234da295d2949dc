"""CUDA backend: hands the whole call to ``gsplat.rasterization`` (``packed=False``).

gsplat is imported inside the function, so importing :mod:`splat` never loads it.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor


def is_available() -> bool:
    """True when CUDA is present and gsplat imports."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def rasterization(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [(C,) N, D] or [(C,) N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
    eps2d: float,
    sh_degree: Optional[int],
    tile_size: int,
    backgrounds: Optional[Tensor],
    render_mode: str,
    rasterize_mode: str,
    absgrad: bool,
) -> tuple[Tensor, Tensor, dict]:
    """Renders with gsplat's CUDA kernels; arguments as :func:`splat.core.rasterization.rasterization`."""
    import gsplat

    render_colors, render_alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, packed=False, tile_size=tile_size, backgrounds=backgrounds,
        render_mode=render_mode, absgrad=absgrad, rasterize_mode=rasterize_mode,
    )  # fmt: skip
    if meta["means2d"].requires_grad:
        meta["means2d"].retain_grad()
    meta["backend"] = "gsplat"
    meta.setdefault("n_batches", 1)
    return render_colors, render_alphas, meta
