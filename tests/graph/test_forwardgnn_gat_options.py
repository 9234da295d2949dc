"""ForwardGNN options of the GAT layers and of the class-node links."""

import pytest
import torch
from torch_geometric.nn import GATConv

from graph.datasets import load_dataset
from graph.forwardgnn import ForwardGNNConfig, get_variant, make_conv, make_task, train_forwardgnn
from graph.forwardgnn.config import CLASS_LINKS_BY_CONV, CONVS
from graph.forwardgnn.nodeclass import _holdout_split, _VirtualNodes, _virtual_features

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def karate():
    return load_dataset("karate")


@pytest.fixture(scope="module")
def task(karate):
    return make_task(karate, "node")


def test_gat_residual_adds_a_skip_of_the_input_to_every_layer(task):
    cfg = ForwardGNNConfig(hidden=(8, 8), gat_residual=True)
    model = get_variant("sf", "node")(task.x.shape[1], task.num_classes, "gat", cfg)
    for layer in model.layers:
        assert isinstance(layer.conv, GATConv) and layer.conv.res is not None
    plain = make_conv("gat", task.x.shape[1], 8)
    assert plain.res is None
    # with the skip, a node without any edge still depends on its own features through `res`
    conv = make_conv("gat", 3, 4, gat_residual=True)
    x = torch.randn(5, 3)
    no_edges = torch.empty(2, 0, dtype=torch.long)
    base = conv(x, no_edges)
    with torch.no_grad():
        conv.res.weight.zero_()
    assert not torch.allclose(base, conv(x, no_edges))


def test_gat_concat_keeps_the_width_with_narrower_heads(task):
    conv = make_conv("gat", task.x.shape[1], 8, gat_heads=4, gat_concat=True)
    assert conv.concat and conv.heads == 4 and conv.out_channels == 2
    assert conv(task.x, task.edge_index).shape == (task.num_nodes, 8)
    with pytest.raises(ValueError, match="divisible"):
        make_conv("gat", 3, 6, gat_heads=4, gat_concat=True)
    with pytest.raises(ValueError, match="divisible"):
        ForwardGNNConfig(hidden=(6,), gat_heads=4, gat_concat=True)


def test_gat_dropout_acts_in_training_only(task):
    conv = make_conv("gat", task.x.shape[1], 8, gat_dropout=0.5)
    conv.train()
    torch.manual_seed(0)
    a = conv(task.x, task.edge_index)
    b = conv(task.x, task.edge_index)
    assert not torch.allclose(a, b)
    conv.eval()
    assert torch.equal(conv(task.x, task.edge_index), conv(task.x, task.edge_index))
    with pytest.raises(ValueError, match="gat_dropout"):
        ForwardGNNConfig(gat_dropout=1.0)


def test_to_class_links_only_point_into_class_nodes(task):
    vn = _VirtualNodes(task, _virtual_features(task), links="to_class")
    train = torch.nonzero(task.train_mask).view(-1)
    extra = vn.link(train, task.y[train])[:, task.edge_index.shape[1]:]
    assert extra.shape[1] == len(train)
    assert torch.equal(extra[0], train)
    assert torch.equal(extra[1] - task.num_nodes, task.y[train])
    torch.manual_seed(0)
    edges, mask = _holdout_split(task, vn, 0.5)
    assert (edges[0] < task.num_nodes).all()  # no edge leaves a class node
    assert not mask[edges[0][edges[1] >= task.num_nodes]].any()  # held-out nodes stay unlinked
    with pytest.raises(ValueError, match="class_links"):
        ForwardGNNConfig(class_links="from_class")


@pytest.mark.parametrize("conv", ["gcn", "gat"])
def test_to_class_links_keep_labels_out_of_real_node_embeddings(task, conv):
    """With ``to_class`` a real node's output does not depend on the class nodes at all."""
    cfg = ForwardGNNConfig(hidden=(8, 8), class_links="to_class")
    model = get_variant("sf", "node")(task.x.shape[1], task.num_classes, conv, cfg)
    x, edges = model.streams(task)[0]
    model.eval()
    with torch.no_grad():
        h = model.layers[0](x, edges)
        x2 = x.clone()
        x2[task.num_nodes:] = torch.randn_like(x2[task.num_nodes:]) * 10
        h2 = model.layers[0](x2, edges)
    assert torch.allclose(h[:task.num_nodes], h2[:task.num_nodes], atol=1e-6)
    assert not torch.allclose(h[task.num_nodes:], h2[task.num_nodes:])


@pytest.mark.parametrize("variant", ["sf", "sf-topdown", "bp"])
def test_residual_gat_learns_karate(karate, variant):
    r = train_forwardgnn(karate, variant, "gat",
                         config=ForwardGNNConfig(epochs=40, gat_residual=True), seed=0)
    assert r.test >= 0.75  # chance is 0.5 on the two balanced factions


@pytest.mark.parametrize("variant", ["sf", "sf-topdown"])
def test_to_class_links_learn_karate(karate, variant):
    r = train_forwardgnn(karate, variant, "gat",
                         config=ForwardGNNConfig(epochs=40, class_links="to_class"), seed=0)
    assert r.test >= 0.75


def test_class_links_default_per_conv_and_an_explicit_value_wins():
    cfg = ForwardGNNConfig()
    assert {c: cfg.class_links_for(c) for c in CONVS} == CLASS_LINKS_BY_CONV
    assert ForwardGNNConfig(class_links="both").class_links_for("gat") == "both"
    assert ForwardGNNConfig(class_links="to_class").class_links_for("gcn") == "to_class"
    with pytest.raises(ValueError, match="unknown conv"):
        cfg.class_links_for("gin")


def test_gat_residual_can_be_set_per_layer(task):
    cfg = ForwardGNNConfig(hidden=(8, 8), gat_residual=[False, True])
    assert cfg.gat_residual == (False, True)
    model = get_variant("bp", "node")(task.x.shape[1], task.num_classes, "gat", cfg)
    assert [layer.conv.res is not None for layer in model.layers] == [False, True]
    with pytest.raises(ValueError, match="one bool per layer"):
        ForwardGNNConfig(hidden=(8, 8), gat_residual=(True,))
    # other convs ignore the GAT options
    sage = get_variant("sf", "node")(task.x.shape[1], task.num_classes, "sage", cfg)
    assert all(not isinstance(layer.conv, GATConv) for layer in sage.layers)


def test_link_prediction_is_reproducible_for_a_seed():
    """Negative sampling may use Python's ``random``; the seed fixes it too."""
    data = load_dataset("les_miserables")
    cfg = ForwardGNNConfig(hidden=(16,), epochs=5, eval_every=1)
    a = train_forwardgnn(data, "sf", "gcn", "link", cfg, seed=3)
    b = train_forwardgnn(data, "sf", "gcn", "link", cfg, seed=3)
    assert (a.val, a.test) == (b.val, b.test)
