"""Checked inputs of the two tasks: node classification and link prediction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

from graph.datasets.splits import LinkSplit, split_edges
from graph.forwardgnn.config import TASKS


@dataclass
class NodeTask:
    """Node classification on one graph.

    Attributes:
        x: ``[N, F]`` features.
        edge_index: ``[2, E]`` edges.
        y: ``[N]`` labels in ``[0, num_classes)``.
        train_mask / val_mask / test_mask: ``[N]`` boolean masks.
        num_classes: C.
    """

    x: Tensor
    edge_index: Tensor
    y: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]


@dataclass
class LinkTask:
    """Link prediction on one graph; message passing uses the train edges only.

    Attributes:
        x: ``[N, F]`` features.
        split: held-out positive and negative pairs, see :class:`LinkSplit`.
    """

    x: Tensor
    split: LinkSplit

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def edge_index(self) -> Tensor:
        return self.split.train_edge_index


def _check_graph(data: Data) -> None:
    if not isinstance(data, Data):
        raise TypeError(f"data must be a torch_geometric.data.Data, got {type(data).__name__}")
    x = getattr(data, "x", None)
    if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"data.x must be a float [N, F] tensor, got "
                         f"{None if x is None else (tuple(x.shape), x.dtype)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"data.x must have nodes and features, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("data.x contains NaN or Inf; clean or impute the features first")
    ei = data.edge_index
    if not isinstance(ei, Tensor) or ei.ndim != 2 or ei.shape[0] != 2 or ei.dtype != torch.long:
        raise ValueError(f"data.edge_index must be a long [2, E] tensor, got "
                         f"{None if ei is None else (tuple(ei.shape), ei.dtype)}")
    if ei.numel() and (ei.min() < 0 or ei.max() >= x.shape[0]):
        raise ValueError(f"data.edge_index must index nodes in [0, {x.shape[0]}), got "
                         f"[{int(ei.min())}, {int(ei.max())}]")


def make_task(data: Data, task: str, split_seed: int = 0) -> NodeTask | LinkTask:
    """Validate a graph and package it for ``task``.

    A graph without edges is accepted for node classification (each node
    then only sees itself); link prediction needs edges to hold out.

    Args:
        data: the graph (``x``, ``edge_index``; for ``node`` also ``y`` and masks).
        task: ``"node"`` or ``"link"``.
        split_seed: seed of the edge split (link prediction).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    _check_graph(data)
    if task == "link":
        return LinkTask(data.x.float(), split_edges(data.edge_index, data.num_nodes,
                                                    seed=split_seed))
    y = getattr(data, "y", None)
    if not isinstance(y, Tensor) or y.shape != (data.x.shape[0],):
        raise ValueError(f"node classification needs data.y of shape [{data.x.shape[0]}], got "
                         f"{None if y is None else tuple(y.shape)}")
    masks = []
    for name in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, name, None)
        if not isinstance(m, Tensor) or m.dtype != torch.bool or m.shape != y.shape or not m.any():
            raise ValueError(f"node classification needs a non-empty boolean data.{name} "
                             f"of shape {tuple(y.shape)}")
        masks.append(m)
    num_classes = int(getattr(data, "num_classes", 0) or int(y.max()) + 1)
    if num_classes < 2 or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"data.y must hold labels in [0, num_classes) with num_classes >= 2, "
                         f"got num_classes={num_classes}, labels in [{int(y.min())}, {int(y.max())}]")
    return NodeTask(data.x.float(), data.edge_index, y.long(), *masks, num_classes=num_classes)
