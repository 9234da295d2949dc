import pytest
import torch

from graph.build import radius_graph
from graph.conv import InteractionNetwork

pytestmark = pytest.mark.usefixtures("one_thread")


def _graph(n=40, c=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g)
    ei = radius_graph(pos, 0.3)
    return torch.randn(n, c, generator=g), ei, torch.randn(ei.shape[1], c, generator=g)


def test_shapes_and_residual():
    x, ei, e = _graph()
    layer = InteractionNetwork(16)
    x2, e2 = layer(x, ei, e)
    assert x2.shape == x.shape and e2.shape == e.shape
    # a node without neighbours only changes through its node MLP on a zero sum
    lonely = torch.zeros(1, 16)
    out, _ = layer(torch.cat([x, lonely]), ei, e)
    expected = lonely + layer.node_mlp(torch.cat([lonely, torch.zeros(1, 16)], -1))
    torch.testing.assert_close(out[-1:], expected)


def test_permutation_equivariance():
    x, ei, e = _graph()
    layer = InteractionNetwork(16, num_layers=1)
    perm = torch.randperm(x.shape[0])
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    x_p = x[perm]
    ei_p = inv[ei]
    eperm = torch.randperm(ei.shape[1])
    out, eout = layer(x, ei, e)
    out_p, eout_p = layer(x_p, ei_p[:, eperm], e[eperm])
    torch.testing.assert_close(out_p, out[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eout_p, eout[eperm], atol=1e-5, rtol=1e-5)


def test_reset_parameters_reinitialises():
    layer = InteractionNetwork(8)
    before = layer.edge_mlp[0].weight.clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.edge_mlp[0].weight)


def test_errors():
    x, ei, e = _graph()
    layer = InteractionNetwork(16)
    with pytest.raises(ValueError, match=r"x must be \[N, 16\]"):
        layer(x[:, :8], ei, e)
    with pytest.raises(ValueError, match="edge_attr must be"):
        layer(x, ei, e[:-1])
    with pytest.raises(ValueError, match="channels must be >= 1"):
        InteractionNetwork(0)
