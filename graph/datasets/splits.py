"""Seeded node and edge splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def stratified_masks(y: Tensor, train: float = 0.6, val: float = 0.2,
                     seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class random split of the nodes into train / val / test masks.

    Every class with at least three nodes has at least one node in each part.

    Args:
        y: ``[N]`` integer labels.
        train: fraction of each class used for training.
        val: fraction used for validation; the rest is test.
        seed: random seed.

    Returns:
        Three ``[N]`` boolean masks that partition the nodes.
    """
    if not (0 < train < 1 and 0 <= val < 1 and train + val < 1):
        raise ValueError(f"train and val must be fractions with train + val < 1, got {train}, {val}")
    gen = torch.Generator().manual_seed(seed)
    masks = [torch.zeros(len(y), dtype=torch.bool) for _ in range(3)]
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).view(-1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n = len(idx)
        n_train = max(1, round(train * n))
        n_val = max(1 if n >= 3 else 0, round(val * n))
        n_train = min(n_train, n - n_val - (1 if n >= 3 else 0))
        masks[0][idx[:n_train]] = True
        masks[1][idx[n_train:n_train + n_val]] = True
        masks[2][idx[n_train + n_val:]] = True
    return masks[0], masks[1], masks[2]


def undirected_pairs(edge_index: Tensor) -> Tensor:
    """Unique ``(i, j)`` pairs with ``i < j`` (self-loops dropped).

    Returns:
        ``[2, M]`` pairs, sorted.
    """
    lo = torch.minimum(edge_index[0], edge_index[1])
    hi = torch.maximum(edge_index[0], edge_index[1])
    keep = lo != hi
    pairs = torch.unique(torch.stack([lo[keep], hi[keep]]), dim=1)
    return pairs


def both_directions(pairs: Tensor) -> Tensor:
    """``[2, M]`` undirected pairs -> ``[2, 2M]`` directed edges."""
    return torch.cat([pairs, pairs.flip(0)], dim=1)


def sample_non_edges(num_nodes: int, existing: Tensor, num: int,
                     generator: torch.Generator | None = None) -> Tensor:
    """Random node pairs ``i < j`` that are not in ``existing`` (rejection sampling).

    Args:
        num_nodes: number of nodes N.
        existing: ``[2, E]`` edges to avoid (either direction).
        num: number of pairs wanted.
        generator: random generator.

    Returns:
        ``[2, num]`` distinct non-edges.
    """
    possible = num_nodes * (num_nodes - 1) // 2 - len(undirected_pairs(existing)[0])
    if num > possible:
        raise ValueError(f"num={num} non-edges wanted but the graph has only {possible}")
    ex = undirected_pairs(existing)
    taken = set((ex[0] * num_nodes + ex[1]).tolist())
    out: list[int] = []
    while len(out) < num:
        m = 2 * (num - len(out)) + 16
        i = torch.randint(num_nodes, (m,), generator=generator)
        j = torch.randint(num_nodes, (m,), generator=generator)
        lo, hi = torch.minimum(i, j), torch.maximum(i, j)
        for key in (lo * num_nodes + hi)[lo != hi].tolist():
            if key not in taken:
                taken.add(key)
                out.append(key)
                if len(out) == num:
                    break
    keys = torch.tensor(out, dtype=torch.long)
    return torch.stack([keys // num_nodes, keys % num_nodes])


@dataclass
class LinkSplit:
    """Edges of one graph split for link prediction.

    Attributes:
        train_edge_index: ``[2, 2*Mt]`` message-passing edges (both directions of the train pairs).
        train_pos: ``[2, Mt]`` train pairs.
        val_pos / val_neg: ``[2, Mv]`` held-out pairs and as many non-edges.
        test_pos / test_neg: ``[2, Ms]`` held-out pairs and as many non-edges.
    """

    train_edge_index: Tensor
    train_pos: Tensor
    val_pos: Tensor
    val_neg: Tensor
    test_pos: Tensor
    test_neg: Tensor


def split_edges(edge_index: Tensor, num_nodes: int, val: float = 0.1, test: float = 0.2,
                seed: int = 0) -> LinkSplit:
    """Hold out a random fraction of the undirected edges, with as many non-edges.

    Args:
        edge_index: ``[2, E]`` edges of the full graph.
        num_nodes: number of nodes N.
        val: fraction of pairs held out for validation.
        test: fraction held out for testing.
        seed: random seed.
    """
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"val and test must be fractions with val + test < 1, got {val}, {test}")
    pairs = undirected_pairs(edge_index)
    m = pairs.shape[1]
    n_val, n_test = int(round(val * m)), int(round(test * m))
    if m < 3 or n_val < 1 or n_test < 1 or m - n_val - n_test < 1:
        raise ValueError(f"edge_index must hold enough edges to split for link prediction, "
                         f"got {m} undirected edges")
    gen = torch.Generator().manual_seed(seed)
    pairs = pairs[:, torch.randperm(m, generator=gen)]
    val_pos, test_pos = pairs[:, :n_val], pairs[:, n_val:n_val + n_test]
    train_pos = pairs[:, n_val + n_test:]
    neg = sample_non_edges(num_nodes, edge_index, n_val + n_test, gen)
    return LinkSplit(both_directions(train_pos), train_pos, val_pos, neg[:, :n_val],
                     test_pos, neg[:, n_val:])
