"""Forward-learning variants for node classification (Park et al., ICLR 2024).

- ``ff-label``: forward-forward with label appending. Training nodes get their
  one-hot label appended (positive) or a wrong one (negative); other nodes a
  uniform vector. Each layer pushes the goodness (sum of squared activations)
  of positives above ``theta`` and of negatives below. A node is classified
  by trying every label and summing the goodness over layers.
- ``ff-vn``: forward-forward with virtual class nodes. One extra node per
  class; training nodes are linked to their class node (positive graph) or
  to a wrong one (negative graph). Prediction links the node to each class
  node in turn.
- ``sf``: single forward, no negatives. With the class nodes linked to their
  training nodes, each layer's loss is the cross-entropy of the dot products
  between a node and the class nodes.
- ``sf-topdown``: ``sf`` where a layer's loss uses the mean of its fresh
  output and the detached current states of the layers above it; all layers
  are updated every epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from graph.forwardgnn.base import LayerwiseVariant, Stream, TopDownVariant
from graph.forwardgnn.losses import accuracy, forward_forward_loss, goodness
from graph.forwardgnn.tasks import NodeTask


def _mask(task: NodeTask, part: str) -> Tensor:
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
    return getattr(task, f"{part}_mask")


def _label_block(task: NodeTask, labels: Tensor) -> Tensor:
    """``[N, C]``: one-hot ``labels`` on training nodes, uniform elsewhere."""
    c = task.num_classes
    block = torch.full((task.num_nodes, c), 1.0 / c)
    block[task.train_mask] = F.one_hot(labels[task.train_mask], c).float()
    return block


def _wrong_labels(y: Tensor, num_classes: int, gen: torch.Generator) -> Tensor:
    """A uniformly random label different from ``y`` for every node."""
    shift = torch.randint(1, num_classes, y.shape, generator=gen)
    return (y + shift) % num_classes


class FFLabel(LayerwiseVariant):
    """Forward-forward with the label appended to the input features."""

    name = "ff-label"

    def layer_input_width(self, in_channels: int, num_classes: int) -> int:
        return in_channels + num_classes

    def streams(self, task: NodeTask) -> list[Stream]:
        gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
        pos = torch.cat([task.x, _label_block(task, task.y)], dim=1)
        negs = [torch.cat([task.x, _label_block(task, _wrong_labels(task.y, task.num_classes,
                                                                     gen))], dim=1)
                for _ in range(self.config.num_negatives)]
        return [(pos, task.edge_index)] + [(n, task.edge_index) for n in negs]

    def layer_loss(self, i: int, outputs: list[Tensor], task: NodeTask) -> Tensor:
        m = task.train_mask
        return forward_forward_loss(outputs[0][m], [h[m] for h in outputs[1:]], self.config.theta)

    @torch.no_grad()
    def class_scores(self, task: NodeTask, upto: int | None = None) -> Tensor:
        """``[N, C]`` goodness summed over the first ``upto`` layers with each label tried."""
        self.eval()
        scores = torch.zeros(task.num_nodes, task.num_classes)
        for c in range(task.num_classes):
            labels = torch.where(task.train_mask, task.y, torch.full_like(task.y, c))
            block = F.one_hot(labels, task.num_classes).float()
            h = torch.cat([task.x, block], dim=1)
            for layer in self.layers[:upto]:
                h = layer(h, task.edge_index)
                scores[:, c] += goodness(h)
        return scores

    @torch.no_grad()
    def score(self, task: NodeTask, part: str = "test", upto: int | None = None) -> float:
        m = _mask(task, part)
        return accuracy(self.class_scores(task, upto)[m].argmax(1), task.y[m])


class _VirtualNodes:
    """Graph augmentation with one virtual node per class (indices ``N .. N+C-1``).

    ``links`` is ``both`` (``node <-> class node``) or ``to_class`` (``node -> class node``).
    """

    def __init__(self, task: NodeTask, seed_features: Tensor, links: str = "both"):
        if links not in ("both", "to_class"):
            raise ValueError(f"class links must be 'both' or 'to_class', got {links!r}")
        self.n, self.c, self.links = task.num_nodes, task.num_classes, links
        self.x = torch.cat([task.x, seed_features], dim=0)  # [N + C, F]
        self.edge_index = task.edge_index

    def link(self, nodes: Tensor, classes: Tensor) -> Tensor:
        """Edges of the graph plus the ``node -> class node`` links (and back with ``both``)."""
        v = self.n + classes
        if self.links == "to_class":
            extra = torch.stack([nodes, v])
        else:
            extra = torch.stack([torch.cat([nodes, v]), torch.cat([v, nodes])])
        return torch.cat([self.edge_index, extra], dim=1)


def _virtual_features(task: NodeTask, kind: str = "random") -> Tensor:
    """``[C, F]`` class-node features: a Gaussian draw, or each class's mean training features.

    The global RNG is advanced the same way for both kinds.
    """
    gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
    draw = torch.randn(task.num_classes, task.x.shape[1], generator=gen)
    if kind == "random":
        return draw
    if kind != "mean":
        raise ValueError(f"class-node features must be 'random' or 'mean', got {kind!r}")
    x, y = task.x[task.train_mask], task.y[task.train_mask]
    sums = torch.zeros(task.num_classes, x.shape[1]).index_add_(0, y, x)
    return sums / torch.bincount(y, minlength=task.num_classes).clamp_min(1)[:, None].float()


class FFVirtualNodes(LayerwiseVariant):
    """Forward-forward where labels enter as links to virtual class nodes."""

    name = "ff-vn"

    def streams(self, task: NodeTask) -> list[Stream]:
        self._vn = _VirtualNodes(task, _virtual_features(task))
        gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
        train = torch.nonzero(task.train_mask).view(-1)
        out = [(self._vn.x, self._vn.link(train, task.y[train]))]
        for _ in range(self.config.num_negatives):
            wrong = _wrong_labels(task.y[train], task.num_classes, gen)
            out.append((self._vn.x, self._vn.link(train, wrong)))
        return out

    def layer_loss(self, i: int, outputs: list[Tensor], task: NodeTask) -> Tensor:
        m = torch.cat([task.train_mask, torch.zeros(task.num_classes, dtype=torch.bool)])
        return forward_forward_loss(outputs[0][m], [h[m] for h in outputs[1:]], self.config.theta)

    @torch.no_grad()
    def class_scores(self, task: NodeTask, upto: int | None = None) -> Tensor:
        """``[N, C]`` goodness summed over layers with each node linked to class node c."""
        self.eval()
        nodes = torch.arange(task.num_nodes)
        scores = torch.zeros(task.num_nodes, task.num_classes)
        for c in range(task.num_classes):
            classes = torch.where(task.train_mask, task.y, torch.full_like(task.y, c))
            ei = self._vn.link(nodes, classes)
            h = self._vn.x
            for layer in self.layers[:upto]:
                h = layer(h, ei)
                scores[:, c] += goodness(h[:task.num_nodes])
        return scores

    @torch.no_grad()
    def score(self, task: NodeTask, part: str = "test", upto: int | None = None) -> float:
        m = _mask(task, part)
        return accuracy(self.class_scores(task, upto)[m].argmax(1), task.y[m])


def _holdout_split(task: NodeTask, vn: _VirtualNodes, holdout: float) -> tuple[Tensor, Tensor]:
    """One epoch's training edges and loss mask under ``label_holdout``.

    A random ``holdout`` fraction of the training nodes (at least one, and at
    least one left linked) is not linked to its class node; the loss mask
    holds those nodes. With ``holdout == 0`` every training node is linked and
    in the mask.

    Returns:
        ``(edge_index [2, E'], loss_mask [N])``.
    """
    train = torch.nonzero(task.train_mask).view(-1)
    if holdout <= 0 or len(train) < 2:
        return vn.link(train, task.y[train]), task.train_mask
    k = min(max(1, round(holdout * len(train))), len(train) - 1)
    perm = train[torch.randperm(len(train))]
    held, linked = perm[:k], perm[k:]
    mask = torch.zeros(task.num_nodes, dtype=torch.bool)
    mask[held] = True
    return vn.link(linked, task.y[linked]), mask


def _class_logits(h: Tensor, n: int, temperature: float) -> Tensor:
    """``[N, C]`` dot products of real nodes with class nodes, over the temperature."""
    return h[:n] @ h[n:].t() / temperature


class SingleForward(LayerwiseVariant):
    """Single forward: per-layer cross-entropy against virtual class nodes, no negatives."""

    name = "sf"

    def streams(self, task: NodeTask) -> list[Stream]:
        self._vn = _VirtualNodes(task, _virtual_features(
                task, self.config.class_features_for(self.conv_name)),
                self.config.class_links_for(self.conv_name))
        train = torch.nonzero(task.train_mask).view(-1)
        self._edges = self._vn.link(train, task.y[train])
        return [(self._vn.x, self._edges)]

    def epoch_streams(self, streams: list[Stream], task: NodeTask) -> list[Stream]:
        holdout = self.config.holdout_for(self.conv_name)
        edges, self._loss_mask = _holdout_split(task, self._vn, holdout)
        return [(x, edges) for x, _ in streams]

    def layer_loss(self, i: int, outputs: list[Tensor], task: NodeTask) -> Tensor:
        logits = _class_logits(outputs[0], task.num_nodes, self.config.temperature)
        m = self._loss_mask
        return F.cross_entropy(logits[m], task.y[m])

    @torch.no_grad()
    def class_scores(self, task: NodeTask, upto: int | None = None) -> Tensor:
        """``[N, C]`` class probabilities summed over layers."""
        self.eval()
        h, probs = self._vn.x, torch.zeros(task.num_nodes, task.num_classes)
        for layer in self.layers[:upto]:
            h = layer(h, self._edges)
            probs += torch.softmax(_class_logits(h, task.num_nodes, self.config.temperature), 1)
        return probs

    @torch.no_grad()
    def score(self, task: NodeTask, part: str = "test", upto: int | None = None) -> float:
        m = _mask(task, part)
        return accuracy(self.class_scores(task, upto)[m].argmax(1), task.y[m])


class SingleForwardTopDown(TopDownVariant):
    """Node classification where layer j's loss uses mean(own output, detached states above).

    The layers run on the graph with one virtual node per class linked to its
    training nodes (as in ``sf``).
    """

    def graph(self, task: NodeTask) -> tuple[Tensor, Tensor]:
        if getattr(self, "_vn", None) is None:
            self._vn = _VirtualNodes(task, _virtual_features(
                task, self.config.class_features_for(self.conv_name)),
                self.config.class_links_for(self.conv_name))
            train = torch.nonzero(task.train_mask).view(-1)
            self._edges = self._vn.link(train, task.y[train])
        return self._vn.x, self._edges

    def epoch_context(self, task: NodeTask) -> tuple[Tensor, Tensor]:
        """This epoch's training edges and loss mask (see ``label_holdout``)."""
        self.graph(task)
        return _holdout_split(task, self._vn, self.config.holdout_for(self.conv_name))

    def epoch_edges(self, task: NodeTask, context) -> Tensor:
        return context[0]

    def layer_loss(self, task: NodeTask, embedding: Tensor, context) -> Tensor:
        logits = _class_logits(embedding, task.num_nodes, self.config.temperature)
        m = context[1]
        return F.cross_entropy(logits[m], task.y[m])

    @torch.no_grad()
    def class_scores(self, task: NodeTask, upto: int | None = None) -> Tensor:
        probs = torch.zeros(task.num_nodes, task.num_classes)
        for emb in self.embeddings(task)[:upto]:
            probs += torch.softmax(_class_logits(emb, task.num_nodes, self.config.temperature), 1)
        return probs

    @torch.no_grad()
    def score(self, task: NodeTask, part: str = "test", upto: int | None = None) -> float:
        m = _mask(task, part)
        return accuracy(self.class_scores(task, upto)[m].argmax(1), task.y[m])
