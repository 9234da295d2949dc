"""The Drosophila connectomes with their synapse direction kept.

:func:`graph.datasets.load_dataset` symmetrises the connectome (it serves link
prediction as well). For node classification the direction matters: letting
each neuron aggregate over the neurons it synapses onto (``post->pre``) lifts
both ForwardGNN and back-propagation by 7-11 points (``docs/graphs.md``), so
:func:`load_task_dataset`, which the trainers and the benchmark use, gives
node classification the ``post->pre`` edges and link prediction the
symmetrised ones.

>>> data = load_directed_connectome("left", edges="post->pre")
>>> data.edge_index.shape[0], bool(data.directed)
(2, True)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from graph.datasets.registry import load_dataset
from graph.datasets.sources import assets_dir

EDGE_MODES = ("pre->post", "post->pre")
# directed edges used for node classification, per dataset (others: the loader's)
NODE_TASK_EDGES = {"drosophila_left": "post->pre", "drosophila_right": "post->pre"}


def synapse_edges(side: str, edges: str = "post->pre") -> Tensor:
    """``[2, E]`` one edge per connected ordered neuron pair (no self-loops).

    Args:
        side: ``"left"`` or ``"right"``.
        edges: ``"pre->post"`` (messages along the synapse) or ``"post->pre"``.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if edges not in EDGE_MODES:
        raise ValueError(f"edges must be one of {list(EDGE_MODES)}, got {edges!r}")
    path = assets_dir() / "drosophila" / f"{side}_adjacency.csv"
    if not path.is_file():
        raise FileNotFoundError(f"missing {path.name}; run scripts/extract_graph_assets.py")
    adj = np.loadtxt(path, dtype=np.int64)  # adj[i, j]: synapses from neuron i onto j
    np.fill_diagonal(adj, 0)
    pre, post = np.nonzero(adj)
    return torch.from_numpy(np.stack([pre, post] if edges == "pre->post" else [post, pre])).long()


def load_directed_connectome(side: str, edges: str = "post->pre", split_seed: int = 0) -> Data:
    """``drosophila_<side>`` with the same features, labels and split, and directed edges.

    Returns:
        ``Data`` as from :func:`load_dataset`, with ``edge_index [2, E]`` directed,
        ``edge_weight`` None and ``directed = True``.
    """
    edge_index = synapse_edges(side, edges)
    data = load_dataset(f"drosophila_{side}", split_seed=split_seed).clone()
    data.edge_index, data.edge_weight, data.directed = edge_index, None, True
    return data


def load_task_dataset(name: str, task: str = "node", split_seed: int = 0) -> Data:
    """A bundled graph as used for ``task``: :func:`load_dataset`, except that the
    Drosophila connectomes come with their ``post->pre`` synapse edges for node
    classification (``NODE_TASK_EDGES``); link prediction keeps the symmetrised graph.

    >>> load_task_dataset("drosophila_left", "node").directed
    True
    >>> bool(getattr(load_task_dataset("drosophila_left", "link"), "directed", False))
    False
    """
    if task not in ("node", "link"):
        raise ValueError(f"task must be 'node' or 'link', got {task!r}")
    if task == "node" and name in NODE_TASK_EDGES:
        return load_directed_connectome(name.removeprefix("drosophila_"), NODE_TASK_EDGES[name],
                                        split_seed)
    return load_dataset(name, split_seed=split_seed)
