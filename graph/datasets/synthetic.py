"""Seeded node-classification graphs of any size with a chosen homophily and mean degree.

A degree-corrected-free stochastic block model drawn edge by edge in O(E)
memory and time (torch-geometric's ``stochastic_blockmodel_graph`` builds
dense block probabilities and is too slow at 10^6 nodes): every undirected
edge picks a uniform source, then with probability ``homophily`` a uniform
target in the source's class, else a uniform target in one of the other
classes. Classes are balanced, so degrees are close to Poisson(``avg_degree``)
and the edge homophily (fraction of edges joining same-class nodes) is
``homophily`` up to sampling noise. Self-loops and repeated pairs are dropped.

Features are weak on purpose, so that the graph matters: ``x = snr * mu[y] +
noise`` with class centres ``mu ~ N(0, I)`` and unit Gaussian noise.

>>> data = homophilous_sbm(2000, num_classes=4, avg_degree=8, homophily=0.7, seed=0)
>>> abs(edge_homophily(data.edge_index, data.y) - 0.7) < 0.05
True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data


def _check(num_nodes, num_classes, avg_degree, homophily, num_features, feature_snr, train,
           val) -> None:
    if not isinstance(num_nodes, int) or num_nodes < 2:
        raise ValueError(f"num_nodes must be an int >= 2, got {num_nodes!r}")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= num_nodes:
        raise ValueError(f"num_classes must be an int in [2, num_nodes], got {num_classes!r}")
    if not 0 < avg_degree < num_nodes / num_classes:
        raise ValueError(f"avg_degree must be in (0, num_nodes / num_classes), got {avg_degree!r}")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must be in [0, 1], got {homophily!r}")
    if not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"num_features must be a positive int, got {num_features!r}")
    if feature_snr < 0:
        raise ValueError(f"feature_snr must be >= 0, got {feature_snr!r}")
    if not (0 < train < 1 and 0 < val < 1 and train + val < 1):
        raise ValueError(f"train and val must be fractions with train + val < 1, "
                         f"got {train}, {val}")


def sbm_edges(y: np.ndarray, num_classes: int, avg_degree: float, homophily: float,
              rng: np.random.Generator) -> np.ndarray:
    """Undirected SBM edges as ``[2, M]`` int64 pairs with ``row < col`` (no loops, no repeats).

    Args:
        y: ``[N]`` class of each node (every class non-empty).
        num_classes: C.
        avg_degree: wanted mean degree (each undirected edge counts for both ends).
        homophily: probability that an edge joins two nodes of the same class.
        rng: numpy generator.
    """
    n = len(y)
    m = int(round(n * avg_degree / 2))
    order = np.argsort(y, kind="stable")
    sizes = np.bincount(y, minlength=num_classes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    src = rng.integers(0, n, size=m)
    cls = y[src]
    inter = rng.random(m) >= homophily
    cls = np.where(inter, (cls + rng.integers(1, num_classes, size=m)) % num_classes, cls)
    dst = order[offsets[cls] + (rng.random(m) * sizes[cls]).astype(np.int64)]
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    keep = lo != hi
    keys = np.unique(lo[keep].astype(np.int64) * n + hi[keep])
    return np.stack([keys // n, keys % n])


def homophilous_sbm(num_nodes: int, num_classes: int = 5, avg_degree: float = 10.0,
                    homophily: float = 0.8, num_features: int = 32, feature_snr: float = 0.25,
                    seed: int = 0, train: float = 0.6, val: float = 0.2) -> Data:
    """A node-classification graph with ``num_nodes`` nodes and controlled homophily and degree.

    Args:
        num_nodes: N (10^6 takes a few seconds and about 0.5 GB).
        num_classes: C balanced classes.
        avg_degree: mean node degree.
        homophily: wanted edge homophily in [0, 1] (1/C is a graph that ignores classes).
        num_features: F.
        feature_snr: length scale of the class centres against unit noise.
        seed: seeds the labels, edges, features and split.
        train / val: fractions of nodes in the train and validation masks (the rest is test).

    Returns:
        ``Data`` with ``x: [N, F]`` float32, ``edge_index: [2, E]`` (both directions,
        sorted by target), ``y: [N]``, ``train_mask`` / ``val_mask`` / ``test_mask``,
        ``num_classes`` and ``params`` (the arguments).
    """
    _check(num_nodes, num_classes, avg_degree, homophily, num_features, feature_snr, train, val)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(num_nodes) % num_classes)
    pairs = sbm_edges(y, num_classes, avg_degree, homophily, rng)
    both = np.concatenate([pairs, pairs[::-1]], axis=1)
    both = both[:, np.argsort(both[1] * num_nodes + both[0])]  # sorted by target, then source
    centres = rng.standard_normal((num_classes, num_features)).astype(np.float32)
    x = rng.standard_normal((num_nodes, num_features), dtype=np.float32)
    x += feature_snr * centres[y]
    perm = rng.permutation(num_nodes)
    n_train, n_val = int(train * num_nodes), int(val * num_nodes)
    masks = []
    for part in (perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]):
        m = torch.zeros(num_nodes, dtype=torch.bool)
        m[torch.from_numpy(part)] = True
        masks.append(m)
    data = Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(both),
                y=torch.from_numpy(y.astype(np.int64)), train_mask=masks[0], val_mask=masks[1],
                test_mask=masks[2])
    data.num_classes = num_classes
    data.params = dict(num_nodes=num_nodes, num_classes=num_classes, avg_degree=avg_degree,
                       homophily=homophily, num_features=num_features, feature_snr=feature_snr,
                       seed=seed)
    return data


def edge_homophily(edge_index: Tensor, y: Tensor) -> float:
    """Fraction of edges whose endpoints share a label.

    Args:
        edge_index: ``[2, E]``.
        y: ``[N]`` labels.
    """
    if edge_index.numel() == 0:
        raise ValueError("edge_homophily needs at least one edge, got none")
    return float((y[edge_index[0]] == y[edge_index[1]]).double().mean())


def mean_degree(edge_index: Tensor, num_nodes: int) -> float:
    """Mean incoming edges per node (the mean degree of an undirected graph listed both ways)."""
    return edge_index.shape[1] / num_nodes
