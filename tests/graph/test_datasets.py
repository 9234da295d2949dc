"""Bundled graphs: sizes and labels checked against their sources, splits, features, errors."""

import pytest
import torch

from graph.datasets import (
    available_datasets,
    available_graph_classification,
    dataset_info,
    load_dataset,
    load_graph_classification,
    sample_non_edges,
    split_edges,
    stratified_masks,
    structural_features,
)
from graph.datasets.splits import undirected_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

# (nodes, undirected edges, label counts by class name) as published by the sources:
# networkx karate_club_graph (34 members, 78 ties, 17/17 after the split), graspologic's
# Drosophila CSVs (209/213 neurons; 5559/5625 connected pairs after symmetrising),
# networkx les_miserables_graph (77, 254), pygsp Minnesota (2642 nodes; pygsp's
# connected version has 3304 edges because it adds one).
EXPECTED = {
    "karate": (34, 78, {"Mr. Hi": 17, "Officer": 17}),
    "drosophila_left": (209, 5559, {"I": 21, "K": 101, "O": 29, "P": 58}),
    "drosophila_right": (213, 5625, {"I": 21, "K": 100, "O": 29, "P": 63}),
    "les_miserables": (77, 254, None),
    "minnesota": (2642, 3303, None),
}


def test_available_datasets_lists_every_set():
    assert available_datasets() == sorted(EXPECTED)
    assert available_graph_classification() == ["mice"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sizes_and_labels_match_sources(name):
    nodes, edges, counts = EXPECTED[name]
    data = load_dataset(name)
    assert data.num_nodes == nodes and data.x.shape[0] == nodes
    assert undirected_pairs(data.edge_index).shape[1] == edges
    assert data.edge_index.shape[1] == 2 * edges  # both directions, no self-loops
    assert (data.edge_index[0] != data.edge_index[1]).all()
    assert torch.isfinite(data.x).all()
    if counts is None:
        assert "y" not in data and data.tasks == ("link",)
        return
    got = {data.class_names[c]: int(n) for c, n in enumerate(torch.bincount(data.y))}
    assert got == counts
    assert data.num_classes == len(counts)


def test_karate_labels_are_the_clubs():
    data = load_dataset("karate")
    # Mr. Hi is member 0 and the officer (John A.) member 33 in Zachary's numbering.
    assert data.class_names[int(data.y[0])] == "Mr. Hi"
    assert data.class_names[int(data.y[33])] == "Officer"


def test_masks_partition_are_stratified_and_seeded():
    data = load_dataset("drosophila_left")
    masks = torch.stack([data.train_mask, data.val_mask, data.test_mask])
    assert (masks.sum(0) == 1).all()
    for c in range(data.num_classes):
        in_class = data.y == c
        assert all((m & in_class).any() for m in masks)
    again = load_dataset("drosophila_left")
    assert torch.equal(again.train_mask, data.train_mask)
    other = load_dataset("drosophila_left", split_seed=1)
    assert not torch.equal(other.train_mask, data.train_mask)


def test_mice_graph_classification():
    graphs = load_graph_classification("mice")
    assert len(graphs) == 32
    labels = torch.cat([g.y for g in graphs])
    assert torch.bincount(labels).tolist() == [8, 8, 8, 8]
    assert graphs[0].genotypes == ["B6", "BTBR", "CAST", "DBA2"]
    for g in graphs[:3]:
        assert g.num_nodes == 332 and g.x.shape == (332, 15)
        assert torch.isfinite(g.x).all()
        assert (g.edge_weight > 0).all() and g.edge_weight.max() == 1.0
        pairs = undirected_pairs(g.edge_index)
        assert g.edge_index.shape[1] == 2 * pairs.shape[1]


def test_structural_features_are_deterministic_with_orthonormal_eigenvectors():
    data = load_dataset("karate")
    f1 = structural_features(data.edge_index, data.num_nodes)
    f2 = structural_features(data.edge_index, data.num_nodes)
    assert torch.equal(f1, f2) and f1.shape == (34, 16)
    assert torch.allclose(f1[:, :8].sum(1), torch.ones(34))  # one-hot degree bucket
    eig = f1[:, 8:].double()
    assert torch.allclose(eig.t() @ eig, torch.eye(8, dtype=torch.float64), atol=1e-5)


def test_structural_features_handle_isolated_and_tiny_graphs():
    ei = torch.tensor([[0, 1], [1, 0]])
    f = structural_features(ei, 4)  # nodes 2 and 3 isolated
    assert f.shape == (4, 16) and torch.isfinite(f).all()
    assert structural_features(torch.empty(2, 0, dtype=torch.long), 1).shape == (1, 16)


def test_split_edges_is_disjoint_and_negatives_are_non_edges():
    data = load_dataset("les_miserables")
    s = split_edges(data.edge_index, data.num_nodes, seed=3)
    key = lambda p: set((p[0] * 1000 + p[1]).tolist())  # noqa: E731
    all_edges = key(undirected_pairs(data.edge_index))
    tr, va, te = key(s.train_pos), key(s.val_pos), key(s.test_pos)
    assert tr | va | te == all_edges and not (tr & va) and not (tr & te) and not (va & te)
    assert not (key(s.val_neg) | key(s.test_neg)) & all_edges
    assert s.val_neg.shape == s.val_pos.shape and s.test_neg.shape == s.test_pos.shape
    assert s.train_edge_index.shape[1] == 2 * s.train_pos.shape[1]


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match=r"unknown dataset 'cora'; choose one of \['drosophila_left'"):
        load_dataset("cora")
    with pytest.raises(TypeError, match="name must be a str"):
        dataset_info(3)
    with pytest.raises(TypeError, match="split_seed must be an int"):
        load_dataset("karate", split_seed="0")
    with pytest.raises(ValueError, match=r"unknown graph classification set 'enzymes'.*mice"):
        load_graph_classification("enzymes")
    with pytest.raises(TypeError, match="name must be a str"):
        load_graph_classification(None)


def test_missing_assets_raise_file_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("SPLATOPS_GRAPH_ASSETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run scripts/extract_graph_assets.py"):
        load_dataset("drosophila_left")


def test_split_and_sampler_errors():
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="enough edges to split"):
        split_edges(ei, 3)
    with pytest.raises(ValueError, match="val and test must be fractions"):
        split_edges(ei, 3, val=0.6, test=0.5)
    with pytest.raises(ValueError, match="non-edges wanted but the graph has only 2"):
        sample_non_edges(3, ei, 5)
    with pytest.raises(ValueError, match="train and val must be fractions"):
        stratified_masks(torch.zeros(5, dtype=torch.long), train=1.2)
    with pytest.raises(ValueError, match="num_buckets must be >= 1"):
        structural_features(ei, 2, num_buckets=0)
    with pytest.raises(ValueError, match="k must be >= 0"):
        structural_features(ei, 2, num_eigenvectors=-1)


def test_sample_non_edges_avoids_edges():
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    neg = sample_non_edges(4, ei, 4, torch.Generator().manual_seed(0))
    got = set(map(tuple, neg.t().tolist()))
    assert got == {(0, 2), (0, 3), (1, 3), (2, 3)}


def test_task_loader_gives_connectome_node_classification_the_post_to_pre_edges():
    from graph.datasets import load_task_dataset
    from graph.datasets.connectome import synapse_edges

    node = load_task_dataset("drosophila_left", "node")
    link = load_task_dataset("drosophila_left", "link")
    plain = load_dataset("drosophila_left")
    assert torch.equal(node.edge_index, synapse_edges("left", "post->pre"))
    assert node.directed and node.edge_weight is None
    # same nodes, features, labels and split as the symmetrised loader
    for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(node[key], plain[key])
    assert torch.equal(link.edge_index, plain.edge_index)
    assert torch.equal(load_task_dataset("karate", "node").edge_index,
                       load_dataset("karate").edge_index)
    with pytest.raises(ValueError, match="task must be 'node' or 'link'"):
        load_task_dataset("karate", "graph")
