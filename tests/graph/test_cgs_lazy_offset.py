"""CGS's lazy offset: ``H = gamma A H + (1 - gamma) b``."""

import pytest
import torch

from graph.cgs.model import CGS, CGSConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _graphs():
    # two graphs: a 4-cycle and a path of 3
    ei = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 0, 4, 5, 5, 6],
                       [1, 0, 2, 1, 3, 2, 0, 3, 5, 4, 6, 5]])
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    return torch.randn(7, 3), ei, torch.rand(12, 1), batch


def _pair(**kw):
    torch.manual_seed(0)
    plain = CGS(CGSConfig(node_dim=3, edge_dim=1, hidden=8, heads=4, **kw))
    lazy = CGS(CGSConfig(node_dim=3, edge_dim=1, hidden=8, heads=4, offset="lazy", **kw))
    lazy.load_state_dict(plain.state_dict())
    return plain, lazy


def test_lazy_offset_scales_the_plain_offset_by_one_minus_gamma_per_graph_and_head():
    plain, lazy = _pair()
    x, ei, ea, batch = _graphs()
    w_plain, b_plain, gamma = plain.transition_map(x, ei, ea, batch)
    w_lazy, b_lazy, gamma_lazy = lazy.transition_map(x, ei, ea, batch)
    assert torch.equal(w_plain, w_lazy) and torch.equal(gamma, gamma_lazy)
    assert torch.allclose(b_lazy, (1 - gamma)[batch] * b_plain)
    # by linearity the lazy fixed point is the plain one scaled the same way
    h_plain, _ = plain.solve(w_plain, b_plain, ei)
    h_lazy, _ = lazy.solve(w_lazy, b_lazy, ei)
    assert torch.allclose(h_lazy, (1 - gamma)[batch] * h_plain, atol=1e-4)


@pytest.mark.parametrize("gamma_max", [0.9, 0.999])
def test_lazy_fixed_point_stays_within_the_offsets_range_whatever_the_contraction(gamma_max):
    # the lazy fixed point is a weighted average of the encoder's offsets
    plain, lazy = _pair(gamma_max=gamma_max, init_contraction=0.99, solver="direct")
    x, ei, ea, batch = _graphs()
    for model in (plain, lazy):
        model.eval()
    with torch.no_grad():
        w, b_lazy, gamma = lazy.transition_map(x, ei, ea, batch)
        h_lazy, _ = lazy.solve(w, b_lazy, ei)
        raw = b_lazy / (1 - gamma)[batch]  # the encoder's offset before scaling
        assert h_lazy.abs().max() <= raw.abs().max() * (1 + 1e-5)
        w, b_plain, _ = plain.transition_map(x, ei, ea, batch)
        h_plain, _ = plain.solve(w, b_plain, ei)
    if gamma_max > 0.99:
        # the plain fixed point grows far beyond its offsets as gamma nears 1
        assert h_plain.abs().max() > 20 * b_plain.abs().max()


def test_lazy_offset_trains_with_the_implicit_gradient():
    _, lazy = _pair(graph_level=True, out_dim=2)
    x, ei, ea, batch = _graphs()
    y, info = lazy(x, ei, ea, batch)
    torch.nn.functional.cross_entropy(y, torch.tensor([0, 1])).backward()
    grads = [p.grad for p in lazy.gamma_head.parameters()]
    assert info.converged and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_unknown_offset_is_refused():
    with pytest.raises(ValueError, match="offset must be one of"):
        CGSConfig(node_dim=1, edge_dim=1, offset="scaled")
