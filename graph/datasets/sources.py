"""Readers for the bundled graphs (``assets/graphs/``) and networkx's built-in ones.

Each reader returns plain tensors; :mod:`graph.datasets.registry` turns them
into ``torch_geometric.data.Data`` with features and splits.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from splatops_assets import asset_path

from graph.datasets.splits import both_directions, undirected_pairs


def assets_dir() -> Path:
    """Folder of the bundled graphs; ``SPLATOPS_GRAPH_ASSETS`` overrides it."""
    env = os.environ.get("SPLATOPS_GRAPH_ASSETS")
    if env:
        return Path(env)
    return asset_path("graphs")


def _asset(*parts: str) -> Path:
    path = assets_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"missing graph asset {path}; run scripts/extract_graph_assets.py")
    return path


@dataclass
class RawGraph:
    """An undirected graph as read from its source.

    Attributes:
        num_nodes: N.
        pairs: ``[2, M]`` undirected pairs ``i < j``.
        weight: ``[M]`` pair weights, or None.
        x: ``[N, F]`` given node features, or None (structural default used).
        y: ``[N]`` real node labels, or None.
        class_names: name of each label value.
    """

    num_nodes: int
    pairs: Tensor
    weight: Tensor | None = None
    x: Tensor | None = None
    y: Tensor | None = None
    class_names: list[str] = field(default_factory=list)


def _from_networkx(g, weight: str | None = None) -> tuple[int, Tensor, Tensor | None]:
    nodes = list(g.nodes())
    index = {n: i for i, n in enumerate(nodes)}
    edges = [(index[u], index[v], d.get(weight, 1.0) if weight else 1.0)
             for u, v, d in g.edges(data=True) if u != v]
    e = torch.tensor([[a, b] for a, b, _ in edges], dtype=torch.long).t()
    w = torch.tensor([c for _, _, c in edges], dtype=torch.float)
    lo, hi = torch.minimum(e[0], e[1]), torch.maximum(e[0], e[1])
    order = torch.argsort(lo * len(nodes) + hi)
    return len(nodes), torch.stack([lo, hi])[:, order], (w[order] if weight else None)


def read_karate() -> RawGraph:
    """Zachary's karate club: 34 members, 78 ties, label = club after the split."""
    import networkx as nx

    g = nx.karate_club_graph()
    n, pairs, weight = _from_networkx(g, "weight")
    names = ["Mr. Hi", "Officer"]
    y = torch.tensor([names.index(g.nodes[i]["club"]) for i in g.nodes()])
    return RawGraph(n, pairs, weight, y=y, class_names=names)


def read_les_miserables() -> RawGraph:
    """Co-appearance of 77 characters of Les Miserables (254 weighted pairs); no labels."""
    import networkx as nx

    n, pairs, weight = _from_networkx(nx.les_miserables_graph(), "weight")
    return RawGraph(n, pairs, weight)


def read_drosophila(side: str) -> RawGraph:
    """A larval Drosophila mushroom-body connectome, symmetrised; label = cell type.

    Args:
        side: ``"left"`` (209 neurons) or ``"right"`` (213 neurons).
    """
    adj = np.loadtxt(_asset("drosophila", f"{side}_adjacency.csv"), dtype=np.int64)
    labels = np.loadtxt(_asset("drosophila", f"{side}_cell_labels.csv"), dtype=str)
    sym = adj + adj.T
    i, j = np.nonzero(np.triu(sym, k=1))
    names = sorted(set(labels.tolist()))
    y = torch.tensor([names.index(s) for s in labels.tolist()])
    pairs = torch.from_numpy(np.stack([i, j])).long()
    return RawGraph(len(labels), pairs, torch.from_numpy(sym[i, j]).float(), y=y,
                    class_names=names)


def read_minnesota() -> RawGraph:
    """Minnesota road network: 2642 intersections, 3303 road segments; x = coordinates."""
    from scipy.io import loadmat

    mat = loadmat(_asset("minnesota", "minnesota.mat"))
    a = mat["A"].tocoo()
    pairs = undirected_pairs(torch.from_numpy(np.stack([a.row, a.col])).long())
    xy = torch.from_numpy(mat["xy"]).float()
    xy = (xy - xy.mean(0)) / xy.std(0)
    return RawGraph(a.shape[0], pairs, x=xy)


MICE_NODES = 332


def read_mice() -> tuple[list[RawGraph], list[str], list[str]]:
    """The 32 mouse DTI connectomes.

    Returns:
        (graphs, genotype of each graph, sex of each graph). Each graph has
        332 nodes; ``weight`` is the fibre count; ``x`` is the one-hot
        anatomical block of each region (14 blocks).
    """
    store = np.load(_asset("mice", "connectomes.npz"))
    with open(_asset("mice", "participants.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(_asset("mice", "blocks.csv"), newline="") as f:
        blocks = list(csv.DictReader(f))
    block = torch.zeros(MICE_NODES, dtype=torch.long)
    for b, row in enumerate(blocks):
        block[int(row["i"]):int(row["j"])] = b
    x = torch.nn.functional.one_hot(block, len(blocks)).float()
    # Each key access of an npz decompresses the array again: read each once.
    off, src, dst, count = (store[k] for k in ("offsets", "src", "dst", "count"))
    graphs = []
    for g in range(len(rows)):
        s = slice(int(off[g]), int(off[g + 1]))
        pairs = torch.from_numpy(np.stack([src[s], dst[s]]).astype(np.int64))
        graphs.append(RawGraph(MICE_NODES, pairs, torch.from_numpy(count[s].astype(np.float32)),
                               x=x))
    return graphs, [r["genotype"] for r in rows], [r["sex"] for r in rows]


def directed(raw: RawGraph) -> tuple[Tensor, Tensor | None]:
    """``[2, 2M]`` edge index (both directions) and ``[2M]`` weights of a raw graph."""
    w = None if raw.weight is None else torch.cat([raw.weight, raw.weight])
    return both_directions(raw.pairs), w
