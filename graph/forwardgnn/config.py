"""Hyper-parameters of ForwardGNN training."""

from __future__ import annotations

from dataclasses import dataclass

CONVS = ("gcn", "sage", "gat")
TASKS = ("node", "link")


@dataclass
class ForwardGNNConfig:
    """Hyper-parameters shared by every variant (forward and back-propagation).

    Attributes:
        hidden: width of each GNN layer (top-down variants need equal widths).
        epochs: epochs per layer for layer-wise variants (``ff-*``, ``sf``);
            total epochs for ``sf-topdown`` and ``bp``, which update all layers each epoch.
        lr: Adam learning rate of each layer's optimiser.
        weight_decay: Adam weight decay.
        theta: forward-forward goodness threshold (goodness = sum of squares).
        num_negatives: negative copies per positive in forward-forward.
        temperature: softmax temperature of the virtual-node logits.
        link_threshold: subtracted from the endpoint dot product to give a link logit.
        gat_heads: attention heads of ``GATConv`` (averaged, so widths are kept).
        eval_every: validation every this many epochs; the best state is kept.
        label_holdout: node classification with class nodes (``sf``, ``sf-topdown``):
            each epoch this fraction of the training nodes is left unlinked from
            its class node and the loss is taken on them alone, so training sees
            nodes as they are at prediction time (no label in their input).
            0 links every training node and takes the loss on all of them.
    """

    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 100
    lr: float = 0.01
    weight_decay: float = 5e-4
    theta: float = 0.5
    num_negatives: int = 1
    temperature: float = 0.2
    link_threshold: float = 1.0
    gat_heads: int = 2
    eval_every: int = 5
    label_holdout: float = 0.0

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        if not self.hidden or any((not isinstance(h, int)) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {self.hidden}")
        for name in ("epochs", "num_negatives", "gat_heads", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0.0 <= self.label_holdout < 1.0:
            raise ValueError(f"label_holdout must be in [0, 1), got {self.label_holdout!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
