"""Forward-learning variants for link prediction.

The score of a pair is ``<h_i, h_j> - link_threshold``. ``sf`` trains each
layer in turn with binary cross-entropy of the training edges against fresh
random non-edges (``torch_geometric.utils.negative_sampling``) on detached
inputs; ``sf-topdown`` uses the mean of a layer's output and the detached
states above it, updating all layers every epoch. Prediction sums the
per-layer probabilities.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import negative_sampling

from graph.forwardgnn.base import LayerwiseVariant, Stream, TopDownVariant
from graph.forwardgnn.losses import link_loss, pair_logits, roc_auc
from graph.forwardgnn.tasks import LinkTask


def _pairs(task: LinkTask, part: str) -> tuple[Tensor, Tensor]:
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
    s = task.split
    if part == "train":
        return s.train_pos, negative_sampling(s.train_edge_index, task.num_nodes,
                                              s.train_pos.shape[1])
    return getattr(s, f"{part}_pos"), getattr(s, f"{part}_neg")


def train_negatives(task: LinkTask) -> Tensor:
    """As many random non-edges of the training graph as there are training pairs."""
    return negative_sampling(task.split.train_edge_index, task.num_nodes,
                             task.split.train_pos.shape[1])


def auc_from_layers(states: list[Tensor], task: LinkTask, part: str, threshold: float) -> float:
    """ROC-AUC of per-layer probabilities summed over the given embeddings."""
    pos, neg = _pairs(task, part)
    sp = sum(torch.sigmoid(pair_logits(h, pos, threshold)) for h in states)
    sn = sum(torch.sigmoid(pair_logits(h, neg, threshold)) for h in states)
    return roc_auc(sp, sn)


class SingleForwardLink(LayerwiseVariant):
    """Layer-wise link prediction with a local edge loss per layer."""

    name = "sf"

    def streams(self, task: LinkTask) -> list[Stream]:
        return [(task.x, task.edge_index)]

    def layer_loss(self, i: int, outputs: list[Tensor], task: LinkTask) -> Tensor:
        return link_loss(outputs[0], task.split.train_pos, train_negatives(task),
                         self.config.link_threshold)

    @torch.no_grad()
    def score(self, task: LinkTask, part: str = "test", upto: int | None = None) -> float:
        self.eval()
        h, states = task.x, []
        for layer in self.layers[:upto]:
            h = layer(h, task.edge_index)
            states.append(h)
        return auc_from_layers(states, task, part, self.config.link_threshold)


class SingleForwardTopDownLink(TopDownVariant):
    """Link prediction where layer j's loss uses mean(own output, detached states above)."""

    def graph(self, task: LinkTask) -> tuple[Tensor, Tensor]:
        return task.x, task.edge_index

    def epoch_context(self, task: LinkTask) -> Tensor:
        return train_negatives(task)

    def layer_loss(self, task: LinkTask, embedding: Tensor, negatives: Tensor) -> Tensor:
        return link_loss(embedding, task.split.train_pos, negatives, self.config.link_threshold)

    @torch.no_grad()
    def score(self, task: LinkTask, part: str = "test", upto: int | None = None) -> float:
        return auc_from_layers(self.embeddings(task)[:upto], task, part, self.config.link_threshold)
