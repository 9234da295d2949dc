"""Large graphs: the SBM generator, neighbour sampling, layer-local memory, the memory cap."""

import pytest
import torch

from graph.datasets.synthetic import edge_homophily, homophilous_sbm, mean_degree
from graph.forwardgnn.memcap import GraphMemoryError, require_fit, run_capped
from graph.forwardgnn.scale import LargeGraphConfig, train_large
from graph.sampling import CSRGraph, sample_neighbors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("homophily,degree,classes", [(0.9, 6.0, 4), (0.3, 12.0, 3), (0.0, 8.0, 5)])
def test_generator_matches_the_asked_homophily_and_degree(homophily, degree, classes):
    data = homophilous_sbm(6000, classes, degree, homophily, num_features=8, seed=1)
    assert abs(edge_homophily(data.edge_index, data.y) - homophily) < 0.02
    assert abs(mean_degree(data.edge_index, data.num_nodes) - degree) / degree < 0.02
    ei = data.edge_index
    assert (ei[0] != ei[1]).all(), "no self-loops"
    flipped = set(map(tuple, ei.flip(0).t().tolist()))
    assert flipped == set(map(tuple, ei.t().tolist())), "undirected: listed both ways"
    assert len(flipped) == ei.shape[1], "no repeated pairs"
    counts = torch.bincount(data.y)
    assert counts.max() - counts.min() <= 1, "balanced classes"
    assert not (data.train_mask & data.test_mask).any()


def test_generator_is_seeded_and_checks_its_arguments():
    a, b = homophilous_sbm(500, seed=3), homophilous_sbm(500, seed=3)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert not torch.equal(a.edge_index, homophilous_sbm(500, seed=4).edge_index)
    with pytest.raises(ValueError, match="homophily must be in"):
        homophilous_sbm(500, homophily=1.5)
    with pytest.raises(ValueError, match="num_classes must be"):
        homophilous_sbm(500, num_classes=1)


def test_neighbour_sampling_returns_valid_subgraphs():
    data = homophilous_sbm(3000, 4, 12.0, 0.5, num_features=4, seed=0)
    graph = CSRGraph.from_edge_index(data.edge_index, data.num_nodes)
    edges = set(map(tuple, data.edge_index.t().tolist()))
    seeds = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(0))[:64]
    sub = sample_neighbors(graph, seeds, [5, 3], torch.Generator().manual_seed(1))
    assert torch.equal(sub.nodes[:64], seeds) and sub.num_seeds == 64
    assert torch.unique(sub.nodes).numel() == sub.nodes.numel()
    glob = sub.nodes[sub.edge_index]  # [2, e] global ids
    pairs = list(map(tuple, glob.t().tolist()))
    assert set(pairs) <= edges, "every sampled edge is an edge of the graph"
    assert len(set(pairs)) == len(pairs), "no neighbour sampled twice for one node"
    fan_in = torch.bincount(sub.edge_index[1], minlength=len(sub.nodes))
    want = torch.clamp(graph.degree(seeds), max=5)
    assert torch.equal(fan_in[:64], want), "min(degree, fanout) neighbours per seed"
    assert fan_in.max() <= 5
    full = sample_neighbors(graph, seeds[:4], [-1])
    assert full.edge_index.shape[1] == int(graph.degree(seeds[:4]).sum())
    with pytest.raises(ValueError, match="seeds must be distinct"):
        sample_neighbors(graph, torch.tensor([1, 1]), [2])


def _saved_mb(variant, hidden, data):
    config = LargeGraphConfig(hidden=hidden, epochs=2, eval_every=2)
    return train_large(data, variant, config, seed=0).peak_saved_mb


def test_layer_local_training_holds_one_layers_activations():
    data = homophilous_sbm(4000, 4, 8.0, 0.7, num_features=32, seed=0)
    sf_one, sf_four = _saved_mb("sf", (32,), data), _saved_mb("sf", (32,) * 4, data)
    bp_one, bp_four = _saved_mb("bp", (32,), data), _saved_mb("bp", (32,) * 4, data)
    # Layer-local: depth does not change what autograd holds (one layer at a time).
    assert sf_four <= 1.05 * sf_one
    # Back-propagation holds every layer: four layers keep more than twice one layer's bytes.
    assert bp_four > 2.0 * bp_one
    assert sf_four < 0.5 * bp_four


def test_layer_local_and_backprop_learn_a_homophilous_graph():
    data = homophilous_sbm(3000, 4, 10.0, 0.8, num_features=16, feature_snr=0.2, seed=2)
    config = LargeGraphConfig(hidden=(32, 32), epochs=30)
    for variant in ("sf", "bp", "bp-sampled"):
        r = train_large(data, variant, config, seed=0)
        assert r.test > 0.6, (variant, r.test)  # chance is 0.25


@pytest.mark.slow  # one subprocess that imports torch
def test_a_graph_over_the_memory_cap_fails_with_a_clear_error():
    result = run_capped(dict(num_nodes=20_000, variant="bp", epochs=1), cap_mb=8)
    assert result["fits"] is False and "out of memory" in result["reason"]
    with pytest.raises(GraphMemoryError, match="20000 nodes with variant 'bp' does not fit the "
                                              "memory cap of 8 MB"):
        require_fit(result)
    with pytest.raises(ValueError, match="unknown large-graph variant"):
        run_capped(dict(num_nodes=1000, variant="ff-label"))


def test_directed_connectome_keeps_the_synapse_direction():
    import numpy as np

    from graph.datasets.connectome import load_directed_connectome, synapse_edges
    from graph.datasets.sources import assets_dir

    adj = np.loadtxt(assets_dir() / "drosophila" / "left_adjacency.csv", dtype=np.int64)
    np.fill_diagonal(adj, 0)
    fwd, back = synapse_edges("left", "pre->post"), synapse_edges("left", "post->pre")
    assert fwd.shape[1] == int((adj > 0).sum()) == back.shape[1]
    assert torch.equal(fwd.flip(0), back)
    assert (adj[fwd[0].numpy(), fwd[1].numpy()] > 0).all()
    data = load_directed_connectome("left")
    assert data.directed and torch.equal(data.edge_index, back) and data.y.shape[0] == 209
    with pytest.raises(ValueError, match="edges must be one of"):
        synapse_edges("left", "both")
