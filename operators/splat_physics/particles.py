"""From a fitted splat model to MPM particles: selection, framing in the box, volume fill.

The simulation runs in the unit box of :mod:`operators.mpm` with gravity along
``-y``. :class:`BoxFrame` maps the selected Gaussians from the splat's world
into the box (a signed axis permutation that puts the chosen ``up`` axis on
``+y``, a uniform scale and a shift) and back. The object's volume is filled
from the Gaussians' densities: each Gaussian adds its opacity-weighted
density to the voxels around it, voxels above a threshold are solid, holes
are closed and the interior filled (a hollow, surface-only splat becomes a
solid), and every solid voxel gets one particle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from splat.core.gaussians import Gaussians

UP_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")


def select_gaussians(gaussians: Gaussians, box=None, min_opacity: float = 0.05) -> Tensor:
    """Indices of the Gaussians to simulate: inside ``box`` (all when None) and visible.

    Args:
        gaussians: a fitted model.
        box: ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` in world units, or None.
        min_opacity: Gaussians fainter than this are left out (they carry no material).

    Returns:
        Tensor,  # [S] sorted indices

    Raises:
        ValueError: a malformed box, or a selection that holds no Gaussian.
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be Gaussians, got {type(gaussians).__name__}")
    means = gaussians.means.detach()
    keep = gaussians.opacities.detach() >= min_opacity
    if box is not None:
        b = torch.as_tensor(np.asarray(box, dtype=np.float64), dtype=torch.float32)
        if b.shape != (2, 3) or not torch.isfinite(b).all() or not (b[1] > b[0]).all():
            raise ValueError(f"box must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with max > min, "
                             f"got {np.asarray(box).tolist()}")
        keep &= ((means >= b[0]) & (means <= b[1])).all(-1)
    idx = torch.nonzero(keep).squeeze(-1)
    if idx.numel() == 0:
        where = f"inside the box {np.asarray(box).tolist()}" if box is not None else "in the model"
        raise ValueError(f"empty selection: no Gaussian with opacity >= {min_opacity} {where} "
                         f"(the model has {gaussians.num_gaussians} Gaussians)")
    return idx


def _up_rotation(up: str) -> Tensor:
    """Signed permutation matrix ``R`` (world -> box axes) that sends ``up`` to ``+y``."""
    if up not in UP_AXES:
        raise ValueError(f"up must be one of {list(UP_AXES)}, got {up!r}")
    axis = "xyz".index(up[1])
    sign = 1.0 if up[0] == "+" else -1.0
    others = [a for a in range(3) if a != axis]
    R = torch.zeros(3, 3, dtype=torch.float64)
    R[1, axis] = sign
    R[0, others[0]] = 1.0
    R[2, others[1]] = sign  # keep det(R) = +1
    return R


@dataclass
class BoxFrame:
    """World <-> simulation-box map ``x_box = scale * R (x_world - centre) + shift``.

    Attributes:
        rotation: Tensor,  # [3, 3] signed permutation, det +1
        scale: box units per world unit.
        centre: Tensor,  # [3] world point mapped to ``shift``
        shift: Tensor,  # [3]
    """

    rotation: Tensor
    scale: float
    centre: Tensor
    shift: Tensor

    def to_box(self, x: Tensor) -> Tensor:
        """World points ``[..., 3]`` -> box points (float64)."""
        return self.scale * (x.double() - self.centre) @ self.rotation.T + self.shift

    def to_world(self, x: Tensor) -> Tensor:
        """Box points ``[..., 3]`` -> world points (float64)."""
        return (x.double() - self.shift) @ self.rotation / self.scale + self.centre

    def gradient_to_world(self, F: Tensor) -> Tensor:
        """A box-frame deformation gradient ``[..., 3, 3]`` in world axes: ``Rᵀ F R``."""
        R = self.rotation
        return R.T @ F.double() @ R


def frame_object(means: Tensor, up: str = "+y", object_size: float = 0.25, bottom: float = 0.15,
                 wall: float = 0.08) -> BoxFrame:
    """The map that scales the object's longest extent to ``object_size``, centres it
    horizontally in the box and puts its lowest point ``bottom`` above the floor wall."""
    if not 0 < object_size < 1 - 2 * wall:
        raise ValueError(f"object_size must be in (0, {1 - 2 * wall:g}), got {object_size}")
    R = _up_rotation(up)
    p = means.detach().double() @ R.T
    lo, hi = p.min(0).values, p.max(0).values
    extent = float((hi - lo).max())
    if extent <= 0:
        raise ValueError("the selection has zero extent (all Gaussians at one point)")
    scale = object_size / extent
    centre_box = (lo + hi) / 2
    centre = centre_box @ R  # back to world axes
    shift = torch.tensor([0.5, wall + bottom + scale * float(centre_box[1] - lo[1]), 0.5],
                         dtype=torch.float64)
    if float(shift[1]) + object_size / 2 > 1 - wall:
        raise ValueError(f"bottom={bottom} with object_size={object_size} leaves the box")
    return BoxFrame(R, scale, centre, shift)


def density_grid(means: Tensor, scales: Tensor, opacities: Tensor, spacing: float,
                 lo: Tensor, shape: tuple[int, int, int]) -> np.ndarray:
    """Opacity of the densest Gaussian at every voxel (isotropic approximation).

    A voxel gets ``max_i opacity_i * exp(-d_i² / 2σ_i²)`` over the Gaussians
    within two voxels, with ``σ`` a Gaussian's geometric-mean scale, and at
    least the opacity of any Gaussian whose centre it holds (so Gaussians much
    smaller than a voxel still mark it). The maximum, not the sum, keeps a
    dense surface of many overlapping Gaussians from thickening.

    Args:
        means: Tensor,  # [G, 3] box units
        scales: Tensor,  # [G, 3] box units
        opacities: Tensor,  # [G]
        spacing: voxel edge.
        lo: Tensor,  # [3] corner of voxel (0, 0, 0)
        shape: voxels per axis.

    Returns:
        float64 array of the given shape.
    """
    m = means.double().numpy()
    sigma = np.maximum(scales.double().prod(-1).pow(1 / 3).numpy(), 1e-3 * spacing)
    op = opacities.double().numpy()
    base = np.floor((m - lo.numpy()) / spacing).astype(np.int64)
    dims = np.asarray(shape)
    grid = np.zeros(int(np.prod(shape)))
    own = (base[:, 0] * dims[1] + base[:, 1]) * dims[2] + base[:, 2]
    np.maximum.at(grid, own, op)
    reach = int(np.clip(np.ceil(2 * sigma.max() / spacing), 1, 2))
    for off in np.ndindex(*(2 * reach + 1,) * 3):
        cell = base + np.asarray(off) - reach
        inside = ((cell >= 0) & (cell < dims)).all(1)
        c = cell[inside]
        centre = lo.numpy() + (c + 0.5) * spacing
        d2 = ((centre - m[inside]) ** 2).sum(1)
        val = op[inside] * np.exp(-0.5 * d2 / sigma[inside] ** 2)
        np.maximum.at(grid, (c[:, 0] * dims[1] + c[:, 1]) * dims[2] + c[:, 2], val)
    return grid.reshape(shape)


def fill_particles(means: Tensor, scales: Tensor, opacities: Tensor, spacing: float,
                   max_particles: int, threshold: float = 0.5, seed: int = 0) -> Tensor:
    """Particles filling the solid the Gaussians describe, one per solid voxel.

    Args:
        means: Tensor,  # [G, 3] box units
        scales: Tensor,  # [G, 3] box units (activated)
        opacities: Tensor,  # [G] activated
        spacing: particle spacing (voxel edge) in box units.
        max_particles: the particle budget.
        threshold: opacity above which a voxel is solid.
        seed: seed of the sub-voxel jitter.

    Returns:
        Tensor,  # [N, 3] positions, a quarter-voxel jitter about the voxel centres

    Raises:
        ValueError: the fill needs more particles than ``max_particles``, or
            no voxel reaches the threshold.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    lo = means.double().min(0).values - 2 * spacing
    hi = means.double().max(0).values + 2 * spacing
    shape = tuple(int(v) for v in torch.ceil((hi - lo) / spacing).tolist())
    if int(np.prod(shape)) > 50 * max_particles + 10 ** 6:
        raise ValueError(f"the selection spans {shape} voxels at spacing {spacing:g}; "
                         f"that needs far more than the budget of {max_particles} particles")
    dens = density_grid(means, scales, opacities, spacing, lo, shape)
    solid = dens > threshold
    solid = ndimage.binary_fill_holes(ndimage.binary_closing(solid, iterations=1) | solid)
    cells = np.argwhere(solid)
    n = cells.shape[0]
    if n == 0:
        raise ValueError(f"no voxel of the selection reaches density {threshold}; the Gaussians are "
                         "too faint or too sparse for spacing {spacing:g}")
    if n > max_particles:
        raise ValueError(f"the selected object needs {n} particles at spacing {spacing:g}, over the "
                         f"budget of {max_particles}: raise the budget, use a coarser spacing or "
                         "select a smaller box")
    rng = np.random.default_rng(seed)
    pos = lo.numpy() + (cells + 0.5 + rng.uniform(-0.25, 0.25, cells.shape)) * spacing
    return torch.from_numpy(pos).float()
