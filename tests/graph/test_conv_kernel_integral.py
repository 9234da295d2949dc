import pytest
import torch

from graph.build import knn, radius
from graph.conv import KernelIntegral

pytestmark = pytest.mark.usefixtures("one_thread")


def _bipartite(n_src=60, n_dst=30, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.rand(n_src, 2, generator=g), torch.rand(n_dst, 2, generator=g)
    pairs = knn(src, dst, k)
    return src, dst, torch.stack([pairs[1], pairs[0]])


def test_shapes_mean_and_softmax():
    src, dst, ei = _bipartite()
    x = torch.randn(60, 5)
    for mode in ("mean", "softmax"):
        layer = KernelIntegral(5, 7, 2, normalize=mode)
        assert layer(x, (src, dst), ei).shape == (30, 7)
    root = KernelIntegral(5, 7, 2, root_weight=True)
    assert root(x, (src, dst), ei, x_dst=torch.randn(30, 5)).shape == (30, 7)


def test_softmax_weights_reproduce_constant_field_exactly():
    src, dst, ei = _bipartite(k=8)
    layer = KernelIntegral(3, 3, 2, normalize="softmax", bias=False)
    with torch.no_grad():
        layer.value.weight.copy_(torch.eye(3))
    c = torch.tensor([0.3, -1.2, 2.0])
    out = layer(c.expand(60, 3), (src, dst), ei)
    torch.testing.assert_close(out, c.expand(30, 3), atol=1e-6, rtol=0)
    w = layer.kernel_weights(src, dst, ei)
    sums = torch.zeros(30, 3).index_add_(0, ei[1], w)
    torch.testing.assert_close(sums, torch.ones(30, 3))


def test_precomputed_weights_match():
    src, dst, ei = _bipartite()
    x = torch.randn(60, 4)
    layer = KernelIntegral(4, 4, 2, normalize="softmax")
    w = layer.kernel_weights(src, dst, ei)
    torch.testing.assert_close(layer(x, (src, dst), ei, weights=w), layer(x, (src, dst), ei))


def test_source_permutation_invariance():
    src, dst, ei = _bipartite()
    x = torch.randn(60, 4)
    layer = KernelIntegral(4, 6, 2)
    perm = torch.randperm(60)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(60)
    ei_p = torch.stack([inv[ei[0]], ei[1]])
    torch.testing.assert_close(layer(x[perm], (src[perm], dst), ei_p), layer(x, (src, dst), ei),
                               atol=1e-5, rtol=1e-5)


def test_fit_smooth_field():
    """A short fit of the kernel sharpens the interpolation of sin(2 pi x) cos(2 pi y)."""
    g = torch.Generator().manual_seed(1)
    src = torch.rand(300, 2, generator=g)
    dst = torch.rand(200, 2, generator=g)

    def field(p):
        return torch.sin(2 * torch.pi * p[:, :1]) * torch.cos(2 * torch.pi * p[:, 1:])

    pairs = radius(src, dst, 0.15)
    ei = torch.stack([pairs[1], pairs[0]])
    layer = KernelIntegral(1, 1, 2, hidden_channels=16, normalize="softmax", scale=0.05, bias=False)
    with torch.no_grad():
        layer.value.weight.fill_(1.0)
    opt = torch.optim.Adam(layer.kernel.parameters(), lr=3e-2)
    errors = []
    for _ in range(60):
        err = ((layer(field(src), (src, dst), ei) - field(dst)) ** 2).mean()
        opt.zero_grad()
        err.backward()
        opt.step()
        errors.append(err.item())
    assert errors[-1] < 0.5 * errors[0]
    assert errors[-1] < 0.01  # the field has variance 0.25


def test_errors():
    src, dst, ei = _bipartite()
    with pytest.raises(ValueError, match="normalize must be"):
        KernelIntegral(2, 2, 2, normalize="max")
    with pytest.raises(ValueError, match="scale must be positive"):
        KernelIntegral(2, 2, 2, scale=0.0)
    layer = KernelIntegral(3, 2, 2, root_weight=True)
    with pytest.raises(ValueError, match=r"x must be \[N, 3\]"):
        layer(torch.randn(60, 2), (src, dst), ei)
    with pytest.raises(ValueError, match="pos_src must be"):
        layer(torch.randn(60, 3), (src[:, :1], dst), ei)
    with pytest.raises(ValueError, match="weights must be"):
        layer(torch.randn(60, 3), (src, dst), ei, weights=torch.ones(3, 2))
    with pytest.raises(ValueError, match="x_dst is required"):
        layer(torch.randn(60, 3), (src, dst), ei)
