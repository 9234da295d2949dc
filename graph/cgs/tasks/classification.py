"""Graph classification on a real offline set (``graph.datasets.load_graph_classification``).

The default set is ``mice``: 32 mouse DTI connectomes (332 regions each),
labelled by genotype (4 balanced classes). Node features are the dataset's;
the edge feature is its ``edge_weight`` (scaled log fibre count).
"""

from __future__ import annotations

import numpy as np
from torch_geometric.data import Data


def load_classification_set(name: str = "mice") -> tuple[list[Data], int]:
    """The graphs of ``name`` with ``edge_attr: [E, 1]`` added, and the class count."""
    from graph.datasets import load_graph_classification

    graphs = load_graph_classification(name)
    out = []
    for g in graphs:
        d = Data(x=g.x.float(), edge_index=g.edge_index,
                 edge_attr=g.edge_weight.float()[:, None], y=g.y.view(1).long(),
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
