"""ForwardGNN on large graphs: full-graph layer-local training against back-propagation.

The layers are GCN layers on a sparse normalised adjacency ``D^-1/2 (A + I) D^-1/2``
held as one CSR tensor, so a layer costs ``O(E H)`` time and ``O(N H)`` memory
(torch-geometric's message passing materialises ``[E, H]`` messages, which at
10^7 edges is gigabytes). Three ways to train the same stack:

- ``sf`` (layer-local, :func:`train_layer_local`): the single-forward loss of
  ForwardGNN (class nodes linked to the training nodes, cross-entropy of the
  dot products with the class nodes). Layer ``i`` is trained to the end on the
  detached output of layer ``i - 1``; then its own output is computed without
  autograd and replaces its input, so at any time autograd holds one layer's
  activations and only two ``[N, H]`` states are alive.
- ``bp`` (:func:`train_backprop`): the same layers plus a linear classifier,
  trained end to end on the full graph; autograd holds every layer's activations.
- ``bp-sampled`` (:func:`train_backprop_sampled`): the same model trained end
  to end on GraphSAGE-style neighbour-sampled mini-batches
  (:func:`graph.sampling.sample_neighbors`), evaluated layer-wise on the full graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graph.forwardgnn.layers import l2_normalise
from graph.forwardgnn.memory import track_memory
from graph.sampling import CSRGraph, sample_neighbors

LARGE_VARIANTS = ("sf", "bp", "bp-sampled")
Progress = Callable[[float, str], None]  # (fraction done in [0, 1], description)


@dataclass
class LargeGraphConfig:
    """Hyper-parameters of large-graph training.

    Attributes:
        hidden: width of each GCN layer.
        epochs: full-graph epochs per layer (``sf``) or in total (``bp``); mini-batch
            steps of ``bp-sampled`` are ``epochs * len(hidden)``.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        temperature: softmax temperature of the class-node logits (``sf``).
        eval_every: validation every this many epochs; the best state is kept.
        batch_size: seed nodes per mini-batch (``bp-sampled``).
        fanout: sampled neighbours per node and hop (``bp-sampled``).
    """

    hidden: tuple[int, ...] = (64, 64, 64)
    epochs: int = 30
    lr: float = 0.01
    weight_decay: float = 5e-4
    temperature: float = 0.5
    eval_every: int = 5
    batch_size: int = 1024
    fanout: int = 10

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        if not self.hidden or any((not isinstance(h, int)) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, "
                             f"got {self.hidden}")
        for name in ("epochs", "eval_every", "batch_size", "fanout"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.lr > 0 or not self.temperature > 0 or self.weight_decay < 0:
            raise ValueError(f"lr and temperature must be > 0 and weight_decay >= 0, got "
                             f"{self.lr}, {self.temperature}, {self.weight_decay}")


def normalised_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse CSR ``[N, N]`` float32 tensor (row = target).

    Args:
        edge_index: ``[2, E]`` edges ``source -> target`` without self-loops.
        num_nodes: N.
    """
    loops = torch.arange(num_nodes)
    src = torch.cat([edge_index[0], loops])
    dst = torch.cat([edge_index[1], loops])
    deg = torch.bincount(dst, minlength=num_nodes).float()
    inv = deg.pow(-0.5)
    order = torch.argsort(dst * num_nodes + src)
    src, dst = src[order], dst[order]
    values = inv[dst] * inv[src]
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=rowptr[1:])
    return torch.sparse_csr_tensor(rowptr, src, values, size=(num_nodes, num_nodes))


class SparseGCNLayer(nn.Module):
    """``relu(A_hat @ (l2_normalise(x) W) + b)`` with its own Adam optimiser.

    Shapes: ``x: [N, F]``, ``adj: [N, N]`` sparse CSR -> ``[N, H]``.
    """

    def __init__(self, in_channels: int, out_channels: int, lr: float, weight_decay: float):
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        return torch.relu(adj @ self.lin(l2_normalise(x)) + self.bias)

    def step(self, loss: Tensor) -> float:
        """Back-propagates a loss of this layer alone and updates its parameters."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def make_sparse_layers(in_channels: int, config: LargeGraphConfig) -> nn.ModuleList:
    sizes = (in_channels,) + config.hidden
    return nn.ModuleList(SparseGCNLayer(sizes[i], sizes[i + 1], config.lr, config.weight_decay)
                         for i in range(len(config.hidden)))


@dataclass
class LargeRunResult:
    """Outcome of one large-graph run.

    Attributes:
        variant: ``sf``, ``bp`` or ``bp-sampled``.
        num_nodes / num_edges: graph size (edges listed in both directions).
        val / test: accuracy of the kept state.
        train_seconds: wall time of training.
        peak_saved_mb: peak bytes autograd held for backward, MiB.
        peak_rss_mb: peak RSS growth during training, MiB (None where unreadable).
    """

    variant: str
    num_nodes: int
    num_edges: int
    val: float
    test: float
    train_seconds: float
    peak_saved_mb: float
    peak_rss_mb: float | None


def _check_data(data: Data) -> None:
    for name in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        if not isinstance(getattr(data, name, None), Tensor):
            raise ValueError(f"large-graph training needs data.{name} (a tensor), got none")


def _accuracy(scores: Tensor, data: Data, part: str) -> float:
    m = getattr(data, f"{part}_mask")
    return float((scores[m].argmax(1) == data.y[m]).float().mean())


def _tick(progress: Progress | None, done: int, total: int, desc: str) -> None:
    if progress is not None:
        progress(done / total, desc)


def _class_logits(h: Tensor, n: int, temperature: float) -> Tensor:
    return h[:n] @ h[n:].t() / temperature


def train_layer_local(data: Data, config: LargeGraphConfig, seed: int = 0,
                      progress: Progress | None = None) -> tuple[Tensor, list[float]]:
    """``sf`` on the full graph, one layer at a time; returns ``(class scores [N, C], losses)``.

    Class node ``c`` (index ``N + c``) is linked to every training node of class ``c``.
    """
    n, c = data.num_nodes, int(data.num_classes)
    gen = torch.Generator().manual_seed(seed)
    train = torch.nonzero(data.train_mask).view(-1)
    links = torch.stack([train, n + data.y[train]])
    edges = torch.cat([data.edge_index, links, links.flip(0)], dim=1)
    adj = normalised_adjacency(edges, n + c)
    del edges, links
    h = torch.cat([data.x, torch.randn(c, data.x.shape[1], generator=gen)])  # [N + C, F]
    torch.manual_seed(seed)
    layers = make_sparse_layers(data.x.shape[1], config)
    y_train, scores, losses = data.y[train], torch.zeros(n, c), []
    total = len(layers) * config.epochs
    for i, layer in enumerate(layers):
        best, best_state = -1.0, None
        for epoch in range(config.epochs):
            # Autograd sees only this layer: its input h carries no graph (detached).
            out = layer(h.detach(), adj)
            loss = F.cross_entropy(_class_logits(out, n, config.temperature)[train], y_train)
            del out  # the layer's activations die with the loss after the step
            losses.append(layer.step(loss))
            del loss
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                with torch.no_grad():
                    probs = scores + torch.softmax(
                        _class_logits(layer(h, adj), n, config.temperature), 1)
                val = _accuracy(probs, data, "val")
                if val > best:
                    best = val
                    best_state = {k: v.clone() for k, v in layer.state_dict().items()}
            _tick(progress, i * config.epochs + epoch + 1, total, f"sf layer {i + 1}/{len(layers)}")
        layer.load_state_dict(best_state)
        with torch.no_grad():
            h = layer(h, adj)  # the next layer's input replaces this one's: the old state is freed
            scores += torch.softmax(_class_logits(h, n, config.temperature), 1)
        layer.optimizer.state.clear()
    return scores, losses


class _Stack(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, config: LargeGraphConfig):
        super().__init__()
        self.layers = make_sparse_layers(in_channels, config)
        self.head = nn.Linear(config.hidden[-1], num_classes)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, adj)
        return self.head(x)


def train_backprop(data: Data, config: LargeGraphConfig, seed: int = 0,
                   progress: Progress | None = None) -> tuple[Tensor, list[float]]:
    """``bp``: the same layers and a linear head end to end on the full graph."""
    adj = normalised_adjacency(data.edge_index, data.num_nodes)
    torch.manual_seed(seed)
    model = _Stack(data.x.shape[1], int(data.num_classes), config)
    m = data.train_mask
    best, best_state, losses = -1.0, None, []
    for epoch in range(config.epochs):
        loss = F.cross_entropy(model(data.x, adj)[m], data.y[m])
        model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        model.optimizer.step()
        losses.append(float(loss.detach()))
        del loss
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            with torch.no_grad():
                val = _accuracy(model(data.x, adj), data, "val")
            if val > best:
                best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
        _tick(progress, epoch + 1, config.epochs, "bp")
    model.load_state_dict(best_state)
    with torch.no_grad():
        return torch.softmax(model(data.x, adj), 1), losses


def _subgraph_adjacency(sub, num_nodes: int) -> Tensor:
    return normalised_adjacency(sub.edge_index, num_nodes)


def train_backprop_sampled(data: Data, config: LargeGraphConfig, seed: int = 0,
                           progress: Progress | None = None) -> tuple[Tensor, list[float]]:
    """``bp-sampled``: end to end on neighbour-sampled mini-batches of training nodes."""
    graph = CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _Stack(data.x.shape[1], int(data.num_classes), config)
    train = torch.nonzero(data.train_mask).view(-1)
    steps = config.epochs * len(config.hidden)
    fanouts = [config.fanout] * len(config.hidden)
    losses = []
    for step in range(steps):
        seeds = train[torch.randperm(len(train), generator=gen)[:config.batch_size]]
        sub = sample_neighbors(graph, seeds, fanouts, gen)
        adj = _subgraph_adjacency(sub, len(sub.nodes))
        logits = model(data.x[sub.nodes], adj)[:sub.num_seeds]
        loss = F.cross_entropy(logits, data.y[seeds])
        model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        model.optimizer.step()
        losses.append(float(loss.detach()))
        _tick(progress, step + 1, steps + 1, "bp-sampled")
    with torch.no_grad():  # layer-wise full-graph inference
        adj = normalised_adjacency(data.edge_index, data.num_nodes)
        scores = torch.softmax(model(data.x, adj), 1)
    _tick(progress, 1, 1, "bp-sampled")
    return scores, losses


_TRAINERS = {"sf": train_layer_local, "bp": train_backprop, "bp-sampled": train_backprop_sampled}


def train_large(data: Data, variant: str = "sf", config: LargeGraphConfig | None = None,
                seed: int = 0, progress: Progress | None = None) -> LargeRunResult:
    """Trains one variant on a (large) node-classification graph and scores it.

    Args:
        data: ``x [N, F]``, ``edge_index [2, E]``, ``y [N]``, masks, ``num_classes``,
            e.g. from :func:`graph.datasets.synthetic.homophilous_sbm`.
        variant: ``sf`` (layer-local), ``bp`` or ``bp-sampled``.
        config: hyper-parameters (defaults if None).
        seed: seeds the weights, class-node features and mini-batches.
        progress: called as ``progress(fraction, description)``.

    >>> from graph.datasets.synthetic import homophilous_sbm
    >>> r = train_large(homophilous_sbm(500, seed=0), "sf", LargeGraphConfig(epochs=5))
    >>> 0.0 <= r.test <= 1.0
    True
    """
    if variant not in _TRAINERS:
        raise ValueError(f"unknown large-graph variant {variant!r}; "
                         f"choose one of {list(LARGE_VARIANTS)}")
    config = config or LargeGraphConfig()
    if not isinstance(config, LargeGraphConfig):
        raise TypeError(f"config must be a LargeGraphConfig, got {type(config).__name__}")
    _check_data(data)
    with track_memory() as mem:
        start = time.perf_counter()
        scores, _ = _TRAINERS[variant](data, config, seed, progress)
        seconds = time.perf_counter() - start
    return LargeRunResult(variant, data.num_nodes, int(data.edge_index.shape[1]),
                          _accuracy(scores, data, "val"), _accuracy(scores, data, "test"),
                          seconds, mem.saved_mb, mem.rss_mb)
