"""ForwardGNN: gradient isolation between layers, learning on real graphs, bad inputs."""

import pytest
import torch
from torch_geometric.data import Data

from graph.datasets import load_dataset
from graph.forwardgnn import (
    ForwardGNNConfig,
    ForwardLayer,
    accuracy,
    available_variants,
    get_variant,
    l2_normalise,
    make_conv,
    make_task,
    roc_auc,
    run_forwardgnn,
    track_memory,
    train_forwardgnn,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FORWARD_NODE = ["ff-label", "ff-vn", "sf", "sf-topdown"]


@pytest.fixture(scope="module")
def karate():
    return load_dataset("karate")


def _instrument(model):
    """Record, for every layer step, which layers hold a gradient and whether inputs were detached."""
    steps, inputs = [], []
    for i, layer in enumerate(model.layers):
        layer.register_forward_pre_hook(
            lambda mod, args, i=i: inputs.append((i, args[0].grad_fn is None)) if mod.training else None)
        original = layer.step

        def step(loss, i=i, original=original):
            for p in model.parameters():
                p.grad = None
            out = original(loss)
            with_grad = [j for j, other in enumerate(model.layers)
                         if any(p.grad is not None and p.grad.abs().sum() > 0
                                for p in other.parameters())]
            steps.append((i, with_grad))
            return out

        layer.step = step
    return steps, inputs


@pytest.mark.parametrize("variant", FORWARD_NODE)
def test_each_layer_gets_gradient_only_from_its_own_loss(karate, variant):
    task = make_task(karate, "node")
    cfg = ForwardGNNConfig(hidden=(16, 16, 16), epochs=3, eval_every=3)
    model = get_variant(variant, "node")(task.x.shape[1], task.num_classes, "gcn", cfg)
    steps, inputs = _instrument(model)
    model.fit(task)
    assert {i for i, _ in steps} == {0, 1, 2}
    for i, with_grad in steps:
        assert with_grad == [i], f"layer {i}'s loss reached layers {with_grad}"
    assert inputs and all(detached for _, detached in inputs)


@pytest.mark.parametrize("variant", ["sf", "sf-topdown"])
def test_link_layers_are_isolated(variant):
    task = make_task(load_dataset("les_miserables"), "link")
    cfg = ForwardGNNConfig(hidden=(16, 16), epochs=2, eval_every=2)
    model = get_variant(variant, "link")(task.x.shape[1], 0, "sage", cfg)
    steps, inputs = _instrument(model)
    model.fit(task)
    assert steps and all(with_grad == [i] for i, with_grad in steps)
    assert all(detached for _, detached in inputs)


def test_backprop_reaches_every_layer(karate):
    # Control for the isolation check: end-to-end training does send gradient to layer 0.
    task = make_task(karate, "node")
    model = get_variant("bp", "node")(task.x.shape[1], 2, "gcn", ForwardGNNConfig(epochs=1))
    loss = torch.nn.functional.cross_entropy(model.head(model.embed(task.x, task.edge_index)),
                                             task.y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("variant", FORWARD_NODE + ["bp"])
def test_karate_accuracy_well_above_chance(karate, variant):
    r = train_forwardgnn(karate, variant, "gcn", config=ForwardGNNConfig(epochs=60), seed=0)
    assert r.metric == "accuracy"
    assert r.test >= 0.75 and r.val >= 0.66, (r.val, r.test)  # chance is 0.5


def test_drosophila_single_forward_beats_majority_class():
    data = load_dataset("drosophila_left")
    majority = float(torch.bincount(data.y[data.test_mask]).max()) / int(data.test_mask.sum())
    r = train_forwardgnn(data, "sf", "gcn", config=ForwardGNNConfig(epochs=60), seed=0)
    assert r.test > majority + 0.2, (r.test, majority)


@pytest.mark.parametrize("variant", ["sf", "sf-topdown", "bp"])
def test_link_prediction_auc_above_chance(variant):
    r = train_forwardgnn(load_dataset("les_miserables"), variant, "gcn", task="link",
                         config=ForwardGNNConfig(epochs=40), seed=0)
    assert r.metric == "roc_auc" and r.test > 0.75, r.test


def test_forward_learning_holds_fewer_activations_than_backprop():
    data = load_dataset("drosophila_left")
    cfg = ForwardGNNConfig(epochs=2, hidden=(64, 64, 64))
    bp = train_forwardgnn(data, "bp", "gcn", config=cfg)
    sf = train_forwardgnn(data, "sf", "gcn", config=cfg)
    assert sf.peak_saved_mb < 0.6 * bp.peak_saved_mb, (sf.peak_saved_mb, bp.peak_saved_mb)


def test_track_memory_counts_saved_tensors_once():
    x = torch.ones(1000, requires_grad=True)
    with track_memory() as mem:
        (x * x).sum().backward()  # saves x twice: one storage of 4000 bytes
    assert mem.saved_mb == pytest.approx(4000 / 2**20)


def test_run_forwardgnn_summarises_seeds():
    s = run_forwardgnn("karate", "sf", "sage", seeds=2, config=ForwardGNNConfig(epochs=10))
    assert s["seeds"] == 2 and len(s["runs"]) == 2
    tests = [r["test"] for r in s["runs"]]
    assert s["mean"] == pytest.approx(sum(tests) / 2)


def test_graph_without_edges_gives_a_defined_result(karate):
    data = karate.clone()
    data.edge_index = torch.empty(2, 0, dtype=torch.long)
    for variant in ("sf", "ff-label"):
        for conv in ("gcn", "sage", "gat"):
            r = train_forwardgnn(data, variant, conv, config=ForwardGNNConfig(epochs=5))
            assert 0.0 <= r.test <= 1.0
    with pytest.raises(ValueError, match="enough edges to split for link prediction, got 0"):
        train_forwardgnn(data, "sf", "gcn", task="link")


def test_isolated_nodes_and_zero_features_stay_finite(karate):
    data = karate.clone()
    keep = (data.edge_index < 30).all(0)  # nodes 30..33 lose all their edges
    data.edge_index = data.edge_index[:, keep]
    data.x[0] = 0.0
    for conv in ("gcn", "sage", "gat"):
        r, model = train_forwardgnn(data, "sf", conv, config=ForwardGNNConfig(epochs=5),
                                    return_model=True)
        probs = model.class_scores(make_task(data, "node"))
        assert torch.isfinite(probs).all() and 0.0 <= r.test <= 1.0
    assert torch.equal(l2_normalise(torch.zeros(2, 3)), torch.zeros(2, 3))


def test_nan_features_are_rejected(karate):
    data = karate.clone()
    data.x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="data.x contains NaN or Inf"):
        train_forwardgnn(data, "sf", "gcn")
    with pytest.raises(ValueError, match="data.x contains NaN or Inf"):
        train_forwardgnn(data, "bp", "gcn", task="link")


def test_bad_arguments(karate):
    with pytest.raises(ValueError, match=r"unknown variant 'ff'; choose one of \['bp', 'ff-label'"):
        get_variant("ff")
    with pytest.raises(TypeError, match="variant must be a str"):
        get_variant(None)
    with pytest.raises(ValueError, match="variant 'ff-vn' does not support task 'link'"):
        train_forwardgnn(karate, "ff-vn", "gcn", task="link")
    with pytest.raises(ValueError, match=r"unknown conv 'gin'; choose one of \['gcn', 'sage', 'gat'\]"):
        train_forwardgnn(karate, "sf", "gin")
    with pytest.raises(ValueError, match=r"unknown conv 'gin'"):
        make_conv("gin", 3, 4)
    with pytest.raises(ValueError, match="unknown task 'graph'"):
        make_task(karate, "graph")
    with pytest.raises(TypeError, match="data must be a torch_geometric.data.Data, got dict"):
        train_forwardgnn({}, "sf", "gcn")
    with pytest.raises(TypeError, match="config must be a ForwardGNNConfig, got dict"):
        train_forwardgnn(karate, "sf", "gcn", config={})
    with pytest.raises(TypeError, match="seed must be an int"):
        train_forwardgnn(karate, "sf", "gcn", seed=0.5)
    with pytest.raises(ValueError, match="hidden widths must be equal"):
        train_forwardgnn(karate, "sf-topdown", "gcn", config=ForwardGNNConfig(hidden=(8, 4)))
    with pytest.raises(ValueError, match="hidden must be a non-empty sequence of positive ints"):
        ForwardGNNConfig(hidden=())
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        ForwardGNNConfig(epochs=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        ForwardGNNConfig(lr=0.0)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        ForwardGNNConfig(weight_decay=-1.0)
    with pytest.raises(ValueError, match="seeds must be a positive int"):
        run_forwardgnn("karate", seeds=0)
    with pytest.raises(ValueError, match=r"dataset 'minnesota' supports tasks \['link'\], got 'node'"):
        run_forwardgnn("minnesota", "sf", task="node")


def test_bad_node_inputs(karate):
    no_y = Data(x=karate.x, edge_index=karate.edge_index)
    with pytest.raises(ValueError, match=r"node classification needs data.y of shape \[34\]"):
        make_task(no_y, "node")
    data = karate.clone()
    data.train_mask = torch.zeros(34, dtype=torch.bool)
    with pytest.raises(ValueError, match="non-empty boolean data.train_mask"):
        make_task(data, "node")
    data = karate.clone()
    data.y = torch.zeros(34, dtype=torch.long)
    data.num_classes = 1
    with pytest.raises(ValueError, match="num_classes >= 2"):
        make_task(data, "node")
    bad = Data(x=karate.x, edge_index=torch.tensor([[0], [40]]))
    with pytest.raises(ValueError, match=r"data.edge_index must index nodes in \[0, 34\)"):
        make_task(bad, "node")
    bad = Data(x=karate.x, edge_index=torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"data.edge_index must be a long \[2, E\] tensor"):
        make_task(bad, "node")
    bad = Data(x=torch.zeros(34, dtype=torch.long), edge_index=karate.edge_index)
    with pytest.raises(ValueError, match=r"data.x must be a float \[N, F\] tensor"):
        make_task(bad, "node")
    bad = Data(x=torch.zeros(34, 0), edge_index=karate.edge_index)
    with pytest.raises(ValueError, match="data.x must have nodes and features"):
        make_task(bad, "node")


def test_metrics():
    assert roc_auc(torch.tensor([0.9, 0.8]), torch.tensor([0.1, 0.8])) == pytest.approx(0.875)
    assert accuracy(torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="roc_auc needs positives and negatives, got 0 and 1"):
        roc_auc(torch.tensor([]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="roc_auc got NaN or Inf scores"):
        roc_auc(torch.tensor([float("nan")]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="accuracy needs at least one labelled node"):
        accuracy(torch.tensor([]), torch.tensor([]))
    with pytest.raises(ValueError, match="part must be 'train', 'val' or 'test'"):
        model = get_variant("sf", "node")(16, 2, "gcn", ForwardGNNConfig(epochs=1))
        model.score(make_task(load_dataset("karate"), "node"), "dev")


def test_available_variants_by_task():
    assert available_variants() == ["bp", "ff-label", "ff-vn", "sf", "sf-topdown"]
    assert available_variants("link") == ["bp", "sf", "sf-topdown"]



def test_forward_layer_maps_widths_and_steps_only_its_own_parameters():
    layer = ForwardLayer("sage", 4, 8, lr=0.1)
    x = torch.randn(6, 4)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    out = layer(x, edge_index)
    assert out.shape == (6, 8) and bool((out >= 0).all())  # relu output
    before = [p.detach().clone() for p in layer.parameters()]
    layer.step((out - 1.0).pow(2).mean())
    assert all(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    assert layer(x, edge_index).sub(1.0).pow(2).mean() < (out - 1.0).pow(2).mean()
