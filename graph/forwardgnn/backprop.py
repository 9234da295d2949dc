"""Back-propagation baselines with the same layer stack as the forward variants."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graph.forwardgnn.base import JointVariant
from graph.forwardgnn.linkpred import auc_from_layers, train_negatives
from graph.forwardgnn.losses import accuracy, link_loss
from graph.forwardgnn.tasks import LinkTask, NodeTask


class _Backprop(JointVariant):
    forward_learning = False

    def __init__(self, in_channels, num_classes, conv, config):
        super().__init__(in_channels, num_classes, conv, config)
        self.head = nn.Linear(config.hidden[-1], num_classes) if num_classes else None
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)

    def embed(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """End-to-end differentiable pass through all layers, ``[N, F] -> [N, H]``."""
        for layer in self.layers:
            x = layer(x, edge_index)
        return x

    def _step(self, loss: Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class BackpropNode(_Backprop):
    """The layer stack and a linear classifier, trained end to end with cross-entropy."""

    name = "bp"

    def epoch_step(self, task: NodeTask) -> float:
        logits = self.head(self.embed(task.x, task.edge_index))
        return self._step(F.cross_entropy(logits[task.train_mask], task.y[task.train_mask]))

    @torch.no_grad()
    def score(self, task: NodeTask, part: str = "test", upto: int | None = None) -> float:
        if part not in ("train", "val", "test"):
            raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
        self.eval()
        m = getattr(task, f"{part}_mask")
        pred = self.head(self.embed(task.x, task.edge_index)).argmax(1)
        return accuracy(pred[m], task.y[m])


class BackpropLink(_Backprop):
    """The layer stack trained end to end on the last layer's pair scores."""

    name = "bp"

    def epoch_step(self, task: LinkTask) -> float:
        h = self.embed(task.x, task.edge_index)
        return self._step(link_loss(h, task.split.train_pos, train_negatives(task),
                                    self.config.link_threshold))

    @torch.no_grad()
    def score(self, task: LinkTask, part: str = "test", upto: int | None = None) -> float:
        self.eval()
        return auc_from_layers([self.embed(task.x, task.edge_index)], task, part,
                               self.config.link_threshold)
