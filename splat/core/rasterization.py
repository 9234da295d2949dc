"""``rasterization()``: one gsplat-compatible entry point over several backends.

Pipeline: validate (once, here; the backends trust their inputs) -> project
and colour -> depth channel for depth modes -> composite -> expected-depth
normalisation -> ``meta``. The ``torch`` backend projects with
:mod:`splat.core.projection` and evaluates SH with :mod:`splat.core.sh` (the
specification, autograd backward); the ``cpu`` backend does both in one
compiled pass with a hand-written backward (:func:`splat.core.backends.cpu.project`)
and composites with its compiled kernel; ``gsplat`` (CUDA tensors) hands the
whole call to ``gsplat.rasterization``.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Optional

import torch
from torch import Tensor

from splat.core.backends import torch_backend
from splat.core.projection import project_gaussians_unchecked
from splat.core.sh import spherical_harmonics
from splat.core.validation import BACKENDS, validate_rasterization_inputs

_warned_cpu_fallback = False
_warned_gsplat_fallback = False


def _load_cpu_backend() -> tuple[Optional[ModuleType], str]:
    """The compiled CPU backend module if it is usable, else ``(None, reason)``."""
    try:
        from splat.core.backends import cpu
    except ImportError as exc:  # the module is not part of this install
        return None, f"splat.core.backends.cpu cannot be imported ({exc})"
    if not cpu.is_available():
        return None, cpu.unavailable_reason()
    return cpu, ""


def resolve_backend(backend: str, device: torch.device) -> str:
    """Maps ``backend`` (possibly ``"auto"``) to the backend that will run.

    ``auto`` picks ``gsplat`` for CUDA tensors, else the compiled ``cpu``
    backend. Either falls back to ``torch`` (on the tensors' device, with one
    warning per process) when it cannot load: gsplat without a working
    install, the compiled kernel without a compiler.

    Raises:
        ValueError: unknown backend, or a backend that cannot run on ``device``.
        RuntimeError: ``backend="cpu"`` was asked for but cannot be loaded.
    """
    global _warned_cpu_fallback, _warned_gsplat_fallback
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    if backend == "auto":
        if device.type == "cuda":
            from splat.core.backends import gsplat_backend

            if gsplat_backend.is_available():
                return "gsplat"
            if not _warned_gsplat_fallback:
                _warned_gsplat_fallback = True
                warnings.warn(
                    f"gsplat cannot run ({gsplat_backend.unavailable_reason()}); rendering the CUDA tensors "
                    "with the pure-PyTorch backend (fit with device='cpu' to use the compiled CPU backend)",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return "torch"
        module, reason = _load_cpu_backend()
        if module is not None:
            return "cpu"
        if not _warned_cpu_fallback:
            _warned_cpu_fallback = True
            warnings.warn(
                f"the compiled CPU rasterizer is unavailable ({reason}); "
                "using the slower pure-PyTorch backend",
                RuntimeWarning,
                stacklevel=3,
            )
        return "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, got tensors on {device}")
    if backend == "cpu":
        if device.type != "cpu":
            raise ValueError(f"backend='cpu' needs CPU tensors, got tensors on {device}")
        module, reason = _load_cpu_backend()
        if module is None:
            raise RuntimeError(f"backend='cpu' is unavailable: {reason}")
    return backend


def _plain_colors(colors: Tensor, C: int, N: int) -> Tensor:
    """Per-camera colours ``[C, N, D]`` from ``[N, D]`` (broadcast) or ``[C, N, D]``."""
    return colors.expand(C, N, colors.shape[-1]) if colors.ndim == 2 else colors


def _gaussian_colors(
    colors: Tensor,  # [N, D], [C, N, D], [N, K, 3] or [C, N, K, 3]
    means: Tensor,  # [N, 3]
    viewmats: Tensor,  # [C, 4, 4]
    sh_degree: Optional[int],
) -> Tensor:
    """Per-camera colours ``[C, N, D]``: broadcast, or SH evaluated toward each camera.

    SH colours get gsplat's ``+0.5`` offset and ``clamp_min(0)``; view
    directions run from the camera centre to the Gaussian mean.
    """
    C, N = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        return _plain_colors(colors, C, N)
    centres = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None, :, :] - centres[:, None, :]  # [C, N, 3]
    coeffs = colors.expand(C, N, *colors.shape[-2:]) if colors.ndim == 3 else colors
    return torch.clamp_min(spherical_harmonics(sh_degree, dirs, coeffs) + 0.5, 0.0)


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
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,  # [C, D]
    render_mode: str = "RGB",
    rasterize_mode: str = "classic",
    absgrad: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, dict]:
    """Renders 3D Gaussians into C images with gsplat's conventions (``packed=False``).

    Args:
        means: Tensor,  # [N, 3] world-space centres
        quats: Tensor,  # [N, 4] rotations (w, x, y, z), need not be normalised
        scales: Tensor,  # [N, 3] standard deviations (already activated)
        opacities: Tensor,  # [N] in [0, 1] (already activated)
        colors: Tensor,  # [N, D] or [C, N, D] values; with ``sh_degree``,
            # [N, K, 3] or [C, N, K, 3] SH coefficients, K >= (sh_degree + 1)**2
        viewmats: Tensor,  # [C, 4, 4] world-to-camera (OpenCV axes)
        Ks: Tensor,  # [C, 3, 3] pinhole intrinsics in pixels (no gradient)
        width: image width in pixels.
        height: image height in pixels.
        near_plane: Gaussians with camera-space z below this are culled.
        far_plane: Gaussians with camera-space z above this are culled.
        radius_clip: Gaussians whose pixel radii are both ``<= radius_clip`` are culled.
        eps2d: added to the 2D covariance diagonal (a minimum screen-space size).
        sh_degree: active SH degree 0..3, or None for plain colours.
        tile_size: tile edge in pixels.
        backgrounds: Tensor,  # [C, D] colour behind the Gaussians (D = colour
            # channels; ignored in "D"/"ED" modes, whose background is 0)
        render_mode: "RGB", "D" (accumulated depth), "ED" (expected depth),
            "RGB+D" or "RGB+ED" (depth as the last channel).
        rasterize_mode: "classic" or "antialiased" (opacities times the
            compensation ``sqrt(det(S) / det(S + eps2d I))``).
        absgrad: also accumulate ``sum over pixels |dL/dmeans2d|`` into
            ``meta["means2d"].absgrad`` during backward.
        backend: "auto", "torch", "cpu" or "gsplat".

    Returns:
        render_colors: Tensor,  # [C, H, W, X], X = D, 1 or D + 1 by render_mode
        render_alphas: Tensor,  # [C, H, W, 1]
        meta: dict with ``means2d`` [C, N, 2] (its ``.grad`` is kept after
            backward), ``radii`` [C, N, 2], ``depths``, ``conics``, ``opacities``,
            ``tiles_per_gauss``, ``camera_ids``/``gaussian_ids`` (None: unpacked),
            ``width``, ``height``, ``n_cameras``, ``tile_size``, ``tile_width``,
            ``tile_height`` and ``backend``.

    Raises:
        TypeError, ValueError: invalid input (see :mod:`splat.core.validation`).
        RuntimeError: ``backend="cpu"`` asked for but unavailable.

    >>> import torch
    >>> from splat.core.rasterization import rasterization
    >>> means = torch.tensor([[0.0, 0.0, 3.0]])
    >>> quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> scales = torch.full((1, 3), 0.2)
    >>> K = torch.tensor([[[50.0, 0.0, 15.5], [0.0, 50.0, 15.5], [0.0, 0.0, 1.0]]])
    >>> img, alpha, meta = rasterization(means, quats, scales, torch.ones(1), torch.ones(1, 3),
    ...                                  torch.eye(4)[None], K, 32, 32, backend="torch")
    >>> img.shape, round(float(alpha.max()), 3)
    (torch.Size([1, 32, 32, 3]), 0.999)
    """
    validate_rasterization_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, tile_size=tile_size, backgrounds=backgrounds,
        render_mode=render_mode, rasterize_mode=rasterize_mode, absgrad=absgrad, backend=backend,
    )  # fmt: skip
    name = resolve_backend(backend, means.device)
    if name == "gsplat":
        from splat.core.backends import gsplat_backend

        return gsplat_backend.rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
            sh_degree=sh_degree, tile_size=tile_size, backgrounds=backgrounds,
            render_mode=render_mode, rasterize_mode=rasterize_mode, absgrad=absgrad,
        )  # fmt: skip

    C, N = viewmats.shape[0], means.shape[0]
    if name == "cpu":
        cpu, _ = _load_cpu_backend()
        radii, means2d, depths, conics, view_opacities, sh_colors, tiles_per_gauss = cpu.project(
            means, quats, scales, opacities, colors if sh_degree is not None else None, viewmats, Ks,
            width, height, tile_size=tile_size, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
            radius_clip=radius_clip, antialiased=rasterize_mode == "antialiased", sh_degree=sh_degree,
        )  # fmt: skip
        feats = _plain_colors(colors, C, N) if sh_colors is None else sh_colors
        composite = cpu.composite_unchecked
    else:
        radii, means2d, depths, conics, compensations = project_gaussians_unchecked(
            means, quats, scales, viewmats, Ks, width, height,
            eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
            opacities=opacities, calc_compensations=rasterize_mode == "antialiased",
        )  # fmt: skip
        view_opacities = opacities.expand(C, N)
        if compensations is not None:
            view_opacities = view_opacities * compensations
        feats = _gaussian_colors(colors, means, viewmats, sh_degree)  # [C, N, D]
        composite = torch_backend.composite_unchecked
        tiles_per_gauss = None
    if means2d.requires_grad:
        means2d.retain_grad()

    if render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)
    elif render_mode in ("D", "ED"):
        feats = depths[..., None]
        if backgrounds is not None:
            backgrounds = backgrounds.new_zeros(C, 1)

    render_colors, render_alphas = composite(
        means2d, conics, feats, view_opacities, depths.detach(), radii,
        width, height, tile_size, backgrounds, absgrad,
    )  # fmt: skip
    if render_mode in ("ED", "RGB+ED"):
        expected = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
        render_colors = torch.cat([render_colors[..., :-1], expected], dim=-1)

    tile_width, tile_height = math.ceil(width / tile_size), math.ceil(height / tile_size)
    if tiles_per_gauss is None:
        lo, hi = torch_backend.tile_bounds(means2d, radii, tile_size, tile_width, tile_height)
        tiles_per_gauss = ((hi - lo).clamp(min=0).prod(-1) * (radii > 0).all(-1)).to(torch.int32)
    meta = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "opacities": view_opacities,
        "tiles_per_gauss": tiles_per_gauss,
        "tile_width": tile_width,
        "tile_height": tile_height,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": C,
        "backend": name,
    }
    return render_colors, render_alphas, meta
