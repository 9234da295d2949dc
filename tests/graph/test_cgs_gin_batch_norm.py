"""The GIN baseline with its paper's batch norms (model ``gin_bn`` of the CGS comparison)."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from graph.cgs.compare import GIN, classification_cv
from graph.cgs.model import count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def _signed_rings(count: int) -> list[Data]:
    gen = torch.Generator().manual_seed(1)
    graphs = []
    for i in range(count):
        n = 6 + i % 5
        src = torch.arange(n)
        ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
        x = torch.full((n, 1), 1.0 if i % 2 else -1.0) + 0.1 * torch.randn(n, 1, generator=gen)
        graphs.append(Data(x=x, edge_index=ring, edge_attr=torch.zeros(ring.shape[1], 1), y=torch.tensor(i % 2)))
    return graphs


def test_batch_norm_sits_in_every_layer_mlp_and_after_every_layer():
    plain, normed = GIN(3, 2, 16, layers=3), GIN(3, 2, 16, layers=3, batch_norm=True)
    norms = [m for m in normed.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 6 and not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    assert count_parameters(normed) == count_parameters(plain) + 6 * 2 * 16
    logits, _ = normed.eval()(torch.randn(7, 3), torch.tensor([[0, 1, 2], [1, 2, 0]]))
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


@pytest.mark.slow  # two folds x four candidates
def test_gin_bn_is_sized_to_cgs_and_learns_a_separable_set():
    records = classification_cv(seed=0, folds=2, epochs=12, graphs=(_signed_rings(16), 2), batch_size=4,
                                models=("cgs", "gin_bn"))
    cgs, gin_bn = records
    assert gin_bn["model"] == "gin_bn" and gin_bn["folds"] == cgs["folds"]
    assert abs(gin_bn["parameters"] - cgs["parameters"]) / cgs["parameters"] < 0.25
    assert gin_bn["value"] >= 0.75  # separable by the pooled feature; chance is 0.5
