"""Real spherical harmonics up to degree 3, in gsplat's (and 3DGS's) ordering.

Band ``l`` holds ``2l + 1`` bases, so degree ``d`` uses the first ``(d + 1)**2``
coefficients. Directions are normalised before evaluation, so they need not be
unit vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_SH_DEGREE = 3

# Normalisation constants of the real SH bases (the values 3DGS and gsplat use),
# defined here only; ``backends/csrc/project.cpp`` receives them from Python.
#: Degree-0 constant ``1 / (2 sqrt(pi))``.
SH_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

#: Every constant above in one flat tuple ``(C0, C1, C2[0..4], C3[0..6])``, as the compiled kernel takes them.
SH_CONSTANTS = (SH_C0, _C1, *_C2, *_C3)


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients a given degree uses: ``(degree + 1) ** 2``."""
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Evaluates the real SH bases of bands ``0..degree`` at unit directions.

    Args:
        degree: highest band, 0 to 3.
        dirs: Tensor,  # [..., 3] unit directions

    Returns:
        Tensor,  # [..., (degree + 1)**2]
    """
    if not isinstance(degree, int) or isinstance(degree, bool) or not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"degree must be an int in 0..{MAX_SH_DEGREE}, got {degree!r}")
    if dirs.shape[-1:] != (3,):
        raise ValueError(f"dirs must be [..., 3], got {tuple(dirs.shape)}")
    x, y, z = dirs.unbind(-1)
    bases = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        bases += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        bases += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2.0 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        bases += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(bases, dim=-1)


def spherical_harmonics(
    degree: int,
    dirs: Tensor,  # [..., 3]
    coeffs: Tensor,  # [..., K, D]
) -> Tensor:
    """Evaluates SH colours ``sum_k basis_k(dir) * coeffs[k]`` (no offset, no clamp).

    Only the first ``(degree + 1)**2`` coefficients are used; the rest are
    ignored, which lets training raise the active degree progressively.

    Args:
        degree: active SH degree, 0 to 3.
        dirs: Tensor,  # [..., 3] view directions (normalised here)
        coeffs: Tensor,  # [..., K, D] SH coefficients, K >= (degree + 1)**2

    Returns:
        Tensor,  # [..., D]

    >>> import torch
    >>> c = torch.zeros(1, 4, 3); c[0, 0] = 1.0
    >>> spherical_harmonics(1, torch.tensor([[0.0, 0.0, 2.0]]), c)
    tensor([[0.2821, 0.2821, 0.2821]])
    """
    if coeffs.ndim < 2:
        raise ValueError(f"coeffs must be [..., K, D], got {tuple(coeffs.shape)}")
    if isinstance(degree, int) and not isinstance(degree, bool) and 0 <= degree <= MAX_SH_DEGREE:
        if coeffs.shape[-2] < num_sh_bases(degree):
            raise ValueError(
                f"coeffs must have K >= {num_sh_bases(degree)} bases for degree {degree}, "
                f"got K={coeffs.shape[-2]}"
            )
    bases = sh_bases(degree, F.normalize(dirs, p=2, dim=-1))  # [..., B]
    used = coeffs[..., : bases.shape[-1], :]  # [..., B, D]
    return (bases.unsqueeze(-1) * used).sum(dim=-2)
