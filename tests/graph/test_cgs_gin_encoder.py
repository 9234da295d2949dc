"""CGS with GIN layers as its encoder (``CGSConfig.encoder="gin"``)."""

import pytest
import torch
from torch import nn

from graph.cgs.layers import EdgeMLPConv, GINBlock
from graph.cgs.model import CGS, CGSConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**kw) -> CGSConfig:
    return CGSConfig(node_dim=3, edge_dim=1, out_dim=2, hidden=8, heads=2, graph_level=True,
                     readout="node", node_norm="batch", solver="direct", **kw)


def _graphs():
    ei = torch.tensor([[0, 1, 1, 2, 3, 4, 4, 5], [1, 0, 2, 1, 4, 3, 5, 4]])
    return torch.randn(6, 3), ei, torch.rand(8, 1), torch.tensor([0, 0, 0, 1, 1, 1])


def test_gin_encoder_stacks_gin_blocks_with_their_batch_norms():
    model = CGS(_config(encoder="gin", enc_layers=3))
    assert len(model.encoder) == 3 and all(isinstance(m, GINBlock) for m in model.encoder)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.encoder.modules()) == 6
    assert all(isinstance(m, EdgeMLPConv) for m in CGS(_config()).encoder)


def test_gin_encoder_trains_end_to_end_and_edge_features_still_reach_the_map():
    torch.manual_seed(0)
    model = CGS(_config(encoder="gin"))
    x, ei, ea, batch = _graphs()
    y, info = model(x, ei, ea, batch)
    torch.nn.functional.cross_entropy(y, torch.tensor([0, 1])).backward()
    assert info.converged and y.shape == (2, 2)
    for block in model.encoder:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.conv.nn.parameters())
    model.eval()
    with torch.no_grad():
        w1, b1, _ = model.transition_map(x, ei, ea, batch)
        w2, b2, _ = model.transition_map(x, ei, 2 * ea + 1, batch)
    assert not torch.allclose(w1, w2)  # the attention layer reads the edge features


def test_gin_encoder_refuses_the_edge_mlp_norm_option():
    with pytest.raises(ValueError, match="own batch norms"):
        _config(encoder="gin", encoder_norm="batch")
    with pytest.raises(ValueError, match="encoder must be one of"):
        _config(encoder="gcn")


def test_transition_hidden_narrows_only_the_transition_mlps():
    wide, narrow = CGS(_config(encoder="gin")), CGS(_config(encoder="gin", transition_hidden=3))
    for name in ("logit_mlp", "msg_mlp", "gate_mlp", "b_mlp"):
        assert getattr(narrow.transition, name)[0].out_features == 3
        assert getattr(wide.transition, name)[0].out_features == 8
    assert sum(p.numel() for p in narrow.encoder.parameters()) == sum(p.numel() for p in wide.encoder.parameters())
    x, ei, ea, batch = _graphs()
    y, info = narrow(x, ei, ea, batch)
    assert info.converged and y.shape == (2, 2)
    with pytest.raises(ValueError, match="transition_hidden must be a positive int"):
        _config(transition_hidden=0)
