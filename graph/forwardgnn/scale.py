"""ForwardGNN on large graphs: full-graph layer-local training against back-propagation.

The layers are GCN layers on a sparse normalised adjacency ``D^-1/2 (A + I) D^-1/2``
held as one CSR tensor, so a layer costs ``O(E H)`` time and ``O(N H)`` memory
(torch-geometric's message passing materialises ``[E, H]`` messages, which at
10^7 edges is gigabytes). Three ways to train the same stack:

- ``sf`` (layer-local, :func:`train_layer_local`): the single-forward loss of
  ForwardGNN (class nodes linked to the training nodes, cross-entropy of the
  dot products with the class nodes). Layer ``i`` is trained to the end on the
  detached output of layer ``i - 1``; then its own output is computed without
  autograd and replaces its input. Because the loss is local to the layer, a
  full-graph step is accumulated over row blocks of the adjacency with exact
  gradients (:func:`_layer_local_epoch`): the step holds the input state, the
  projection ``z = x W`` and its gradient, never the layer's ``[N, H]``
  activations.
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


def normalised_adjacency(edge_index: Tensor, num_nodes: int,
                         extra: Tensor | None = None) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse CSR ``[N, N]`` float32 tensor (row = target).

    Built without concatenating the edge list: the column indices are written
    straight into their CSR slots (a stable sort of the targets only where the
    list is not already sorted by target; each self-loop placed in order within
    its row; a final per-row sort only if some row came out of order), with
    int32 indices where ``N + E`` fits (half the bytes of int64 for the column
    indices, the largest part).

    Args:
        edge_index: ``[2, E]`` edges ``source -> target`` without self-loops.
        num_nodes: N.
        extra: optional ``[2, E']`` further edges (e.g. the links to class nodes),
            treated as if appended to ``edge_index``.
    """
    parts = [edge_index] if extra is None else [edge_index, extra]
    deg = torch.ones(num_nodes, dtype=torch.long)  # the self-loop
    for part in parts:
        deg += torch.bincount(part[1], minlength=num_nodes)
    total = int(deg.sum())
    index_dtype = torch.int32 if total < 2**31 - 1 else torch.long
    rowptr = torch.zeros(num_nodes + 1, dtype=index_dtype)
    rowptr[1:] = torch.cumsum(deg, 0)
    inv = deg.float().rsqrt_()
    col = torch.empty(total, dtype=index_dtype)
    # Row i holds, in this order: the edges with source < i, the self-loop, the
    # edges with source > i; for an input sorted by (target, source) every row
    # comes out sorted without a sort of the whole list.
    lower = torch.zeros(num_nodes, dtype=torch.long)
    for part in parts:
        lower += torch.bincount(part[1][part[0] < part[1]], minlength=num_nodes)
    fill_lo = rowptr[:-1].long()
    fill_hi = fill_lo + lower
    del lower
    col[fill_hi] = torch.arange(num_nodes, dtype=index_dtype)
    fill_hi += 1
    for part in parts:
        below = part[0] < part[1]
        for mask, fill in ((below, fill_lo), (~below, fill_hi)):
            src, dst = part[0][mask], part[1][mask]
            if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
                order = torch.sort(dst, stable=True).indices
                src, dst = src[order], dst[order]
                del order
            # rank of each edge among its row's (dst is sorted): position - first position
            slot = torch.arange(dst.numel()) - torch.searchsorted(dst, dst)
            slot += fill[dst]
            col[slot] = src.to(index_dtype)
            fill += torch.bincount(dst, minlength=num_nodes)
            del slot, src, dst
        del below
    del fill_lo, fill_hi
    _sort_rows(rowptr, col, deg)
    values = torch.repeat_interleave(inv, deg)  # row factor
    values *= torch.index_select(inv, 0, col)  # column factor
    return torch.sparse_csr_tensor(rowptr, col, values, size=(num_nodes, num_nodes))


def _sort_rows(rowptr: Tensor, col: Tensor, deg: Tensor) -> None:
    """Sorts the column indices of every CSR row in place, if any row is out of order."""
    if col.numel() < 2:
        return
    same_row = torch.ones(col.numel() - 1, dtype=torch.bool)
    ends = rowptr[1:-1].long() - 1  # last slot of every row but the last
    same_row[ends[(ends >= 0) & (ends < col.numel() - 1)]] = False
    if not bool(((col[1:] < col[:-1]) & same_row).any()):
        return
    rows = torch.repeat_interleave(torch.arange(deg.numel()), deg)
    key = rows * (int(col.max()) + 1) + col.long()
    del rows
    col.copy_(col[torch.argsort(key)])


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


ROW_BLOCKS = 16  # row blocks of the layer-local pass: its temporaries are ~1/16 of [N, H]


def row_blocks(adj: Tensor, start: int, stop: int, blocks: int) -> list[tuple[int, int, Tensor]]:
    """Rows ``[start, stop)`` of a CSR matrix as ``blocks`` CSR row blocks ``(r0, r1, A[r0:r1])``.

    The blocks are views of ``adj``'s column indices and values (only their
    row pointers are new), so they cost no copy of the matrix.
    """
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    step = max(1, -(-(stop - start) // blocks))
    out = []
    for r0 in range(start, stop, step):
        r1 = min(r0 + step, stop)
        lo, hi = int(crow[r0]), int(crow[r1])
        out.append((r0, r1, torch.sparse_csr_tensor(crow[r0:r1 + 1] - crow[r0], col[lo:hi],
                                                    val[lo:hi], size=(r1 - r0, adj.shape[1]))))
    return out


@torch.no_grad()
def _forward_blocks(layer: SparseGCNLayer, h: Tensor, blocks) -> Tensor:
    """``layer(h, adj)`` without autograd, one row block at a time (no ``[N, H]`` temporaries)."""
    z = layer.lin(l2_normalise(h))
    out = z.new_empty(h.shape[0], z.shape[1])
    for r0, r1, block in blocks:
        part = torch.mm(block, z)
        part += layer.bias
        out[r0:r1] = part.relu_()
    return out


def _layer_local_epoch(layer: SparseGCNLayer, h: Tensor, node_blocks, class_block: Tensor,
                       train_mask: Tensor, y: Tensor, n_train: int, temperature: float) -> float:
    """One full-graph step of the single-forward loss of one layer, with exact gradients.

    The layer is ``relu(A z + b)`` with ``z = lin(l2_normalise(h))``. ``z`` is
    computed once without autograd; the loss, a sum over training nodes, is
    back-propagated one row block ``A_r`` at a time down to the block's
    pre-activation ``p_r = A_r z + b``, whose gradient is pushed back by hand:
    ``dz += A_r^T dp_r`` and ``db += sum dp_r``. The class nodes' outputs are a
    leaf shared by all blocks and pushed back once at the end. Finally
    ``dW = dz^T l2_normalise(h)``, block by block. The step therefore holds
    ``h``, ``z``, ``dz`` and one block's temporaries, never a layer's ``[N, H]``
    activations or autograd's dense ``[N, H]`` gradient per block, and equals
    the full-batch step.
    """
    with torch.no_grad():
        z = layer.lin(l2_normalise(h))
        grad_z = torch.zeros_like(z)
        grad_b = torch.zeros_like(layer.bias)
        pre_c = torch.mm(class_block, z) + layer.bias  # [C, H]: the class nodes
    pre_c.requires_grad_(True)
    out_c = torch.relu(pre_c)
    classes = out_c.detach().requires_grad_(True)
    total = 0.0
    for r0, r1, block in node_blocks:
        rows = torch.nonzero(train_mask[r0:r1]).view(-1)
        if rows.numel() == 0:
            continue
        with torch.no_grad():
            pre = torch.mm(block, z)
            pre += layer.bias
        pre.requires_grad_(True)
        loss = F.cross_entropy(_class_logits_of(torch.relu(pre)[rows], classes, temperature),
                               y[r0 + rows], reduction="sum") / n_train
        loss.backward()
        total += float(loss.detach())
        with torch.no_grad():
            grad_z.addmm_(block.t(), pre.grad)
            grad_b += pre.grad.sum(0)
        del pre, loss
    out_c.backward(classes.grad)
    with torch.no_grad():
        grad_z.addmm_(class_block.t(), pre_c.grad)
        grad_b += pre_c.grad.sum(0)
    del z, pre_c, out_c, classes
    grad_w = torch.zeros_like(layer.lin.weight)
    for r0, r1, _ in node_blocks + [(node_blocks[-1][1], h.shape[0], None)]:
        grad_w.addmm_(grad_z[r0:r1].t(), l2_normalise(h[r0:r1]))
    layer.optimizer.zero_grad(set_to_none=True)
    layer.lin.weight.grad, layer.bias.grad = grad_w, grad_b
    layer.optimizer.step()
    return total


def _class_logits_of(out: Tensor, classes: Tensor, temperature: float) -> Tensor:
    return out @ classes.t() / temperature


def train_layer_local(data: Data, config: LargeGraphConfig, seed: int = 0,
                      progress: Progress | None = None) -> tuple[Tensor, list[float]]:
    """``sf`` on the full graph, one layer at a time; returns ``(class scores [N, C], losses)``.

    Class node ``c`` (index ``N + c``) is linked to every training node of class ``c``.
    Each layer is trained by :func:`_layer_local_epoch` (full-batch gradients
    accumulated over row blocks) and its no-grad output, computed block by
    block, replaces its input: at any time the process holds the input state,
    one ``[N, H]`` projection and its gradient (or the output state).
    """
    n, c = data.num_nodes, int(data.num_classes)
    gen = torch.Generator().manual_seed(seed)
    train = torch.nonzero(data.train_mask).view(-1)
    links = torch.stack([train, n + data.y[train]])
    adj = normalised_adjacency(data.edge_index, n + c, extra=torch.cat([links, links.flip(0)], 1))
    del links
    node_blocks = row_blocks(adj, 0, n, ROW_BLOCKS)
    class_block = row_blocks(adj, n, n + c, 1)[0][2]
    all_blocks = node_blocks + [(n, n + c, class_block)]
    h = torch.cat([data.x, torch.randn(c, data.x.shape[1], generator=gen)])  # [N + C, F]
    torch.manual_seed(seed)
    layers = make_sparse_layers(data.x.shape[1], config)
    n_train = int(train.numel())
    del train
    scores, losses = torch.zeros(n, c), []
    total = len(layers) * config.epochs
    for i, layer in enumerate(layers):
        best, best_state = -1.0, None
        for epoch in range(config.epochs):
            # Autograd sees only this layer: its input h carries no graph.
            losses.append(_layer_local_epoch(layer, h, node_blocks, class_block, data.train_mask,
                                             data.y, n_train, config.temperature))
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                out = _forward_blocks(layer, h, all_blocks)
                probs = scores + torch.softmax(_class_logits(out, n, config.temperature), 1)
                del out
                val = _accuracy(probs, data, "val")
                if val > best:
                    best = val
                    best_state = {k: v.clone() for k, v in layer.state_dict().items()}
            _tick(progress, i * config.epochs + epoch + 1, total, f"sf layer {i + 1}/{len(layers)}")
        layer.load_state_dict(best_state)
        h = _forward_blocks(layer, h, all_blocks)  # replaces the input: the old state is freed
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
