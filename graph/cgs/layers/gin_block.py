"""One residual GIN layer (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GINConv

from .edge_mlp_conv import mlp


def gin_mlp(hidden: int, batch_norm: bool) -> nn.Sequential:
    """GIN's update MLP: two linear layers, with the paper's batch norm after the first."""
    if not batch_norm:
        return mlp([hidden, hidden, hidden])
    return nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.SiLU(), nn.Linear(hidden, hidden))


class GINBlock(nn.Module):
    r"""``h + relu(norm(GINConv(h)))`` with ``GINConv: h_i -> MLP((1 + eps) h_i + sum_j h_j)``
    (learnable ``eps``).

    Args:
        hidden: width (in and out).
        batch_norm: as in the paper's GIN, a batch norm inside the MLP (after its first
            linear layer) and one after the layer; without it, neither.
    """

    def __init__(self, hidden: int, batch_norm: bool = True):
        super().__init__()
        self.conv = GINConv(gin_mlp(hidden, batch_norm), train_eps=True)
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()

    def forward(self, h: Tensor, edge_index: Tensor) -> Tensor:  # [N, hidden], [2, E] -> [N, hidden]
        return h + torch.relu(self.norm(self.conv(h, edge_index)))
