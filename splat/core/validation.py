"""Input checks at the rasterizer's public boundary.

Each check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong
shape, value or device) naming the argument, what was expected and what came.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional

import torch
from torch import Tensor

from splat.core.sh import MAX_SH_DEGREE, num_sh_bases

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
RASTERIZE_MODES = ("classic", "antialiased")
BACKENDS = ("auto", "torch", "cpu", "gsplat")

# The only full pass over the data in validation; per context (thread), on by default.
_FINITE_CHECKS: ContextVar[bool] = ContextVar("splatops_finite_checks", default=True)


def finite_checks_enabled() -> bool:
    """Whether :func:`validate_rasterization_inputs` scans tensors for NaN/inf here."""
    return _FINITE_CHECKS.get()


@contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Turns the NaN/inf scan of rasterizer inputs on or off inside a ``with`` block.

    Every other check (types, shapes, devices, modes) always runs. A training
    loop whose inputs are its own parameters, checked once when it starts,
    turns the scan off so that no step pays a full pass over the data; the
    setting is per thread (a :class:`contextvars.ContextVar`).

    >>> with finite_checks(False):
    ...     finite_checks_enabled()
    False
    """
    token = _FINITE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _FINITE_CHECKS.reset(token)


def _shape(t: Tensor) -> str:
    return f"[{', '.join(str(s) for s in t.shape)}]"


def check_tensor(name: str, value: object) -> Tensor:
    """Requires a floating-point tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_shape(name: str, value: Tensor, expected: tuple, pattern: str) -> None:
    """Requires ``value.shape == expected``; ``None`` entries match any size."""
    ok = value.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, value.shape))
    if not ok:
        raise ValueError(f"{name} must have shape {pattern}, got {_shape(value)}")


def check_finite(name: str, value: Tensor) -> None:
    """Requires every entry to be finite."""
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN/inf value(s)")


def check_positive_int(name: str, value: object) -> int:
    """Requires a positive int (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return int(value)


def check_real(name: str, value: object) -> float:
    """Requires a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not float("-inf") < float(value) < float("inf"):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_choice(name: str, value: object, choices: tuple) -> str:
    """Requires one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def validate_rasterization_inputs(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
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
    backend: str,
) -> None:
    """Checks everything :func:`splat.core.rasterization.rasterization` takes, once per call.

    The backends trust what passes here. The NaN/inf scan can be switched off
    with :func:`finite_checks`.

    Raises:
        TypeError: a tensor argument is not a floating-point tensor, dtypes
            differ, or a scalar has the wrong type.
        ValueError: a shape, count, value, device or mode is wrong.
    """
    tensors = {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "viewmats": viewmats,
        "Ks": Ks,
    }
    if backgrounds is not None:
        tensors["backgrounds"] = backgrounds
    for name, value in tensors.items():
        check_tensor(name, value)

    check_shape("means", means, (None, 3), "[N, 3]")
    N = means.shape[0]
    check_shape("quats", quats, (N, 4), f"[N, 4] with N={N} (from means)")
    check_shape("scales", scales, (N, 3), f"[N, 3] with N={N} (from means)")
    check_shape("opacities", opacities, (N,), f"[N] with N={N} (from means)")
    check_shape("viewmats", viewmats, (None, 4, 4), "[C, 4, 4]")
    C = viewmats.shape[0]
    if C == 0:
        raise ValueError("viewmats must hold at least one camera, got C=0")
    check_shape("Ks", Ks, (C, 3, 3), f"[C, 3, 3] with C={C} (from viewmats)")

    if sh_degree is None:
        if colors.ndim == 2:
            check_shape("colors", colors, (N, None), f"[N, D] or [C, N, D] with N={N}, C={C}")
        else:
            check_shape("colors", colors, (C, N, None), f"[N, D] or [C, N, D] with N={N}, C={C}")
        if colors.shape[-1] < 1:
            raise ValueError(f"colors must have at least one channel, got {_shape(colors)}")
    else:
        if isinstance(sh_degree, bool) or not isinstance(sh_degree, numbers.Integral):
            raise TypeError(f"sh_degree must be an int or None, got {type(sh_degree).__name__}")
        if not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {sh_degree}")
        pattern = f"[N, K, 3] or [C, N, K, 3] SH coefficients with N={N}, C={C}"
        if colors.ndim == 3:
            check_shape("colors", colors, (N, None, 3), pattern)
        else:
            check_shape("colors", colors, (C, N, None, 3), pattern)
        if colors.shape[-2] < num_sh_bases(sh_degree):
            raise ValueError(
                f"colors must have K >= {num_sh_bases(sh_degree)} SH bases for sh_degree={sh_degree}, "
                f"got K={colors.shape[-2]}"
            )
    channels = 3 if sh_degree is not None else colors.shape[-1]
    if backgrounds is not None:
        check_shape("backgrounds", backgrounds, (C, channels), f"[C, D] with C={C}, D={channels}")

    check_positive_int("width", width)
    check_positive_int("height", height)
    check_positive_int("tile_size", tile_size)
    near = check_real("near_plane", near_plane)
    far = check_real("far_plane", far_plane) if far_plane != float("inf") else far_plane
    if not near < far:
        raise ValueError(f"near_plane must be < far_plane, got near_plane={near}, far_plane={far}")
    if check_real("radius_clip", radius_clip) < 0:
        raise ValueError(f"radius_clip must be >= 0, got {radius_clip}")
    if check_real("eps2d", eps2d) < 0:
        raise ValueError(f"eps2d must be >= 0, got {eps2d}")
    check_choice("render_mode", render_mode, RENDER_MODES)
    check_choice("rasterize_mode", rasterize_mode, RASTERIZE_MODES)
    check_choice("backend", backend, BACKENDS)
    if not isinstance(absgrad, bool):
        raise TypeError(f"absgrad must be a bool, got {type(absgrad).__name__}")

    devices = {name: value.device for name, value in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listing}")
    dtypes = {name: value.dtype for name, value in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"all floating tensors must share one dtype, got {listing}")
    if _FINITE_CHECKS.get():
        for name, value in tensors.items():
            check_finite(name, value)
