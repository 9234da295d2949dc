"""CGS's per-node normalisation before the node-wise readout (``node_norm``)."""

import pytest
import torch
from torch import nn

from graph.cgs.model import CGS, CGSConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**kw) -> CGSConfig:
    return CGSConfig(node_dim=2, edge_dim=1, out_dim=3, hidden=8, heads=2, graph_level=True,
                     readout="node", encoder_aggr="sum", **kw)


def _graphs():
    ei = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    batch = torch.tensor([0, 0, 0, 1, 1])
    return torch.randn(5, 2), ei, torch.rand(6, 1), batch


def test_layer_norm_standardises_each_node_before_the_node_mlp():
    torch.manual_seed(0)
    model = CGS(_config(node_norm="layer"))
    assert isinstance(model.node_decoder[0], nn.LayerNorm)
    assert model.node_decoder[0].normalized_shape == (2 + 8,)
    seen = {}
    model.node_decoder[1].register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    y, _ = model(*_graphs())
    assert y.shape == (2, 3)
    x = seen["x"]  # [H_i, embedding_i] after the norm, per node
    assert x.shape == (5, 10)
    assert torch.allclose(x.mean(-1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(x.var(-1, unbiased=False), torch.ones(5), atol=1e-3)


def test_batch_norm_uses_node_statistics_in_training_and_running_ones_in_evaluation():
    torch.manual_seed(0)
    model = CGS(_config(node_norm="batch"))
    norm = model.node_decoder[0]
    assert isinstance(norm, nn.BatchNorm1d)
    graphs = _graphs()
    model.train()
    model(*graphs)
    assert int(norm.num_batches_tracked) == 1
    assert not torch.allclose(norm.running_mean, torch.zeros(10))
    model.eval()
    a, _ = model(*graphs)
    b, _ = model(*graphs)
    assert torch.equal(a, b) and int(norm.num_batches_tracked) == 1


def test_without_node_norm_the_readout_keeps_its_layout():
    # checkpoints of the node readout (MLP then SiLU) still load
    keys = {k for k in CGS(_config()).state_dict() if k.startswith("node_decoder")}
    assert keys == {"node_decoder.0.0.weight", "node_decoder.0.0.bias",
                    "node_decoder.0.2.weight", "node_decoder.0.2.bias"}


def test_node_norm_errors():
    with pytest.raises(ValueError, match="node_norm must be one of"):
        _config(node_norm="group")
    with pytest.raises(ValueError, match="needs graph_level=True and readout='node'"):
        CGSConfig(node_dim=2, edge_dim=1, graph_level=True, readout="pool", node_norm="layer")
    with pytest.raises(ValueError, match="needs graph_level=True"):
        CGSConfig(node_dim=2, edge_dim=1, node_norm="batch")


def test_the_classification_default_normalises_nodes_with_batch_statistics():
    from graph.cgs.experiments import ClassificationExperiment

    cfg = ClassificationExperiment().model
    assert (cfg.readout, cfg.node_norm) == ("node", "batch")
    assert isinstance(CGS(cfg).node_decoder[0], nn.BatchNorm1d)


def test_encoder_norm_standardises_the_nodes_after_every_encoder_layer():
    torch.manual_seed(0)
    model = CGS(_config(encoder_norm="batch", enc_layers=2))
    assert [type(m) for m in model.encoder_norms] == [nn.BatchNorm1d, nn.BatchNorm1d]
    seen = []
    model.encoder_norms[1].register_forward_hook(lambda m, a, out: seen.append(out))
    model.train()
    model(*_graphs())
    h = seen[0]  # the second layer's output, standardised over the 5 nodes of the batch
    assert torch.allclose(h.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(h.var(0, unbiased=False), torch.ones(8), atol=1e-3)
    plain = CGS(_config())
    assert all(isinstance(m, nn.Identity) for m in plain.encoder_norms)
    with pytest.raises(ValueError, match="encoder_norm must be one of"):
        _config(encoder_norm="layer")
