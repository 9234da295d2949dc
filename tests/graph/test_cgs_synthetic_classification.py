"""Synthetic graph-classification sets: seeded, balanced, and the label is what defines it."""

import networkx as nx
import numpy as np
import pytest
import torch

from graph.cgs.tasks.classification import classification_sets, load_classification_set
from graph.cgs.tasks.synthetic_classification import (DISTANCE_CLASSES, SBM_COMMUNITIES,
                                                      SYNTHETIC_SETS,
                                                      make_synthetic_classification)


def _nx(g) -> nx.Graph:
    h = nx.Graph()
    h.add_nodes_from(range(g.num_nodes))
    h.add_edges_from(g.edge_index.t().tolist())
    return h


@pytest.mark.parametrize("name", SYNTHETIC_SETS)
def test_sets_are_seeded_balanced_and_well_formed(name):
    a, classes = make_synthetic_classification(name, 24, seed=3)
    b, _ = make_synthetic_classification(name, 24, seed=3)
    c, _ = make_synthetic_classification(name, 24, seed=4)
    assert all(torch.equal(x.edge_index, y.edge_index) and torch.equal(x.x, y.x)
               for x, y in zip(a, b))
    assert any(x.num_nodes != y.num_nodes or not torch.equal(x.edge_index, y.edge_index)
               for x, y in zip(a, c))
    assert np.bincount([int(g.y) for g in a]).tolist() == [24 // classes] * classes
    for g in a:
        e = g.edge_index
        assert e.shape[0] == 2 and int(e.max()) < g.num_nodes
        assert not bool((e[0] == e[1]).any())  # no self-loops
        pairs = set(map(tuple, e.t().tolist()))
        assert all((j, i) in pairs for i, j in pairs)  # undirected, both directions listed
        assert len(pairs) == e.shape[1]  # no repeated edge
        assert g.edge_attr.shape == (e.shape[1], 1) and g.x.shape == (g.num_nodes, 2)


def test_marked_distance_label_is_the_hop_distance_between_the_two_marks():
    graphs, _ = make_synthetic_classification("marked_distance", 40, seed=1)
    for g in graphs:
        h = _nx(g)
        assert nx.is_connected(h)
        marked = torch.nonzero(g.x[:, 0]).view(-1).tolist()
        assert marked == sorted(g.marks.tolist()) and len(marked) == 2
        d = nx.shortest_path_length(h, *marked)
        lo, hi = DISTANCE_CLASSES[int(g.y)]
        assert d == g.distance and lo <= d <= hi
    # the two classes share the node-count range (the label is not the size)
    sizes = [[g.num_nodes for g in graphs if int(g.y) == c] for c in (0, 1)]
    assert min(sizes[1]) < max(sizes[0]) and min(sizes[0]) < max(sizes[1])


def test_sbm_label_is_the_community_count_at_equal_degree():
    graphs, classes = make_synthetic_classification("sbm_communities", 90, seed=2)
    assert classes == len(SBM_COMMUNITIES)
    degree = {c: [] for c in range(classes)}
    for g in graphs:
        k = SBM_COMMUNITIES[int(g.y)]
        assert g.communities == k and sorted(set(g.block.tolist())) == list(range(k))
        assert torch.all(g.x == 1)  # nothing but the structure tells the classes apart
        src, dst = g.edge_index
        within = float((g.block[src] == g.block[dst]).float().mean())
        assert within > 0.6  # most edges stay inside a community
        degree[int(g.y)].append(g.edge_index.shape[1] / g.num_nodes)
    means = [float(np.mean(v)) for v in degree.values()]
    assert max(means) - min(means) < 1.0, means  # about 6 in every class


def test_degree_variant_is_the_same_graphs_with_degree_features():
    plain, _ = make_synthetic_classification("sbm_communities", 6, seed=4)
    with_degree, _ = make_synthetic_classification("sbm_communities_degree", 6, seed=4)
    for a, b in zip(plain, with_degree):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.y, b.y)
        degree = torch.bincount(b.edge_index[0], minlength=b.num_nodes).float()
        assert torch.allclose(b.x[:, 1] * 6.0, degree) and torch.all(b.x[:, 0] == 1)


def test_loader_serves_synthetic_sets_and_rejects_bad_arguments():
    assert set(SYNTHETIC_SETS) <= set(classification_sets()) and "mice" in classification_sets()
    graphs, classes = load_classification_set("sbm_communities", count=6, seed=0)
    assert len(graphs) == 6 and classes == 3
    with pytest.raises(ValueError, match="multiple of 2"):
        make_synthetic_classification("marked_distance", 5)
    with pytest.raises(ValueError, match="unknown synthetic set"):
        make_synthetic_classification("cycles")


def test_only_the_sum_encoder_tells_featureless_sbm_graphs_apart():
    """Mean aggregation and softmax attention give every node of a featureless graph
    without isolated nodes the same embedding, so a mean-encoder CGS predicts one output
    for all; the sum-aggregating encoder (the classification default) sees degrees."""
    from dataclasses import replace

    from graph.cgs.experiments import ClassificationExperiment
    from graph.cgs.model import CGS
    from graph.cgs.compare import GIN
    from graph.cgs.training import predict

    graphs, classes = make_synthetic_classification("sbm_communities", 9, seed=5)
    graphs = [g for g in graphs if len(set(g.edge_index[1].tolist())) == g.num_nodes]
    assert len({int(g.y) for g in graphs}) >= 2
    cfg = replace(ClassificationExperiment().model, node_dim=2, out_dim=classes)
    assert cfg.encoder_aggr == "sum"
    outs = {}
    for aggr in ("mean", "sum"):
        torch.manual_seed(0)
        cgs = CGS(replace(cfg, encoder_aggr=aggr))
        outs[aggr] = torch.cat([predict(cgs, g)[0] for g in graphs])
    gin = GIN(2, classes, 16)
    gin_out = torch.cat([predict(gin, g)[0] for g in graphs])
    same = outs["mean"]
    assert torch.allclose(same, same[:1].expand_as(same), atol=1e-4)
    for out in (outs["sum"], gin_out):  # sum aggregation
        assert not torch.allclose(out, out[:1].expand_as(out), atol=1e-6)
