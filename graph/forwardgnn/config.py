"""Hyper-parameters of ForwardGNN training."""

from __future__ import annotations

from dataclasses import dataclass, replace

CONVS = ("gcn", "sage", "gat")
TASKS = ("node", "link")
# label_holdout when the config leaves it None: SAGE's mean and GAT's attention
# can single out the class-node input of a training node (a label that test
# nodes never have), GCN's degree-normalised sum cannot; measured in docs/graphs.md.
LABEL_HOLDOUT_BY_CONV = {"gcn": 0.0, "sage": 0.5, "gat": 0.5}
CLASS_FEATURES = ("random", "mean")
SAGE_AGGRS = ("mean", "max", "sum")
CLASS_LINKS = ("both", "to_class")
# class_links when the config leaves it None (measured in docs/graphs.md).
# GAT: class nodes only gather, so no real node's attention can pick out a label.
CLASS_LINKS_BY_CONV = {"gcn": "both", "sage": "both", "gat": "to_class"}
# gat_residual_gate default: a skip gated from 0.12 or the unscaled skip, chosen per run
# on validation (the gated one on a tie); measured over the five GAT datasets in docs/graphs.md.
GAT_RESIDUAL_GATE = (0.12, None)
# class_features when the config leaves it None (measured in docs/graphs.md).
CLASS_FEATURES_BY_CONV = {"gcn": "mean", "sage": "random", "gat": "random"}


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
        link_threshold: subtracted from the endpoint dot product to give a link logit
            (every variant; 0.5 measured over the link pairs in docs/graphs.md, 1.0 before).
        gat_heads: attention heads of ``GATConv`` (averaged, so widths are kept).
        sage_aggr: neighbour aggregation of ``SAGEConv`` (``mean``, ``max`` or
            ``sum``), for every variant including ``bp``; ``max`` measured best
            over all datasets (docs/graphs.md).
        gat_concat: concatenate the GAT heads (each ``width // gat_heads`` wide)
            instead of averaging them.
        gat_dropout: dropout of GAT's attention coefficients during training.
        gat_residual: a linear skip of a GAT layer's input (``GATConv(residual=True)``),
            one bool for every layer or a tuple with one per layer; on by default
            (all variants, ``bp`` included; measured in docs/graphs.md).
        gat_residual_gate: with ``gat_residual``, the skip is scaled by a learnable
            gate ``sigmoid(a)`` that starts at this value in (0, 1), so a layer
            starts close to attention alone and opens the skip as its loss needs
            it (every variant, ``bp`` included); None adds the skip unscaled.
            A tuple of such values (None allowed) is a choice made per run on the
            validation split: :func:`~graph.forwardgnn.train.train_forwardgnn`
            trains one model per value (same seed) and keeps the best on
            validation, the earliest on a tie; a model built directly from the
            config takes the first. Default ``GAT_RESIDUAL_GATE``: ``(0.12, None)``.
        eval_every: validation every this many epochs; the best state is kept.
        label_holdout: node classification with class nodes (``sf``, ``sf-topdown``):
            each epoch this fraction of the training nodes is left unlinked from
            its class node and the loss is taken on them alone, so training sees
            nodes as they are at prediction time (no label in their input).
            0 links every training node and takes the loss on all of them;
            None (default) takes ``LABEL_HOLDOUT_BY_CONV``: 0.5 for ``sage`` and
            ``gat``, 0 for ``gcn``.
        class_features: input features of the class nodes of ``sf`` and
            ``sf-topdown``: ``random`` (one Gaussian draw per seed) or ``mean``
            (the mean features of the class's training nodes); None (default)
            takes ``CLASS_FEATURES_BY_CONV``: ``mean`` for ``gcn``, else ``random``.
        class_links: edges between training nodes and their class node in ``sf``
            and ``sf-topdown``: ``both`` directions, or ``to_class`` only (a class
            node gathers from its training nodes; no real node receives a message
            from a class node, so none sees a label in its input); None (default)
            takes ``CLASS_LINKS_BY_CONV``.
    """

    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 100
    lr: float = 0.01
    weight_decay: float = 5e-4
    theta: float = 0.5
    num_negatives: int = 1
    temperature: float = 0.2
    link_threshold: float = 0.5
    gat_heads: int = 2
    sage_aggr: str = "max"
    gat_concat: bool = False
    gat_dropout: float = 0.0
    gat_residual: bool | tuple[bool, ...] = True
    gat_residual_gate: float | None | tuple[float | None, ...] = GAT_RESIDUAL_GATE
    eval_every: int = 5
    label_holdout: float | None = None
    class_features: str | None = None
    class_links: str | None = None

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
        if self.label_holdout is not None and not 0.0 <= self.label_holdout < 1.0:
            raise ValueError(f"label_holdout must be in [0, 1), got {self.label_holdout!r}")
        if self.class_features is not None and self.class_features not in CLASS_FEATURES:
            raise ValueError(f"class_features must be one of {list(CLASS_FEATURES)} or None, "
                             f"got {self.class_features!r}")
        if self.sage_aggr not in SAGE_AGGRS:
            raise ValueError(f"sage_aggr must be one of {list(SAGE_AGGRS)}, got {self.sage_aggr!r}")
        if not isinstance(self.gat_residual, bool):
            self.gat_residual = tuple(self.gat_residual)
            if len(self.gat_residual) != len(self.hidden) or not all(
                    isinstance(r, bool) for r in self.gat_residual):
                raise ValueError(f"gat_residual must be a bool or one bool per layer "
                                 f"({len(self.hidden)}), got {self.gat_residual!r}")
        gates = self.gat_residual_gate
        if isinstance(gates, (list, tuple)):
            self.gat_residual_gate = gates = tuple(gates)
            if not gates:
                raise ValueError("gat_residual_gate needs at least one candidate, got ()")
        for g in gates if isinstance(gates, tuple) else (gates,):
            if g is not None and not (isinstance(g, (int, float)) and not isinstance(g, bool)
                                      and 0.0 < g < 1.0):
                raise ValueError(f"gat_residual_gate must be None, a value in (0, 1) or a "
                                 f"tuple of them, got {self.gat_residual_gate!r}")
        if self.class_links is not None and self.class_links not in CLASS_LINKS:
            raise ValueError(f"class_links must be one of {list(CLASS_LINKS)} or None, "
                             f"got {self.class_links!r}")
        if not 0.0 <= self.gat_dropout < 1.0:
            raise ValueError(f"gat_dropout must be in [0, 1), got {self.gat_dropout!r}")
        if self.gat_concat and any(h % self.gat_heads for h in self.hidden):
            raise ValueError(f"gat_concat needs hidden widths divisible by gat_heads="
                             f"{self.gat_heads}, got {self.hidden}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def gate_candidates(self, conv: str) -> list[ForwardGNNConfig]:
        """One config per ``gat_residual_gate`` candidate for ``conv`` (just this one if none).

        Only GAT layers have the gate, so any other conv trains once.
        """
        if conv != "gat" or not isinstance(self.gat_residual_gate, tuple):
            return [self]
        return [replace(self, gat_residual_gate=g) for g in self.gat_residual_gate]

    def first_gate(self) -> float | None:
        """The gate a model built directly from this config uses: the first candidate."""
        g = self.gat_residual_gate
        return g[0] if isinstance(g, tuple) else g

    def holdout_for(self, conv: str) -> float:
        """The ``label_holdout`` used with ``conv`` (the per-conv default when None)."""
        if self.label_holdout is not None:
            return self.label_holdout
        if conv not in LABEL_HOLDOUT_BY_CONV:
            raise ValueError(f"unknown conv {conv!r}; choose one of {list(CONVS)}")
        return LABEL_HOLDOUT_BY_CONV[conv]

    def class_features_for(self, conv: str) -> str:
        """The ``class_features`` used with ``conv`` (the per-conv default when None)."""
        if self.class_features is not None:
            return self.class_features
        if conv not in CLASS_FEATURES_BY_CONV:
            raise ValueError(f"unknown conv {conv!r}; choose one of {list(CONVS)}")
        return CLASS_FEATURES_BY_CONV[conv]

    def class_links_for(self, conv: str) -> str:
        """The ``class_links`` used with ``conv`` (the per-conv default when None)."""
        if self.class_links is not None:
            return self.class_links
        if conv not in CLASS_LINKS_BY_CONV:
            raise ValueError(f"unknown conv {conv!r}; choose one of {list(CONVS)}")
        return CLASS_LINKS_BY_CONV[conv]
