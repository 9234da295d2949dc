"""Compiled CPU backend (C++17, OpenMP, SIMD): projection, SH colours, compositing and SSIM.

``csrc/project.cpp`` projects the Gaussians and evaluates their SH colours in
one pass (:func:`project`); ``csrc/rasterize.cpp`` bins Gaussians into tiles,
sorts each tile front to back and composites with gsplat's rules (v1.5.3)
(:func:`composite`); ``csrc/ssim.cpp`` computes the SSIM loss (:func:`ssim`).
All have hand-written backwards. It is compiled with :func:`torch.utils.cpp_extension.load` on first
use and cached under torch's extension directory (or ``$SPLATOPS_BUILD_DIR``).
The cache entry is named after a hash of the sources, the compiler flags and
the CPU model, so another CPU or an edited source rebuilds.

>>> from splat.core.backends import cpu
>>> cpu.is_available() in (True, False)
True
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import platform
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import torch
from torch import Tensor

from splat.core.sh import SH_CONSTANTS

__all__ = ["composite", "composite_unchecked", "project", "ssim", "is_available", "unavailable_reason", "load_extension"]

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = ("rasterize.cpp", "project.cpp", "project.h", "simd.h", "ssim.cpp", "ssim.h")
_COMPILED = ("rasterize.cpp", "project.cpp", "ssim.cpp")
_lock = threading.Lock()
_ext = None
_reason: str | None = None
_tried = False


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cflags() -> list[str]:
    flags = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno"]
    if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64"):
        flags.append("-march=native")
    return flags


def _extension_name(flags: list[str]) -> str:
    h = hashlib.sha1()
    for name in _SOURCES:
        h.update((_CSRC / name).read_bytes())
    h.update(" ".join(flags).encode())
    h.update(_cpu_model().encode())
    h.update(torch.__version__.encode())
    return f"splatops_cpu_raster_{h.hexdigest()[:12]}"


def load_extension():
    """Builds (first call, about a minute) or loads the compiled kernel.

    Returns:
        The extension module.

    Raises:
        RuntimeError: if it cannot be built; the message gives the reason.
    """
    global _ext, _reason, _tried
    with _lock:
        if _ext is not None:
            return _ext
        if _tried:
            raise RuntimeError(f"the cpu backend is unavailable: {_reason}")
        _tried = True
        try:
            from torch.utils import cpp_extension

            flags = _cflags()
            name = _extension_name(flags)
            build_dir = os.environ.get("SPLATOPS_BUILD_DIR")
            if build_dir:
                build_dir = os.path.join(build_dir, name)
                os.makedirs(build_dir, exist_ok=True)
            log = io.StringIO()
            with redirect_stdout(log), redirect_stderr(log):
                _ext = cpp_extension.load(
                    name=name,
                    sources=[str(_CSRC / name) for name in _COMPILED],
                    extra_cflags=flags,
                    extra_ldflags=["-fopenmp"],
                    extra_include_paths=[str(_CSRC)],
                    build_directory=build_dir,
                    verbose=False,
                )
        except Exception as exc:  # compiler missing, build error, ...
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            errors = [ln for ln in lines if "error" in ln.lower()]
            _reason = f"{type(exc).__name__}: {(errors or lines or [''])[0][:300]}"
            raise RuntimeError(f"the cpu backend is unavailable: {_reason}") from exc
        return _ext


def is_available() -> bool:
    """True when the compiled kernel builds (or is cached) and loads."""
    try:
        load_extension()
    except RuntimeError:
        return False
    return True


def unavailable_reason() -> str | None:
    """Why :func:`is_available` is False, or None when the backend works."""
    return None if is_available() else _reason


def _check_tensor(name: str, x, ndim: int, shape_hint: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {shape_hint}, got shape {tuple(x.shape)}")
    if x.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU for the cpu backend, got device {x.device}")


def _check_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {v}")


def _validate(means2d, conics, colors, opacities, depths, radii, width, height, tile_size, backgrounds):
    _check_tensor("means2d", means2d, 3, "[C, N, 2]")
    C, N = means2d.shape[:2]
    if means2d.shape[2] != 2:
        raise ValueError(f"means2d must be [C, N, 2], got shape {tuple(means2d.shape)}")
    _check_tensor("conics", conics, 3, "[C, N, 3]")
    if tuple(conics.shape) != (C, N, 3):
        raise ValueError(f"conics must be [C, N, 3] = [{C}, {N}, 3], got shape {tuple(conics.shape)}")
    _check_tensor("colors", colors, 3, "[C, N, D]")
    if tuple(colors.shape[:2]) != (C, N) or colors.shape[2] < 1:
        raise ValueError(f"colors must be [C, N, D] with C={C}, N={N}, D>=1, got shape {tuple(colors.shape)}")
    _check_tensor("opacities", opacities, 2, "[C, N]")
    if tuple(opacities.shape) != (C, N):
        raise ValueError(f"opacities must be [C, N] = [{C}, {N}], got shape {tuple(opacities.shape)}")
    _check_tensor("depths", depths, 2, "[C, N]")
    if tuple(depths.shape) != (C, N):
        raise ValueError(f"depths must be [C, N] = [{C}, {N}], got shape {tuple(depths.shape)}")
    _check_tensor("radii", radii, 3, "[C, N, 2]")
    if tuple(radii.shape) != (C, N, 2):
        raise ValueError(f"radii must be [C, N, 2] = [{C}, {N}, 2], got shape {tuple(radii.shape)}")
    if radii.is_floating_point() or radii.is_complex() or radii.dtype == torch.bool:
        raise TypeError(f"radii must be an integer tensor, got {radii.dtype}")
    for name, t in (("means2d", means2d), ("conics", conics), ("colors", colors),
                    ("opacities", opacities), ("depths", depths)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    _check_int("width", width)
    _check_int("height", height)
    _check_int("tile_size", tile_size)
    if N >= 2**31:
        raise ValueError(f"means2d holds N={N} Gaussians per camera; at most 2**31 - 1 are supported")
    if backgrounds is not None:
        _check_tensor("backgrounds", backgrounds, 2, "[C, D]")
        if tuple(backgrounds.shape) != (C, colors.shape[2]):
            raise ValueError(
                f"backgrounds must be [C, D] = [{C}, {colors.shape[2]}], got shape {tuple(backgrounds.shape)}"
            )
        if not backgrounds.is_floating_point():
            raise TypeError(f"backgrounds must be a floating-point tensor, got {backgrounds.dtype}")


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, backgrounds, depths, radii,
                width, height, tile_size, absgrad):
        ext = load_extension()
        rgb, alpha, last, offsets, ids, row_masks = ext.forward(
            means2d, conics, colors, opacities, depths, radii, backgrounds, width, height, tile_size
        )
        ctx.save_for_backward(means2d, conics, colors, opacities, backgrounds, offsets, ids, row_masks, alpha, last)
        ctx.dims = (width, height, tile_size)
        ctx.absgrad = absgrad
        ctx.has_bg = backgrounds is not None
        ctx.mark_non_differentiable(last)
        ctx.means2d_ref = means2d  # for the absgrad attribute
        return rgb, alpha

    @staticmethod
    def backward(ctx, v_rgb, v_alpha):
        means2d, conics, colors, opacities, backgrounds, offsets, ids, row_masks, alpha, last = ctx.saved_tensors
        width, height, tile_size = ctx.dims
        v_rgb = torch.zeros_like(alpha.expand(*alpha.shape[:-1], colors.shape[-1])) if v_rgb is None else v_rgb
        v_alpha = torch.zeros_like(alpha) if v_alpha is None else v_alpha
        v_rgb = v_rgb.float().contiguous()
        v_alpha = v_alpha.float().contiguous()
        v_means2d, v_conics, v_colors, v_opac, v_abs = load_extension().backward(
            means2d, conics, colors, opacities, backgrounds if ctx.has_bg else None,
            width, height, tile_size, offsets, ids, row_masks, alpha, last, v_rgb, v_alpha, ctx.absgrad,
        )
        if ctx.absgrad:
            ctx.means2d_ref.absgrad = v_abs
        v_bg = None
        if ctx.has_bg and ctx.needs_input_grad[4]:
            v_bg = (v_rgb * (1.0 - alpha)).sum(dim=(1, 2))
        return v_means2d, v_conics, v_colors, v_opac, v_bg, None, None, None, None, None, None


def composite(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N, 2]
    width: int,
    height: int,
    tile_size: int,
    backgrounds: Tensor | None,  # [C, D]
    absgrad: bool = False,
) -> tuple[Tensor, Tensor]:
    """Composites projected Gaussians into images with the compiled kernel.

    Same results as gsplat's ``isect_tiles`` + ``rasterize_to_pixels`` (3DGS):
    per tile, Gaussians blend front to back by depth; differentiable w.r.t.
    ``means2d``, ``conics``, ``colors``, ``opacities`` and ``backgrounds``.

    Args:
        means2d: ``[C, N, 2]`` pixel coordinates (pixel centres at +0.5).
        conics: ``[C, N, 3]`` inverse 2D covariances ``(a, b, c)``.
        colors: ``[C, N, D]`` features, any ``D >= 1``.
        opacities: ``[C, N]`` in ``[0, 1]``.
        depths: ``[C, N]`` sort key, front to back (no gradient).
        radii: ``[C, N, 2]`` integer pixel radii; any radius ``<= 0`` culls.
        width: image width in pixels.
        height: image height in pixels.
        tile_size: tile side in pixels.
        backgrounds: ``[C, D]`` or None.
        absgrad: if True, backward sets ``means2d.absgrad`` (``[C, N, 2]``),
            the sum over pixels of ``|dL/dmeans2d|``.

    Returns:
        ``render_colors [C, H, W, D]`` and ``render_alphas [C, H, W, 1]``.

    Raises:
        TypeError: if an argument has the wrong type or dtype.
        ValueError: on inconsistent shapes, non-CPU tensors or non-positive sizes.
        RuntimeError: if the kernel cannot be built (see :func:`unavailable_reason`).
    """
    _validate(means2d, conics, colors, opacities, depths, radii, width, height, tile_size, backgrounds)
    return composite_unchecked(means2d, conics, colors, opacities, depths, radii, width, height, tile_size,
                               backgrounds, absgrad)


def composite_unchecked(means2d, conics, colors, opacities, depths, radii, width, height, tile_size,
                        backgrounds, absgrad=False) -> tuple[Tensor, Tensor]:
    """:func:`composite` without the argument checks, for callers that validated already."""
    f32 = lambda t: t.float().contiguous()  # noqa: E731
    bg = None if backgrounds is None else f32(backgrounds)
    rgb, alpha = _Composite.apply(
        f32(means2d), f32(conics), f32(colors), f32(opacities), bg,
        depths.detach().float().contiguous(), radii.detach().to(torch.int32).contiguous(),
        width, height, tile_size, bool(absgrad),
    )
    if absgrad and means2d.requires_grad:
        _forward_absgrad(means2d, rgb)
    return rgb, alpha


def _forward_absgrad(means2d: Tensor, rgb: Tensor) -> None:
    """Copies ``absgrad`` onto the caller's ``means2d`` when a cast made a new tensor."""
    # The kernel sets ``absgrad`` on the tensor it received; when ``f32`` was a
    # no-op that is ``means2d`` itself. Otherwise a hook copies it after backward.
    node = rgb.grad_fn
    if node is None:
        return

    def _copy(*_):
        inner = node.means2d_ref if hasattr(node, "means2d_ref") else None
        if inner is not None and inner is not means2d and hasattr(inner, "absgrad"):
            means2d.absgrad = inner.absgrad

    node.register_hook(_copy)


class _Project(torch.autograd.Function):
    """Projection + SH colours in one kernel call, with the hand-written backward."""

    @staticmethod
    def forward(ctx, means, quats, scales, opacities, coeffs, viewmats, campos, Ks, settings):
        (width, height, tile_size, eps2d, near_plane, far_plane, radius_clip, antialiased, sh_degree) = settings
        degree = -1 if sh_degree is None else sh_degree
        radii, means2d, depths, conics, view_opac, colors, tiles = load_extension().project_forward(
            means, quats, scales, opacities, viewmats, Ks, coeffs, campos, width, height, tile_size,
            eps2d, near_plane, far_plane, radius_clip, antialiased, degree, SH_CONSTANTS,
        )  # fmt: skip
        ctx.save_for_backward(means, quats, scales, opacities, coeffs, viewmats, campos, Ks)
        ctx.settings = (width, height, eps2d, near_plane, antialiased, degree, SH_CONSTANTS)
        ctx.mark_non_differentiable(radii, tiles)
        if coeffs is None:
            ctx.mark_non_differentiable(colors)
        return radii, means2d, depths, conics, view_opac, colors, tiles

    @staticmethod
    def backward(ctx, _v_radii, v_means2d, v_depths, v_conics, v_view_opac, v_colors, _v_tiles):
        means, quats, scales, opacities, coeffs, viewmats, campos, Ks = ctx.saved_tensors
        width, height, eps2d, near_plane, antialiased, degree, constants = ctx.settings
        C, N = viewmats.shape[0], means.shape[0]

        def grad(v, *shape):
            return means.new_zeros(shape) if v is None else v.float().contiguous()

        v_colors = None if coeffs is None or v_colors is None else v_colors.float().contiguous()
        v_means, v_quats, v_scales, v_opac, v_coeffs, v_viewmats, v_campos, v_Ks = load_extension().project_backward(
            means, quats, scales, opacities, viewmats, Ks, coeffs, campos, width, height, eps2d, near_plane,
            antialiased, degree, constants, grad(v_means2d, C, N, 2), grad(v_depths, C, N),
            grad(v_conics, C, N, 3), grad(v_view_opac, C, N), v_colors,
        )  # fmt: skip
        return (v_means, v_quats, v_scales, v_opac, v_coeffs if coeffs is not None else None, v_viewmats,
                v_campos if campos is not None else None, v_Ks, None)


def project(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    coeffs: Tensor | None,  # [N, K, 3] or [C, N, K, 3] SH coefficients, or None
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    tile_size: int,
    eps2d: float,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
    antialiased: bool,
    sh_degree: int | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor]:
    """Projects Gaussians and evaluates their SH colours with the compiled kernel.

    Same results as :func:`splat.core.projection.project_gaussians` (with
    ``opacities``) followed by the SH colours of ``rasterization`` (``+0.5``,
    ``clamp_min(0)``, directions from each camera centre), differentiable
    w.r.t. means, quats, scales, opacities, coeffs, viewmats and Ks (as the
    specification's autograd). Inputs are trusted: ``rasterization`` validated them.

    Returns:
        radii: Tensor,  # [C, N, 2] int32, 0 when culled
        means2d: Tensor,  # [C, N, 2]
        depths: Tensor,  # [C, N]
        conics: Tensor,  # [C, N, 3]
        view_opacities: Tensor,  # [C, N] opacities times the compensation when antialiased
        colors: Tensor or None,  # [C, N, 3] SH colours, None when ``sh_degree`` is None
        tiles_per_gauss: Tensor,  # [C, N] int32
    """
    if viewmats.shape[0] * means.shape[0] >= 2**31:
        raise ValueError(f"C x N = {viewmats.shape[0]} x {means.shape[0]} projected Gaussians; the cpu backend "
                         "supports fewer than 2**31")
    f32 = lambda t: t.float().contiguous()  # noqa: E731
    campos = None
    if sh_degree is not None:
        campos = f32(torch.linalg.inv(viewmats)[:, :3, 3])  # autograd carries d/dcampos to viewmats
        coeffs = f32(coeffs)
    else:
        coeffs = None
    settings = (width, height, tile_size, float(eps2d), float(near_plane), float(far_plane), float(radius_clip),
                bool(antialiased), sh_degree)
    radii, means2d, depths, conics, view_opac, colors, tiles = _Project.apply(
        f32(means), f32(quats), f32(scales), f32(opacities), coeffs, f32(viewmats), campos, f32(Ks), settings,
    )  # fmt: skip
    return radii, means2d, depths, conics, view_opac, (colors if sh_degree is not None else None), tiles


@functools.lru_cache(maxsize=8)
def _window(size: int, sigma: float) -> Tensor:
    from splat.metrics import gaussian_window

    return gaussian_window(size, sigma)


class _SSIM(torch.autograd.Function):
    """Fused SSIM per image (forward and hand-written backward with respect to ``img``)."""

    @staticmethod
    def forward(ctx, img, ref, window, c1, c2):
        value, d_mu, d_xx, d_xy = load_extension().ssim_forward(img, ref, window, c1, c2, img.requires_grad)
        ctx.save_for_backward(img, ref, window, d_mu, d_xx, d_xy)
        return value

    @staticmethod
    def backward(ctx, grad_out):
        img, ref, window, d_mu, d_xx, d_xy = ctx.saved_tensors
        grad = load_extension().ssim_backward(img, ref, window, d_mu, d_xx, d_xy, grad_out.float().contiguous())
        return grad, None, None, None, None


def ssim(img: Tensor, ref: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """:func:`splat.metrics.ssim` with the compiled kernel: same definition, one pass each way.

    Differentiable with respect to ``img`` only (``ref`` is the ground truth).
    The partial derivatives are computed in the forward pass, so a training
    loss pays two passes over the image instead of ten blurs and their
    backwards.

    Args:
        img: Tensor,  # [H, W, C] or [B, H, W, C] float32 on the CPU
        ref: Tensor,  # same shape, no gradient
        data_range: span of pixel values.
        window_size: odd window width.
        sigma: standard deviation of the window.

    Returns:
        A scalar for one image, ``[B]`` for a batch.

    Raises:
        TypeError, ValueError: as :func:`splat.metrics.ssim`, and for tensors
            that are not float32 on the CPU.
        RuntimeError: if the kernel cannot be built.
    """
    from splat.metrics import _check_pair, _check_range

    _check_pair(img, ref)
    _check_range(data_range)
    for name, t in (("img", img), ("ref", ref)):
        if t.device.type != "cpu" or t.dtype != torch.float32:
            raise TypeError(f"{name} must be a float32 CPU tensor for the cpu SSIM, got {t.dtype} on {t.device}")
    if window_size % 2 == 0 or window_size < 3:
        raise ValueError(f"window_size must be an odd integer >= 3, got {window_size}")
    if min(img.shape[-3], img.shape[-2]) < window_size:
        raise ValueError(
            f"img must be at least {window_size}x{window_size} pixels for SSIM, got {img.shape[-3]}x{img.shape[-2]}"
        )
    if ref.requires_grad:
        raise ValueError("ref must not require a gradient (the cpu SSIM differentiates img only)")
    single = img.ndim == 3
    x = (img[None] if single else img).contiguous()
    y = (ref[None] if single else ref).contiguous()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = _SSIM.apply(x, y, _window(window_size, sigma), float(c1), float(c2))
    return out[0] if single else out
