"""Rigid motions: the exact SE(3) exponential and logarithm, and pose errors.

A twist ``xi = (v, w)`` (translation part first, as Sophus) maps to the
homogeneous matrix ``exp(hat(xi))`` with the closed forms::

    R = I + A W + B W^2,   t = V v,   V = I + B W + C W^2
    A = sin(th) / th,  B = (1 - cos(th)) / th^2,  C = (th - sin(th)) / th^3

where ``W = hat(w)`` and ``th = |w|``. Near ``th = 0`` the coefficients use
their Taylor series, so values and gradients stay finite at the identity.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "hat", "twist_matrix", "exp_so3", "exp_se3", "log_so3", "log_se3", "inverse", "adjoint",
    "rotation_error_deg", "translation_error",
]

_SMALL = 1e-4  # below this angle (radians) the Taylor series are exact to float64 precision


def _check_vec(name: str, x, n: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape[-1:] != (n,):
        raise ValueError(f"{name} must be [..., {n}], got {list(x.shape)}")
    return x


def _check_mat(name: str, x, n: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape[-2:] != (n, n):
        raise ValueError(f"{name} must be [..., {n}, {n}], got {list(x.shape)}")
    return x


def hat(w: Tensor) -> Tensor:
    """Skew-symmetric matrices ``[..., 3, 3]`` with ``hat(w) @ u == cross(w, u)``.

    Args:
        w: Tensor,  # [..., 3]
    """
    _check_vec("w", w, 3)
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*w.shape[:-1], 3, 3)


def twist_matrix(xi: Tensor) -> Tensor:
    """The 4x4 Lie-algebra matrix ``[[hat(w), v], [0, 0]]`` of ``xi = (v, w)``.

    Args:
        xi: Tensor,  # [..., 6]

    Returns:
        Tensor,  # [..., 4, 4]; ``torch.linalg.matrix_exp`` of it equals :func:`exp_se3`.
    """
    _check_vec("xi", xi, 6)
    top = torch.cat([hat(xi[..., 3:]), xi[..., :3, None]], dim=-1)  # [..., 3, 4]
    return torch.cat([top, torch.zeros_like(top[..., :1, :])], dim=-2)


def _coefficients(theta2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``A, B, C`` of the module docstring from ``th^2``, with Taylor series near 0."""
    small = theta2 < _SMALL**2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)  # a safe value where the series is used
    th = torch.sqrt(t2)
    a = torch.where(small, 1 - theta2 / 6 + theta2**2 / 120, torch.sin(th) / th)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2**2 / 720, (1 - torch.cos(th)) / t2)
    c = torch.where(small, 1 / 6 - theta2 / 120 + theta2**2 / 5040, (th - torch.sin(th)) / (t2 * th))
    return a, b, c


def exp_so3(w: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` of axis-angle vectors ``w [..., 3]`` (Rodrigues)."""
    W = hat(w)
    a, b, _ = _coefficients((w * w).sum(-1))
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a[..., None, None] * W + b[..., None, None] * (W @ W)


def exp_se3(xi: Tensor) -> Tensor:
    """The exact exponential of twists ``xi = (v, w)``.

    Args:
        xi: Tensor,  # [..., 6] translation part ``v`` then rotation part ``w``

    Returns:
        Tensor,  # [..., 4, 4] rigid transforms

    >>> import torch
    >>> T = exp_se3(torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 0.0]))
    >>> T[:3, 3].tolist()
    [1.0, 2.0, 3.0]
    """
    _check_vec("xi", xi, 6)
    v, w = xi[..., :3], xi[..., 3:]
    W = hat(w)
    W2 = W @ W
    a, b, c = _coefficients((w * w).sum(-1))
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device)
    R = eye + a[..., None, None] * W + b[..., None, None] * W2
    V = eye + b[..., None, None] * W + c[..., None, None] * W2
    t = (V @ v[..., None])[..., 0]
    top = torch.cat([R, t[..., None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def log_so3(R: Tensor) -> Tensor:
    """Axis-angle vectors ``[..., 3]`` (angle in ``[0, pi]``) of rotation matrices ``R [..., 3, 3]``.

    Goes through the unit quaternion (Shepperd's method), which is stable near
    both 0 and pi: ``w = 2 atan2(|q_v|, q_w) q_v / |q_v|``.
    """
    from splat.core.camera import rotmat_to_quat

    _check_mat("R", R, 3)
    q = rotmat_to_quat(R)  # [..., 4] with q_w >= 0
    qw, qv = q[..., :1], q[..., 1:]
    n = qv.norm(dim=-1, keepdim=True)
    small = n < 1e-8
    safe_n = torch.where(small, torch.ones_like(n), n)
    scale = torch.where(small, 2.0 / qw.clamp_min(1e-12), 2.0 * torch.atan2(n, qw) / safe_n)
    return scale * qv


def log_se3(T: Tensor) -> Tensor:
    """Twists ``[..., 6]`` with ``exp_se3(log_se3(T)) == T`` (rotation angle in ``[0, pi]``).

    Args:
        T: Tensor,  # [..., 4, 4] rigid transforms
    """
    _check_mat("T", T, 4)
    w = log_so3(T[..., :3, :3])
    theta2 = (w * w).sum(-1)
    W = hat(w)
    a, b, _ = _coefficients(theta2)
    small = theta2 < _SMALL**2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    # V^-1 = I - W / 2 + D W^2 with D = (1 - A / (2 B)) / th^2.
    d = torch.where(small, 1 / 12 + theta2 / 720 + theta2**2 / 30240, (1 - a / (2 * b)) / t2)
    eye = torch.eye(3, dtype=T.dtype, device=T.device)
    v_inv = eye - 0.5 * W + d[..., None, None] * (W @ W)
    v = (v_inv @ T[..., :3, 3:])[..., 0]
    return torch.cat([v, w], dim=-1)


def inverse(T: Tensor) -> Tensor:
    """Inverses ``[..., 4, 4]`` of rigid transforms (``[R^T, -R^T t]``)."""
    _check_mat("T", T, 4)
    Rt = T[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ T[..., :3, 3:]
    out[..., 3, 3] = 1.0
    return out


def adjoint(T: Tensor) -> Tensor:
    """The 6x6 adjoint of ``T`` for twists ``(v, w)``: ``T exp(xi) T^-1 = exp(adjoint(T) xi)``.

    Args:
        T: Tensor,  # [..., 4, 4]

    Returns:
        Tensor,  # [..., 6, 6] ``[[R, hat(t) R], [0, R]]``
    """
    _check_mat("T", T, 4)
    R, t = T[..., :3, :3], T[..., :3, 3]
    top = torch.cat([R, hat(t) @ R], dim=-1)
    bottom = torch.cat([torch.zeros_like(R), R], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def rotation_error_deg(R_est: Tensor, R_gt: Tensor) -> Tensor:
    """Geodesic angle in degrees between rotations ``[..., 3, 3]`` (BOP's ``re``)."""
    cos = ((R_est.transpose(-1, -2) @ R_gt).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def translation_error(t_est: Tensor, t_gt: Tensor) -> Tensor:
    """Euclidean distance between translations ``[..., 3]`` (BOP's ``te``)."""
    return (t_est - t_gt).norm(dim=-1)


def random_rotation(generator: torch.Generator | None = None, dtype=torch.float64) -> Tensor:
    """A rotation drawn uniformly from SO(3) (normalised Gaussian quaternion)."""
    from splat.core.camera import quat_to_rotmat

    q = torch.randn(4, generator=generator, dtype=dtype)
    return quat_to_rotmat(q / q.norm())


def perturb(T: Tensor, angle_deg: float, distance: float, generator: torch.Generator | None = None) -> Tensor:
    """``T`` rotated by exactly ``angle_deg`` about its own origin and shifted by ``distance``.

    The rotation axis and the shift direction are uniform on the sphere; the
    rotation acts about the object origin (in the camera frame), so the object
    does not swing around the camera.

    Args:
        T: Tensor,  # [4, 4] object-to-camera transform
        angle_deg: rotation error in degrees.
        distance: translation error in the units of ``T``.
    """
    _check_mat("T", T, 4)
    axis = torch.randn(3, generator=generator, dtype=T.dtype)
    shift = torch.randn(3, generator=generator, dtype=T.dtype)
    R = exp_so3(axis / axis.norm() * math.radians(angle_deg))
    out = T.clone()
    out[:3, :3] = R @ T[:3, :3]
    out[:3, 3] = T[:3, 3] + shift / shift.norm() * distance
    return out
