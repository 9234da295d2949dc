"""The building block of every variant: L2-normalised input -> GNN convolution -> ReLU."""

from __future__ import annotations

import math

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


class GatedSkip(nn.Module):
    """A linear skip scaled by a learnable gate ``sigmoid(a)`` in (0, 1).

    Args:
        skip: the linear map of the layer input (``GATConv.res``).
        init: the gate's value at initialisation, in (0, 1).
    """

    def __init__(self, skip: nn.Module, init: float):
        super().__init__()
        if not 0.0 < init < 1.0:
            raise ValueError(f"gate init must be in (0, 1), got {init!r}")
        self.skip, self.init = skip, float(init)
        self.logit = nn.Parameter(torch.tensor(math.log(init / (1.0 - init))))

    def reset_parameters(self) -> None:
        self.skip.reset_parameters()
        with torch.no_grad():
            self.logit.fill_(math.log(self.init / (1.0 - self.init)))

    @property
    def gate(self) -> float:
        """The current gate value."""
        return float(torch.sigmoid(self.logit.detach()))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.logit) * self.skip(x)


def make_conv(conv: str, in_channels: int, out_channels: int, gat_heads: int = 2,
              sage_aggr: str = "mean", gat_concat: bool = False, gat_dropout: float = 0.0,
              gat_residual: bool = False, gat_residual_gate: float | None = None) -> nn.Module:
    """A torch-geometric convolution by name (``gcn``, ``sage`` or ``gat``).

    ``sage_aggr`` is ``SAGEConv``'s neighbour aggregation (``mean``, ``max`` or ``sum``).
    ``GATConv`` averages its ``gat_heads`` heads of width ``out_channels``, or with
    ``gat_concat`` concatenates heads of width ``out_channels // gat_heads``;
    ``gat_dropout`` drops attention coefficients in training, ``gat_residual``
    adds a linear skip of the input, scaled by a learnable :class:`GatedSkip`
    gate starting at ``gat_residual_gate`` when that is not None.
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
            layer = GATConv(in_channels, out_channels // gat_heads, heads=gat_heads,
                            concat=True, dropout=gat_dropout, residual=gat_residual)
        else:
            layer = GATConv(in_channels, out_channels, heads=gat_heads, concat=False,
                            dropout=gat_dropout, residual=gat_residual)
        if gat_residual and gat_residual_gate is not None:
            layer.res = GatedSkip(layer.res, gat_residual_gate)
        return layer
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
        **conv_options: ``gat_concat``, ``gat_dropout``, ``gat_residual``,
            ``gat_residual_gate`` of :func:`make_conv`.
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
