"""Repeated cross-validation: selection inside the training folds, equal budgets."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from graph.cgs.compare import GIN
from graph.cgs.crossval import Candidate, inner_split, model_grid, repeated_cv, select_model
from graph.cgs.experiments import ClassificationExperiment
from graph.cgs.model import CGS, count_parameters
from graph.cgs.tasks.classification import load_classification_set, stratified_folds
from graph.cgs.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _rings(count: int, seed: int = 0) -> list[Data]:
    """Rings whose node feature (+1 or -1, noisy) gives the class."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        n = int(torch.randint(5, 9, (1,), generator=gen))
        src = torch.arange(n)
        ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
        y = i % 2
        x = torch.full((n, 1), 1.0 if y else -1.0) + 0.3 * torch.randn(n, 1, generator=gen)
        out.append(Data(x=x, edge_index=ring, edge_attr=torch.zeros(2 * n, 1),
                        y=torch.tensor([y])))
    return out


def _gin(c: Candidate) -> GIN:
    return GIN(1, 2, 8, layers=2)


def test_inner_split_is_stratified_and_disjoint():
    labels = [0] * 9 + [1] * 6 + [2] * 3
    fit, val = inner_split(labels, 0.25, seed=0)
    assert len(np.intersect1d(fit, val)) == 0
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(len(labels)))
    assert np.bincount(np.asarray(labels)[val]).tolist() == [2, 2, 1]  # round(0.25 n), >= 1
    assert np.array_equal(inner_split(labels, 0.25, 0)[1], val)  # seeded
    with pytest.raises(ValueError, match="at least 2 per class"):
        inner_split([0, 0, 1], 0.5, 0)
    with pytest.raises(ValueError, match="val_fraction"):
        inner_split(labels, 1.0, 0)


def test_every_model_gets_as_many_candidates():
    grids = {m: model_grid(m) for m in ("cgs", "gin", "gcn")}
    assert len({len(g) for g in grids.values()}) == 1
    assert {dict(c.model).get("encoder", "edge_mlp") for c in grids["cgs"]} == {"edge_mlp", "gin"}
    assert all(dict(c.model)["gamma_max"] == 0.999 for c in grids["cgs"])
    assert {c.restart for c in grids["gin"]} == {0, 1}
    assert {c.lr for c in grids["gcn"]} == {c.lr for c in grids["cgs"]}


def test_selection_depends_on_the_training_folds_only():
    graphs = _rings(16)
    config = TrainConfig(epochs=4, batch_size=4, loss="cross_entropy", progress=False)
    grid = [Candidate(1e-3), Candidate(3e-2), Candidate(3e-2, restart=1)]
    run = repeated_cv(graphs, {"gin": _gin}, {"gin": grid}, config, splits=1, folds=2, seed=0)[0]
    fold0 = stratified_folds([int(g.y) for g in graphs], 2, 0)[0]
    assert run["folds"] == [[sorted(fold0.tolist()),
                             sorted(set(range(16)) - set(fold0.tolist()))]]
    # scramble the test graphs of fold 0 (features and edges; labels keep the folds)
    scrambled = list(graphs)
    gen = torch.Generator().manual_seed(1)
    for i in fold0:
        g = graphs[int(i)]
        n = 3
        scrambled[int(i)] = Data(x=5 * torch.randn(n, 1, generator=gen),
                                 edge_index=torch.tensor([[0, 1], [1, 2]]),
                                 edge_attr=torch.zeros(2, 1), y=g.y)
    again = repeated_cv(scrambled, {"gin": _gin}, {"gin": grid}, config, splits=1, folds=2,
                        seed=0)[0]
    # fold 0's choice and every candidate's validation score are unchanged ...
    assert again["chosen"][0] == run["chosen"][0]
    assert again["validation"][0] == run["validation"][0]
    assert len(run["validation"][0]) == len(grid)
    # ... while fold 1 trains on the scrambled graphs, so its validation scores move
    assert again["validation"][1] != run["validation"][1]
    assert len(run["fold_accuracies"]) == 2
    assert run["value"] == pytest.approx(np.mean(run["fold_accuracies"]))


def test_select_model_picks_the_best_validation_accuracy():
    graphs = _rings(12, seed=2)
    config = TrainConfig(epochs=6, batch_size=4, loss="cross_entropy", progress=False)
    # a learning rate too small to move the weights against one that learns the sign
    sel = select_model(_gin, [Candidate(1e-7), Candidate(3e-2)], graphs, config, seed=0)
    acc = [s["accuracy"] for s in sel.scores]
    assert sel.candidate.lr == 3e-2 and acc[1] >= acc[0], sel.scores
    with pytest.raises(ValueError, match="candidates"):
        select_model(_gin, [], graphs, config, seed=0)


@pytest.mark.parametrize("dataset", ["mice", "marked_distance", "sbm_communities_degree"])
def test_every_cgs_setting_has_the_size_the_baselines_are_matched_to(dataset):
    graphs, classes = load_classification_set(dataset)
    base = replace(ClassificationExperiment().model, node_dim=graphs[0].num_node_features,
                   edge_dim=graphs[0].edge_attr.shape[1], out_dim=classes)
    target = count_parameters(CGS(base))  # what classification_cv sizes GIN and GCN to
    for candidate in model_grid("cgs"):
        n = count_parameters(CGS(replace(base, **dict(candidate.model))))
        assert abs(n - target) / target < 0.05, (candidate.label, n, target)
