"""The learnable gate on the GAT residual skip (``gat_residual_gate``)."""

import pytest
import torch

from graph.datasets import load_dataset
from graph.forwardgnn import ForwardGNNConfig, get_variant, make_conv, make_task, train_forwardgnn
from graph.forwardgnn.layers import GatedSkip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gate_scales_the_skip_and_starts_at_its_init():
    torch.manual_seed(0)
    conv = make_conv("gat", 3, 4, gat_residual=True, gat_residual_gate=0.25)
    assert isinstance(conv.res, GatedSkip)
    assert conv.res.gate == pytest.approx(0.25)
    x = torch.randn(5, 3)
    no_edges = torch.empty(2, 0, dtype=torch.long)
    # without edges only self-loops feed attention; the skip adds exactly gate * W x
    with torch.no_grad():
        gated = conv(x, no_edges)
        skip = conv.res.skip(x)
        conv.res.skip.weight.zero_()
        attention_only = conv(x, no_edges)
    assert torch.allclose(gated - attention_only, 0.25 * skip, atol=1e-6)


def test_gate_is_learned_and_reset():
    torch.manual_seed(0)
    conv = make_conv("gat", 3, 4, gat_residual=True, gat_residual_gate=0.1)
    x, target = torch.randn(6, 3), torch.randn(6, 4)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    opt = torch.optim.Adam(conv.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(conv(x, ei), target).backward()
        assert conv.res.logit.grad is not None and conv.res.logit.grad.abs() > 0
        opt.step()
    assert conv.res.gate != pytest.approx(0.1)
    conv.reset_parameters()
    assert conv.res.gate == pytest.approx(0.1)


def test_gate_reaches_every_variant_layer_and_only_with_the_residual():
    task = make_task(load_dataset("karate"), "node")
    cfg = ForwardGNNConfig(hidden=(8, 8), gat_residual=(True, False), gat_residual_gate=0.1)
    for variant in ("bp", "sf", "ff-label"):
        model = get_variant(variant, "node")(task.x.shape[1], task.num_classes, "gat", cfg)
        assert isinstance(model.layers[0].conv.res, GatedSkip)
        assert model.layers[1].conv.res is None
        assert any(p is model.layers[0].conv.res.logit for p in model.parameters())
    plain = make_conv("gat", 3, 4, gat_residual=True)
    assert not isinstance(plain.res, GatedSkip)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, "0.1"])
def test_gate_init_must_be_in_the_open_unit_interval(bad):
    with pytest.raises(ValueError, match="gat_residual_gate"):
        ForwardGNNConfig(gat_residual_gate=bad)
    if not isinstance(bad, str):
        with pytest.raises(ValueError, match="gate init"):
            GatedSkip(torch.nn.Linear(3, 4), bad)


def test_gate_candidates_are_chosen_on_validation_earliest_on_a_tie():
    data = load_dataset("karate")
    cfg = ForwardGNNConfig(hidden=(8, 8), epochs=10, gat_residual_gate=[0.1, None])
    assert cfg.gat_residual_gate == (0.1, None)
    assert [c.gat_residual_gate for c in cfg.gate_candidates("gat")] == [0.1, None]
    assert cfg.gate_candidates("gcn") == [cfg]  # no GAT skip to gate: trained once
    picked, model = train_forwardgnn(data, "sf", "gat", config=cfg, seed=1, return_model=True)
    alone = {g: train_forwardgnn(data, "sf", "gat", seed=1,
                                 config=ForwardGNNConfig(hidden=(8, 8), epochs=10,
                                                         gat_residual_gate=g))
             for g in (0.1, None)}
    expect = 0.1 if alone[0.1].val >= alone[None].val else None
    assert picked.gat_residual_gate == expect
    assert (picked.val, picked.test) == (alone[expect].val, alone[expect].test)
    assert isinstance(model.layers[0].conv.res, GatedSkip) == (expect is not None)
    assert picked.train_seconds > 0
    with pytest.raises(ValueError, match="at least one"):
        ForwardGNNConfig(gat_residual_gate=())
    with pytest.raises(ValueError, match="gat_residual_gate"):
        ForwardGNNConfig(gat_residual_gate=(0.1, 2.0))


def test_a_model_built_from_candidates_takes_the_first():
    task = make_task(load_dataset("karate"), "node")
    cfg = ForwardGNNConfig(hidden=(8, 8), gat_residual_gate=(0.3, None))
    model = get_variant("sf", "node")(task.x.shape[1], task.num_classes, "gat", cfg)
    assert all(layer.conv.res.gate == pytest.approx(0.3) for layer in model.layers)
    cfg = ForwardGNNConfig(hidden=(8, 8), gat_residual_gate=(None, 0.3))
    model = get_variant("bp", "node")(task.x.shape[1], task.num_classes, "gat", cfg)
    assert not any(isinstance(layer.conv.res, GatedSkip) for layer in model.layers)
