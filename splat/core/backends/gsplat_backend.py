"""CUDA backend: hands the whole call to ``gsplat.rasterization`` (``packed=False``).

gsplat is imported inside the function, so importing :mod:`splat` never loads it.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor


_reason: Optional[str] = None
_checked = False


def unavailable_reason() -> Optional[str]:
    """Why :func:`is_available` is False, or None when gsplat can run."""
    return None if is_available() else _reason


def is_available() -> bool:
    """True when a CUDA GPU is present and gsplat imports and loads its CUDA kernels.

    The first call on a GPU machine may compile gsplat's kernels (minutes);
    the answer is cached for the process.
    """
    global _reason, _checked
    if _checked:
        return _reason is None
    import torch

    if not torch.cuda.is_available():
        _reason = "no CUDA GPU is available"
    else:
        try:
            import gsplat  # noqa: F401
            from gsplat.cuda._backend import _C
        except Exception as exc:  # ImportError, or a failed JIT build
            _reason = f"gsplat cannot be imported ({type(exc).__name__}: {str(exc)[:200]})"
        else:
            _reason = None if _C is not None else "gsplat's CUDA kernels could not be built or loaded"
    _checked = True
    return _reason is None


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
