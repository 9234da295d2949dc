"""CGS tasks: exact pore-network pressures, value-iteration ground truth, classification data."""

import numpy as np
import pytest
import torch

from graph.cgs.tasks import (bellman_backup, greedy_policy, make_mdp, make_pore_network,
                             make_porous_dataset, policy_accuracy, solve_pressure,
                             value_iteration)
from graph.cgs.tasks.classification import stratified_folds, top_k_incoming

pytestmark = pytest.mark.usefixtures("one_thread")


def test_porous_pressure_conserves_flow_and_meets_boundary_conditions():
    d = make_pore_network(120, seed=0)
    p = d.y.view(-1).double()
    src, dst = d.edge_index
    g = d.conductance
    # net outflow of each pore: sum_j g_ij (p_i - p_j), edges stored both ways
    net = torch.zeros(d.num_nodes, dtype=torch.float64).index_add_(0, dst, g * (p[dst] - p[src]))
    interior = ~(d.inlet | d.outlet)
    scale = float(g.max())
    assert net[interior].abs().max() < 1e-5 * scale  # float32 storage of p
    assert torch.all(p[d.inlet] == 1.0) and torch.all(p[d.outlet] == 0.0)
    assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0  # maximum principle
    # what enters at the inlet leaves at the outlet
    assert float(net[d.inlet].sum()) == pytest.approx(-float(net[d.outlet].sum()), rel=1e-4)
    assert d.inlet.sum() == d.outlet.sum() == 12


def test_porous_ground_truth_matches_a_dense_solve():
    rng = np.random.default_rng(0)
    n = 30
    edges = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.2])
    g = rng.uniform(0.1, 2.0, len(edges))
    inlet, outlet = np.zeros(n, bool), np.zeros(n, bool)
    inlet[:3], outlet[-3:] = True, True
    p = solve_pressure(n, edges, g, inlet, outlet)
    w = np.zeros((n, n))
    w[edges[:, 0], edges[:, 1]] = w[edges[:, 1], edges[:, 0]] = g
    lap = np.diag(w.sum(1)) - w
    free = ~(inlet | outlet)
    ref = np.linalg.solve(lap[np.ix_(free, free)], -lap[np.ix_(free, inlet)].sum(1))
    np.testing.assert_allclose(p[free], ref, atol=1e-10)


def test_porous_dataset_sizes_and_features():
    ds = make_porous_dataset(3, (40, 60), seed=1)
    assert all(40 <= d.num_nodes <= 60 for d in ds)
    d = ds[0]
    assert d.x.shape == (d.num_nodes, 4) and d.edge_attr.shape == (d.num_edges, 1)
    assert torch.equal(d.x[:, 0].bool(), d.inlet) and torch.equal(d.x[:, 1].bool(), d.outlet)
    assert abs(float(d.edge_attr.mean())) < 1e-4  # standardised log-conductance


def test_porous_bad_inputs():
    with pytest.raises(ValueError, match="num_pores must be an int >= 10"):
        make_pore_network(5, seed=0)
    with pytest.raises(ValueError, match="size_range must satisfy"):
        make_porous_dataset(2, (100, 50), seed=0)
    with pytest.raises(ValueError, match="count must be >= 1"):
        make_porous_dataset(0, (50, 60), seed=0)
    edges, g = np.array([[0, 1], [1, 2]]), np.array([1.0, 1.0])
    with pytest.raises(ValueError, match="inlet and outlet must be non-empty and disjoint"):
        solve_pressure(3, edges, g, np.array([1, 0, 0], bool), np.zeros(3, bool))
    with pytest.raises(ValueError, match="conductance must be"):
        solve_pressure(3, edges, np.array([1.0, -1.0]), np.array([1, 0, 0], bool),
                       np.array([0, 0, 1], bool))
    with pytest.raises(ValueError, match="edges must be a non-empty"):
        solve_pressure(3, np.zeros((0, 2), int), np.zeros(0), np.array([1, 0, 0], bool),
                       np.array([0, 0, 1], bool))


def test_value_iteration_satisfies_the_bellman_equation():
    d = make_mdp(60, seed=0)
    backup = bellman_backup(d.value, d.edge_index, d.reward, d.discount, d.num_nodes)
    torch.testing.assert_close(backup, d.value, atol=1e-8, rtol=0)
    # the greedy policy of the optimal values is optimal; perturbed values change actions
    assert policy_accuracy(d.value, d) == 1.0
    worse = d.value + 0.5 * torch.randn(d.num_nodes, dtype=torch.float64)
    assert policy_accuracy(worse, d) < 1.0
    assert torch.equal(greedy_policy(d.value, d.edge_index, d.reward, d.discount, d.num_nodes),
                       d.policy)


def test_value_iteration_on_a_known_chain():
    # two states, each can move to the other; rewards 1 (0->1) and 0 (1->0)
    ei = torch.tensor([[1, 0], [0, 1]])  # (next state, state)
    v, _ = value_iteration(ei, torch.tensor([1.0, 0.0], dtype=torch.float64), 0.5, 2)
    # V0 = 1 + 0.5 V1, V1 = 0.5 V0  =>  V0 = 4/3, V1 = 2/3
    torch.testing.assert_close(v, torch.tensor([4 / 3, 2 / 3], dtype=torch.float64))


def test_value_iteration_bad_inputs():
    ei = torch.tensor([[1, 0], [0, 1]])
    r = torch.ones(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"discount must be in \(0, 1\)"):
        value_iteration(ei, r, 1.0, 2)
    with pytest.raises(ValueError, match="no actions"):
        value_iteration(torch.zeros(2, 0, dtype=torch.long), r[:0], 0.9, 2)
    with pytest.raises(ValueError, match="every state needs an action"):
        value_iteration(ei, r, 0.9, 3)
    with pytest.raises(ValueError, match="num_states must be an int >= 3"):
        make_mdp(2, seed=0)


def test_top_k_incoming_keeps_the_heaviest_edges():
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(20, (2, 300), generator=g)
    w = torch.rand(300, generator=g)
    keep = top_k_incoming(ei, w, 20, 4)
    indeg = torch.bincount(ei[1], minlength=20)
    kept = torch.bincount(ei[1, keep], minlength=20)
    assert torch.equal(kept, indeg.clamp(max=4))
    for node in range(20):
        mine = ei[1] == node
        if mine.any():
            top = torch.sort(w[mine], descending=True).values[:4]
            torch.testing.assert_close(torch.sort(w[keep][ei[1, keep] == node],
                                                  descending=True).values, top)
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_k_incoming(ei, w, 20, 0)


def test_stratified_folds_partition_and_balance():
    labels = [0] * 8 + [1] * 8 + [2] * 8 + [3] * 8
    folds = stratified_folds(labels, 4, seed=0)
    allidx = np.sort(np.concatenate(folds))
    np.testing.assert_array_equal(allidx, np.arange(32))
    for f in folds:
        assert np.bincount(np.asarray(labels)[f], minlength=4).tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="folds must be >= 2"):
        stratified_folds(labels, 1, seed=0)
    with pytest.raises(ValueError, match="every class needs at least 5 graphs"):
        stratified_folds([0, 0, 0, 0, 0, 1, 1, 1, 1], 5, seed=0)
