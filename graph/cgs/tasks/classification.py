"""Graph classification on a real offline set (``graph.datasets.load_graph_classification``).

The default set is ``mice``: 32 mouse DTI connectomes (332 regions each),
labelled by genotype (4 balanced classes). Node features are the dataset's;
the edge feature is its ``edge_weight`` (scaled log fibre count). The
connectomes are nearly dense (~220 neighbours per region), so each region
keeps only its ``top_k`` strongest incoming connections.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data


def top_k_incoming(edge_index: Tensor, weight: Tensor, num_nodes: int,
                   k: int) -> Tensor:
    """Indices of the edges kept when every node keeps its ``k`` heaviest incoming edges."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    dst = edge_index[1]
    # sort by target, heaviest first within a target (two stable sorts)
    order = torch.argsort(-weight, stable=True)
    order = order[torch.argsort(dst[order], stable=True)]
    sorted_dst = dst[order]
    start = torch.searchsorted(sorted_dst, sorted_dst, right=False)
    rank = torch.arange(len(order)) - start
    return torch.sort(order[rank < k]).values


def classification_sets() -> list[str]:
    """Names accepted by :func:`load_classification_set`: the real sets and the synthetic ones."""
    from graph.datasets import available_graph_classification

    from .synthetic_classification import SYNTHETIC_SETS

    return sorted(available_graph_classification()) + list(SYNTHETIC_SETS)


def load_classification_set(name: str = "mice", top_k: int | None = 16, seed: int = 0,
                            count: int = 240) -> tuple[list[Data], int]:
    """The graphs of ``name`` with ``edge_attr: [E, 1]`` added, and the class count.

    Args:
        name: one of :func:`classification_sets`: a real set of
            ``graph.datasets.available_graph_classification()`` or a synthetic
            set of :mod:`.synthetic_classification`.
        top_k: keep each node's ``top_k`` heaviest incoming edges (None keeps
            all; real sets only, the synthetic graphs are sparse already).
        seed: seed of a synthetic set.
        count: graphs of a synthetic set.
    """
    from graph.datasets import load_graph_classification

    from .synthetic_classification import SYNTHETIC_SETS, make_synthetic_classification

    if name in SYNTHETIC_SETS:
        return make_synthetic_classification(name, count, seed)

    graphs = load_graph_classification(name)
    out = []
    for g in graphs:
        ei, w = g.edge_index, g.edge_weight.float()
        if top_k is not None:
            keep = top_k_incoming(ei, w, g.num_nodes, top_k)
            ei, w = ei[:, keep], w[keep]
        d = Data(x=g.x.float(), edge_index=ei, edge_attr=w[:, None], y=g.y.view(1).long(),
                 num_nodes=g.num_nodes)
        out.append(d)
    num_classes = int(max(int(d.y) for d in out)) + 1
    return out, num_classes


def stratified_folds(labels: list[int], folds: int, seed: int) -> list[np.ndarray]:
    """Split indices into ``folds`` test folds, each with every class in proportion."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    if counts[counts > 0].min() < folds:
        raise ValueError(f"every class needs at least {folds} graphs, smallest has "
                         f"{counts[counts > 0].min()}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        for k, chunk in enumerate(np.array_split(idx, folds)):
            parts[k].extend(chunk.tolist())
    return [np.sort(np.array(p)) for p in parts]
