"""The building block of every variant: L2-normalised input -> GNN convolution -> ReLU."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from graph.forwardgnn.config import CONVS, SAGE_AGGRS


def l2_normalise(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Rows scaled to unit length; an all-zero row stays zero (never NaN).

    Args:
        x: ``[N, F]`` features.
    """
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


def make_conv(conv: str, in_channels: int, out_channels: int, gat_heads: int = 2,
              sage_aggr: str = "mean", gat_concat: bool = False, gat_dropout: float = 0.0,
              gat_residual: bool = False) -> nn.Module:
    """A torch-geometric convolution by name (``gcn``, ``sage`` or ``gat``).

    ``sage_aggr`` is ``SAGEConv``'s neighbour aggregation (``mean``, ``max`` or ``sum``).
    ``GATConv`` averages its ``gat_heads`` heads of width ``out_channels``, or with
    ``gat_concat`` concatenates heads of width ``out_channels // gat_heads``;
    ``gat_dropout`` drops attention coefficients in training, ``gat_residual``
    adds a linear skip of the input.
    """
    if conv == "gcn":
        return GCNConv(in_channels, out_channels)
    if conv == "sage":
        if sage_aggr not in SAGE_AGGRS:
            raise ValueError(f"sage_aggr must be one of {list(SAGE_AGGRS)}, got {sage_aggr!r}")
        return SAGEConv(in_channels, out_channels, aggr=sage_aggr)
    if conv == "gat":
        if gat_concat:
            if out_channels % gat_heads:
                raise ValueError(f"gat_concat needs widths divisible by gat_heads={gat_heads}, "
                                 f"got {out_channels}")
            return GATConv(in_channels, out_channels // gat_heads, heads=gat_heads, concat=True,
                           dropout=gat_dropout, residual=gat_residual)
        return GATConv(in_channels, out_channels, heads=gat_heads, concat=False,
                       dropout=gat_dropout, residual=gat_residual)
    raise ValueError(f"unknown conv {conv!r}; choose one of {list(CONVS)}")


class ForwardLayer(nn.Module):
    """One trainable layer ``relu(conv(l2_normalise(x)))`` with its own optimiser.

    Forward-learning variants call :meth:`step` with a loss built only from
    this layer's output computed on detached inputs, so no gradient crosses
    layers.

    Args:
        conv: ``gcn``, ``sage`` or ``gat``.
        in_channels: input width F.
        out_channels: output width H.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        gat_heads: heads of ``GATConv``.
        sage_aggr: neighbour aggregation of ``SAGEConv``.
        **conv_options: ``gat_concat``, ``gat_dropout``, ``gat_residual`` of :func:`make_conv`.
    """

    def __init__(self, conv: str, in_channels: int, out_channels: int, lr: float = 0.01,
                 weight_decay: float = 5e-4, gat_heads: int = 2, sage_aggr: str = "mean",
                 **conv_options):
        super().__init__()
        self.conv = make_conv(conv, in_channels, out_channels, gat_heads, sage_aggr,
                              **conv_options)
        self.optimizer = torch.optim.Adam(self.conv.parameters(), lr=lr,
                                          weight_decay=weight_decay)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``x: [N, F]``, ``edge_index: [2, E]`` -> ``[N, H]``."""
        return torch.relu(self.conv(l2_normalise(x), edge_index))

    def step(self, loss: Tensor) -> float:
        """Back-propagate a loss of this layer alone and update its parameters."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def make_layers(conv: str, in_channels: int, hidden: tuple[int, ...], lr: float,
                weight_decay: float, gat_heads: int, sage_aggr: str = "mean",
                **conv_options) -> nn.ModuleList:
    """The stack of :class:`ForwardLayer` of widths ``hidden`` on ``in_channels`` inputs.

    ``gat_residual`` in ``conv_options`` may be one bool for every layer or one per layer.
    """
    sizes = (in_channels,) + tuple(hidden)
    residual = conv_options.pop("gat_residual", False)
    if isinstance(residual, bool):
        residual = (residual,) * len(hidden)
    if len(residual) != len(hidden):
        raise ValueError(f"gat_residual needs one bool per layer ({len(hidden)}), got {residual}")
    return nn.ModuleList(
        ForwardLayer(conv, sizes[i], sizes[i + 1], lr, weight_decay, gat_heads, sage_aggr,
                     gat_residual=bool(residual[i]), **conv_options)
        for i in range(len(hidden))
    )
