"""Input checks shared by the CGS model, tasks and training."""

from __future__ import annotations

import torch
from torch import Tensor


def check_graph(x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                batch: Tensor | None = None) -> None:
    """Raise ``TypeError``/``ValueError`` unless the tensors form a valid graph.

    Args:
        x: ``[N, F]`` finite node features.
        edge_index: ``[2, E]`` integer (source, target) pairs in ``[0, N)``.
        edge_attr: ``[E, D]`` finite edge features, or None.
        batch: ``[N]`` graph index of each node, or None.
    """
    for name, t in (("x", x), ("edge_index", edge_index)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must be [N, F], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x must have at least one node, got N = 0")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got shape {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"edge_index must be an integer tensor, got {edge_index.dtype}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= x.shape[0]):
        raise ValueError(f"edge_index must index nodes in [0, {x.shape[0]}), got range "
                         f"[{int(edge_index.min())}, {int(edge_index.max())}]")
    if edge_attr is not None:
        if not isinstance(edge_attr, Tensor):
            raise TypeError(f"edge_attr must be a torch.Tensor, got {type(edge_attr).__name__}")
        if edge_attr.ndim != 2 or edge_attr.shape[0] != edge_index.shape[1]:
            raise ValueError(f"edge_attr must be [E, D] with E = {edge_index.shape[1]}, "
                             f"got shape {tuple(edge_attr.shape)}")
        if not torch.isfinite(edge_attr).all():
            raise ValueError("edge_attr contains NaN or Inf")
    if batch is not None and tuple(batch.shape) != (x.shape[0],):
        raise ValueError(f"batch must be [{x.shape[0]}], got shape {tuple(batch.shape)}")
