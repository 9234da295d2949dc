"""A GCN trained by ordinary back-propagation: the CGS comparison baseline."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, global_max_pool, global_mean_pool

from .checks import check_graph
from .layers import mlp


@dataclass
class GCNConfig:
    """Hyper-parameters of :class:`GCN`.

    Attributes:
        node_dim: input node feature size F.
        out_dim: output size per node (or per graph when ``graph_level``).
        hidden: width.
        layers: number of ``GCNConv`` layers.
        graph_level: pool (mean and max) into one output per graph.
    """

    node_dim: int
    out_dim: int = 1
    hidden: int = 64
    layers: int = 4
    graph_level: bool = False

    def __post_init__(self):
        for name in ("node_dim", "out_dim", "hidden", "layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")


class GCN(nn.Module):
    """Residual GCN (Kipf & Welling, ICLR 2017) with edge weights ``exp(edge_attr[:, 0])``.

    Same call signature as :class:`~graph.cgs.model.CGS` (returns ``(y, None)``).
    """

    def __init__(self, config: GCNConfig):
        super().__init__()
        c = self.config = config
        self.embed = mlp([c.node_dim, c.hidden, c.hidden])
        self.convs = nn.ModuleList(GCNConv(c.hidden, c.hidden) for _ in range(c.layers))
        dec_in = 2 * c.hidden if c.graph_level else c.hidden
        self.decoder = mlp([dec_in, c.hidden, c.out_dim])

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                batch: Tensor | None = None) -> tuple[Tensor, None]:
        check_graph(x, edge_index, edge_attr, batch)
        weight = None if edge_attr is None else torch.exp(edge_attr[:, 0].clamp(-10, 10))
        h = self.embed(x)
        for conv in self.convs:
            h = h + torch.nn.functional.silu(conv(h, edge_index, weight))
        if self.config.graph_level:
            if batch is None:
                batch = x.new_zeros(x.shape[0], dtype=torch.long)
            h = torch.cat([global_mean_pool(h, batch), global_max_pool(h, batch)], dim=-1)
        return self.decoder(h), None
