"""ForwardGNN options: label_holdout, class_features and sage_aggr."""

import pytest
import torch

from graph.datasets import load_dataset
from graph.forwardgnn import ForwardGNNConfig, make_task, train_forwardgnn
from graph.forwardgnn.config import LABEL_HOLDOUT_BY_CONV
from graph.forwardgnn.nodeclass import _holdout_split, _VirtualNodes, _virtual_features

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def task():
    return make_task(load_dataset("karate"), "node")


def _linked_nodes(edges: torch.Tensor, task) -> set[int]:
    """Real nodes with an edge into a class node (index >= N)."""
    into_class = edges[1] >= task.num_nodes
    return set(edges[0, into_class].tolist())


def test_holdout_unlinks_exactly_the_loss_nodes(task):
    vn = _VirtualNodes(task, _virtual_features(task))
    torch.manual_seed(0)
    edges, mask = _holdout_split(task, vn, 0.5)
    train = set(torch.nonzero(task.train_mask).view(-1).tolist())
    held = set(torch.nonzero(mask).view(-1).tolist())
    linked = _linked_nodes(edges, task)
    assert len(held) == round(0.5 * len(train))
    assert held <= train and linked == train - held
    # every link still goes to the node's own class node, in both directions
    extra = edges[:, task.edge_index.shape[1]:]
    src, dst = extra[:, extra[1] >= task.num_nodes]
    assert torch.equal(dst - task.num_nodes, task.y[src])
    assert extra.shape[1] == 2 * len(linked)


def test_no_holdout_links_every_training_node(task):
    vn = _VirtualNodes(task, _virtual_features(task))
    edges, mask = _holdout_split(task, vn, 0.0)
    assert torch.equal(mask, task.train_mask)
    assert _linked_nodes(edges, task) == set(torch.nonzero(task.train_mask).view(-1).tolist())


def test_holdout_is_resampled_each_call(task):
    vn = _VirtualNodes(task, _virtual_features(task))
    torch.manual_seed(1)
    masks = {tuple(_holdout_split(task, vn, 0.5)[1].tolist()) for _ in range(5)}
    assert len(masks) > 1


@pytest.mark.parametrize("variant", ["sf", "sf-topdown"])
def test_karate_learns_with_holdout(variant):
    r = train_forwardgnn(load_dataset("karate"), variant, "gcn",
                         config=ForwardGNNConfig(epochs=60, label_holdout=0.5), seed=0)
    assert r.test >= 0.75  # chance is 0.5 on the two balanced factions


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_label_holdout_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match="label_holdout"):
        ForwardGNNConfig(label_holdout=bad)


def test_default_holdout_is_per_conv_and_an_explicit_value_wins():
    cfg = ForwardGNNConfig()
    assert [cfg.holdout_for(c) for c in ("gcn", "sage", "gat")] == [0.0, 0.5, 0.5]
    assert set(LABEL_HOLDOUT_BY_CONV) == {"gcn", "sage", "gat"}
    assert ForwardGNNConfig(label_holdout=0.25).holdout_for("gcn") == 0.25
    with pytest.raises(ValueError, match="unknown conv"):
        cfg.holdout_for("gin")


@pytest.mark.parametrize("conv, held", [("sage", True), ("gcn", False)])
def test_sf_trains_on_held_out_nodes_by_default_with_sage_only(conv, held):
    data = load_dataset("karate")
    _, model = train_forwardgnn(data, "sf", conv, config=ForwardGNNConfig(epochs=5),
                                seed=0, return_model=True)
    n_train = int(data.train_mask.sum())
    # the last epoch's loss nodes: half of the training nodes with SAGE, all of them with GCN
    assert int(model._loss_mask.sum()) == (round(0.5 * n_train) if held else n_train)
    assert not (model._loss_mask & ~data.train_mask).any()


def test_mean_class_features_are_the_training_class_means(task):
    feats = _virtual_features(task, "mean")
    for c in range(task.num_classes):
        sel = task.train_mask & (task.y == c)
        assert torch.allclose(feats[c], task.x[sel].mean(0))
    with pytest.raises(ValueError, match="class-node features"):
        _virtual_features(task, "zeros")


def test_class_features_default_per_conv_and_reach_the_model():
    cfg = ForwardGNNConfig()
    assert [cfg.class_features_for(c) for c in ("gcn", "sage", "gat")] == ["mean", "random",
                                                                           "random"]
    with pytest.raises(ValueError, match="class_features"):
        ForwardGNNConfig(class_features="zeros")
    data = load_dataset("karate")
    t = make_task(data, "node")
    for conv, variant in [("gcn", "sf"), ("gcn", "sf-topdown"), ("sage", "sf")]:
        _, model = train_forwardgnn(data, variant, conv, config=ForwardGNNConfig(epochs=5),
                                    seed=0, return_model=True)
        class_x = model._vn.x[t.num_nodes:]
        means = _virtual_features(t, "mean")
        assert torch.allclose(class_x, means) == (conv == "gcn")


@pytest.mark.parametrize("aggr", ["max", "sum"])
def test_sage_aggr_reaches_every_layer_and_trains(aggr):
    data = load_dataset("karate")
    for variant in ("sf", "bp"):
        r, model = train_forwardgnn(data, variant, "sage",
                                    config=ForwardGNNConfig(epochs=10, sage_aggr=aggr),
                                    seed=0, return_model=True)
        assert all(str(layer.conv.aggr) == aggr for layer in model.layers)
        assert 0.0 <= r.test <= 1.0
    with pytest.raises(ValueError, match="sage_aggr"):
        ForwardGNNConfig(sage_aggr="median")
