"""Compressed adjacency and neighbour sampling in plain PyTorch (no pyg-lib).

:class:`CSRGraph` keys the incoming edges of every node (PyG's
``source_to_target`` flow: ``edge_index[0]`` sends to ``edge_index[1]``), and
:func:`sample_neighbors` draws a GraphSAGE-style computation subgraph: for each
hop, up to ``fanout`` distinct in-neighbours of every frontier node, without
replacement (random keys sorted within each node's segment).

>>> import torch
>>> g = CSRGraph.from_edge_index(torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]]), 3)
>>> sub = sample_neighbors(g, torch.tensor([1]), [2], torch.Generator().manual_seed(0))
>>> sub.nodes[:1].tolist(), sub.edge_index.shape[1]
([1], 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class CSRGraph:
    """Incoming edges by target node.

    Attributes:
        rowptr: ``[N + 1]`` start of each node's in-neighbours in ``col``.
        col: ``[E]`` source node of each edge, grouped by target.
        num_nodes: N.
    """

    rowptr: Tensor
    col: Tensor
    num_nodes: int

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> "CSRGraph":
        """Builds the CSR of ``edge_index: [2, E]`` (long) over ``num_nodes`` nodes."""
        if not isinstance(edge_index, Tensor) or edge_index.ndim != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must be a [2, E] tensor, got "
                             f"{getattr(edge_index, 'shape', type(edge_index).__name__)}")
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
            raise ValueError(f"edge_index must index nodes in [0, {num_nodes}), got "
                             f"[{int(edge_index.min())}, {int(edge_index.max())}]")
        src, dst = edge_index[0].long(), edge_index[1].long()
        order = torch.argsort(dst * num_nodes + src)
        counts = torch.bincount(dst, minlength=num_nodes)
        rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=rowptr[1:])
        return cls(rowptr, src[order], num_nodes)

    def degree(self, nodes: Tensor | None = None) -> Tensor:
        """In-degree of ``nodes`` (all nodes if None)."""
        deg = self.rowptr[1:] - self.rowptr[:-1]
        return deg if nodes is None else deg[nodes]


@dataclass
class SampledSubgraph:
    """A sampled computation graph, relabelled to local ids.

    Attributes:
        nodes: ``[n]`` global ids; the first ``num_seeds`` are the seeds in the order given.
        edge_index: ``[2, e]`` local edges (neighbour -> node it was sampled for).
        num_seeds: number of seed nodes.
    """

    nodes: Tensor
    edge_index: Tensor
    num_seeds: int


def _sample_hop(graph: CSRGraph, frontier: Tensor, fanout: int,
                gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Up to ``fanout`` distinct in-neighbours per frontier node: ``(sources, targets)`` global."""
    start, deg = graph.rowptr[frontier], graph.degree(frontier)
    seg = torch.repeat_interleave(torch.arange(len(frontier)), deg)
    if seg.numel() == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    first = torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
    pos = torch.arange(seg.numel()) - first  # position within the node's segment
    if fanout >= 0:
        # random key per candidate; rank within segment after sorting by (segment, key)
        key = torch.rand(seg.numel(), generator=gen)
        order = torch.argsort(seg.double() + key.double())  # segments stay contiguous
        rank = torch.empty_like(order)
        rank[order] = pos  # the sorted order fills each segment's positions 0..deg-1
        keep = rank < fanout
        seg, pos = seg[keep], pos[keep]
    edge = start[seg] + pos
    return graph.col[edge], frontier[seg]


def sample_neighbors(graph: CSRGraph, seeds: Tensor, fanouts: list[int],
                     generator: torch.Generator | None = None) -> SampledSubgraph:
    """Samples a multi-hop neighbourhood of ``seeds`` (layer ``k`` uses ``fanouts[k]``; -1 = all).

    Args:
        graph: the CSR graph.
        seeds: ``[B]`` distinct global node ids.
        fanouts: neighbours per node and hop, outermost hop last.
        generator: torch generator (seeded sampling).

    Returns:
        :class:`SampledSubgraph` holding every sampled edge of every hop.
    """
    if not isinstance(seeds, Tensor) or seeds.ndim != 1 or seeds.dtype != torch.long:
        raise ValueError(f"seeds must be a 1-D long tensor, got "
                         f"{getattr(seeds, 'shape', type(seeds).__name__)}")
    if seeds.numel() and (seeds.min() < 0 or seeds.max() >= graph.num_nodes):
        raise ValueError(f"seeds must be node ids in [0, {graph.num_nodes})")
    if torch.unique(seeds).numel() != seeds.numel():
        raise ValueError("seeds must be distinct node ids")
    if not fanouts or any((not isinstance(f, int)) or (f < 1 and f != -1) for f in fanouts):
        raise ValueError(f"fanouts must be a non-empty list of positive ints or -1, got {fanouts}")
    gen = generator or torch.Generator().manual_seed(0)
    local = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    local[seeds] = torch.arange(len(seeds))
    nodes, srcs, dsts = [seeds], [], []
    frontier, count = seeds, len(seeds)
    for fanout in fanouts:
        src, dst = _sample_hop(graph, frontier, fanout, gen)
        srcs.append(src)
        dsts.append(dst)
        new = torch.unique(src)
        new = new[local[new] < 0]
        local[new] = torch.arange(count, count + len(new))
        count += len(new)
        nodes.append(new)
        frontier = new
    src, dst = torch.cat(srcs), torch.cat(dsts)
    return SampledSubgraph(torch.cat(nodes), torch.stack([local[src], local[dst]]), len(seeds))
