"""The Convergent Graph Solver: encoder -> contracting fixed point -> decoder."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from .checks import check_graph
from .fixed_point import SOLVERS, BlockSparse, SolveInfo, solve_fixed_point, solve_unrolled
from .layers import CGSAttentionConv, EdgeMLPConv, GINBlock, mlp
from .layers.edge_mlp_conv import AGGRS

GRADIENTS = ("implicit", "unrolled")
READOUT_NORMS = (None, "batch", "layer")
READOUTS = ("pool", "node")
NODE_NORMS = (None, "batch", "layer")
ENCODER_NORMS = (None, "batch")
OFFSETS = ("plain", "lazy")
ENCODERS = ("edge_mlp", "gin")
POOLS = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}


@dataclass
class CGSConfig:
    """Hyper-parameters of :class:`CGS`.

    Attributes:
        node_dim: input node feature size F.
        edge_dim: input edge feature size D.
        out_dim: output size per node (or per graph when ``graph_level``).
        hidden: width of the encoder and decoder.
        heads: number of fixed-point heads H.
        enc_layers: encoder layers before the attention layer.
        gamma_max: upper bound on the contraction factor, in (0, 1).
        solver: ``"iterate"`` or ``"direct"`` forward solve.
        tol: iteration tolerance (max-abs change relative to ``max|b|``).
        max_iter: iteration bound, forward and adjoint.
        gradient: ``"implicit"`` (adjoint fixed point) or ``"unrolled"``
            (back-propagation through ``unrolled_iter`` steps).
        unrolled_iter: depth of the unrolled baseline.
        graph_level: pool the fixed point into one output per graph.
        pool: pooling operators of the graph-level readout, any of ``"sum"``,
            ``"mean"`` and ``"max"`` (concatenated in this order of listing).
        readout_skip: also pool the encoder's node embedding beside the fixed
            point (graph level only): the decoder then sees the encoder's
            ``hidden`` channels as well as the ``heads`` channels of ``H``.
        readout_norm: normalise the pooled graph vector before the decoder:
            ``"batch"`` (``BatchNorm1d``: standardised across the graphs of a
            batch, which brings out small differences between graphs),
            ``"layer"`` or None.
        init_contraction: initial ``gamma / gamma_max`` and node gates ``s``
            (their output biases start at its logit), in (0, 1); near 1 lets
            information travel far from the first step.
        encoder: the encoder layers: ``"edge_mlp"`` (:class:`EdgeMLPConv`, messages
            conditioned on the edge features) or ``"gin"`` (:class:`GINBlock`: GIN's
            sum of the neighbours' states with its batch norms; the edge features
            then enter through the attention layer only).
        encoder_aggr: aggregation of the ``"edge_mlp"`` encoder's layers,
            ``"mean"`` or ``"sum"``. ``"sum"`` (GIN-style) lets degree and
            structure reach the embedding, hence ``A`` and ``b``, even when
            every node has the same input feature; ``"mean"`` cannot tell such
            nodes apart.
        readout: graph-level decoder. ``"pool"``: pool ``H`` (and, with
            ``readout_skip``, the encoder embedding), then an MLP. ``"node"``:
            an MLP on ``[H_i, embedding_i]`` per node first (non-linear in the
            fixed point before pooling; ``readout_skip`` is implied), then the
            ``pool`` operators, then a linear head.
        node_norm: with ``readout="node"``, normalise ``[H_i, embedding_i]`` per
            node before the node MLP: ``"batch"`` (``BatchNorm1d`` over the
            nodes of a batch: every channel standardised with statistics of
            hundreds of nodes, running statistics at evaluation), ``"layer"``
            (``LayerNorm`` across a node's channels) or None. The encoder and
            the fixed point shrink the spread of the node states (default
            ``nn.Linear`` initialisation), so without it the logits of
            different graphs start within ~1e-3 of each other.
        encoder_norm: ``"batch"``: a ``BatchNorm1d`` over the nodes after every
            ``"edge_mlp"`` encoder layer (where GIN has its batch norms), or None.
        offset: how the offset enters the map. ``"plain"``: ``H = gamma A H + b``,
            whose fixed point grows as ``1 / (1 - gamma)`` when the contraction
            nears 1 (and its gradient in ``gamma`` as the square of that).
            ``"lazy"``: ``H = gamma A H + (1 - gamma) b`` (personalised-PageRank
            form): the fixed point is a weighted average of the offsets, bounded
            by ``max|b|`` whatever ``gamma``; the same family of maps, better
            conditioned in ``gamma``.
        transition_hidden: hidden width of the transition layer's four MLPs
            (None: ``hidden``). A narrower transition leaves more of a fixed
            parameter budget to the encoder.
    """

    node_dim: int
    edge_dim: int
    out_dim: int = 1
    hidden: int = 64
    heads: int = 16
    enc_layers: int = 2
    gamma_max: float = 0.99
    solver: str = "iterate"
    tol: float = 1e-5
    max_iter: int = 500
    gradient: str = "implicit"
    unrolled_iter: int = 100
    graph_level: bool = False
    init_contraction: float = 0.9
    pool: tuple = ("mean", "max")
    readout_skip: bool = False
    readout_norm: str | None = None
    encoder_aggr: str = "mean"
    readout: str = "pool"
    node_norm: str | None = None
    encoder_norm: str | None = None
    offset: str = "plain"
    encoder: str = "edge_mlp"
    transition_hidden: int | None = None

    def __post_init__(self):
        for name in ("node_dim", "edge_dim", "out_dim", "hidden", "heads", "max_iter",
                     "unrolled_iter"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.transition_hidden is not None and (not isinstance(self.transition_hidden, int)
                                                   or self.transition_hidden < 1):
            raise ValueError(f"transition_hidden must be a positive int or None, got {self.transition_hidden!r}")
        if not isinstance(self.enc_layers, int) or self.enc_layers < 0:
            raise ValueError(f"enc_layers must be an int >= 0, got {self.enc_layers!r}")
        if not 0.0 < self.gamma_max < 1.0:
            raise ValueError(f"gamma_max must be in (0, 1), got {self.gamma_max}")
        if not 0.0 < self.init_contraction < 1.0:
            raise ValueError(f"init_contraction must be in (0, 1), got {self.init_contraction}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {self.gradient!r}")
        if isinstance(self.pool, str):
            self.pool = (self.pool,)
        self.pool = tuple(self.pool)
        if (not self.pool or any(p not in POOLS for p in self.pool)
                or len(set(self.pool)) < len(self.pool)):
            raise ValueError(f"pool must be distinct names from {tuple(POOLS)}, got {self.pool!r}")
        if self.readout_norm not in READOUT_NORMS:
            raise ValueError(f"readout_norm must be one of {READOUT_NORMS}, "
                             f"got {self.readout_norm!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol}")
        if self.encoder_aggr not in AGGRS:
            raise ValueError(f"encoder_aggr must be one of {AGGRS}, got {self.encoder_aggr!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.node_norm not in NODE_NORMS:
            raise ValueError(f"node_norm must be one of {NODE_NORMS}, got {self.node_norm!r}")
        if self.encoder_norm not in ENCODER_NORMS:
            raise ValueError(f"encoder_norm must be one of {ENCODER_NORMS}, got {self.encoder_norm!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder == "gin" and self.encoder_norm is not None:
            raise ValueError("encoder_norm applies to the 'edge_mlp' encoder; the 'gin' encoder has "
                             "its own batch norms")
        if self.offset not in OFFSETS:
            raise ValueError(f"offset must be one of {OFFSETS}, got {self.offset!r}")
        if self.node_norm is not None and not (self.graph_level and self.readout == "node"):
            raise ValueError(f"node_norm={self.node_norm!r} needs graph_level=True and "
                             f"readout='node', got graph_level={self.graph_level}, "
                             f"readout={self.readout!r}")


class CGS(nn.Module):
    """Convergent Graph Solver (Park et al., ICLR 2022).

    The encoder maps the input graph to a per-head linear map
    ``T(H) = gamma * A H + b`` with row-substochastic attention ``A``
    (``||A||_inf <= 1``) and an input-dependent ``gamma = gamma_max * sigmoid(.)``
    per graph and head, so ``||gamma A||_inf < gamma_max < 1``: the fixed point
    exists and is unique. It is found by iteration (or a sparse LU solve) and
    differentiated implicitly; an MLP decodes it per node, or per graph after
    pooling (``readout="pool"``), or per node on ``[H_i, embedding_i]`` before
    pooling and a linear head (``readout="node"``).

    Args:
        config: a :class:`CGSConfig`.

    >>> import torch
    >>> m = CGS(CGSConfig(node_dim=2, edge_dim=1, hidden=8, heads=2))
    >>> ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    >>> y, info = m(torch.randn(3, 2), ei, torch.randn(4, 1))
    >>> tuple(y.shape)
    (3, 1)
    """

    def __init__(self, config: CGSConfig):
        super().__init__()
        if not isinstance(config, CGSConfig):
            raise TypeError(f"config must be a CGSConfig, got {type(config).__name__}")
        c = self.config = config
        self.node_embed = mlp([c.node_dim, c.hidden, c.hidden])
        self.edge_embed = mlp([c.edge_dim, c.hidden, c.hidden])
        if c.encoder == "gin":
            self.encoder = nn.ModuleList(GINBlock(c.hidden) for _ in range(c.enc_layers))
        else:
            self.encoder = nn.ModuleList(EdgeMLPConv(c.hidden, c.hidden, c.hidden, c.encoder_aggr)
                                         for _ in range(c.enc_layers))
        self.encoder_norms = nn.ModuleList(nn.BatchNorm1d(c.hidden) if c.encoder_norm == "batch" else nn.Identity()
                                           for _ in range(c.enc_layers))
        self.transition = CGSAttentionConv(c.hidden, c.hidden, c.heads, c.transition_hidden or c.hidden)
        self.gamma_head = mlp([c.hidden, c.hidden, c.heads])
        self.node_decoder = None
        if c.graph_level and c.readout == "node":
            # per node: [H_i, embedding_i] -> hidden, pooled, then a linear head
            width = c.heads + c.hidden
            norm = {None: [], "batch": [nn.BatchNorm1d(width)],
                    "layer": [nn.LayerNorm(width)]}[c.node_norm]
            self.node_decoder = nn.Sequential(*norm, mlp([width, c.hidden, c.hidden]), nn.SiLU())
            dec_in = len(c.pool) * c.hidden
            self.decoder = nn.Sequential(nn.Linear(dec_in, c.out_dim))
        else:
            node_out = c.heads + (c.hidden if c.readout_skip else 0)
            dec_in = len(c.pool) * node_out if c.graph_level else c.heads
            self.decoder = mlp([dec_in, c.hidden, c.hidden, c.out_dim])
        if c.graph_level and c.readout_norm is not None:
            norm = nn.BatchNorm1d(dec_in) if c.readout_norm == "batch" else nn.LayerNorm(dec_in)
            self.decoder = nn.Sequential(norm, *self.decoder)
        bias = math.log(c.init_contraction / (1.0 - c.init_contraction))
        with torch.no_grad():
            for head in (self.gamma_head, self.transition.gate_mlp):
                head[-1].bias.fill_(bias)

    def transition_map(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                       batch: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The contracting map of a graph (batch).

        Returns:
            ``weight: [E, H]`` = ``gamma * A`` per edge, ``b: [N, H]`` and
            ``gamma: [G, H]`` (one per graph and head).
        """
        return self._encode(x, edge_index, edge_attr, batch)[:3]

    def _encode(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                batch: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`transition_map` plus the encoder's node embedding ``[N, hidden]``."""
        check_graph(x, edge_index, edge_attr, batch)
        if batch is None:
            batch = x.new_zeros(x.shape[0], dtype=torch.long)
        h = self.node_embed(x)
        e = self.edge_embed(edge_attr)
        for layer, norm in zip(self.encoder, self.encoder_norms):
            h = norm(layer(h, edge_index) if self.config.encoder == "gin" else layer(h, edge_index, e))
        a, b = self.transition(h, edge_index, e)
        gamma = self.config.gamma_max * torch.sigmoid(self.gamma_head(global_mean_pool(h, batch)))
        weight = gamma[batch[edge_index[1]]] * a
        if self.config.offset == "lazy":
            b = (1.0 - gamma)[batch] * b
        return weight, b, gamma, h

    def solve(self, weight: Tensor, b: Tensor, edge_index: Tensor) -> tuple[Tensor, SolveInfo]:
        """The fixed point ``H: [N, H]`` of ``H = weight H + b``, with the configured gradient."""
        c = self.config
        layout = BlockSparse(edge_index, b.shape[0], b.shape[1])
        if c.gradient == "unrolled" and torch.is_grad_enabled():
            h = solve_unrolled(weight, b, edge_index, c.unrolled_iter, layout=layout)
            return h, SolveInfo(forward_iterations=c.unrolled_iter)
        h, info = solve_fixed_point(weight, b, edge_index, solver=c.solver, tol=c.tol,
                                    max_iter=c.max_iter, layout=layout)
        if not info.converged:
            warnings.warn(f"CGS fixed-point solve did not reach tol={c.tol:g} within max_iter={c.max_iter} "
                          f"iterations (relative residual {info.forward_residual:.0e}); the prediction "
                          f"is not the fixed point: raise max_iter, or lower gamma_max for a stronger "
                          f"contraction", RuntimeWarning, stacklevel=2)
        return h, info

    def forward(
        self,
        x: Tensor,  # [N, F]
        edge_index: Tensor,  # [2, E]
        edge_attr: Tensor,  # [E, D]
        batch: Tensor | None = None,  # [N]
    ) -> tuple[Tensor, SolveInfo]:
        """Returns the prediction (``[N, out_dim]``, or ``[G, out_dim]`` when
        ``graph_level``) and the :class:`SolveInfo` of the fixed-point solve."""
        c = self.config
        weight, b, _, emb = self._encode(x, edge_index, edge_attr, batch)
        h, info = self.solve(weight, b, edge_index)
        if c.graph_level:
            if batch is None:
                batch = x.new_zeros(x.shape[0], dtype=torch.long)
            if c.readout_skip or self.node_decoder is not None:
                h = torch.cat([h, emb], dim=-1)
            if self.node_decoder is not None:
                h = self.node_decoder(h)
            h = torch.cat([POOLS[p](h, batch) for p in c.pool], dim=-1)
        return self.decoder(h), info


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
