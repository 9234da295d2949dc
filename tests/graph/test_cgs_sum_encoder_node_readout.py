"""CGS's sum-aggregating encoder and node-wise readout: they see structure without
features, keep the contraction, and keep implicit gradients equal to unrolled ones."""

import pytest
import torch

from graph.build import knn_graph
from graph.cgs import CGS, CGSConfig
from graph.cgs.fixed_point import row_abs_sums, solve_fixed_point
from graph.cgs.layers import EdgeMLPConv

pytestmark = pytest.mark.usefixtures("one_thread")


def circulant(n: int, offsets: tuple[int, ...]) -> torch.Tensor:
    """Undirected regular graph on ``n`` nodes joining ``i`` and ``i + o`` for every offset."""
    src = torch.arange(n).repeat(len(offsets))
    dst = torch.cat([(torch.arange(n) + o) % n for o in offsets])
    return torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)


def featureless_batch():
    """A ring (degree 2) and a degree-6 circulant graph of 12 nodes, constant features."""
    ring, dense = circulant(12, (1,)), circulant(12, (1, 2, 3))
    ei = torch.cat([ring, dense + 12], dim=1)
    x = torch.ones(24, 2)
    e = torch.zeros(ei.shape[1], 1)
    batch = torch.cat([torch.zeros(12), torch.ones(12)]).long()
    return x, ei, e, batch


def config(**kw):
    base = dict(node_dim=2, edge_dim=1, hidden=16, heads=4, enc_layers=2, out_dim=3,
                graph_level=True, tol=1e-6, max_iter=2000)
    base.update(kw)
    return CGSConfig(**base)


def test_sum_aggregation_counts_neighbours_of_featureless_nodes():
    torch.manual_seed(0)
    x, ei, e, _ = featureless_batch()
    mean, total = EdgeMLPConv(2, 1, hidden=8), EdgeMLPConv(2, 1, hidden=8, aggr="sum")
    total.load_state_dict(mean.state_dict())
    with torch.no_grad():
        out_mean, out_sum = mean(x, ei, e), total(x, ei, e)
    # a mean of identical messages is the same at every degree; a sum is not
    torch.testing.assert_close(out_mean[:12], out_mean[12:])
    assert (out_sum[:12] - out_sum[12:]).abs().max() > 1e-3
    torch.testing.assert_close(out_sum[:12], out_sum[:1].expand(12, -1))  # regular: one value
    assert repr(total) == "EdgeMLPConv(2, edge_dim=1, aggr='sum')"
    with pytest.raises(ValueError, match="aggr must be one of"):
        EdgeMLPConv(2, 1, aggr="max")


@pytest.mark.parametrize("readout", ["pool", "node"])
def test_featureless_graphs_of_different_degree_get_different_outputs_only_with_sum(readout):
    x, ei, e, batch = featureless_batch()
    outs = {}
    for aggr in ("mean", "sum"):
        torch.manual_seed(0)
        model = CGS(config(encoder_aggr=aggr, readout=readout, readout_skip=True))
        with torch.no_grad():
            outs[aggr], _ = model(x, ei, e, batch)
    torch.testing.assert_close(outs["mean"][0], outs["mean"][1], atol=1e-6, rtol=0)
    assert (outs["sum"][0] - outs["sum"][1]).abs().max() > 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_sum_encoder_keeps_the_contraction_on_graphs_of_very_different_degree(seed):
    torch.manual_seed(seed)
    model = CGS(config(encoder_aggr="sum", readout="node", gamma_max=0.95)).double()
    for p in model.parameters():  # large weights: summed messages grow with the degree
        p.data.mul_(3.0)
    g = torch.Generator().manual_seed(seed)
    star = torch.stack([torch.zeros(29, dtype=torch.long), torch.arange(1, 30)])
    ring = circulant(30, (1, 5, 9))
    ei = torch.cat([star, star.flip(0), ring], dim=1)  # hub of degree 35, others 7
    x = torch.randn(30, 2, generator=g, dtype=torch.float64)
    e = torch.randn(ei.shape[1], 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        weight, b, gamma = model.transition_map(x, ei, e)
        _, _, _, emb = model._encode(x, ei, e, None)
    assert emb[0].abs().max() > emb[1:].abs().max()  # the hub's embedding is the largest
    assert (row_abs_sums(weight, ei, 30).max(0).values < gamma.view(-1) + 1e-12).all()
    # sigmoid saturates to 1 in floating point, so gamma can reach gamma_max itself;
    # the run-time check (check_contraction, inside every solve) asks for < 1
    assert row_abs_sums(weight, ei, 30).max() <= 0.95 + 1e-12  # softmax rows sum to 1 +- ulp
    h0, i0 = solve_fixed_point(weight, b, ei, tol=1e-11, max_iter=5000)
    h1, i1 = solve_fixed_point(weight, b, ei, tol=1e-11, max_iter=5000,
                               x0=torch.randn_like(b) * 50)
    assert i0.converged and i1.converged
    torch.testing.assert_close(h0, h1, atol=1e-8, rtol=0)


def test_node_readout_gradients_match_unrolling():
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(26, 2, generator=g)
    ei = knn_graph(pts, k=4)
    x = torch.randn(26, 2, generator=g, dtype=torch.float64)
    e = torch.randn(ei.shape[1], 1, generator=g, dtype=torch.float64)
    batch = torch.cat([torch.zeros(12), torch.ones(14)]).long()
    keep = batch[ei[0]] == batch[ei[1]]
    ei, e = ei[:, keep], e[keep]
    y = torch.tensor([0, 2])
    grads = {}
    for gradient in ("implicit", "unrolled"):
        torch.manual_seed(0)
        model = CGS(config(encoder_aggr="sum", readout="node", gamma_max=0.6, tol=1e-12,
                           gradient=gradient, unrolled_iter=80)).double()
        logits, _ = model(x, ei, e, batch)
        torch.nn.functional.cross_entropy(logits, y).backward()
        grads[gradient] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert grads["implicit"].abs().max() > 0
    torch.testing.assert_close(grads["implicit"], grads["unrolled"], atol=1e-9, rtol=1e-6)


def test_node_readout_decodes_every_node_before_pooling():
    torch.manual_seed(0)
    x, ei, e, batch = featureless_batch()
    x = x + torch.randn(24, 2)
    cfg = config(encoder_aggr="sum", readout="node", pool=("sum", "max"))
    model = CGS(cfg)
    assert model.node_decoder[0][0].in_features == cfg.heads + cfg.hidden
    assert len(model.decoder) == 1 and model.decoder[0].in_features == 2 * cfg.hidden
    with torch.no_grad():
        out, _ = model(x, ei, e, batch)
        weight, b, _, emb = model._encode(x, ei, e, batch)
        h, _ = model.solve(weight, b, ei)
        node = model.node_decoder(torch.cat([h, emb], dim=-1))
        first, second = node[:12], node[12:]
        want = model.decoder(torch.stack([torch.cat([first.sum(0), first.max(0).values]),
                                          torch.cat([second.sum(0), second.max(0).values])]))
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    # node-level models keep their per-node decoder
    assert CGS(config(graph_level=False, readout="node")).node_decoder is None


def test_new_options_are_validated():
    with pytest.raises(ValueError, match="encoder_aggr must be one of"):
        config(encoder_aggr="max")
    with pytest.raises(ValueError, match="readout must be one of"):
        config(readout="set2set")
