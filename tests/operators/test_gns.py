import pytest
import torch

from graph.build import radius_graph
from operators.features import (INPUT_SEQUENCE_LENGTH, Normalization, edge_features, node_features,
                                random_walk_noise)
from operators.gns import GNS, GNSConfig
from operators.rollout import simulate
from operators.simulator import LearnedSimulator
from operators.datasets import read_split
from operators.train import train
from toy_data import bouncing_trajectory, write_toy_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _stats(dim=2):
    return Normalization(torch.zeros(dim), torch.full((dim,), 0.01), torch.zeros(dim), torch.full((dim,), 1e-3))


class _Oracle(torch.nn.Module):
    """Returns whatever normalised acceleration it is told to (for the inverse test)."""

    def __init__(self):
        super().__init__()
        self.next = None

    def forward(self, x, edge_index, edge_attr, pos, batch):
        return self.next


def test_gns_shapes_and_permutation_equivariance():
    dim = 2
    sim = LearnedSimulator(GNS(LearnedSimulator.num_node_features(dim), dim + 1, dim,
                               GNSConfig(latent=16, mp_steps=2)), dim, 0.15, [[0, 1], [0, 1]], _stats())
    seq = torch.rand(30, INPUT_SEQUENCE_LENGTH, dim)
    types = torch.full((30,), 5)
    out = sim(seq, types)
    assert out.shape == (30, dim)
    perm = torch.randperm(30)
    torch.testing.assert_close(sim(seq[perm], types[perm]), out[perm], atol=1e-5, rtol=1e-5)


def test_integration_inverts_normalisation_exactly():
    """A network that outputs the true normalised acceleration reproduces the trajectory."""
    rng = __import__("numpy").random.default_rng(0)
    traj = torch.from_numpy(bouncing_trajectory(20, 30, 2, rng)).double()
    oracle = _Oracle()
    stats = Normalization(*(torch.full((2,), v, dtype=torch.float64) for v in (1e-3, 5e-3, -2e-4, 7e-4)))
    sim = LearnedSimulator(oracle, 2, 0.2, [[0.1, 0.9], [0.1, 0.9]], stats).double()
    w = INPUT_SEQUENCE_LENGTH
    window = traj[:w].transpose(0, 1)
    for t in range(w, traj.shape[0]):
        oracle.next = sim.normalized_acceleration(traj[t], window)
        nxt = sim.predict_positions(window, torch.zeros(20, dtype=torch.long))
        torch.testing.assert_close(nxt, traj[t], atol=1e-12, rtol=0)
        window = torch.cat([window[:, 1:], nxt[:, None]], 1)


def test_features_shapes_and_wall_clipping():
    seq = torch.tensor([[[0.5, 0.5]] * 6, [[0.12, 0.95]] * 6])
    f = node_features(seq, _stats(), torch.tensor([[0.1, 0.9], [0.1, 0.9]]), 0.1)
    assert f.shape == (2, 5 * 2 + 4)
    torch.testing.assert_close(f[0, 10:], torch.ones(4))  # far from every wall: clipped to 1
    torch.testing.assert_close(f[1, 10:], torch.tensor([0.2, 1.0, 1.0, -0.5]))
    ei = radius_graph(seq[:, -1], 1.0)
    e = edge_features(seq[:, -1], ei, 0.5)
    torch.testing.assert_close(e[:, -1], e[:, :2].norm(dim=-1))


def test_random_walk_noise_statistics():
    seq = torch.zeros(20000, INPUT_SEQUENCE_LENGTH, 2)
    noise = random_walk_noise(seq, 0.01, generator=torch.Generator().manual_seed(0))
    assert torch.all(noise[:, 0] == 0)
    last_vel = noise[:, -1] - noise[:, -2]
    assert abs(float(last_vel.std()) - 0.01) < 0.0005


def test_gns_loss_decreases(tmp_path):
    data = write_toy_dataset(tmp_path / "data", n=60)
    res = train("gns", data, tmp_path / "run", 40, progress=False, log_every=5, lr=3e-3, lr_final=3e-3,
                noise_std=1e-5,
                model_config={"latent": 32, "mp_steps": 2})
    hist = torch.load(res.checkpoint, weights_only=False)["history"]
    first = sum(l for _, l in hist[:2]) / 2
    last = sum(l for _, l in hist[-2:]) / 2
    assert last < 0.7 * first


def test_simulate_errors():
    sim = LearnedSimulator(GNS(LearnedSimulator.num_node_features(2), 3, 2, GNSConfig(latent=8, mp_steps=1)),
                           2, 0.2, [[0, 1], [0, 1]], _stats())
    types = torch.zeros(10, dtype=torch.long)
    bad = torch.rand(6, 10, 2)
    bad[2, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        simulate(sim, bad, types, 3)
    with pytest.raises(ValueError, match="0 particles"):
        simulate(sim, torch.rand(6, 0, 2), types[:0], 3)
    with pytest.raises(ValueError, match=r"initial_positions must be \[6, N, d\]"):
        simulate(sim, torch.rand(4, 10, 2), types, 3)
    with pytest.raises(ValueError, match="n_steps must be"):
        simulate(sim, torch.rand(6, 10, 2), types, -1)
    with pytest.raises(ValueError, match="particle_type must be"):
        sim(torch.rand(10, 6, 2), types[:5])
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        LearnedSimulator(torch.nn.Identity(), 4, 0.2, [[0, 1]] * 4, _stats(4))
    with pytest.raises(ValueError, match=r"bounds must be \[2, 2\]"):
        LearnedSimulator(torch.nn.Identity(), 2, 0.2, [[0, 1]] * 3, _stats())
    with pytest.raises(ValueError, match="radius must be positive"):
        LearnedSimulator(torch.nn.Identity(), 2, 0.0, [[0, 1]] * 2, _stats())
    with pytest.raises(ValueError, match="latent and mp_steps"):
        GNS(10, 3, 2, GNSConfig(mp_steps=0))


def test_read_split_roundtrip(tmp_path):
    data = write_toy_dataset(tmp_path / "d", n=10, frames=8)
    trajs = read_split(data, "train")
    assert len(trajs) == 3 and trajs[0].positions.shape == (8, 10, 2)
