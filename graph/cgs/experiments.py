"""Train and evaluate CGS on its tasks, and benchmark it against its baselines.

``run(task, seed, quick)`` trains a CGS on one task and returns metric records;
``benchmark(quick)`` compares, on the porous-network task, the implicit
backward with an unrolled one of the same depth (time and autograd memory) and
CGS with a same-size GCN trained by back-propagation (error against SciPy on
larger held-out networks). Both are used by ``splatops graph`` and
``benchmarks/bm_graphs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from .baselines import GCN, GCNConfig
from .crossval import CGS_SETTINGS
from .model import CGS, CGSConfig, count_parameters
from .profiling import median_seconds, saved_tensor_bytes
from .tasks.classification import load_classification_set, stratified_folds
from .tasks.porous import make_porous_dataset
from .tasks.value_iteration import make_mdp_dataset, policy_accuracy
from .training import TrainConfig, predict, train

TASKS = ("porous", "gvi", "classification")
# other names the ``splatops graph cgs --task`` option uses
TASK_ALIASES = {"mdp": "gvi", "classify": "classification"}


class torch_threads:
    """Set torch's intra-op thread count for a block, then restore it.

    The graphs here are small (sparse products of ~1e5 entries); on a shared
    2-core machine a second thread mostly adds synchronisation, which we
    measured to slow training down many times over.
    """

    def __init__(self, threads: int | None):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        self.threads, self.saved = threads, None

    def __enter__(self):
        if self.threads is not None:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            torch.set_num_threads(self.saved)


@dataclass
class GraphExperiment:
    """Sizes and hyper-parameters of a CGS experiment on generated graphs: train on
    small graphs, test on larger unseen ones. :func:`porous_setting` and
    :func:`gvi_setting` give the two experiments' values.

    Attributes:
        train_graphs: training graphs.
        train_sizes: node counts of training graphs (inclusive range).
        test_graphs: held-out graphs.
        test_sizes: node counts of held-out graphs.
        model: the CGS hyper-parameters.
        train: the training hyper-parameters.
    """

    train_graphs: int
    train_sizes: tuple[int, int]
    test_graphs: int
    test_sizes: tuple[int, int]
    model: CGSConfig
    train: TrainConfig


def porous_setting(quick: bool = False) -> GraphExperiment:
    """Pore networks: trained on 50-150 pores, tested on 300-800 (``quick``: a few minutes on 2 cores)."""
    return GraphExperiment(
        train_graphs=48 if quick else 192, train_sizes=(50, 150),
        test_graphs=6 if quick else 16, test_sizes=(300, 800),
        model=CGSConfig(node_dim=4, edge_dim=1, hidden=32, heads=16, gamma_max=0.999,
                        init_contraction=0.95, tol=1e-4, max_iter=500),
        train=TrainConfig(epochs=20, batch_size=8, lr=1e-2) if quick else TrainConfig(epochs=30, batch_size=8, lr=2e-3))


def gvi_setting(quick: bool = False) -> GraphExperiment:
    """Graph MDPs: trained on 20-50 states, tested on 50-100."""
    return GraphExperiment(
        train_graphs=48 if quick else 96, train_sizes=(20, 50),
        test_graphs=12 if quick else 32, test_sizes=(50, 100),
        model=CGSConfig(node_dim=1, edge_dim=1, hidden=32, heads=16, gamma_max=0.95,
                        init_contraction=0.9, tol=1e-4, max_iter=500),
        train=TrainConfig(epochs=40, batch_size=8, lr=1e-2 if quick else 5e-3))


@dataclass
class ClassificationExperiment:
    """The graph-classification experiment: stratified k-fold on a real set.

    Attributes:
        dataset: name for ``graph.datasets.load_graph_classification``.
        top_k: incoming edges kept per node (the heaviest), or None for all.
        folds: cross-validation folds.
        model: the base CGS hyper-parameters (``node_dim``/``out_dim`` set from the
            data): the edge-conditioned encoder. The cross-validation's settings
            (:data:`~graph.cgs.crossval.CGS_SETTINGS`) are overrides of it, and its
            baselines are sized to it.
        setting: the ``(CGSConfig field, value)`` overrides of ``model`` that the
            experiment trains: by default the cross-validation's GIN-encoder setting
            (GIN layers, the GIN's pooled readout, contraction (0.999, 0.97)), which
            its inner validation splits chose over the edge-conditioned one in 38-41
            of 48 folds (docs/cgs.md); ``()`` trains ``model`` itself.
        train: the training hyper-parameters (lr 3e-3, what those inner splits
            chose for the GIN-encoder setting on ``mice`` in 12 of its 20 folds).
    """

    dataset: str = "mice"
    top_k: int | None = 16
    folds: int = 4
    model: CGSConfig = None
    setting: tuple = CGS_SETTINGS[-1]
    train: TrainConfig = None

    def __post_init__(self):
        if self.model is None:
            # A contraction close to 1 from the start (gamma_max 0.99, gates and gamma at
            # 0.9 of their range) lets the fixed point gather the whole graph; the
            # encoder sums its messages (degree and structure reach A and b even with
            # constant node features) and the decoder runs an MLP on [H_i, embedding_i]
            # per node before pooling, after a batch norm over the nodes that brings the
            # small differences between graphs to unit scale from the first step
            # (chosen on separate draws, docs/cgs.md). The fixed point of these small
            # batches is found by one sparse LU, which its adjoint reuses: training
            # drives the contraction towards 1, where iteration takes hundreds of steps
            # (2-5x the training time, bm_cgs_solvers.py).
            self.model = CGSConfig(node_dim=1, edge_dim=1, hidden=32, heads=8, gamma_max=0.99,
                                   init_contraction=0.9, tol=1e-4, max_iter=1000, solver="direct",
                                   graph_level=True, readout_skip=True, encoder_aggr="sum",
                                   readout="node", node_norm="batch")
        if self.train is None:
            # a linear warm-up over the first 10 % of the steps shortens the plateau at
            # chance that the training loss shows at the start
            self.train = TrainConfig(epochs=30, batch_size=4, lr=3e-3, warmup=0.1,
                                     loss="cross_entropy")


def quick_classification() -> ClassificationExperiment:
    """The ``quick`` classification setting."""
    return ClassificationExperiment(
        folds=2, train=TrainConfig(epochs=20, batch_size=4, lr=1e-2, loss="cross_entropy"))


def _record(task: str, model: str, metric: str, value: float, iterations=None,
            train_seconds=None, **extra) -> dict:
    rec = {"task": task, "model": model, "metric": metric, "value": float(value),
           "iterations": None if iterations is None else float(iterations),
           "train_seconds": None if train_seconds is None else float(train_seconds)}
    rec.update(extra)
    return rec


def _check_run_args(task, seed, quick) -> None:
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    if task not in TASKS and task not in TASK_ALIASES:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)} "
                         f"(aliases: {TASK_ALIASES})")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not isinstance(quick, bool):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")


def evaluate_regression(model: nn.Module, graphs: list[Data]) -> dict:
    """Mean over graphs of node MSE and relative L2 error, and mean iterations."""
    mse, rel, its = [], [], []
    for d in graphs:
        pred, it = predict(model, d)
        err = pred.view(-1).double() - d.y.view(-1).double()
        mse.append(float((err**2).mean()))
        rel.append(float(err.norm() / d.y.double().norm().clamp_min(1e-12)))
        if it is not None:
            its.append(it)
    return {"mse": float(np.mean(mse)), "relative_error": float(np.mean(rel)),
            "iterations": float(np.mean(its)) if its else None}


def mean_predictor_mse(train_set: list[Data], test_set: list[Data]) -> float:
    """Test MSE of predicting the mean training target everywhere."""
    mean = float(torch.cat([d.y.view(-1) for d in train_set]).double().mean())
    return float(np.mean([float(((d.y.double() - mean) ** 2).mean()) for d in test_set]))


def run_porous(seed: int = 0, setting: GraphExperiment | None = None) -> list[dict]:
    """Train CGS on small pore networks, evaluate on larger ones against SciPy."""
    s = setting or porous_setting()
    train_set = make_porous_dataset(s.train_graphs, s.train_sizes, seed=seed)
    test_set = make_porous_dataset(s.test_graphs, s.test_sizes, seed=seed + 10_000)
    torch.manual_seed(seed)
    model = CGS(s.model)
    res = train(model, train_set, s.train, seed=seed, desc="cgs porous")
    ev = evaluate_regression(model, test_set)
    t = "porous"
    return [
        _record(t, "cgs", "test_mse", ev["mse"], ev["iterations"], res.seconds),
        _record(t, "cgs", "test_relative_error", ev["relative_error"], ev["iterations"],
                res.seconds),
        _record(t, "mean", "test_mse", mean_predictor_mse(train_set, test_set)),
    ]


def standardised_targets(train_set: list) -> tuple[list, float, float]:
    """Copies of ``train_set`` with targets ``(y - mu) / sigma``, and ``mu, sigma`` of the training targets."""
    ys = torch.cat([d.y.view(-1) for d in train_set])
    mu, sigma = float(ys.mean()), float(ys.std().clamp_min(1e-8))
    fit_set = [d.clone() for d in train_set]
    for d in fit_set:
        d.y = (d.y - mu) / sigma
    return fit_set, mu, sigma


def run_gvi(seed: int = 0, setting: GraphExperiment | None = None) -> list[dict]:
    """Train CGS to predict optimal values of random graph MDPs; value error and policy accuracy."""
    s = setting or gvi_setting()
    train_set = make_mdp_dataset(s.train_graphs, s.train_sizes, seed=seed)
    test_set = make_mdp_dataset(s.test_graphs, s.test_sizes, seed=seed + 10_000)
    # standardise the targets with training statistics (values vary little)
    fit_set, mu, sigma = standardised_targets(train_set)
    torch.manual_seed(seed)
    model = CGS(s.model)
    res = train(model, fit_set, s.train, seed=seed, desc="cgs gvi")
    mse, acc, its = [], [], []
    for d in test_set:
        pred, it = predict(model, d)
        value = (pred.view(-1).double() * sigma + mu) / (1.0 - d.discount)
        mse.append(float(((value - d.value) ** 2).mean()))
        acc.append(policy_accuracy(value, d))
        its.append(it)
    mean_value = float(torch.cat([d.value for d in train_set]).mean())
    base = float(np.mean([float(((d.value - mean_value) ** 2).mean()) for d in test_set]))
    t, it = "gvi", float(np.mean(its))
    return [
        _record(t, "cgs", "value_mse", float(np.mean(mse)), it, res.seconds),
        _record(t, "cgs", "policy_accuracy", float(np.mean(acc)), it, res.seconds),
        _record(t, "mean", "value_mse", base),
    ]


def run_classification(seed: int = 0,
                       setting: ClassificationExperiment | None = None) -> list[dict]:
    """Stratified k-fold accuracy of CGS on a real graph-classification set."""
    s = setting or ClassificationExperiment()
    graphs, num_classes = load_classification_set(s.dataset, s.top_k)
    cfg = replace(s.model, **dict(s.setting), node_dim=graphs[0].num_node_features,
                  edge_dim=graphs[0].edge_attr.shape[1], out_dim=num_classes)
    folds = stratified_folds([int(g.y) for g in graphs], s.folds, seed)
    correct, its, seconds = 0, [], 0.0
    for k, test_idx in enumerate(folds):
        test_mask = np.zeros(len(graphs), bool)
        test_mask[test_idx] = True
        train_set = [g for g, m in zip(graphs, test_mask) if not m]
        torch.manual_seed(seed * 100 + k)
        model = CGS(cfg)
        res = train(model, train_set, s.train, seed=seed * 100 + k,
                    desc=f"cgs {s.dataset} fold {k + 1}/{s.folds}")
        seconds += res.seconds
        for i in test_idx:
            pred, it = predict(model, graphs[i])
            correct += int(pred.argmax(-1).item() == int(graphs[i].y))
            its.append(it)
    t = "classification"
    return [
        _record(t, "cgs", "accuracy", correct / len(graphs), float(np.mean(its)), seconds,
                dataset=s.dataset, folds=s.folds),
        _record(t, "chance", "accuracy", 1.0 / num_classes, dataset=s.dataset),
    ]


def run(task: str, seed: int = 0, quick: bool = False, threads: int | None = 1) -> list[dict]:
    """Train and evaluate CGS on one task.

    Args:
        task: ``"porous"`` (pressure in pore networks, trained on 50-150 pores,
            tested on 300-800), ``"gvi"`` (graph value iteration) or
            ``"classification"`` (k-fold on the mouse-connectome genotypes);
            ``"mdp"`` and ``"classify"`` are accepted for the last two.
        seed: seeds the data and the model.
        quick: a small setting that finishes in a few minutes on a 2-core CPU.
        threads: torch intra-op threads during the run (restored after);
            None leaves the setting alone.

    Returns:
        Records ``{"task", "model", "metric", "value", "iterations",
        "train_seconds", ...}``; trivial baselines (mean predictor, chance)
        are included as their own records.
    """
    _check_run_args(task, seed, quick)
    task, seed = TASK_ALIASES.get(task, task), int(seed)
    with torch_threads(threads):
        if task == "porous":
            return run_porous(seed, porous_setting(quick))
        if task == "gvi":
            return run_gvi(seed, gvi_setting(quick))
        return run_classification(seed, quick_classification() if quick else None)


def matched_gcn(target_params: int, node_dim: int, layers: int = 4,
                graph_level: bool = False, out_dim: int = 1) -> GCN:
    """The :class:`GCN` whose parameter count is closest to ``target_params``."""
    best = None
    for hidden in range(4, 513, 2):
        n = count_parameters(GCN(GCNConfig(node_dim, out_dim, hidden, layers, graph_level)))
        if best is None or abs(n - target_params) < abs(best[1] - target_params):
            best = (hidden, n)
        if n > target_params:
            break
    return GCN(GCNConfig(node_dim, out_dim, best[0], layers, graph_level))


def gradient_cost(model: CGS, graphs: list[Data], repeats: int = 5) -> list[dict]:
    """Forward+backward time and autograd memory of implicit vs unrolled gradients.

    The unrolled baseline is the same model (same weights) with
    ``gradient="unrolled"`` and as many iterations as the implicit forward
    solve needed on this input (the same depth). Both are measured for the
    whole model (encoder, solve, decoder, MSE loss) and for the fixed-point
    solve alone (gradients to its ``weight`` and ``b``).

    Returns:
        Records for ``cgs-implicit`` and ``cgs-unrolled``: ``fwd_bwd_seconds``
        and ``saved_bytes`` (whole model), ``solver_fwd_bwd_seconds`` and
        ``solver_saved_bytes`` (solve only), and ``grad_cosine_vs_implicit``
        (unrolled model gradient against the implicit one).
    """
    batch = Batch.from_data_list(graphs)
    model.train()
    cfg = model.config

    def model_step(grad_mode: str, depth: int):
        model.config = replace(cfg, gradient=grad_mode, unrolled_iter=depth)
        model.zero_grad(set_to_none=True)
        (pred, info), saved = saved_tensor_bytes(
            lambda: model(batch.x, batch.edge_index, batch.edge_attr, batch.batch))
        ((pred - batch.y) ** 2).mean().backward()
        return info, saved, torch.cat([p.grad.flatten() for p in model.parameters()])

    with torch.no_grad():
        weight, b, _ = model.transition_map(batch.x, batch.edge_index, batch.edge_attr,
                                            batch.batch)
    cot = torch.randn(b.shape, generator=torch.Generator().manual_seed(0)) / b.numel()

    def solver_step(grad_mode: str, depth: int):
        model.config = replace(cfg, gradient=grad_mode, unrolled_iter=depth)
        w = weight.clone().requires_grad_()
        bb = b.clone().requires_grad_()
        (h, _), saved = saved_tensor_bytes(lambda: model.solve(w, bb, batch.edge_index))
        (h * cot).sum().backward()
        return saved

    try:
        info, saved_imp, g_imp = model_step("implicit", 1)
        depth = max(1, info.forward_iterations)
        _, saved_unr, g_unr = model_step("unrolled", depth)
        t_imp = median_seconds(lambda: model_step("implicit", 1), repeats)
        t_unr = median_seconds(lambda: model_step("unrolled", depth), repeats)
        s_imp, s_unr = solver_step("implicit", 1), solver_step("unrolled", depth)
        ts_imp = median_seconds(lambda: solver_step("implicit", 1), repeats)
        ts_unr = median_seconds(lambda: solver_step("unrolled", depth), repeats)
    finally:
        model.config = cfg
    cos = float(torch.nn.functional.cosine_similarity(g_imp, g_unr, dim=0))
    common = dict(task="porous", iterations=depth, train_seconds=None,
                  nodes=int(batch.num_nodes), edges=int(batch.num_edges))
    out = []
    for name, values in (("cgs-implicit", (t_imp, saved_imp, ts_imp, s_imp)),
                         ("cgs-unrolled", (t_unr, saved_unr, ts_unr, s_unr))):
        for metric, v in zip(("fwd_bwd_seconds", "saved_bytes", "solver_fwd_bwd_seconds",
                              "solver_saved_bytes"), values):
            out.append({"model": name, "metric": metric, "value": float(v), **common})
    out[0]["backward_iterations"] = info.backward_iterations
    out.append({"model": "cgs-unrolled", "metric": "grad_cosine_vs_implicit", "value": cos,
                **common})
    return out


def benchmark(quick: bool = False, seed: int = 0, threads: int | None = 1) -> list[dict]:
    """CGS against its baselines on the porous-network task.

    Trains CGS (implicit gradients) and a GCN with about as many parameters
    (4 layers, back-propagation) on small networks, and reports on larger
    held-out networks: the MSE and relative error against SciPy's exact
    pressures (and the mean predictor's MSE), the fixed-point iterations, and
    the forward+backward time and autograd memory of the implicit backward
    against unrolling the same number of iterations.

    Args:
        quick: the small setting (a few minutes on a 2-core CPU).
        seed: seeds data and models.
        threads: torch intra-op threads during the run (restored after);
            None leaves the setting alone.

    Returns:
        Records ``{"task", "model", "metric", "value", "iterations", "train_seconds", ...}``.
    """
    if not isinstance(quick, bool):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")
    with torch_threads(threads):
        return _benchmark(quick, seed)


def _benchmark(quick: bool, seed: int) -> list[dict]:
    s = porous_setting(quick)
    train_set = make_porous_dataset(s.train_graphs, s.train_sizes, seed=seed)
    test_set = make_porous_dataset(s.test_graphs, s.test_sizes, seed=seed + 10_000)
    records = []
    torch.manual_seed(seed)
    cgs = CGS(s.model)
    res = train(cgs, train_set, s.train, seed=seed, desc="cgs porous")
    ev = evaluate_regression(cgs, test_set)
    n_par = count_parameters(cgs)
    for metric in ("mse", "relative_error"):
        records.append(_record("porous", "cgs", f"test_{metric}", ev[metric], ev["iterations"],
                               res.seconds, parameters=n_par))
    torch.manual_seed(seed)
    gcn = matched_gcn(n_par, s.model.node_dim)
    res_g = train(gcn, train_set, s.train, seed=seed, desc="gcn porous")
    ev_g = evaluate_regression(gcn, test_set)
    for metric in ("mse", "relative_error"):
        records.append(_record("porous", "gcn", f"test_{metric}", ev_g[metric], None,
                               res_g.seconds, parameters=count_parameters(gcn)))
    records.append(_record("porous", "mean", "test_mse", mean_predictor_mse(train_set, test_set)))
    # gradient cost on one batch of training-size graphs and on one large held-out graph
    records += gradient_cost(cgs, train_set[: s.train.batch_size], repeats=3 if quick else 5)
    largest = max(test_set, key=lambda d: d.num_nodes)
    records += gradient_cost(cgs, [largest], repeats=3 if quick else 5)
    return records


def format_table(records: list[dict]) -> str:
    """A plain-text table of benchmark or run records."""
    rows = [("task", "model", "metric", "value", "iterations", "train s")]
    for r in records:
        it = r.get("iterations")
        ts = r.get("train_seconds")
        rows.append((r["task"], r["model"], r["metric"], f"{r['value']:.4g}",
                     "" if it is None else f"{it:.1f}", "" if ts is None else f"{ts:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)
