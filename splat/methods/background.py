"""A learned background: a low-degree spherical-harmonic colour of the viewing direction.

Scenes without a known background (a sky, distant surroundings) would
otherwise have to be painted by Gaussians that sit far away and are seen by
few views. Here the Gaussians are rendered over black and every pixel adds
``(1 - alpha) * env(d)``, where ``d`` is the pixel's world-space ray
direction and ``env(d) = max(SH(d) . coeffs + 0.5, 0)`` (the colour
convention of the Gaussians' own SH). Degree 0 is one learned colour; degree
2 also models a sky whose colour changes with elevation and azimuth.

The compositing itself (:func:`over_environment` and its helpers) is pure maths
shared with rendering and lives in :mod:`splat.core.environment`; it is
re-exported here. A fit writes the learned coefficients beside its PLY as ``environment.json``
(:func:`save_environment`), so renders of the PLY (``splatops render``) draw
the same environment; :func:`load_environment` reads it back.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch import Tensor

from splat.core.environment import environment_colors, over_environment, pixel_directions
from splat.core.sh import num_sh_bases

__all__ = ["pixel_directions", "environment_colors", "over_environment", "init_environment",
           "BACKGROUND_KEY", "ENVIRONMENT_FILE", "save_environment", "load_environment"]

#: ``MethodState.params`` entry holding a method's learned environment coefficients.
BACKGROUND_KEY = "background_sh"

#: File name of the learned environment, written beside ``point_cloud.ply``.
ENVIRONMENT_FILE = "environment.json"


def init_environment(degree: int, color=(0.5, 0.5, 0.5)) -> Tensor:
    """SH coefficients ``[K, 3]`` of a uniform environment of ``color``."""
    from splat.core.sh import SH_C0

    coeffs = torch.zeros(num_sh_bases(degree), 3)
    coeffs[0] = (torch.as_tensor(color, dtype=torch.float32) - 0.5) / SH_C0
    return coeffs


def _degree_of(coeffs: Tensor) -> int:
    """SH degree whose basis count is ``coeffs.shape[0]``, or -1 when none is."""
    if coeffs.ndim != 2 or coeffs.shape[1] != 3:
        return -1
    degree = math.isqrt(coeffs.shape[0]) - 1
    return degree if 0 <= degree <= 3 and num_sh_bases(degree) == coeffs.shape[0] else -1


def save_environment(path: str | os.PathLike, coeffs: Tensor) -> Path:
    """Writes learned environment coefficients ``[K, 3]`` as JSON (atomically).

    Args:
        path: destination, usually ``out_dir / ENVIRONMENT_FILE``.
        coeffs: SH coefficients, ``K = (degree + 1) ** 2`` rows of RGB.

    Returns:
        ``path``.
    """
    from splat.io.atomic import write_json_atomic

    coeffs = coeffs.detach().float().cpu()
    degree = _degree_of(coeffs)
    if degree < 0:
        raise ValueError(f"environment coefficients must be [(d+1)^2, 3] with d in 0..3, got {tuple(coeffs.shape)}")
    return write_json_atomic(path, {
        "kind": "sh_environment",
        "degree": degree,
        "color": "max(SH(d) . coeffs + 0.5, 0) for the world-space ray direction d",
        "coeffs": coeffs.tolist(),
    })


def load_environment(path: str | os.PathLike) -> tuple[Tensor, int]:
    """Reads an environment written by :func:`save_environment`.

    Returns:
        ``(coeffs [K, 3], degree)``.

    Raises:
        ValueError: the file is not a valid environment (named by its file name).
    """
    name = Path(path).name
    try:
        data = json.loads(Path(path).read_text())
        coeffs = torch.tensor(data["coeffs"], dtype=torch.float32)
        degree = int(data["degree"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{name} is not a readable environment file ({exc})") from exc
    if data.get("kind") != "sh_environment" or _degree_of(coeffs) != degree:
        raise ValueError(f"{name} is not an SH environment: expected kind 'sh_environment' and "
                         f"(degree + 1)^2 rows of RGB coefficients")
    return coeffs, degree
