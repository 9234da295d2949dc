"""Graph building against brute-force distance computations."""

import pytest
import torch

from graph.build import fps, knn, knn_graph, radius, radius_graph


def _brute_radius_pairs(x, r, loop=False):
    d = torch.cdist(x, x)
    src, dst = torch.nonzero(d <= r, as_tuple=True)
    pairs = {(int(s), int(t)) for s, t in zip(src, dst) if loop or s != t}
    return pairs


def test_radius_graph_matches_brute_force():
    x = torch.rand(300, 3)
    e = radius_graph(x, r=0.2)
    got = {(int(s), int(t)) for s, t in e.t()}
    assert got == _brute_radius_pairs(x, 0.2)
    # sorted by target, as torch-geometric returns
    assert torch.all(e[1][1:] >= e[1][:-1])


def test_radius_graph_loops_and_batches_do_not_cross():
    x = torch.rand(100, 2)
    batch = torch.arange(100) % 2
    e = radius_graph(x, r=0.3, batch=batch, loop=True)
    assert torch.all(batch[e[0]] == batch[e[1]])
    assert ((e[0] == e[1]).sum() == 100)


def test_radius_graph_max_num_neighbors_keeps_nearest():
    x = torch.rand(200, 2)
    e = radius_graph(x, r=0.5, max_num_neighbors=4)
    deg = torch.bincount(e[1], minlength=200)
    assert deg.max() <= 4
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    for t in range(0, 200, 37):
        sources = e[0][e[1] == t]
        expected = torch.topk(d[t], k=4, largest=False).indices
        expected = expected[d[t, expected] <= 0.5]
        assert set(sources.tolist()) == set(expected.tolist())


def test_knn_graph_has_k_nearest_incoming_edges():
    x = torch.rand(150, 3)
    e = knn_graph(x, k=5)
    assert e.shape == (2, 150 * 5)
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    for t in (0, 77, 149):
        expected = set(torch.topk(d[t], 5, largest=False).indices.tolist())
        assert set(e[0][e[1] == t].tolist()) == expected


def test_bipartite_radius_and_knn():
    x, y = torch.rand(80, 2), torch.rand(20, 2)
    pairs = radius(x, y, 0.25)
    d = torch.cdist(y, x)
    assert {(int(a), int(b)) for a, b in pairs.t()} == {
        (int(a), int(b)) for a, b in torch.nonzero(d <= 0.25)
    }
    nn = knn(x, y, 3)
    assert nn.shape == (2, 60)
    assert torch.equal(nn[1].view(20, 3)[:, 0], d.argmin(1))


def test_fps_spreads_points_and_is_deterministic():
    torch.manual_seed(0)
    x = torch.rand(2000, 2)
    g = torch.Generator().manual_seed(3)
    idx = fps(x, ratio=0.02, generator=g)
    assert idx.shape == (40,) and len(set(idx.tolist())) == 40
    # Farthest-point samples cover the square better than random ones.
    cover_fps = torch.cdist(x, x[idx]).min(1).values.max()
    rand = torch.randperm(2000, generator=torch.Generator().manual_seed(0))[:40]
    cover_rand = torch.cdist(x, x[rand]).min(1).values.max()
    assert cover_fps < cover_rand
    assert torch.equal(idx, fps(x, ratio=0.02, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: radius_graph(torch.rand(5), 0.1), r"x must be \[N, D\]"),
        (lambda: radius_graph(torch.rand(5, 2), -1.0), "r must be positive"),
        (lambda: radius_graph(torch.tensor([[float("nan"), 0.0]]), 0.1), "NaN"),
        (lambda: knn_graph(torch.rand(5, 2), 0), "k must be >= 1"),
        (lambda: fps(torch.rand(5, 2), ratio=0.0), "ratio must be in"),
        (lambda: radius_graph([[0.0, 0.0]], 0.1), "must be a torch.Tensor"),
        (lambda: radius_graph(torch.rand(5, 2), 0.1, batch=torch.zeros(4)), r"batch must be \[5\]"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_empty_input_gives_empty_graph():
    e = radius_graph(torch.zeros(0, 3), 0.1)
    assert e.shape == (2, 0) and e.dtype == torch.long
