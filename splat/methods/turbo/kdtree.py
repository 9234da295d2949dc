"""Densifying a sparse initial point cloud along its KD-tree neighbourhoods.

SfM clouds are sparse where the surface is poorly textured; each point is
joined to its ``k`` nearest neighbours (a KD-tree query) and a new point is
placed at the midpoint of every pair not much longer than the cloud's typical
spacing, with the mean colour of the two ends. Long pairs are skipped so that
separate surfaces are not bridged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["kd_midpoints"]


def kd_midpoints(
    points: Tensor,  # [N, 3]
    colors: Tensor,  # [N, 3]
    k: int = 3,
    max_ratio: float = 2.0,
) -> tuple[Tensor, Tensor]:
    """Midpoints (and mean colours) of the short nearest-neighbour pairs of a cloud.

    Args:
        points: the cloud.
        colors: colour of each point.
        k: neighbours per point.
        max_ratio: pairs longer than this times the median nearest-neighbour
            distance are skipped.

    Returns:
        ``(midpoints [M, 3], colors [M, 3])``, each unordered pair once.

    >>> pts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]])
    >>> mids, _ = kd_midpoints(pts, torch.zeros(4, 3), k=1)
    >>> sorted(mids[:, 0].tolist())
    [0.5, 1.5]
    """
    from scipy.spatial import cKDTree

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = points.shape[0]
    if n < 2:
        return points.new_zeros(0, 3), colors.new_zeros(0, 3)
    pts = points.detach().cpu().double().numpy()
    dist, idx = cKDTree(pts).query(pts, k=min(k, n - 1) + 1)
    dist, idx = dist[:, 1:], idx[:, 1:]  # drop each point itself
    limit = max_ratio * float(np.median(dist[:, 0]))
    rows = np.repeat(np.arange(n), idx.shape[1])
    cols, d = idx.reshape(-1), dist.reshape(-1)
    keep = (d <= limit) & (cols < n)
    pairs = np.unique(np.sort(np.stack([rows[keep], cols[keep]], axis=1), axis=1), axis=0)
    if len(pairs) == 0:
        return points.new_zeros(0, 3), colors.new_zeros(0, 3)
    i = torch.as_tensor(pairs[:, 0], device=points.device)
    j = torch.as_tensor(pairs[:, 1], device=points.device)
    return (points[i] + points[j]) / 2.0, (colors[i] + colors[j]) / 2.0
