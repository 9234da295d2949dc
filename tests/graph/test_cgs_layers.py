"""The CGS message-passing layers, tested the way torch-geometric tests its convs:
shapes, permutation equivariance, reset_parameters, repr; and the reprs of graph.conv."""

import pytest
import torch

from graph.build import knn_graph
from graph.cgs.layers import CGSAttentionConv, EdgeMLPConv, GINBlock
from graph.conv import InteractionNetwork, KernelIntegral

pytestmark = pytest.mark.usefixtures("one_thread")

N, C, D, H = 24, 6, 3, 4


def _graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(N, 2, generator=g)
    edge_index = knn_graph(pos, k=4)  # [2, E]
    return torch.randn(N, C, generator=g), edge_index, torch.randn(edge_index.shape[1], D, generator=g)


def _permuted(x, edge_index, e, seed=1):
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed))  # new node i is old perm[i]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(N)
    return perm, x[perm], inv[edge_index], e


def test_edge_mlp_conv_shapes_and_permutation_equivariance():
    conv = EdgeMLPConv(C, D, hidden=16)
    x, ei, e = _graph()
    out = conv(x, ei, e)
    assert out.shape == (N, C)
    perm, xp, eip, ep = _permuted(x, ei, e)
    torch.testing.assert_close(conv(xp, eip, ep), out[perm])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_gin_block_is_residual_sums_neighbours_and_is_equivariant(batch_norm):
    block = GINBlock(C, batch_norm=batch_norm).eval()
    x, ei, e = _graph()
    out = block(x, ei)
    assert out.shape == (N, C)
    perm, xp, eip, _ = _permuted(x, ei, e)
    torch.testing.assert_close(block(xp, eip), out[perm])
    # the update is relu(norm(MLP((1 + eps) x_i + sum_j x_j))) added to x_i
    with torch.no_grad():
        summed = (1 + block.conv.eps) * x + torch.zeros(N, C).index_add_(0, ei[1], x[ei[0]])
        expected = x + torch.relu(block.norm(block.conv.nn(summed)))
    torch.testing.assert_close(out, expected)


def test_cgs_attention_conv_shapes_substochastic_rows_and_equivariance():
    conv = CGSAttentionConv(C, D, heads=H, hidden=16)
    x, ei, e = _graph()
    a, b = conv(x, ei, e)
    assert a.shape == (ei.shape[1], H) and b.shape == (N, H)
    rows = torch.zeros(N, H).index_add_(0, ei[1], a)  # sum_j A_ij per target and head
    assert bool((a >= 0).all()) and bool((rows <= 1 + 1e-6).all())
    perm, xp, eip, ep = _permuted(x, ei, e)
    ap, bp = conv(xp, eip, ep)
    torch.testing.assert_close(bp, b[perm])
    torch.testing.assert_close(ap, a)  # edges keep their order; only their node labels changed


def test_cgs_attention_conv_keeps_no_state_between_calls():
    conv = CGSAttentionConv(C, D, heads=H, hidden=16)
    x, ei, e = _graph()
    first = conv(x, ei, e)
    conv(*_graph(seed=3))  # another graph in between
    again = conv(x, ei, e)
    torch.testing.assert_close(again, first)
    assert "_alpha" not in vars(conv)  # attention weights are not parked on the module


@pytest.mark.parametrize("make", [lambda: EdgeMLPConv(C, D, hidden=16),
                                  lambda: CGSAttentionConv(C, D, heads=H, hidden=16)])
def test_reset_parameters_draws_new_weights(make):
    conv = make()
    before = [p.detach().clone() for p in conv.parameters()]
    torch.manual_seed(123)
    conv.reset_parameters()
    after = list(conv.parameters())
    assert len(after) == len(before)
    assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.ndim == 2)


@pytest.mark.parametrize("layer, text", [
    (EdgeMLPConv(C, D), "EdgeMLPConv(6, edge_dim=3)"),
    (CGSAttentionConv(C, D, heads=H), "CGSAttentionConv(6, edge_dim=3, heads=4)"),
    (InteractionNetwork(8, edge_channels=4), "InteractionNetwork(8, edge_channels=4)"),
    (KernelIntegral(5, 7, pos_dim=2), "KernelIntegral(5, 7, pos_dim=2, normalize='mean')"),
])
def test_repr(layer, text):
    assert repr(layer) == text
