"""graph.cgs.training.recalibrate_batch_norm: running statistics recomputed under the final weights."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import global_mean_pool

from graph.cgs import CGS, CGSConfig, TrainConfig, recalibrate_batch_norm, train


class NodeNormClassifier(nn.Module):
    """Linear -> batch norm over the nodes -> mean pool -> linear, called as the CGS models are."""

    def __init__(self, dim: int = 3, classes: int = 2):
        super().__init__()
        self.embed = nn.Linear(dim, 8)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, classes)

    def forward(self, x, edge_index, edge_attr, batch):
        return self.head(global_mean_pool(self.norm(self.embed(x)), batch)), None


def _graphs(n: int = 12, seed: int = 0) -> list[Data]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        nodes = 5 + i % 4
        x = torch.randn(nodes, 3, generator=gen) * (1 + i % 3) + i % 2
        edge_index = torch.stack([torch.arange(nodes), torch.arange(nodes).roll(1)])
        out.append(Data(x=x, edge_index=edge_index, edge_attr=torch.ones(nodes, 1), y=torch.tensor([i % 2])))
    return out


def test_running_statistics_become_the_mean_of_the_batches_under_the_final_weights():
    torch.manual_seed(0)
    model, graphs = NodeNormClassifier(), _graphs()
    model.norm.running_mean.fill_(5.0)  # stale statistics, as after a short training run
    assert recalibrate_batch_norm(model, graphs, batch_size=4) == 1
    with torch.no_grad():
        means = [model.embed(torch.cat([g.x for g in graphs[i:i + 4]])).mean(0) for i in range(0, 12, 4)]
        variances = [model.embed(torch.cat([g.x for g in graphs[i:i + 4]])).var(0) for i in range(0, 12, 4)]
    assert torch.allclose(model.norm.running_mean, torch.stack(means).mean(0), atol=1e-6)
    assert torch.allclose(model.norm.running_var, torch.stack(variances).mean(0), atol=1e-5)
    assert model.norm.momentum == 0.1 and not model.training


def test_models_without_batch_norm_are_left_alone():
    model = nn.Sequential(nn.Linear(3, 2))
    before = [p.clone() for p in model.parameters()]
    assert recalibrate_batch_norm(model, _graphs(), batch_size=4) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("recalibrate", [True, False])
def test_train_recalibrates_after_the_last_epoch_unless_told_not_to(recalibrate):
    torch.manual_seed(0)
    model, graphs = NodeNormClassifier(), _graphs()
    config = TrainConfig(epochs=3, batch_size=4, lr=0.05, loss="cross_entropy", progress=False,
                         recalibrate_norm=recalibrate)
    train(model, graphs, config)
    fresh = NodeNormClassifier()
    fresh.load_state_dict(model.state_dict())
    recalibrate_batch_norm(fresh, graphs, batch_size=4)
    same = torch.allclose(model.norm.running_mean, fresh.norm.running_mean, atol=1e-6)
    assert same == recalibrate  # without it the statistics stay the average over the training steps


def test_cgs_node_batch_norm_is_recalibrated_by_train():
    graphs = _graphs(8)
    cfg = CGSConfig(node_dim=3, edge_dim=1, out_dim=2, hidden=8, heads=2, graph_level=True,
                    readout="node", node_norm="batch")
    torch.manual_seed(0)
    model = CGS(cfg)
    seen = []
    train(model, graphs, TrainConfig(epochs=2, batch_size=4, loss="cross_entropy", progress=False),
          on_epoch=lambda epoch, m: seen.append(m.node_decoder[0].running_mean.clone()))
    norm = model.node_decoder[0]
    assert int(norm.num_batches_tracked) == 2  # two batches of the recalibration pass, not 2 x 2 steps
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])
    assert model.training  # train() hands the model back in training mode
