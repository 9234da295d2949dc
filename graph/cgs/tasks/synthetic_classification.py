"""Seeded synthetic graph-classification sets, made differently from the connectomes.

- ``marked_distance``: sparse, elongated random graphs (a random tree whose
  nodes attach to one of the previous few nodes, plus a few short chords) with
  two marked nodes; the label says whether the shortest-path distance between
  the marks is short (2-4 hops, class 0) or long (8-12 hops, class 1). Only
  the two marks differ in their features, so the label needs information to
  travel between them: a long-range task.
- ``sbm_communities``: stochastic-block-model graphs of 36-60 nodes with 2, 3
  or 4 equal communities (label = count - 2), the same expected degree and
  the same within-community share of edges in every class, and constant node
  features: the label is a global property of the structure.
- ``sbm_communities_degree``: the same graphs (same seed, same draws) with the
  node degree over 6 as the second feature, a structural input for models
  whose aggregation cannot count neighbours.

Every graph is undirected (both directions listed), without self-loops, with
``x [N, 2]``, ``edge_attr [E, 1]`` (zeros), ``y [1]`` and the generating
quantity (``distance`` and ``marks``, or ``communities`` and ``block``).
Classes are exactly balanced and every graph's node count is drawn from the
same uniform range before anything that depends on its class. Everything is
drawn from ``numpy.random.default_rng(seed)``.

>>> graphs, classes = make_synthetic_classification("marked_distance", 8, seed=0)
>>> classes, sorted(int(g.y) for g in graphs)
(2, [0, 0, 0, 0, 1, 1, 1, 1])
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path
from torch_geometric.data import Data

DISTANCE_CLASSES = ((2, 4), (8, 12))  # hop ranges of the two marked_distance classes
SBM_COMMUNITIES = (2, 3, 4)


def _undirected(pairs: np.ndarray) -> torch.Tensor:
    """``[2, 2M]`` edge_index listing each pair of ``[M, 2]`` in both directions."""
    e = torch.as_tensor(pairs.T, dtype=torch.long)
    return torch.cat([e, e.flip(0)], dim=1)


def _hops(n: int, pairs: np.ndarray) -> np.ndarray:
    """All-pairs shortest-path hop counts (inf where disconnected)."""
    a = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return shortest_path(a, directed=False, unweighted=True)


def elongated_graph(n: int, rng: np.random.Generator, window: int = 3,
                    chords: float = 0.1) -> np.ndarray:
    """Connected sparse graph with a long diameter, as ``[M, 2]`` pairs (``i < j``, distinct).

    Node ``i`` attaches to one of the ``window`` previous nodes, then
    ``chords * n`` extra edges join nodes at most ``window + 1`` apart in index.
    """
    pairs = {(int(rng.integers(max(0, i - window), i)), i) for i in range(1, n)}
    for _ in range(int(round(chords * n))):
        i = int(rng.integers(0, n - 2))
        j = int(min(n - 1, i + rng.integers(2, window + 2)))
        pairs.add((i, j))
    return np.array(sorted(pairs), dtype=np.int64)


def _marked_distance_graph(label: int, rng: np.random.Generator, sizes: tuple[int, int]) -> Data:
    lo, hi = DISTANCE_CLASSES[label]
    n = int(rng.integers(sizes[0], sizes[1] + 1))  # drawn before the class-dependent rejection
    while True:
        pairs = elongated_graph(n, rng)
        hops = _hops(n, pairs)
        cand = np.argwhere((hops >= lo) & (hops <= hi))
        cand = cand[cand[:, 0] < cand[:, 1]]
        if len(cand):
            break
    a, b = (int(v) for v in cand[rng.integers(len(cand))])
    x = torch.zeros(n, 2)
    x[:, 1] = 1.0
    x[[a, b], 0], x[[a, b], 1] = 1.0, 0.0
    ei = _undirected(pairs)
    return Data(x=x, edge_index=ei, edge_attr=torch.zeros(ei.shape[1], 1),
                y=torch.tensor([label]), num_nodes=n, distance=int(hops[a, b]),
                marks=torch.tensor([a, b]))


def sbm_graph(n: int, k: int, rng: np.random.Generator, degree: float = 6.0,
              within: float = 0.85) -> tuple[np.ndarray, np.ndarray]:
    """Undirected SBM with ``k`` near-equal blocks: ``([M, 2] pairs, block [n])``.

    Edge probabilities are set so that the expected degree is ``degree`` and a
    fraction ``within`` of a node's expected edges stays in its block, whatever ``k``.
    """
    block = np.repeat(np.arange(k), int(np.ceil(n / k)))[:n]
    block = block[rng.permutation(n)]
    size = n / k
    p_in = min(1.0, within * degree / max(size - 1, 1))
    p_out = min(1.0, (1 - within) * degree / (n - size))
    iu, ju = np.triu_indices(n, 1)
    p = np.where(block[iu] == block[ju], p_in, p_out)
    keep = rng.random(len(p)) < p
    return np.stack([iu[keep], ju[keep]], 1).astype(np.int64), block


def _sbm_data(label: int, rng: np.random.Generator, sizes: tuple[int, int],
              degree: bool = False) -> Data:
    k = SBM_COMMUNITIES[label]
    n = int(rng.integers(sizes[0], sizes[1] + 1))
    pairs, block = sbm_graph(n, k, rng)
    ei = _undirected(pairs)
    x = torch.ones(n, 2)
    if degree:  # second feature: the node degree over its expected value 6
        x[:, 1] = torch.bincount(ei[0], minlength=n).float() / 6.0
    return Data(x=x, edge_index=ei, edge_attr=torch.zeros(ei.shape[1], 1),
                y=torch.tensor([label]), num_nodes=n, communities=k,
                block=torch.as_tensor(block))


_MAKERS = {
    "marked_distance": (_marked_distance_graph, len(DISTANCE_CLASSES), (20, 40)),
    "sbm_communities": (_sbm_data, len(SBM_COMMUNITIES), (36, 60)),
    "sbm_communities_degree": (partial(_sbm_data, degree=True), len(SBM_COMMUNITIES), (36, 60)),
}
SYNTHETIC_SETS = tuple(_MAKERS)


def make_synthetic_classification(name: str, count: int = 240, seed: int = 0,
                                  sizes: tuple[int, int] | None = None) -> tuple[list[Data], int]:
    """``count`` labelled graphs of the synthetic set ``name`` and its class count.

    Args:
        name: one of :data:`SYNTHETIC_SETS`.
        count: number of graphs, a multiple of the class count (balanced classes).
        seed: seed of the whole set.
        sizes: node-count range (default per set: 20-40, 36-60).
    """
    if name not in _MAKERS:
        raise ValueError(f"unknown synthetic set {name!r}; choose one of {list(SYNTHETIC_SETS)}")
    make, classes, default_sizes = _MAKERS[name]
    if not isinstance(count, int) or count < classes or count % classes:
        raise ValueError(f"count must be a positive multiple of {classes} for {name!r}, "
                         f"got {count!r}")
    sizes = tuple(sizes or default_sizes)
    if len(sizes) != 2 or not 4 <= sizes[0] <= sizes[1]:
        raise ValueError(f"sizes must be (lo, hi) with 4 <= lo <= hi, got {sizes!r}")
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    return [make(int(c), rng, sizes) for c in labels], classes
