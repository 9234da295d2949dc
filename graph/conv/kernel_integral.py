"""Graph kernel-integral layer (graph neural operator)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from graph.conv.mlp import make_mlp, reset_mlp


class KernelIntegral(MessagePassing):
    r"""Kernel integral over a neighbourhood, possibly between two point sets.

    From "Neural Operator: Graph Kernel Network for Partial Differential
    Equations" (Li et al., 2020), with a channel-wise kernel:

    .. math::
        \mathbf{v}'(\mathbf{y}_i) = \mathbf{W}\mathbf{v}(\mathbf{y}_i) +
        \sum_{j \in \mathcal{N}(i)} a_{ij} \odot \mathbf{V}\mathbf{v}(\mathbf{x}_j),

    where :math:`\kappa` is an MLP of the relative position
    :math:`(\mathbf{y}_i - \mathbf{x}_j) / s` and the weights are either
    ``normalize="mean"``: :math:`a_{ij} = \kappa(\cdot) / |\mathcal{N}(i)|`
    (a Monte-Carlo estimate of the integral), or ``normalize="softmax"``:
    :math:`a_{ij} = \mathrm{softmax}_j \kappa(\cdot)` per channel, so the
    weights of each target sum to one and a constant field passes through
    :math:`\mathbf{V}` exactly (a learned interpolation kernel).

    The root term :math:`\mathbf{W}` is used when target features are given.
    Since the weights depend only on positions, :meth:`kernel_weights` can be
    computed once and passed back as ``weights`` to evaluate many fields on
    the same pair of point sets cheaply.

    Args:
        in_channels: width of the source features.
        out_channels: width of the output.
        pos_dim: dimension of the positions.
        hidden_channels: hidden width of the kernel MLP.
        num_layers: hidden layers of the kernel MLP.
        normalize: ``"mean"`` or ``"softmax"``.
        scale: length scale dividing relative positions.
        root_weight: add :math:`\mathbf{W}\mathbf{v}(\mathbf{y}_i)` (needs target features).
        bias: bias of :math:`\mathbf{V}`.

    Shapes:
        - **input:** source features :math:`(|\mathcal{V}_s|, F_{in})`, positions
          :math:`((|\mathcal{V}_s|, D), (|\mathcal{V}_t|, D))`, edge indices
          :math:`(2, |\mathcal{E}|)` as (source, target), optional target
          features :math:`(|\mathcal{V}_t|, F_{in})`
        - **output:** :math:`(|\mathcal{V}_t|, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, pos_dim: int,
                 hidden_channels: int = 32, num_layers: int = 2, normalize: str = "mean",
                 scale: float = 1.0, root_weight: bool = False, bias: bool = True):
        super().__init__(aggr="add")
        if normalize not in ("mean", "softmax"):
            raise ValueError(f"normalize must be 'mean' or 'softmax', got {normalize!r}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.in_channels, self.out_channels, self.pos_dim = in_channels, out_channels, pos_dim
        self.normalize = normalize
        self.scale = float(scale)
        self.kernel = make_mlp(pos_dim, hidden_channels, out_channels, num_layers, layer_norm=False)
        self.value = nn.Linear(in_channels, out_channels, bias=bias)
        self.root = nn.Linear(in_channels, out_channels, bias=False) if root_weight else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset_mlp(self.kernel)
        self.value.reset_parameters()
        if self.root is not None:
            self.root.reset_parameters()

    def kernel_weights(self, pos_src: Tensor, pos_dst: Tensor, edge_index: Tensor) -> Tensor:
        """Normalised kernel weights of every edge.

        Args:
            pos_src: Tensor,  # [N_s, D]
            pos_dst: Tensor,  # [N_t, D]
            edge_index: Tensor,  # [2, E] (source, target)

        Returns:
            Tensor,  # [E, F_out]
        """
        for name, p in (("pos_src", pos_src), ("pos_dst", pos_dst)):
            if p.ndim != 2 or p.shape[1] != self.pos_dim:
                raise ValueError(f"{name} must be [N, {self.pos_dim}], got {tuple(p.shape)}")
        src, dst = edge_index
        rel = (pos_dst[dst] - pos_src[src]) / self.scale
        k = self.kernel(rel)
        n_dst = pos_dst.shape[0]
        if self.normalize == "softmax":
            return softmax(k, dst, num_nodes=n_dst)
        deg = torch.zeros(n_dst, dtype=k.dtype, device=k.device).index_add_(
            0, dst, torch.ones_like(dst, dtype=k.dtype))
        return k / deg.clamp(min=1)[dst].unsqueeze(-1)

    def forward(self, x: Tensor, pos: tuple[Tensor, Tensor], edge_index: Tensor,
                x_dst: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
        """Args:
            x: Tensor,  # [N_s, F_in] source features
            pos: (Tensor, Tensor),  # ([N_s, D], [N_t, D]) source and target positions
            edge_index: Tensor,  # [2, E] (source, target)
            x_dst: Tensor | None,  # [N_t, F_in] target features for the root term
            weights: Tensor | None,  # [E, F_out] precomputed kernel_weights

        Returns:
            Tensor,  # [N_t, F_out]
        """
        if x.ndim != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [N, {self.in_channels}], got {tuple(x.shape)}")
        pos_src, pos_dst = pos
        if weights is None:
            weights = self.kernel_weights(pos_src, pos_dst, edge_index)
        elif weights.shape != (edge_index.shape[1], self.out_channels):
            raise ValueError(f"weights must be [{edge_index.shape[1]}, {self.out_channels}], "
                             f"got {tuple(weights.shape)}")
        out = self.propagate(edge_index, x=self.value(x), weights=weights,
                             size=(pos_src.shape[0], pos_dst.shape[0]))
        if self.root is not None:
            if x_dst is None:
                raise ValueError("x_dst is required when root_weight=True")
            out = out + self.root(x_dst)
        return out

    def message(self, x_j: Tensor, weights: Tensor) -> Tensor:
        return weights * x_j

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"pos_dim={self.pos_dim}, normalize={self.normalize!r})")
