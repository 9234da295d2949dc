"""The CGS transition layer: emits the contracting map's edge weights and offsets."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from .edge_mlp_conv import mlp, reset_linears


class CGSAttentionConv(MessagePassing):
    r"""Multi-head attention that parameterises the linear map of a Convergent
    Graph Solver (Park et al., "Convergent Graph Solvers", ICLR 2022).

    For every head :math:`h` it returns row-substochastic edge weights and a
    node offset:

    .. math::
        \alpha^h_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
            \phi_a(\mathbf{x}_i \| \mathbf{x}_j \| \mathbf{e}_{ji})_h, \qquad
        s^h_i = \sigma(\phi_s(\mathbf{x}_i))_h, \qquad
        A^h_{ij} = s^h_i\, \alpha^h_{ij},

    .. math::
        b^h_i = \phi_b\big(\mathbf{x}_i \,\|\, \textstyle\sum_{j} \alpha^h_{ij}\,
            \phi_m(\mathbf{x}_i \| \mathbf{x}_j \| \mathbf{e}_{ji})_h\big)_h

    so :math:`\sum_j A^h_{ij} = s^h_i \le 1`, i.e. :math:`\|A^h\|_\infty \le 1`
    (0 for a node with no incoming edges). The gate :math:`s_i` lets a node
    ignore its neighbours (e.g. a boundary node with a prescribed value).

    Args:
        channels: node feature size C.
        edge_dim: edge feature size D.
        heads: number of heads H (fixed-point channels).
        hidden: hidden width of the MLPs.

    Shapes:
        - **input:** node features :math:`(N, C)`, edge index :math:`(2, E)`,
          edge features :math:`(E, D)`
        - **output:** ``A`` :math:`(E, H)`, ``b`` :math:`(N, H)`
    """

    def __init__(self, channels: int, edge_dim: int, heads: int, hidden: int = 64):
        super().__init__(aggr="add", node_dim=0)
        self.channels, self.edge_dim, self.heads = channels, edge_dim, heads
        self.logit_mlp = mlp([2 * channels + edge_dim, hidden, heads])
        self.msg_mlp = mlp([2 * channels + edge_dim, hidden, heads])
        self.gate_mlp = mlp([channels, hidden, heads])
        self.b_mlp = mlp([channels + heads, hidden, heads])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset_linears(self)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``A: [E, H]`` (``A[e] = A[dst, src]``) and ``b: [N, H]``."""
        src, dst = edge_index
        n = x.shape[0]
        z = torch.cat([x[dst], x[src], edge_attr], dim=-1)  # [E, 2C + D], (x_i, x_j, e_ji)
        alpha = softmax(self.logit_mlp(z), dst, num_nodes=n)  # [E, H], sums to 1 per target
        agg = self.propagate(edge_index, weighted=alpha * self.msg_mlp(z), size=(n, n))  # [N, H]
        gate = torch.sigmoid(self.gate_mlp(x))  # [N, H]
        a = gate[dst] * alpha  # [E, H]
        b = self.b_mlp(torch.cat([x, agg], dim=-1))  # [N, H]
        return a, b

    def message(self, weighted: Tensor) -> Tensor:
        """The attention-weighted messages, computed in :meth:`forward` beside ``A``."""
        return weighted

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, edge_dim={self.edge_dim}, "
                f"heads={self.heads})")
