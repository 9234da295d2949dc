"""Graph construction on point clouds without compiled extras.

Same conventions as ``torch_geometric.nn`` (``radius_graph``, ``knn_graph``,
``radius``, ``knn``, ``fps``), computed with SciPy's ``cKDTree``. Edges are
``[2, E]`` with ``edge_index[0]`` the source and ``edge_index[1]`` the target
(``flow="source_to_target"``), sorted by target.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor


def _check_points(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {tuple(x.shape)}")
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _batch_slices(batch: Tensor | None, n: int) -> list[tuple[int, np.ndarray]]:
    if batch is None:
        return [(0, np.arange(n))]
    b = batch.detach().cpu().numpy()
    if b.shape != (n,):
        raise ValueError(f"batch must be [{n}], got {tuple(batch.shape)}")
    return [(int(v), np.nonzero(b == v)[0]) for v in np.unique(b)]


def _examples(x: Tensor, y: Tensor, batch_x: Tensor | None, batch_y: Tensor | None):
    """Checks ``x``/``y`` and yields, per example of the batch with points on both sides,
    ``(xs, ys, xi, yi)``: all points as float64 NumPy arrays and the example's row indices."""
    _check_points("x", x)
    _check_points("y", y)
    xs, ys = x.detach().cpu().double().numpy(), y.detach().cpu().double().numpy()
    ysl = dict(_batch_slices(batch_y, len(ys)))
    for b, xi in _batch_slices(batch_x, len(xs)):
        yi = ysl.get(b)
        if yi is not None and len(xi) and len(yi):
            yield xs, ys, xi, yi


def _to_edge_index(src: np.ndarray, dst: np.ndarray, device) -> Tensor:
    order = np.lexsort((src, dst))
    return torch.from_numpy(np.stack([src[order], dst[order]]).astype(np.int64)).to(device)


def radius(x: Tensor, y: Tensor, r: float, batch_x: Tensor | None = None,
           batch_y: Tensor | None = None, max_num_neighbors: int | None = None) -> Tensor:
    """For each point in ``y``, the points of ``x`` within distance ``r``.

    Args:
        x: ``[N, D]`` source points.
        y: ``[M, D]`` query points.
        r: radius (inclusive).
        batch_x: ``[N]`` example index of each source point, or None.
        batch_y: ``[M]`` example index of each query point, or None.
        max_num_neighbors: keep at most this many nearest neighbours per query.

    Returns:
        ``[2, E]`` pairs ``(index into y, index into x)``, as torch-geometric's ``radius``.
    """
    if r <= 0:
        raise ValueError(f"r must be positive, got {r}")
    rows, cols = [], []
    for xs, ys, xi, yi in _examples(x, y, batch_x, batch_y):
        tree = cKDTree(xs[xi])
        if max_num_neighbors is None:
            lists = tree.query_ball_point(ys[yi], r)
            counts = np.fromiter((len(l) for l in lists), dtype=np.int64, count=len(lists))
            col = np.fromiter((j for l in lists for j in l), dtype=np.int64, count=int(counts.sum()))
            row = np.repeat(np.arange(len(yi)), counts)
        else:
            k = min(max_num_neighbors, len(xi))
            d, j = tree.query(ys[yi], k=k, distance_upper_bound=r * (1 + 1e-12))
            d, j = d.reshape(len(yi), k), j.reshape(len(yi), k)
            keep = np.isfinite(d)
            row = np.nonzero(keep)[0]
            col = j[keep]
        rows.append(yi[row])
        cols.append(xi[col])
    if not rows:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    row, col = np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((col, row))
    return torch.from_numpy(np.stack([row[order], col[order]])).to(x.device)


def radius_graph(x: Tensor, r: float, batch: Tensor | None = None, loop: bool = False,
                 max_num_neighbors: int | None = None) -> Tensor:
    """Edges between all points closer than ``r``.

    Args:
        x: ``[N, D]`` points.
        r: radius (inclusive).
        batch: ``[N]`` example index of each point, or None.
        loop: keep self-loops.
        max_num_neighbors: keep at most this many nearest incoming edges per node.

    Returns:
        ``[2, E]`` edge index, ``(source, target)``, sorted by target.

    >>> import torch
    >>> radius_graph(torch.tensor([[0.0], [0.5], [2.0]]), r=1.0).tolist()
    [[1, 0], [0, 1]]
    """
    extra = 0 if (loop or max_num_neighbors is None) else 1
    pairs = radius(x, x, r, batch, batch,
                   None if max_num_neighbors is None else max_num_neighbors + extra)
    dst, src = pairs[0].cpu().numpy(), pairs[1].cpu().numpy()
    if not loop:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    return _to_edge_index(src, dst, x.device)


def knn(x: Tensor, y: Tensor, k: int, batch_x: Tensor | None = None,
        batch_y: Tensor | None = None) -> Tensor:
    """For each point in ``y``, its ``k`` nearest points in ``x``.

    Returns:
        ``[2, E]`` pairs ``(index into y, index into x)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rows, cols = [], []
    for xs, ys, xi, yi in _examples(x, y, batch_x, batch_y):
        kk = min(k, len(xi))
        _, j = cKDTree(xs[xi]).query(ys[yi], k=kk)
        j = j.reshape(len(yi), kk)
        rows.append(np.repeat(yi, kk))
        cols.append(xi[j.reshape(-1)])
    if not rows:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    return torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)])).to(x.device)


def knn_graph(x: Tensor, k: int, batch: Tensor | None = None, loop: bool = False) -> Tensor:
    """Edges from each point's ``k`` nearest neighbours to the point.

    Returns:
        ``[2, E]`` edge index, ``(source, target)``, sorted by target.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pairs = knn(x, x, k + (0 if loop else 1), batch, batch)
    dst, src = pairs[0].cpu().numpy(), pairs[1].cpu().numpy()
    if not loop:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    return _to_edge_index(src, dst, x.device)


def fps(x: Tensor, batch: Tensor | None = None, ratio: float = 0.5,
        random_start: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Farthest-point sampling.

    Args:
        x: ``[N, D]`` points.
        batch: ``[N]`` example index of each point, or None.
        ratio: fraction of points to keep per example, in ``(0, 1]``.
        random_start: start from a random point (else from the first).
        generator: random generator for the start point.

    Returns:
        ``[M]`` indices into ``x``, per example in sampling order.
    """
    _check_points("x", x)
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    pts = x.detach().cpu().to(torch.float64)
    out = []
    for _, idx in _batch_slices(batch, len(pts)):
        if len(idx) == 0:
            continue
        p = pts[torch.from_numpy(idx)]
        m = max(1, int(np.ceil(ratio * len(idx))))
        start = int(torch.randint(len(idx), (1,), generator=generator)) if random_start else 0
        chosen = torch.empty(m, dtype=torch.long)
        chosen[0] = start
        dist = ((p - p[start]) ** 2).sum(1)
        for i in range(1, m):
            nxt = int(torch.argmax(dist))
            chosen[i] = nxt
            dist = torch.minimum(dist, ((p - p[nxt]) ** 2).sum(1))
        out.append(torch.from_numpy(idx)[chosen])
    if not out:
        return torch.empty(0, dtype=torch.long, device=x.device)
    return torch.cat(out).to(x.device)
