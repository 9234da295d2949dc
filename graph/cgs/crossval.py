"""Repeated stratified cross-validation with hyper-parameters chosen inside the training folds.

For every fold split and every outer fold, each model's candidates (learning
rates, CGS settings, restarts) are trained on an inner part of
the training folds and scored on the rest of them (a stratified inner
validation split, the same for every model); the candidate with the best
validation accuracy (then the lower validation loss) is the one scored on the
test fold. With ``epoch_selection`` every candidate is also scored on the
inner validation part after every epoch and keeps the weights of its best
epoch (same key), the same rule for every model. The test fold is never seen before that last step: the selection is
a function of the training folds only. Every model gets the same folds, inner
split, epochs, batch size and number of trained candidates.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from .model import count_parameters
from .tasks.classification import stratified_folds
from .training import TrainConfig, predict, train

# CGS settings searched (CGSConfig overrides). The contraction (0.999, 0.97) was the better of
# (0.99, 0.9) and (0.999, 0.97) on all three synthetic sets' separate draws (seeds 7-11,
# bm_cgs_select.py); it is tried with the edge-conditioned encoder and with four GIN layers
# (GIN's sum and batch norms; edge features then enter through the attention layer only). The
# GIN-encoder setting pools [fixed point, encoder embedding] and decodes with an MLP, as the GIN
# does (better than the node-wise readout on the SBM draws, seeds 7-10), 35 wide so that both
# settings have about the parameter count the baselines are sized to.
CONTRACTION = (("gamma_max", 0.999), ("init_contraction", 0.97))
GIN_ENCODER = (("encoder", "gin"), ("enc_layers", 4), ("hidden", 35), ("readout", "pool"), ("node_norm", None))
CGS_SETTINGS = (CONTRACTION, CONTRACTION + GIN_ENCODER)
LEARNING_RATES = (3e-3, 1e-2)


@dataclass(frozen=True)
class Candidate:
    """One configuration to train: a learning rate, model overrides and a restart index.

    Attributes:
        lr: Adam learning rate.
        model: ``(name, value)`` pairs handed to the model builder (e.g. CGS's
            ``gamma_max``, ``init_contraction`` and ``encoder``).
        restart: index of the weight initialisation (another seed).
    """

    lr: float
    model: tuple = ()
    restart: int = 0

    @property
    def label(self) -> str:
        parts = [f"lr={self.lr:g}"] + [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in self.model]
        return ",".join(parts + ([f"restart={self.restart}"] if self.restart else []))


def model_grid(name: str, lrs=LEARNING_RATES, cgs_settings=CGS_SETTINGS) -> list[Candidate]:
    """The candidates of ``name``: as many for every model.

    CGS: every learning rate with every setting of ``cgs_settings`` (tuples of
    ``(CGSConfig field, value)``); other models: every learning rate with
    ``len(cgs_settings)`` restarts.
    """
    if name == "cgs":
        return [Candidate(lr, tuple(setting)) for lr in lrs for setting in cgs_settings]
    return [Candidate(lr, (), r) for lr in lrs for r in range(len(cgs_settings))]


def inner_split(labels: list[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(fit, val)`` positions of a training set: ``val_fraction`` of every class
    (at least one graph, at most all but one) goes to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        if len(idx) < 2:
            raise ValueError(f"class {int(c)} has {len(idx)} training graph(s); an inner "
                             f"validation split needs at least 2 per class")
        take = min(len(idx) - 1, max(1, int(round(val_fraction * len(idx)))))
        val.extend(idx[:take].tolist())
    val = np.sort(np.array(val, dtype=np.int64))
    fit = np.setdiff1d(np.arange(len(labels)), val)
    return fit, val


def evaluate(model: nn.Module, graphs: list[Data]) -> dict:
    """Accuracy, mean cross-entropy and mean fixed-point iterations (None without) on ``graphs``."""
    hits, loss, its = 0, 0.0, []
    for g in graphs:
        logits, it = predict(model, g)
        y = int(g.y)
        hits += int(logits.argmax(-1).item() == y)
        loss += float(nn.functional.cross_entropy(logits.view(1, -1), torch.tensor([y])))
        if it is not None:
            its.append(it)
    return {"accuracy": hits / len(graphs), "loss": loss / len(graphs),
            "iterations": float(np.mean(its)) if its else None}


@dataclass
class Selection:
    """The candidate picked on the inner validation split, and its trained model."""

    model: nn.Module
    candidate: Candidate
    scores: list = field(default_factory=list)  # per candidate: validation accuracy and loss
    seconds: float = 0.0  # training time of all candidates
    epoch: int | None = None  # the chosen candidate's kept epoch (epoch selection only)


class BestEpoch:
    """``train``'s ``on_epoch`` hook that keeps the weights of the epoch scoring best on ``graphs``.

    The key is :func:`evaluate`'s ``(-accuracy, loss)``; ties keep the earlier
    epoch. :meth:`restore` loads the kept weights into the model.

    Args:
        graphs: the validation graphs.
    """

    def __init__(self, graphs: list[Data]):
        if not graphs:
            raise ValueError("graphs must not be empty")
        self.graphs = graphs
        self.key, self.epoch, self.state, self.scores = None, 0, None, None
        self.history: list = []  # per epoch: (accuracy, loss)

    def __call__(self, epoch: int, model: nn.Module) -> None:
        ev = evaluate(model, self.graphs)
        self.history.append((ev["accuracy"], ev["loss"]))
        key = (-ev["accuracy"], ev["loss"])
        if self.key is None or key < self.key:
            self.key, self.epoch, self.scores = key, epoch, ev
            self.state = copy.deepcopy(model.state_dict())

    def restore(self, model: nn.Module) -> dict:
        """Load the best epoch's weights into ``model``; returns its validation scores."""
        if self.state is None:
            raise RuntimeError("no epoch was scored: train with on_epoch=this hook first")
        model.load_state_dict(self.state)
        return self.scores


def select_model(build: Callable[[Candidate], nn.Module], candidates: list[Candidate],
                 train_graphs: list[Data], config: TrainConfig, seed: int,
                 val_fraction: float = 0.25, epoch_selection: bool = False) -> Selection:
    """Train every candidate on the inner part of ``train_graphs``; keep the best on the rest.

    Only ``train_graphs`` are seen. Each candidate starts from
    ``torch.manual_seed(seed + 1000 * restart)`` and sees the batches of the same seed.
    With ``epoch_selection`` a candidate keeps the weights of its best epoch on
    the validation part (:class:`BestEpoch`) and is compared by that epoch's
    scores; otherwise by its last epoch's.
    """
    if not candidates:
        raise ValueError("candidates must not be empty")
    fit, val = inner_split([int(g.y) for g in train_graphs], val_fraction, seed)
    fit_set = [train_graphs[i] for i in fit]
    val_set = [train_graphs[i] for i in val]
    best, scores, seconds = None, [], 0.0
    for cand in candidates:
        torch.manual_seed(seed + 1000 * cand.restart)
        model = build(cand)
        hook = BestEpoch(val_set) if epoch_selection else None
        seconds += train(model, fit_set, replace(config, lr=cand.lr, progress=False),
                         seed=seed + 1000 * cand.restart, on_epoch=hook).seconds
        ev = hook.restore(model) if hook else evaluate(model, val_set)
        scores.append({"candidate": cand.label, "accuracy": ev["accuracy"], "loss": ev["loss"],
                       **({"epoch": hook.epoch} if hook else {})})
        key = (-ev["accuracy"], ev["loss"])
        if best is None or key < best[0]:
            best = (key, model, cand, hook.epoch if hook else None)
    return Selection(best[1], best[2], scores, seconds, best[3])


def repeated_cv(graphs: list[Data], builders: dict[str, Callable[[Candidate], nn.Module]],
                grids: dict[str, list[Candidate]], config: TrainConfig, splits: int = 3,
                folds: int = 4, seed: int = 0, val_fraction: float = 0.25,
                dataset: str = "", epoch_selection: bool = False) -> list[dict]:
    """Repeated stratified k-fold accuracy of every model, candidates chosen in the training folds.

    Args:
        graphs: labelled graphs (``y`` a class index).
        builders: model name -> function building a fresh model for a candidate.
        grids: model name -> its candidates (give every model as many).
        config: training setting shared by every model (epochs, batch; ``lr`` comes
            from the candidate).
        splits: fold splits (``stratified_folds(labels, folds, seed + s)``).
        folds: outer folds per split.
        seed: base seed of the splits, inner splits and weights.
        val_fraction: share of each class of the training folds held out for selection.
        dataset: name carried in the records.
        epoch_selection: every candidate keeps its best epoch on the inner
            validation part (:func:`select_model`).

    Returns:
        One record per model: ``value`` (mean test accuracy over all ``splits * folds``
        folds), ``std``, ``fold_accuracies``, ``chosen`` (candidate label per fold),
        ``validation`` (all candidates' validation scores per fold), ``parameters``
        (of the first model built), ``train_seconds`` (all candidates), ``iterations``
        (mean CGS fixed-point iterations on the test graphs, None otherwise) and
        ``folds`` (the test indices, per split), ``epoch_selection`` and
        ``chosen_epochs`` (the kept epoch per fold; None without epoch selection).
    """
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    labels = [int(g.y) for g in graphs]
    split_folds = [stratified_folds(labels, folds, seed + s) for s in range(splits)]
    records = []
    for name, build in builders.items():
        accs, chosen, validation, its, seconds, epochs = [], [], [], [], 0.0, []
        params = count_parameters(build(grids[name][0]))
        start = time.perf_counter()
        for s, split in enumerate(split_folds):
            for k, test_idx in enumerate(split):
                test = set(int(i) for i in test_idx)
                train_graphs = [g for i, g in enumerate(graphs) if i not in test]
                sel = select_model(build, grids[name], train_graphs, config,
                                   seed=seed * 1_000_000 + s * 1000 + k,
                                   val_fraction=val_fraction,
                                   epoch_selection=epoch_selection)
                ev = evaluate(sel.model, [graphs[i] for i in test_idx])
                accs.append(ev["accuracy"])
                chosen.append(sel.candidate.label)
                epochs.append(sel.epoch)
                validation.append(sel.scores)
                seconds += sel.seconds
                if ev["iterations"] is not None:
                    its.append(ev["iterations"])
        records.append({
            "task": "classification", "model": name, "dataset": dataset, "metric": "accuracy",
            "value": float(np.mean(accs)), "std": float(np.std(accs)),
            "fold_accuracies": accs, "chosen": chosen, "validation": validation,
            "parameters": params, "train_seconds": seconds,
            "wall_seconds": time.perf_counter() - start,
            "iterations": float(np.mean(its)) if its else None,
            "splits": splits, "epochs": config.epochs, "batch_size": config.batch_size,
            "epoch_selection": epoch_selection, "chosen_epochs": epochs,
            "folds": [[sorted(int(i) for i in f) for f in split] for split in split_folds],
            "chance": 1.0 / (max(labels) + 1)})
    return records


def paired_comparison(a: dict, b: dict) -> dict:
    """Fold-by-fold comparison of two :func:`repeated_cv` records on the same folds.

    Args:
        a, b: records of two models on one dataset (``fold_accuracies`` and
            ``folds`` as :func:`repeated_cv` writes them).

    Returns:
        ``difference`` (mean of ``a - b`` over the folds), ``standard_error``
        (of that mean; a rough guide, since repeated-CV folds overlap),
        ``won``, ``tied`` and ``lost`` (folds where ``a`` is above, equal,
        below) and ``folds``.

    Raises:
        ValueError: the records are of different datasets or folds.
    """
    if a.get("dataset") != b.get("dataset"):
        raise ValueError(f"records of different datasets: {a.get('dataset')!r} and {b.get('dataset')!r}")
    if a["folds"] != b["folds"] or len(a["fold_accuracies"]) != len(b["fold_accuracies"]):
        raise ValueError(f"{a['dataset']}: the records were not scored on the same folds")
    diff = np.asarray(a["fold_accuracies"], float) - np.asarray(b["fold_accuracies"], float)
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return {"difference": float(diff.mean()), "standard_error": se,
            "won": int((diff > 1e-12).sum()), "tied": int((np.abs(diff) <= 1e-12).sum()),
            "lost": int((diff < -1e-12).sum()), "folds": len(diff)}
