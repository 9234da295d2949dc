"""Structural node features for graphs that come without any.

The default is ``[one-hot log2-degree bucket | smallest non-trivial
eigenvectors of the symmetric normalised Laplacian]``. Eigenvector signs are
fixed (largest-magnitude entry positive) so the features are deterministic.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


def degree_buckets(edge_index: Tensor, num_nodes: int, num_buckets: int = 8) -> Tensor:
    """One-hot bucket of ``floor(log2(1 + degree))``, clipped to ``num_buckets - 1``.

    Args:
        edge_index: ``[2, E]`` directed edges (an undirected graph lists both directions).
        num_nodes: number of nodes N.
        num_buckets: number of buckets B.

    Returns:
        ``[N, B]`` float one-hot rows.
    """
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    deg = torch.bincount(edge_index[1], minlength=num_nodes).double()
    bucket = torch.floor(torch.log2(1.0 + deg)).long().clamp(max=num_buckets - 1)
    return torch.nn.functional.one_hot(bucket, num_buckets).float()


def laplacian_eigenvectors(edge_index: Tensor, num_nodes: int, k: int = 8) -> Tensor:
    """The ``k`` eigenvectors after the first of ``I - D^-1/2 A D^-1/2``.

    Isolated nodes have a zero row in ``A`` and get ``L_ii = 1``. Graphs with
    fewer than ``k + 1`` nodes are padded with zero columns.

    Returns:
        ``[N, k]`` float eigenvectors, sign-fixed.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    out = np.zeros((num_nodes, k))
    if k == 0 or num_nodes < 2:
        return torch.from_numpy(out).float()
    src, dst = edge_index.cpu().numpy()
    a = sp.coo_matrix((np.ones(len(src)), (src, dst)), shape=(num_nodes, num_nodes)).tocsr()
    a = ((a + a.T) > 0).astype(np.float64)
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    lap = np.eye(num_nodes) - (sp.diags(inv) @ a @ sp.diags(inv)).toarray()
    _, vecs = np.linalg.eigh(lap)
    m = min(k, num_nodes - 1)
    vecs = vecs[:, 1:1 + m]
    signs = np.sign(vecs[np.abs(vecs).argmax(0), np.arange(m)])
    out[:, :m] = vecs * np.where(signs == 0, 1.0, signs)
    return torch.from_numpy(out).float()


def structural_features(edge_index: Tensor, num_nodes: int, num_buckets: int = 8,
                        num_eigenvectors: int = 8) -> Tensor:
    """The documented default node features: degree buckets and Laplacian eigenvectors.

    Returns:
        ``[N, num_buckets + num_eigenvectors]`` float features.
    """
    return torch.cat([degree_buckets(edge_index, num_nodes, num_buckets),
                      laplacian_eigenvectors(edge_index, num_nodes, num_eigenvectors)], dim=1)
