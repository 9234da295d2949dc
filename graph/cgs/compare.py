"""CGS beside ordinary GNNs and beside SciPy: same cross-validation, larger graphs, solve cost.

- :func:`classification_cv`: CGS, a GIN and a GCN of about the same parameter
  count (torch-geometric's ``GINConv`` / ``GCNConv``) trained and scored on the
  same repeated stratified folds of a graph-classification set, each model's
  learning rate (and CGS's setting: contraction, encoder) chosen on an inner validation
  split of the training folds.
- :func:`porous_size_generalisation`: the bundled porous-network CGS (trained on
  50-150 pores) on networks of the training size and of ``factor`` times it,
  against SciPy's exact sparse solve: error, fixed-point iterations, solve time
  and peak RSS growth of each solve.
- :func:`gvi_size_generalisation`: a CGS trained on small graph MDPs, tested at
  ``factor`` times the training sizes.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool, global_mean_pool

from graph.forwardgnn.memory import track_memory

from .baselines import GCN, GCNConfig
from .checks import check_graph
from .layers import GINBlock, mlp
from .crossval import CGS_SETTINGS, LEARNING_RATES, model_grid, repeated_cv
from .model import CGS, count_parameters
from .tasks.classification import load_classification_set
from .tasks.synthetic_classification import SYNTHETIC_SETS
from .tasks.porous import make_porous_dataset, solve_pressure
from .training import TrainConfig, predict, train

CV_MODELS = ("cgs", "gin", "gin_bn", "gcn")  # the models classification_cv compares


class GIN(nn.Module):
    """Graph Isomorphism Network (Xu et al., ICLR 2019) for graph classification.

    ``h <- h + MLP((1 + eps) h + sum_j h_j)`` per layer (``GINConv``, learnable eps),
    then mean and max pooling and an MLP decoder. Same call signature as
    :class:`~graph.cgs.model.CGS` (returns ``(logits [B, C], None)``).

    Args:
        node_dim: input node features.
        out_dim: classes.
        hidden: width.
        layers: GIN layers.
        batch_norm: as in the paper's GIN, a batch norm inside every layer's MLP
            (after its first linear layer) and after every layer.
    """

    def __init__(self, node_dim: int, out_dim: int, hidden: int, layers: int = 4, batch_norm: bool = False):
        super().__init__()
        self.hidden = hidden
        self.embed = mlp([node_dim, hidden, hidden])
        self.blocks = nn.ModuleList(GINBlock(hidden, batch_norm) for _ in range(layers))
        self.decoder = mlp([2 * hidden, hidden, out_dim])

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                batch: Tensor | None = None) -> tuple[Tensor, None]:
        check_graph(x, edge_index, edge_attr, batch)
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, edge_index)
        if batch is None:
            batch = x.new_zeros(x.shape[0], dtype=torch.long)
        return self.decoder(torch.cat([global_mean_pool(h, batch),
                                       global_max_pool(h, batch)], -1)), None


def _matched(build, target: int) -> nn.Module:
    """The model ``build(hidden)`` whose parameter count is closest to ``target``."""
    best = None
    for hidden in range(4, 257, 2):
        n = count_parameters(build(hidden))
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (hidden, n)
        if n > target:
            break
    return build(best[0])


def cv_setting(dataset: str) -> TrainConfig:
    """Epochs and batch of the cross-validation of ``dataset`` (shared by every model):
    30 epochs of 4 graphs on the 32 connectomes, 40 epochs of 16 on the synthetic sets."""
    from .experiments import ClassificationExperiment

    base = ClassificationExperiment().train
    if dataset in SYNTHETIC_SETS:
        return replace(base, epochs=40, batch_size=16, progress=False)
    return replace(base, progress=False)


def classification_cv(seed: int = 0, folds: int = 4, epochs: int | None = None,
                      top_k: int | None = 16, dataset: str = "mice",
                      models: tuple[str, ...] = CV_MODELS, graphs=None,
                      splits: int = 1, batch_size: int | None = None,
                      lrs: tuple[float, ...] = LEARNING_RATES,
                      cgs_settings: tuple = CGS_SETTINGS, val_fraction: float = 0.25,
                      cgs_options: dict | None = None,
                      epoch_selection: bool = False) -> list[dict]:
    """Repeated k-fold accuracy of CGS and same-size GIN (with and without batch norm) / GCN on the same folds.

    Every model's candidates (:func:`~graph.cgs.crossval.model_grid`: each
    learning rate with each CGS setting, or with as many restarts
    for GIN / GCN) are trained on the same inner part of the training folds and
    the best on the inner validation part is scored on the test fold
    (:func:`~graph.cgs.crossval.repeated_cv`).

    Args:
        seed: seeds folds, inner splits and models (split ``s`` uses ``seed + s``).
        folds: cross-validation folds (stratified, shared by every model).
        epochs: training epochs per candidate (default: :func:`cv_setting`).
        top_k: incoming edges kept per node of a real set.
        dataset: a name of :func:`~graph.cgs.tasks.classification.classification_sets`.
        models: which of ``cgs``, ``gin``, ``gin_bn`` (GIN with the paper's batch
            norms), ``gcn`` to run.
        graphs: ``(list[Data], num_classes)`` to use instead of loading ``dataset``.
        splits: fold splits (repetitions of the k-fold).
        batch_size: graphs per step (default: :func:`cv_setting`).
        lrs: learning rates searched for every model.
        cgs_settings: CGS settings searched, each a tuple of ``(CGSConfig field,
            value)`` pairs (default: the contraction of the separate draws with either
            encoder, :data:`~graph.cgs.crossval.CGS_SETTINGS`).
        val_fraction: share of each class of the training folds used for selection.
        cgs_options: :class:`~graph.cgs.model.CGSConfig` fields replacing those of
            ``ClassificationExperiment().model`` (e.g. ``{"encoder_aggr": "mean"}``);
            GIN and GCN are sized to the resulting CGS.
        epoch_selection: every model's candidates keep their best epoch on the
            inner validation part (:func:`~graph.cgs.crossval.select_model`).

    Returns:
        One record per model (see :func:`~graph.cgs.crossval.repeated_cv`): ``value``
        is the mean accuracy over all folds, ``std`` its standard deviation.
    """
    from .experiments import ClassificationExperiment

    graphs, num_classes = graphs or load_classification_set(dataset, top_k)
    for name in models:
        if name not in CV_MODELS:
            raise ValueError(f"unknown model {name!r}; choose from {sorted(CV_MODELS)}")
    tcfg = cv_setting(dataset)
    tcfg = replace(tcfg, **({} if epochs is None else {"epochs": epochs}),
                   **({} if batch_size is None else {"batch_size": batch_size}))
    cgs_cfg = replace(ClassificationExperiment().model, node_dim=graphs[0].num_node_features,
                      edge_dim=graphs[0].edge_attr.shape[1], out_dim=num_classes,
                      **(cgs_options or {}))
    # the baselines are sized to CGS with its edge-conditioned encoder; every CGS setting is within a
    # few per cent of it (tests/graph/test_cgs_crossval.py)
    target = count_parameters(CGS(cgs_cfg))
    node_dim = graphs[0].num_node_features
    gin = _matched(lambda h: GIN(node_dim, num_classes, h), target).hidden
    gin_bn = _matched(lambda h: GIN(node_dim, num_classes, h, batch_norm=True), target).hidden
    gcn = _matched(lambda h: GCN(GCNConfig(node_dim, num_classes, h, 4, True)), target)
    gcn_hidden = gcn.config.hidden
    builders = {
        "cgs": lambda c: CGS(replace(cgs_cfg, **dict(c.model))),
        "gin": lambda c: GIN(node_dim, num_classes, gin),
        "gin_bn": lambda c: GIN(node_dim, num_classes, gin_bn, batch_norm=True),
        "gcn": lambda c: GCN(GCNConfig(node_dim, num_classes, gcn_hidden, 4, True)),
    }
    return repeated_cv(graphs, {m: builders[m] for m in models},
                       {m: model_grid(m, lrs, cgs_settings) for m in models}, tcfg,
                       splits=splits, folds=folds, seed=seed, val_fraction=val_fraction,
                       dataset=dataset, epoch_selection=epoch_selection)


def _porous_solve_exact(d) -> np.ndarray:
    e = d.edge_index.numpy()
    half = e.shape[1] // 2  # edges are listed (i -> j) then (j -> i)
    return solve_pressure(d.num_nodes, e[:, :half].T, d.conductance.numpy()[:half],
                          d.inlet.numpy(), d.outlet.numpy())


def porous_size_generalisation(factor: int = 10, graphs: int = 3, seed: int = 0,
                               model: CGS | None = None, train_sizes=None) -> list[dict]:
    """The porous CGS at the training size and at ``factor`` times it, beside SciPy.

    Args:
        factor: size multiple of the larger test networks.
        graphs: networks per size.
        seed: seed of the test networks.
        model: a trained porous CGS (default: the bundled checkpoint).
        train_sizes: its training size range (default: from the checkpoint).

    Returns:
        One record per size and solver with ``relative_error`` (CGS), ``seconds`` (median
        per network), ``peak_rss_mb`` (median growth; noisy on small networks) and ``iterations``.
    """
    if model is None:
        from .demo import load_porous_model

        model, info = load_porous_model()
        train_sizes = tuple(info["train_sizes"])
    lo, hi = train_sizes
    records = []
    for scale in (1, factor):
        sizes = (lo * scale, hi * scale)
        test = make_porous_dataset(graphs, sizes, seed=seed + 20_000 + scale)
        cgs_s, cgs_m, sp_s, sp_m, rel, its = [], [], [], [], [], []
        for d in test:
            with track_memory() as mem:
                t0 = time.perf_counter()
                pred, it = predict(model, d)
                cgs_s.append(time.perf_counter() - t0)
            cgs_m.append(mem.rss_mb or 0.0)
            with track_memory() as mem:
                t0 = time.perf_counter()
                exact = _porous_solve_exact(d)
                sp_s.append(time.perf_counter() - t0)
            sp_m.append(mem.rss_mb or 0.0)
            err = pred.view(-1).double().numpy() - exact
            rel.append(float(np.linalg.norm(err) / max(np.linalg.norm(exact), 1e-12)))
            its.append(it)
        n = int(np.mean([d.num_nodes for d in test]))
        common = {"task": "porous", "scale": scale, "sizes": list(sizes), "mean_nodes": n}
        records.append({**common, "model": "cgs", "relative_error": float(np.mean(rel)),
                        "iterations": float(np.mean(its)), "seconds": float(np.median(cgs_s)),
                        "peak_rss_mb": float(np.median(cgs_m))})
        records.append({**common, "model": "scipy-spsolve", "relative_error": 0.0,
                        "iterations": None, "seconds": float(np.median(sp_s)),
                        "peak_rss_mb": float(np.median(sp_m))})
    return records


def gvi_size_generalisation(factor: int = 10, seed: int = 0, quick: bool = True,
                            epochs: int | None = None, test_graphs: int = 6) -> list[dict]:
    """CGS trained once on graph MDPs of 20-50 states, tested on that size and ``factor`` times it.

    Returns:
        Per scale: ``value_mse`` and ``policy_accuracy`` of CGS, the mean predictor's
        ``value_mse``, and the mean fixed-point iterations.
    """
    from .experiments import gvi_setting, standardised_targets
    from .tasks.value_iteration import make_mdp_dataset, policy_accuracy

    s = gvi_setting(quick)
    tcfg = replace(s.train, progress=False, **({} if epochs is None else {"epochs": epochs}))
    train_set = make_mdp_dataset(s.train_graphs, s.train_sizes, seed=seed)
    fit_set, mu, sigma = standardised_targets(train_set)
    torch.manual_seed(seed)
    model = CGS(s.model)
    seconds = train(model, fit_set, tcfg, seed=seed).seconds
    mean_value = float(torch.cat([d.value for d in train_set]).mean())
    out = []
    lo, hi = s.train_sizes
    for scale in (1, factor):
        test = make_mdp_dataset(test_graphs, (lo * scale, hi * scale), seed=seed + 30_000 + scale)
        mse, acc, its, base, secs = [], [], [], [], []
        for d in test:
            t0 = time.perf_counter()
            pred, it = predict(model, d)
            secs.append(time.perf_counter() - t0)
            value = (pred.view(-1).double() * sigma + mu) / (1.0 - d.discount)
            mse.append(float(((value - d.value) ** 2).mean()))
            acc.append(policy_accuracy(value, d))
            base.append(float(((d.value - mean_value) ** 2).mean()))
            its.append(it)
        out.append({"task": "gvi", "model": "cgs", "scale": scale,
                    "test_sizes": [lo * scale, hi * scale], "value_mse": float(np.mean(mse)),
                    "mean_predictor_value_mse": float(np.mean(base)),
                    "policy_accuracy": float(np.mean(acc)), "iterations": float(np.mean(its)),
                    "seconds": float(np.median(secs)), "train_seconds": seconds,
                    "epochs": tcfg.epochs})
    return out
