"""CGS model: contraction by construction, implicit vs unrolled gradients, input checks, GCN baseline."""

import warnings

import pytest
import torch

from graph.build import knn_graph
from graph.cgs import CGS, CGSConfig, GCN, GCNConfig
from graph.cgs.checks import check_graph
from graph.cgs.fixed_point import row_abs_sums

pytestmark = pytest.mark.usefixtures("one_thread")


def random_graph(n, seed, node_dim=3, edge_dim=2):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 2, generator=g)
    ei = knn_graph(pts, k=4)
    x = torch.randn(n, node_dim, generator=g)
    e = torch.randn(ei.shape[1], edge_dim, generator=g)
    return x, ei, e


def small_config(**kw):
    base = dict(node_dim=3, edge_dim=2, hidden=16, heads=4, enc_layers=1, tol=1e-6)
    base.update(kw)
    return CGSConfig(**base)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transition_map_is_a_contraction_and_iteration_converges_from_any_start(seed):
    torch.manual_seed(seed)
    model = CGS(small_config(gamma_max=0.95)).double()
    for p in model.parameters():  # large random weights push logits and gates to extremes
        p.data.mul_(3.0)
    x, ei, e = random_graph(40, seed)
    with torch.no_grad():
        weight, b, gamma = model.transition_map(x.double(), ei, e.double())
    assert (gamma > 0).all() and (gamma < 0.95).all()
    norm = row_abs_sums(weight, ei, 40).max()  # ||gamma A||_inf estimated per head
    assert norm < 0.95
    from graph.cgs.fixed_point import solve_fixed_point
    h0, i0 = solve_fixed_point(weight, b, ei, tol=1e-11, max_iter=3000)
    h1, i1 = solve_fixed_point(weight, b, ei, tol=1e-11, max_iter=3000,
                               x0=torch.randn_like(b) * 50)
    assert i0.converged and i1.converged
    torch.testing.assert_close(h0, h1, atol=1e-8, rtol=0)


def test_implicit_and_unrolled_model_gradients_agree():
    torch.manual_seed(0)
    x, ei, e = random_graph(30, 3)
    x, e = x.double(), e.double()
    y = torch.randn(30, 1, dtype=torch.float64)
    grads = {}
    for gradient in ("implicit", "unrolled"):
        torch.manual_seed(0)
        cfg = small_config(gamma_max=0.6, tol=1e-12, max_iter=1000, gradient=gradient,
                           unrolled_iter=80)  # 0.6^80 ~ 2e-18: unrolled to convergence
        model = CGS(cfg).double()
        pred, _ = model(x, ei, e)
        ((pred - y) ** 2).mean().backward()
        grads[gradient] = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(grads["implicit"], grads["unrolled"], atol=1e-9, rtol=1e-6)


def test_graph_level_output_and_batching():
    torch.manual_seed(0)
    model = CGS(small_config(graph_level=True, out_dim=3))
    x1, e1, a1 = random_graph(10, 0)
    x2, e2, a2 = random_graph(14, 1)
    x = torch.cat([x1, x2])
    ei = torch.cat([e1, e2 + 10], dim=1)
    ea = torch.cat([a1, a2])
    batch = torch.cat([torch.zeros(10), torch.ones(14)]).long()
    with torch.no_grad():
        out, info = model(x, ei, ea, batch)
        single, _ = model(x2, e2, a2)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out[1], single[0], atol=1e-4, rtol=1e-4)  # graphs do not mix
    assert info.forward_iterations >= 1


def test_graph_without_edges_and_isolated_nodes_give_finite_outputs():
    torch.manual_seed(0)
    model = CGS(small_config())
    x = torch.randn(5, 3)
    empty = torch.zeros(2, 0, dtype=torch.long)
    with torch.no_grad():
        out, info = model(x, empty, torch.zeros(0, 2))
        weight, b, _ = model.transition_map(x, empty, torch.zeros(0, 2))
        h, _ = model.solve(weight, b, empty)
    assert torch.isfinite(out).all() and out.shape == (5, 1)
    torch.testing.assert_close(h, b)  # no neighbours: the fixed point is the offset
    ei = torch.tensor([[0, 1], [1, 0]])  # nodes 2..4 isolated
    with torch.no_grad():
        weight, b, _ = model.transition_map(x, ei, torch.randn(2, 2))
        h, _ = model.solve(weight, b, ei)
    torch.testing.assert_close(h[2:], b[2:])


def test_direct_solver_matches_iteration_in_the_model():
    torch.manual_seed(0)
    x, ei, e = random_graph(25, 5)
    it = CGS(small_config(tol=1e-7)).double()
    direct = CGS(small_config(solver="direct")).double()
    direct.load_state_dict(it.state_dict())
    with torch.no_grad():
        a, _ = it(x.double(), ei, e.double())
        b, _ = direct(x.double(), ei, e.double())
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_gcn_baseline_shapes():
    x, ei, e = random_graph(12, 0)
    out, info = GCN(GCNConfig(node_dim=3, hidden=8, layers=2))(x, ei, e)
    assert out.shape == (12, 1) and info is None
    out, _ = GCN(GCNConfig(node_dim=3, out_dim=4, graph_level=True))(x, ei, e)
    assert out.shape == (1, 4)


def test_config_validation():
    with pytest.raises(ValueError, match=r"gamma_max must be in \(0, 1\)"):
        small_config(gamma_max=1.0)
    with pytest.raises(ValueError, match="heads must be a positive int"):
        small_config(heads=0)
    with pytest.raises(ValueError, match="solver must be one of"):
        small_config(solver="cg")
    with pytest.raises(ValueError, match="gradient must be one of"):
        small_config(gradient="adjoint")
    with pytest.raises(ValueError, match=r"init_contraction must be in \(0, 1\)"):
        small_config(init_contraction=1.5)
    with pytest.raises(ValueError, match="enc_layers must be an int >= 0"):
        small_config(enc_layers=-1)
    with pytest.raises(ValueError, match="tol must be positive"):
        small_config(tol=0.0)
    with pytest.raises(TypeError, match="config must be a CGSConfig"):
        CGS({"node_dim": 3})
    with pytest.raises(ValueError, match="layers must be a positive int"):
        GCNConfig(node_dim=3, layers=0)


def test_bad_graphs_raise():
    model = CGS(small_config())
    x, ei, e = random_graph(6, 0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        model(bad, ei, e)
    with pytest.raises(ValueError, match="edge_attr contains NaN"):
        model(x, ei, torch.full_like(e, float("nan")))
    with pytest.raises(ValueError, match="at least one node"):
        model(torch.zeros(0, 3), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 2))
    with pytest.raises(ValueError, match=r"x must be \[N, F\]"):
        check_graph(torch.zeros(3), ei)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        check_graph([[1.0]], ei)
    with pytest.raises(TypeError, match="edge_index must be an integer tensor"):
        check_graph(x, ei.float())
    with pytest.raises(ValueError, match="must index nodes"):
        check_graph(x, torch.tensor([[0], [9]]))
    with pytest.raises(ValueError, match=r"edge_attr must be \[E, D\]"):
        check_graph(x, ei, e[:-1])
    with pytest.raises(ValueError, match=r"batch must be \[6\]"):
        check_graph(x, ei, e, torch.zeros(5, dtype=torch.long))


def test_a_solve_that_does_not_converge_warns_and_says_so():
    x, ei, e = random_graph(30, 0)
    model = CGS(small_config(gamma_max=0.99, tol=1e-12, max_iter=2))
    with pytest.warns(RuntimeWarning, match=r"did not reach tol=1e-12 within max_iter=2"):
        _, info = model(x, ei, e)
    assert not info.converged and info.forward_iterations == 2
    model = CGS(small_config(gamma_max=0.5, tol=1e-6, max_iter=500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converged solve is silent
        _, info = model(x, ei, e)
    assert info.converged and info.forward_residual <= 1e-6


def test_graph_readout_options_pool_the_fixed_point_and_the_encoder_embedding():
    torch.manual_seed(0)
    x1, e1, a1 = random_graph(10, 0)
    x2, e2, a2 = random_graph(14, 1)
    x, ei, ea = torch.cat([x1, x2]), torch.cat([e1, e2 + 10], dim=1), torch.cat([a1, a2])
    batch = torch.cat([torch.zeros(10), torch.ones(14)]).long()
    cfg = small_config(graph_level=True, out_dim=3, pool=("sum", "mean", "max"),
                       readout_skip=True)
    model = CGS(cfg)
    # decoder input: three pools of heads + hidden channels
    assert model.decoder[0].in_features == 3 * (cfg.heads + cfg.hidden)
    seen = {}
    model.decoder[0].register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0]))
    with torch.no_grad():
        out, _ = model(x, ei, ea, batch)
        weight, b, _, emb = model._encode(x, ei, ea, batch)
        h, _ = model.solve(weight, b, ei)
    node = torch.cat([h, emb], dim=-1)
    first = node[:10]
    want = torch.cat([first.sum(0), first.mean(0), first.max(0).values])
    torch.testing.assert_close(seen["inp"][0], want, atol=1e-5, rtol=1e-5)
    assert out.shape == (2, 3)
    # the readout options change nothing for node-level models
    node_model = CGS(small_config(pool=("max",), readout_skip=True))
    assert node_model.decoder[0].in_features == node_model.config.heads


@pytest.mark.parametrize("norm,layer", [("batch", torch.nn.BatchNorm1d),
                                        ("layer", torch.nn.LayerNorm)])
def test_readout_norm_sits_before_the_decoder(norm, layer):
    torch.manual_seed(0)
    cfg = small_config(graph_level=True, readout_norm=norm)
    model = CGS(cfg)
    assert isinstance(model.decoder[0], layer)
    assert isinstance(model.decoder[1], torch.nn.Linear)
    assert model.decoder[1].in_features == 2 * cfg.heads
    x1, e1, a1 = random_graph(10, 0)
    x2, e2, a2 = random_graph(14, 1)
    batch = torch.cat([torch.zeros(10), torch.ones(14)]).long()
    out, _ = model(torch.cat([x1, x2]), torch.cat([e1, e2 + 10], 1), torch.cat([a1, a2]), batch)
    out.sum().backward()
    assert out.shape == (2, 1) and torch.isfinite(out).all()
    assert model.decoder[0].weight.grad is not None


def test_readout_options_are_validated():
    for bad in ((), ("median",), ("max", "max")):
        with pytest.raises(ValueError, match="pool must be distinct names"):
            small_config(graph_level=True, pool=bad)
    with pytest.raises(ValueError, match="readout_norm must be one of"):
        small_config(graph_level=True, readout_norm="group")
    assert small_config(pool="max").pool == ("max",)
