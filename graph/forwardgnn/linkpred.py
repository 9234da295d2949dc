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

from graph.forwardgnn.base import JointVariant, LayerwiseVariant, Stream
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


class SingleForwardTopDownLink(JointVariant):
    """Link prediction where layer j's loss uses mean(own output, detached states above)."""

    name = "sf-topdown"

    def __init__(self, in_channels, num_classes, conv, config):
        if len(set(config.hidden)) != 1:
            raise ValueError(f"sf-topdown averages layer states, so hidden widths must be equal, "
                             f"got {config.hidden}")
        super().__init__(in_channels, num_classes, conv, config)
        self._states: list[Tensor] | None = None

    @torch.no_grad()
    def bottom_up(self, task: LinkTask) -> list[Tensor]:
        states = [task.x]
        for layer in self.layers:
            states.append(layer(states[-1], task.edge_index))
        return states

    def _embedding(self, own: Tensor, states: list[Tensor], j: int) -> Tensor:
        return torch.stack([own] + [s.detach() for s in states[j + 2:]]).mean(0)

    def epoch_step(self, task: LinkTask) -> float:
        if self._states is None:
            self._states = self.bottom_up(task)
        states, new, total = self._states, [self._states[0]], 0.0
        neg = train_negatives(task)
        for j, layer in enumerate(self.layers):
            own = layer(states[j].detach(), task.edge_index)
            emb = self._embedding(own, states, j)
            total += layer.step(link_loss(emb, task.split.train_pos, neg,
                                          self.config.link_threshold))
            new.append(own.detach())
        self._states = new
        return total

    def fit(self, task: LinkTask, progress: bool = False) -> list[float]:
        self._states = None
        return super().fit(task, progress)

    @torch.no_grad()
    def score(self, task: LinkTask, part: str = "test", upto: int | None = None) -> float:
        self.eval()
        states = self.bottom_up(task)
        embs = [self._embedding(states[j + 1], states, j) for j in range(len(self.layers))]
        return auc_from_layers(embs, task, part, self.config.link_threshold)
