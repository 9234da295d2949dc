"""Cameras as the rasterizer takes them, and pure convention conversions.

Conventions: world-to-camera matrices (``viewmats``) in the OpenCV frame
(x right, y down, z forward), pinhole intrinsics ``Ks`` in pixels, as gsplat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.core.quaternion import quat_to_rotmat, rotmat_to_quat  # noqa: F401  (re-exported)

# Flipping y and z maps OpenGL/Blender camera axes (y up, z backward) to OpenCV's.
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def c2w_to_w2c(c2w: Tensor) -> Tensor:
    """Inverts rigid camera-to-world matrices.

    Args:
        c2w: ``[..., 4, 4]`` rigid transforms.

    Returns:
        ``[..., 4, 4]`` world-to-camera transforms.
    """
    R = c2w[..., :3, :3]
    t = c2w[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(c2w)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def w2c_to_c2w(w2c: Tensor) -> Tensor:
    """Inverts rigid world-to-camera matrices (the same formula as :func:`c2w_to_w2c`)."""
    return c2w_to_w2c(w2c)


def opengl_to_opencv(c2w: Tensor) -> Tensor:
    """Converts OpenGL/Blender camera-to-world matrices to the OpenCV frame.

    Args:
        c2w: ``[..., 4, 4]`` camera-to-world, camera looking down -z with y up.

    Returns:
        ``[..., 4, 4]`` camera-to-world, camera looking down +z with y down.

    >>> import torch
    >>> c2w = torch.eye(4)
    >>> opengl_to_opencv(opengl_to_opencv(c2w)).equal(c2w)
    True
    """
    return c2w @ _GL_TO_CV.to(c2w)


def opencv_to_opengl(c2w: Tensor) -> Tensor:
    """Inverse of :func:`opengl_to_opencv` (the flip is its own inverse)."""
    return c2w @ _GL_TO_CV.to(c2w)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> Tensor:
    """Builds a ``[3, 3]`` pinhole intrinsics matrix."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """OpenCV world-to-camera matrix of a camera at ``eye`` looking at ``target``.

    Args:
        eye: ``[3]`` camera centre.
        target: ``[3]`` point on the optical axis.
        up: ``[3]`` world up direction (default +z).

    Returns:
        ``[4, 4]`` world-to-camera matrix.
    """
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype)
    forward = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=0)
    down = torch.linalg.cross(forward, right)
    c2w = torch.eye(4, dtype=eye.dtype)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w_to_w2c(c2w)


@dataclass
class Camera:
    """A batch of pinhole cameras sharing one image size.

    Attributes:
        viewmats: ``[C, 4, 4]`` world-to-camera (OpenCV) matrices.
        Ks: ``[C, 3, 3]`` intrinsics in pixels.
        width: image width in pixels.
        height: image height in pixels.
    """

    viewmats: Tensor  # [C, 4, 4]
    Ks: Tensor  # [C, 3, 3]
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.viewmats.ndim != 3 or self.viewmats.shape[-2:] != (4, 4):
            raise ValueError(f"viewmats must be [C, 4, 4], got {tuple(self.viewmats.shape)}")
        if self.Ks.shape != (self.viewmats.shape[0], 3, 3):
            raise ValueError(
                f"Ks must be [C, 3, 3] with C={self.viewmats.shape[0]}, got {tuple(self.Ks.shape)}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, index) -> "Camera":
        """Selects cameras by int, slice, list or tensor index, keeping the batch dimension."""
        if isinstance(index, int):
            index = [index]
        return Camera(self.viewmats[index], self.Ks[index], self.width, self.height)

    def to(self, device: torch.device | str) -> "Camera":
        return Camera(self.viewmats.to(device), self.Ks.to(device), self.width, self.height)

    @property
    def c2w(self) -> Tensor:
        """``[C, 4, 4]`` camera-to-world matrices."""
        return w2c_to_c2w(self.viewmats)

    @property
    def centers(self) -> Tensor:
        """``[C, 3]`` camera centres in world space."""
        return self.c2w[:, :3, 3]


def focal_to_fov(focal: float | Tensor, pixels: float | Tensor) -> float | Tensor:
    """Full field of view in radians of a pinhole with ``focal`` (pixels) over ``pixels``.

    >>> import math
    >>> round(focal_to_fov(50.0, 100.0), 6) == round(math.pi / 2, 6)
    True
    """
    if isinstance(focal, Tensor) or isinstance(pixels, Tensor):
        return 2.0 * torch.atan(torch.as_tensor(pixels) / (2.0 * torch.as_tensor(focal)))
    return 2.0 * math.atan(pixels / (2.0 * focal))


def fov_to_focal(fov: float | Tensor, pixels: float | Tensor) -> float | Tensor:
    """Focal length in pixels of a pinhole whose full field of view ``fov`` (radians) spans ``pixels``."""
    if isinstance(fov, Tensor) or isinstance(pixels, Tensor):
        return torch.as_tensor(pixels) / (2.0 * torch.tan(torch.as_tensor(fov) / 2.0))
    return pixels / (2.0 * math.tan(fov / 2.0))


def project_points(points: Tensor, viewmats: Tensor, Ks: Tensor) -> tuple[Tensor, Tensor]:
    """Projects world points through pinhole cameras (OpenCV, pixel centres at ``i + 0.5``).

    Args:
        points: ``[N, 3]`` world points.
        viewmats: ``[C, 4, 4]`` world-to-camera matrices.
        Ks: ``[C, 3, 3]`` intrinsics.

    Returns:
        ``([C, N, 2]`` pixel coordinates ``(x, y)``, ``[C, N]`` camera-space depths ``z)``.
    """
    cam = points @ viewmats[:, :3, :3].transpose(-1, -2) + viewmats[:, None, :3, 3]  # [C, N, 3]
    z = cam[..., 2]
    uv = cam @ Ks.transpose(-1, -2)
    return uv[..., :2] / uv[..., 2:3], z
