"""Large-graph internals: the CSR adjacency builder and the block-wise layer-local step."""

import copy

import pytest
import torch
import torch.nn.functional as F

from graph.datasets.synthetic import homophilous_sbm
from graph.forwardgnn.scale import (SparseGCNLayer, _class_logits, _forward_blocks,
                                    _layer_local_epoch, normalised_adjacency, row_blocks)

pytestmark = pytest.mark.usefixtures("one_thread")


def _dense_reference(edge_index, n):
    loops = torch.arange(n)
    src, dst = torch.cat([edge_index[0], loops]), torch.cat([edge_index[1], loops])
    inv = torch.bincount(dst, minlength=n).float().pow(-0.5)
    dense = torch.zeros(n, n)
    dense.index_put_((dst, src), inv[dst] * inv[src], accumulate=True)
    return dense


def _valid_csr(adj):
    # raises if the column indices of a row are unsorted or out of range
    torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(), adj.values(), adj.shape,
                            check_invariants=True)


def _graph_with_class_nodes(n=400, seed=0):
    data = homophilous_sbm(n, 4, 8.0, 0.7, num_features=8, seed=seed)
    train = torch.nonzero(data.train_mask).view(-1)
    links = torch.stack([train, n + data.y[train]])
    return data, torch.cat([links, links.flip(0)], 1)


def test_adjacency_matches_the_dense_formula_for_sorted_shuffled_and_extra_edges():
    data, extra = _graph_with_class_nodes()
    n, ei = data.num_nodes, data.edge_index
    adj = normalised_adjacency(ei, n)
    assert adj.crow_indices().dtype == torch.int32 and adj.col_indices().dtype == torch.int32
    assert torch.allclose(adj.to_dense(), _dense_reference(ei, n), atol=1e-6)
    _valid_csr(adj)
    shuffled = ei[:, torch.randperm(ei.shape[1], generator=torch.Generator().manual_seed(1))]
    with_classes = normalised_adjacency(shuffled, n + 4, extra=extra)
    expected = _dense_reference(torch.cat([ei, extra], 1), n + 4)
    assert torch.allclose(with_classes.to_dense(), expected, atol=1e-6)
    _valid_csr(with_classes)  # rows sorted again after the shuffled input
    empty = normalised_adjacency(torch.empty(2, 0, dtype=torch.long), 3)
    assert torch.equal(empty.to_dense(), torch.eye(3))


def test_row_blocks_are_views_that_reassemble_the_matrix():
    data, extra = _graph_with_class_nodes()
    adj = normalised_adjacency(data.edge_index, data.num_nodes + 4, extra=extra)
    blocks = row_blocks(adj, 0, adj.shape[0], 7)
    assert len(blocks) == 7 and blocks[0][0] == 0 and blocks[-1][1] == adj.shape[0]
    stacked = torch.cat([b.to_dense() for _, _, b in blocks])
    assert torch.equal(stacked, adj.to_dense())
    assert blocks[1][2].col_indices().data_ptr() >= adj.col_indices().data_ptr()  # no copy


def test_block_wise_layer_local_step_equals_the_full_batch_step():
    data, extra = _graph_with_class_nodes(n=500, seed=3)
    n, c = data.num_nodes, 4
    adj = normalised_adjacency(data.edge_index, n + c, extra=extra)
    h = torch.randn(n + c, 8)
    torch.manual_seed(0)
    layer = SparseGCNLayer(8, 16, lr=0.01, weight_decay=5e-4)
    reference = copy.deepcopy(layer)
    reference.optimizer = torch.optim.Adam(reference.parameters(), lr=0.01, weight_decay=5e-4)
    train, y = data.train_mask, data.y
    # reference: autograd through the whole layer, mean cross-entropy over training nodes
    logits = _class_logits(reference(h, adj), n, 0.5)[train]
    loss_ref = reference.step(F.cross_entropy(logits, y[train]))
    node_blocks = row_blocks(adj, 0, n, 5)
    class_block = row_blocks(adj, n, n + c, 1)[0][2]
    loss = _layer_local_epoch(layer, h, node_blocks, class_block, train, y,
                              int(train.sum()), 0.5)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    for p, q in zip(layer.parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    # the block-wise no-grad forward is the layer's forward
    out = _forward_blocks(layer, h, node_blocks + [(n, n + c, class_block)])
    with torch.no_grad():
        assert torch.allclose(out, layer(h, adj), atol=1e-6)
