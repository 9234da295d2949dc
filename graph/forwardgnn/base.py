"""Shared training loops of the variants.

A variant is an ``nn.Module`` with ``fit(task)`` and ``score(task, part)``.
Layer-wise variants (``ff-label``, ``ff-vn``, ``sf``) subclass
:class:`LayerwiseVariant`: layer ``i`` is trained to the end on the detached
outputs of layers ``< i``, with its own loss and optimiser, and the state with
the best validation score of the first ``i + 1`` layers is kept.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import Tensor, nn
from tqdm import tqdm

from graph.forwardgnn.config import ForwardGNNConfig
from graph.forwardgnn.layers import make_layers

Stream = tuple[Tensor, Tensor]  # (features [N', F], edge_index [2, E'])


class Variant(nn.Module):
    """Base of every variant.

    Args:
        in_channels: node feature width F.
        num_classes: C for node classification, 0 for link prediction.
        conv: ``gcn``, ``sage`` or ``gat``.
        config: hyper-parameters.
    """

    name: ClassVar[str] = ""
    forward_learning: ClassVar[bool] = True

    def __init__(self, in_channels: int, num_classes: int, conv: str, config: ForwardGNNConfig):
        super().__init__()
        self.config, self.num_classes, self.conv_name = config, num_classes, conv
        self.layers = make_layers(conv, self.layer_input_width(in_channels, num_classes),
                                  config.hidden, config.lr, config.weight_decay, config.gat_heads,
                                  config.sage_aggr, gat_concat=config.gat_concat,
                                  gat_dropout=config.gat_dropout,
                                  gat_residual=config.gat_residual,
                                  gat_residual_gate=config.first_gate())

    def layer_input_width(self, in_channels: int, num_classes: int) -> int:
        return in_channels

    def fit(self, task, progress: bool = False) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def score(self, task, part: str = "test", upto: int | None = None) -> float:  # pragma: no cover
        raise NotImplementedError


class LayerwiseVariant(Variant):
    """Greedy layer-by-layer training with a local loss per layer."""

    def streams(self, task) -> list[Stream]:  # pragma: no cover - abstract
        """Inputs of the first layer: one or more (features, edges) streams."""
        raise NotImplementedError

    def layer_loss(self, i: int, outputs: list[Tensor], task) -> Tensor:  # pragma: no cover
        """Loss of layer ``i`` from its outputs on each stream."""
        raise NotImplementedError

    def epoch_streams(self, streams: list[Stream], task) -> list[Stream]:
        """The streams one training epoch runs on; ``streams`` unchanged by default."""
        return streams

    def fit(self, task, progress: bool = False) -> list[float]:
        streams = self.streams(task)
        losses: list[float] = []
        for i, layer in enumerate(self.layers):
            best, best_state = -float("inf"), copy.deepcopy(layer.state_dict())
            bar = tqdm(range(self.config.epochs), desc=f"{self.name} layer {i}",
                       disable=not progress, leave=False)
            for epoch in bar:
                layer.train()
                outputs = [layer(x.detach(), ei) for x, ei in self.epoch_streams(streams, task)]
                losses.append(layer.step(self.layer_loss(i, outputs, task)))
                if (epoch + 1) % self.config.eval_every == 0 or epoch + 1 == self.config.epochs:
                    val = self.score(task, "val", upto=i + 1)
                    if val > best:
                        best, best_state = val, copy.deepcopy(layer.state_dict())
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", val=f"{val:.3f}")
            layer.load_state_dict(best_state)
            with torch.no_grad():
                layer.eval()
                streams = [(layer(x, ei), ei) for x, ei in streams]
        return losses


class JointVariant(Variant):
    """All layers updated every epoch (``sf-topdown`` and ``bp``); best validation state kept."""

    def epoch_step(self, task) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, task, progress: bool = False) -> list[float]:
        best, best_state = -float("inf"), copy.deepcopy(self.state_dict())
        losses: list[float] = []
        bar = tqdm(range(self.config.epochs), desc=self.name, disable=not progress, leave=False)
        for epoch in bar:
            self.train()
            losses.append(self.epoch_step(task))
            if (epoch + 1) % self.config.eval_every == 0 or epoch + 1 == self.config.epochs:
                val = self.score(task, "val")
                if val > best:
                    best, best_state = val, copy.deepcopy(self.state_dict())
                bar.set_postfix(loss=f"{losses[-1]:.4f}", val=f"{val:.3f}")
        self.load_state_dict(best_state)
        return losses


class TopDownVariant(JointVariant):
    """``sf`` with a top-down signal: layer j's loss uses mean(own output, detached states above).

    The states ``[x, h_1, ..., h_L]`` are refreshed once per epoch; every layer
    keeps its own optimiser and receives no gradient from any other layer. A
    task subclass says which graph the layers run on (:meth:`graph`) and the
    loss of one layer's embedding (:meth:`layer_loss`).
    """

    name = "sf-topdown"

    def __init__(self, in_channels, num_classes, conv, config):
        if len(set(config.hidden)) != 1:
            raise ValueError(f"sf-topdown averages layer states, so hidden widths must be equal, "
                             f"got {config.hidden}")
        super().__init__(in_channels, num_classes, conv, config)
        self._states: list[Tensor] | None = None

    def graph(self, task) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """The input features ``[N, F]`` and ``edge_index [2, E]`` the layers run on."""
        raise NotImplementedError

    def epoch_context(self, task):
        """What every layer's loss of one epoch shares (e.g. sampled non-edges); None by default."""
        return None

    def epoch_edges(self, task, context) -> Tensor:
        """The edges the layers train on in one epoch; :meth:`graph`'s by default."""
        return self.graph(task)[1]

    def layer_loss(self, task, embedding: Tensor, context) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def bottom_up(self, task) -> list[Tensor]:
        """States ``[x, h_1, ..., h_L]`` of one plain forward pass."""
        x, edge_index = self.graph(task)
        states = [x]
        for layer in self.layers:
            states.append(layer(states[-1], edge_index))
        return states

    @staticmethod
    def _embedding(own: Tensor, states: list[Tensor], j: int) -> Tensor:
        return torch.stack([own] + [s.detach() for s in states[j + 2:]]).mean(0)

    @torch.no_grad()
    def embeddings(self, task) -> list[Tensor]:
        """Each layer's top-down embedding after a fresh bottom-up pass, for scoring."""
        self.eval()
        states = self.bottom_up(task)
        return [self._embedding(states[j + 1], states, j) for j in range(len(self.layers))]

    def epoch_step(self, task) -> float:
        if self._states is None:
            self._states = self.bottom_up(task)
        context = self.epoch_context(task)
        edge_index = self.epoch_edges(task, context)
        states, new, total = self._states, [self._states[0]], 0.0
        for j, layer in enumerate(self.layers):
            own = layer(states[j].detach(), edge_index)
            total += layer.step(self.layer_loss(task, self._embedding(own, states, j), context))
            new.append(own.detach())
        self._states = new
        return total

    def fit(self, task, progress: bool = False) -> list[float]:
        self._states = None
        return super().fit(task, progress)
