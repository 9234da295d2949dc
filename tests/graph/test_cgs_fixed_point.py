"""Fixed-point solver of CGS: contraction, convergence, parity with dense solves, implicit gradients."""

import pytest
import torch

from graph.cgs.fixed_point import (BlockSparse, check_contraction, row_abs_sums,
                                   solve_fixed_point, solve_unrolled)

pytestmark = pytest.mark.usefixtures("one_thread")


def random_graph(n=25, e=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, e), generator=g)
    ei = torch.unique(ei[:, ei[0] != ei[1]], dim=1)
    return ei


def contracting_weight(ei, n, heads, gamma=0.9, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(ei.shape[1], heads, generator=g, dtype=dtype)
    rows = row_abs_sums(w, ei, n)
    return gamma * w / rows.clamp_min(1e-12)[ei[1]]


def dense(w, ei, n):
    """``[H, N, N]`` dense matrices with ``W[h, dst, src] = w[e, h]``."""
    out = torch.zeros(w.shape[1], n, n, dtype=w.dtype)
    out[:, ei[1], ei[0]] = w.t()
    return out


def dense_fixed_point(w, b, ei):
    n = b.shape[0]
    a = dense(w, ei, n)
    eye = torch.eye(n, dtype=w.dtype)
    return torch.linalg.solve(eye - a, b.t().unsqueeze(-1)).squeeze(-1).t()


def test_block_sparse_matches_dense_and_transpose():
    n, heads = 20, 3
    ei = random_graph(n, 80)
    w = torch.randn(ei.shape[1], heads, dtype=torch.float64)
    x = torch.randn(n, heads, dtype=torch.float64)
    lay = BlockSparse(ei, n, heads)
    a = dense(w, ei, n)
    got = lay.unflat(lay.matrix(w) @ lay.flat(x))
    got_t = lay.unflat(lay.matrix_t(w) @ lay.flat(x))
    torch.testing.assert_close(got, torch.einsum("hij,jh->ih", a, x))
    torch.testing.assert_close(got_t, torch.einsum("hji,jh->ih", a, x))


def test_fixed_point_matches_dense_solve_and_is_start_independent():
    n, heads = 30, 4
    ei = random_graph(n, 150, seed=1)
    w = contracting_weight(ei, n, heads, gamma=0.95)
    b = torch.randn(n, heads, dtype=torch.float64)
    ref = dense_fixed_point(w, b, ei)
    h0, info0 = solve_fixed_point(w, b, ei, tol=1e-12, max_iter=5000)
    h1, info1 = solve_fixed_point(w, b, ei, tol=1e-12, max_iter=5000,
                                  x0=100 * torch.randn(n, heads, dtype=torch.float64))
    hd, _ = solve_fixed_point(w, b, ei, solver="direct")
    torch.testing.assert_close(h0, ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(h1, ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(hd, ref, atol=1e-10, rtol=0)
    assert info0.converged and info1.converged
    assert 1 < info0.forward_iterations < 5000
    # a far start needs more iterations to reach the same point
    assert info1.forward_iterations > info0.forward_iterations
    # residuals of a contraction shrink geometrically
    hist = torch.tensor(info0.history, dtype=torch.float64)
    assert (hist[1:] <= 0.95 * hist[:-1] * (1 + 1e-9) + 1e-13).all()  # up to rounding


def test_max_iter_bounds_the_iteration_and_reports_non_convergence():
    n, heads = 30, 2
    ei = random_graph(n, 150, seed=2)
    w = contracting_weight(ei, n, heads, gamma=0.99)
    b = torch.randn(n, heads, dtype=torch.float64)
    _, info = solve_fixed_point(w, b, ei, tol=1e-14, max_iter=7)
    assert info.forward_iterations == 7 and not info.converged


@pytest.mark.parametrize("solver", ["iterate", "direct"])
def test_implicit_gradient_matches_unrolled_to_convergence(solver):
    n, heads = 25, 3
    ei = random_graph(n, 120, seed=3)
    w = contracting_weight(ei, n, heads, gamma=0.7).requires_grad_()
    b = torch.randn(n, heads, dtype=torch.float64, requires_grad=True)
    target = torch.randn(n, heads, dtype=torch.float64)

    h, info = solve_fixed_point(w, b, ei, solver=solver, tol=1e-13, max_iter=2000)
    ((h - target) ** 2 * torch.arange(1, heads + 1)).sum().backward()
    gw, gb = w.grad.clone(), b.grad.clone()
    w.grad = b.grad = None
    hu = solve_unrolled(w, b, ei, num_iter=120)  # 0.7^120 ~ 3e-19: converged
    ((hu - target) ** 2 * torch.arange(1, heads + 1)).sum().backward()
    torch.testing.assert_close(gw, w.grad, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(gb, b.grad, atol=1e-9, rtol=1e-7)
    if solver == "iterate":
        assert info.backward_iterations > 1


def test_direct_solve_factorises_once_for_the_solution_and_its_adjoint(monkeypatch):
    import scipy.sparse.linalg as spla

    calls = []
    real = spla.splu
    monkeypatch.setattr(spla, "splu", lambda m: calls.append(m.shape) or real(m))
    n, heads = 12, 2
    ei = random_graph(n, 40, seed=5)
    w = contracting_weight(ei, n, heads, gamma=0.9).requires_grad_()
    b = torch.randn(n, heads, dtype=torch.float64, requires_grad=True)
    h, _ = solve_fixed_point(w, b, ei, solver="direct")
    h.square().sum().backward()
    assert calls == [(n * heads, n * heads)]
    assert torch.isfinite(w.grad).all() and b.grad.abs().sum() > 0


def test_implicit_gradient_passes_gradcheck():
    n, heads = 6, 2
    ei = random_graph(n, 14, seed=4)
    w = contracting_weight(ei, n, heads, gamma=0.3).requires_grad_()
    b = torch.randn(n, heads, dtype=torch.float64, requires_grad=True)
    fn = lambda w_, b_: solve_fixed_point(w_, b_, ei, tol=1e-14, max_iter=500)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (w, b), fast_mode=True)


def test_no_edges_and_isolated_nodes_give_b():
    b = torch.randn(5, 3, dtype=torch.float64)
    empty = torch.zeros(2, 0, dtype=torch.long)
    h, info = solve_fixed_point(torch.zeros(0, 3, dtype=torch.float64), b, empty)
    torch.testing.assert_close(h, b)
    assert info.forward_iterations <= 2
    # node 4 has no incoming edge: its value is its offset
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    w = torch.full((3, 3), 0.5, dtype=torch.float64)
    h, _ = solve_fixed_point(w, b, ei, tol=1e-12)
    torch.testing.assert_close(h[[0, 4]], b[[0, 4]])
    torch.testing.assert_close(h[1], 0.5 * b[0] + b[1])


def test_check_contraction_rejects_non_contracting_maps():
    ei = torch.tensor([[0, 1], [1, 0]])
    assert check_contraction(torch.full((2, 1), 0.5), ei, 2) == pytest.approx(0.5)
    with pytest.raises(RuntimeError, match="not a contraction"):
        check_contraction(torch.full((2, 1), 1.0), ei, 2)
    with pytest.raises(RuntimeError, match="not a contraction"):
        solve_fixed_point(torch.full((2, 1), -1.2), torch.ones(2, 1), ei)


def test_bad_inputs_raise():
    ei = torch.tensor([[0, 1], [1, 0]])
    w, b = torch.full((2, 1), 0.5), torch.ones(2, 1)
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        solve_fixed_point([[0.5], [0.5]], b, ei)
    with pytest.raises(ValueError, match=r"b must be \[N, H\]"):
        solve_fixed_point(w, torch.ones(2), ei)
    with pytest.raises(ValueError, match=r"edge_index must be \[2, E\]"):
        solve_fixed_point(w, b, ei[0])
    with pytest.raises(ValueError, match=r"weight must be \[E, H\]"):
        solve_fixed_point(torch.full((3, 1), 0.1), b, ei)
    with pytest.raises(ValueError, match="must index nodes"):
        solve_fixed_point(w, b, torch.tensor([[0, 5], [1, 0]]))
    with pytest.raises(ValueError, match="finite"):
        solve_fixed_point(w, torch.tensor([[1.0], [float("nan")]]), ei)
    with pytest.raises(ValueError, match="solver must be one of"):
        solve_fixed_point(w, b, ei, solver="newton")
    with pytest.raises(ValueError, match="tol must be positive"):
        solve_fixed_point(w, b, ei, tol=0)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        solve_fixed_point(w, b, ei, max_iter=0)
    with pytest.raises(ValueError, match="x0 must have the shape of b"):
        solve_fixed_point(w, b, ei, x0=torch.ones(3, 1))
    with pytest.raises(ValueError, match="num_iter must be >= 1"):
        solve_unrolled(w, b, ei, num_iter=0)
