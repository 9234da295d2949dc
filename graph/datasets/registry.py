"""One entry point for every bundled graph: ``load_dataset`` and ``load_graph_classification``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch_geometric.data import Data

from graph.datasets import sources
from graph.datasets.features import structural_features
from graph.datasets.splits import stratified_masks


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is and which tasks it supports."""

    name: str
    description: str
    tasks: tuple[str, ...]
    read: Callable[[], sources.RawGraph]


_NODE_SETS = {
    info.name: info
    for info in [
        DatasetInfo("karate", "Zachary's karate club (networkx); label: club after the split",
                    ("node", "link"), sources.read_karate),
        DatasetInfo("drosophila_left", "larval Drosophila mushroom body, left (graspologic); "
                    "label: cell type", ("node", "link"), lambda: sources.read_drosophila("left")),
        DatasetInfo("drosophila_right", "larval Drosophila mushroom body, right (graspologic); "
                    "label: cell type", ("node", "link"), lambda: sources.read_drosophila("right")),
        DatasetInfo("les_miserables", "character co-appearance (networkx); no labels",
                    ("link",), sources.read_les_miserables),
        DatasetInfo("minnesota", "Minnesota road network (pygsp); no labels", ("link",),
                    sources.read_minnesota),
    ]
}

_GRAPH_SETS = {"mice": "32 mouse DTI connectomes (graspologic); label: genotype (4 classes)"}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_NODE_SETS)


def available_graph_classification() -> list[str]:
    """Names accepted by :func:`load_graph_classification`."""
    return sorted(_GRAPH_SETS)


def dataset_info(name: str) -> DatasetInfo:
    """Description and supported tasks of a dataset."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _NODE_SETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {available_datasets()}")
    return _NODE_SETS[name]


def load_dataset(name: str, split_seed: int = 0) -> Data:
    """Load a bundled real graph.

    Node features are the given ones where the source has them (Minnesota:
    standardised coordinates), else :func:`structural_features` (one-hot
    log2-degree bucket and 8 Laplacian eigenvectors). Edges are undirected,
    listed in both directions, without self-loops. Labelled sets get
    stratified 60/20/20 train/val/test masks drawn with ``split_seed``.

    Args:
        name: one of :func:`available_datasets`.
        split_seed: seed of the node split.

    Returns:
        ``Data`` with ``x [N, F]``, ``edge_index [2, E]``, ``edge_weight [E]``
        (or None), and for labelled sets ``y [N]``, ``train_mask``,
        ``val_mask``, ``test_mask [N]``, ``num_classes`` and ``class_names``;
        ``name`` and ``tasks`` always.

    >>> data = load_dataset("karate")
    >>> data.num_nodes, data.edge_index.shape[1] // 2, data.num_classes
    (34, 78, 2)
    """
    info = dataset_info(name)
    if not isinstance(split_seed, int):
        raise TypeError(f"split_seed must be an int, got {type(split_seed).__name__}")
    raw = info.read()
    edge_index, edge_weight = sources.directed(raw)
    x = raw.x if raw.x is not None else structural_features(edge_index, raw.num_nodes)
    data = Data(x=x, edge_index=edge_index, edge_weight=edge_weight, num_nodes=raw.num_nodes)
    data.name, data.tasks = name, info.tasks
    if raw.y is not None:
        data.y = raw.y
        data.train_mask, data.val_mask, data.test_mask = stratified_masks(raw.y, seed=split_seed)
        data.num_classes = len(raw.class_names)
        data.class_names = raw.class_names
    return data


def load_graph_classification(name: str) -> list[Data]:
    """Load a bundled set of labelled graphs.

    ``mice``: 32 connectomes of 332 brain regions; ``x [332, 15]`` is the
    one-hot anatomical block (14) and the standardised log node strength;
    ``edge_weight`` is ``log1p(fibre count)`` scaled to [0, 1] per graph;
    ``y [1]`` the genotype index into ``genotypes`` (B6, BTBR, CAST, DBA2).

    Args:
        name: one of :func:`available_graph_classification`.

    Returns:
        One ``Data`` per graph.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _GRAPH_SETS:
        raise ValueError(f"unknown graph classification set {name!r}; "
                         f"choose one of {available_graph_classification()}")
    graphs, genotypes, sexes = sources.read_mice()
    names = sorted(set(genotypes))
    out = []
    for raw, genotype, sex in zip(graphs, genotypes, sexes):
        edge_index, count = sources.directed(raw)
        w = torch.log1p(count)
        strength = torch.zeros(raw.num_nodes).index_add_(0, edge_index[1], w)
        s = torch.log1p(strength)
        s = (s - s.mean()) / s.std().clamp_min(1e-8)
        data = Data(x=torch.cat([raw.x, s[:, None]], dim=1), edge_index=edge_index,
                    edge_weight=w / w.max(), y=torch.tensor([names.index(genotype)]),
                    num_nodes=raw.num_nodes)
        data.genotypes, data.sex = names, sex
        out.append(data)
    return out
