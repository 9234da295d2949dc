"""Interaction-network block with residual connections."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from graph.conv.mlp import make_mlp, reset_mlp


class InteractionNetwork(MessagePassing):
    r"""One processor step of the graph network simulator (GNS).

    From "Interaction Networks for Learning about Objects, Relations and
    Physics" (Battaglia et al., 2016) as used with residuals in "Learning to
    Simulate Complex Physics with Graph Networks" (Sanchez-Gonzalez et al.,
    2020):

    .. math::
        \mathbf{e}'_{ij} &= \phi_e(\mathbf{x}_i, \mathbf{x}_j, \mathbf{e}_{ij}) \\
        \mathbf{x}'_i &= \mathbf{x}_i + \phi_x\Big(\mathbf{x}_i,
            \sum_{j \in \mathcal{N}(i)} \mathbf{e}'_{ij}\Big) \\
        \mathbf{e}_{ij} &\leftarrow \mathbf{e}_{ij} + \mathbf{e}'_{ij}

    with :math:`\phi_e, \phi_x` MLPs ending in a LayerNorm.

    Args:
        channels: node latent width.
        edge_channels: edge latent width (defaults to ``channels``).
        hidden_channels: MLP hidden width (defaults to ``channels``).
        num_layers: hidden layers per MLP.
        aggr: neighbourhood aggregation (``"add"`` as in GNS).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge features :math:`(|\mathcal{E}|, F_e)`
        - **output:** node features :math:`(|\mathcal{V}|, F)`, edge features
          :math:`(|\mathcal{E}|, F_e)`
    """

    def __init__(self, channels: int, edge_channels: int | None = None,
                 hidden_channels: int | None = None, num_layers: int = 2,
                 aggr: str = "add"):
        super().__init__(aggr=aggr)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels
        self.edge_channels = edge_channels or channels
        hidden = hidden_channels or channels
        self.edge_mlp = make_mlp(2 * channels + self.edge_channels, hidden, self.edge_channels, num_layers)
        self.node_mlp = make_mlp(channels + self.edge_channels, hidden, channels, num_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset_mlp(self.edge_mlp)
        reset_mlp(self.node_mlp)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        """Args:
            x: Tensor,  # [N, F] node latents
            edge_index: Tensor,  # [2, E] (source, target)
            edge_attr: Tensor,  # [E, F_e] edge latents

        Returns:
            (x', edge_attr') with residuals applied, shapes unchanged.
        """
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"x must be [N, {self.channels}], got {tuple(x.shape)}")
        if edge_attr.shape != (edge_index.shape[1], self.edge_channels):
            raise ValueError(f"edge_attr must be [{edge_index.shape[1]}, {self.edge_channels}], "
                             f"got {tuple(edge_attr.shape)}")
        size = (x.shape[0], x.shape[0])
        new_edges = self.edge_updater(edge_index, x=x, edge_attr=edge_attr, size=size)
        new_nodes = self.propagate(edge_index, x=x, edge_attr=new_edges, size=size)
        return x + new_nodes, edge_attr + new_edges

    def edge_update(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return self.edge_mlp(torch.cat([x_i, x_j, edge_attr], dim=-1))

    def message(self, edge_attr: Tensor) -> Tensor:
        return edge_attr

    def update(self, aggr_out: Tensor, x: Tensor) -> Tensor:
        return self.node_mlp(torch.cat([x, aggr_out], dim=-1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, edge_channels={self.edge_channels})"
