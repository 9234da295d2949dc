"""CGS beside same-size GIN/GCN on shared folds, and the porous CGS at ten times its training size."""

import pytest
import torch
from torch_geometric.data import Data

from graph.cgs.compare import classification_cv, porous_size_generalisation
from graph.cgs.tasks.classification import stratified_folds

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_graphs(count: int = 12) -> list[Data]:
    """Rings whose node feature (+1 or -1) gives the class: separable by pooling."""
    gen = torch.Generator().manual_seed(0)
    graphs = []
    for i in range(count):
        n = int(torch.randint(6, 12, (1,), generator=gen))
        src = torch.arange(n)
        ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
        label = i % 2
        x = torch.full((n, 1), 1.0 if label else -1.0) + 0.1 * torch.randn(n, 1, generator=gen)
        graphs.append(Data(x=x, edge_index=ring, edge_attr=torch.zeros(2 * n, 1),
                           y=torch.tensor(label)))
    return graphs


@pytest.mark.slow  # four models x two folds x four candidates
def test_cgs_gin_and_gcn_use_the_same_folds_sizes_and_budget():
    graphs = _toy_graphs(16)
    records = classification_cv(seed=0, folds=2, epochs=12, graphs=(graphs, 2), batch_size=4,
                                cgs_options={"solver": "iterate"})  # the default LU solve has no iterations
    want = [[sorted(int(i) for i in f) for f in stratified_folds([int(g.y) for g in graphs], 2, 0)]]
    assert [r["model"] for r in records] == ["cgs", "gin", "gin_bn", "gcn"]
    for r in records:
        assert r["folds"] == want and r["epochs"] == 12 and r["batch_size"] == 4
        assert [len(v) for v in r["validation"]] == [4, 4]  # as many candidates per model
        assert len(r["chosen"]) == len(r["fold_accuracies"]) == 2
    assert "gamma_max" in records[0]["chosen"][0]  # CGS's contraction is selected too
    assert records[0]["iterations"] >= 1  # mean fixed-point iterations on the test graphs
    assert all(r["iterations"] is None for r in records[1:])
    cgs_params = records[0]["parameters"]
    for r in records[1:]:
        assert abs(r["parameters"] - cgs_params) / cgs_params < 0.25, r
        assert r["value"] >= 0.75, r  # separable by the pooled feature; chance is 0.5
    with pytest.raises(ValueError, match="unknown model"):
        classification_cv(folds=2, epochs=1, graphs=(graphs, 2), models=("mlp",))


def test_porous_cgs_keeps_converging_at_ten_times_its_training_size():
    records = porous_size_generalisation(factor=10, graphs=1, seed=0)
    cgs = {r["scale"]: r for r in records if r["model"] == "cgs"}
    assert cgs[10]["mean_nodes"] >= 8 * cgs[1]["mean_nodes"]
    assert cgs[10]["iterations"] < 500  # the fixed point is reached (max_iter 500)
    assert cgs[10]["relative_error"] < 0.4
    assert cgs[1]["relative_error"] < 0.2
