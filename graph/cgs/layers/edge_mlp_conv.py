"""Residual edge-conditioned message passing (the CGS encoder body)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing


def mlp(sizes: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """A plain MLP: ``Linear`` layers of the given sizes with ``act`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def reset_linears(module: nn.Module) -> None:
    """Re-initialises every ``nn.Linear`` inside ``module`` (the MLPs of a layer)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()


AGGRS = ("mean", "sum")


class EdgeMLPConv(MessagePassing):
    r"""Edge-conditioned residual message passing (Gilmer et al., "Neural Message
    Passing for Quantum Chemistry", ICML 2017), as the encoder of CGS uses it.

    .. math::
        \mathbf{m}_{ij} = \phi_e(\mathbf{x}_i \,\|\, \mathbf{x}_j \,\|\, \mathbf{e}_{ji}), \qquad
        \mathbf{x}_i' = \mathbf{x}_i + \phi_n\big(\mathbf{x}_i \,\|\,
            \tfrac{1}{|\mathcal{N}(i)|}\textstyle\sum_{j \in \mathcal{N}(i)} \mathbf{m}_{ij}\big)

    With ``aggr="sum"`` the messages are summed instead of averaged
    (:math:`\sum_j \mathbf{m}_{ij}`), as in GIN / GINE (Xu et al., ICLR 2019;
    Hu et al., ICLR 2020): the MLP update of :math:`\mathbf{x}_i` and the
    summed messages can then count neighbours, so degree and structure reach
    the embedding even when every node has the same input feature (a mean of
    identical messages is the same for every degree).

    Args:
        channels: node feature size C (kept).
        edge_dim: edge feature size D.
        hidden: hidden width of :math:`\phi_e` and :math:`\phi_n`.
        aggr: ``"mean"`` or ``"sum"`` over the incoming edges.

    Shapes:
        - **input:** node features :math:`(N, C)`, edge index :math:`(2, E)`,
          edge features :math:`(E, D)`
        - **output:** node features :math:`(N, C)`
    """

    def __init__(self, channels: int, edge_dim: int, hidden: int = 64, aggr: str = "mean"):
        if aggr not in AGGRS:
            raise ValueError(f"aggr must be one of {AGGRS}, got {aggr!r}")
        super().__init__(aggr="add" if aggr == "sum" else "mean")
        self.channels, self.edge_dim, self.aggregation = channels, edge_dim, aggr
        self.edge_mlp = mlp([2 * channels + edge_dim, hidden, channels])
        self.node_mlp = mlp([2 * channels, hidden, channels])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset_linears(self)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        """``x: [N, C]``, ``edge_index: [2, E]``, ``edge_attr: [E, D]`` -> ``[N, C]``."""
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return self.edge_mlp(torch.cat([x_i, x_j, edge_attr], dim=-1))

    def update(self, aggr_out: Tensor, x: Tensor) -> Tensor:
        return x + self.node_mlp(torch.cat([x, aggr_out], dim=-1))

    def __repr__(self) -> str:
        extra = "" if self.aggregation == "mean" else f", aggr={self.aggregation!r}"
        return f"{self.__class__.__name__}({self.channels}, edge_dim={self.edge_dim}{extra})"
