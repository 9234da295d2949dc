"""K-step rollout loss of operators.train (rollout_steps > 1)."""

import pytest
import torch

from operators.checkpoints import build_models
from operators.features import Normalization
from operators.train import TrainConfig, _Objective, _sample_batch, train
from operators.gns import GNSConfig
from toy_data import write_toy_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def data(tmp_path):
    return write_toy_dataset(tmp_path / "toy", dim=2, n=24, frames=14)


def _meta():
    return {"dim": 2, "bounds": [[0.1, 0.9]] * 2, "default_connectivity_radius": 0.1,
            "vel_mean": [0.0] * 2, "vel_std": [0.01] * 2, "acc_mean": [0.0] * 2, "acc_std": [1e-3] * 2}


def test_one_step_rollout_loss_equals_the_one_step_loss():
    meta = _meta()
    sim, _ = build_models("gns", {"latent": 8, "mp_steps": 1}, meta, Normalization.from_metadata(meta))
    obj = _Objective(sim, None, 0.1)
    g = torch.Generator().manual_seed(0)
    traj = torch.rand(8, 1, 2, generator=g) * 0.01 + torch.rand(1, 30, 2, generator=g) * 0.5 + 0.2
    window = traj[:6].transpose(0, 1)
    noise = torch.randn(window.shape, generator=g) * 1e-4
    types = torch.full((30,), 5)
    batch = torch.zeros(30, dtype=torch.long)
    one, _ = obj(window, traj[6], types, batch, noise, [])
    k1, _ = obj(window, traj[6:7].transpose(0, 1), types, batch, noise, [])
    assert torch.allclose(one, k1, rtol=1e-5)
    # three steps: the mean of three one-step losses, each from the model's own prediction
    k3, _ = obj(window, traj[6:9].transpose(0, 1), types, batch, noise, [])
    assert torch.isfinite(k3) and not torch.allclose(k3, one)


def test_sampled_windows_leave_room_for_the_unrolled_frames():
    g = torch.Generator().manual_seed(0)
    traj = type("T", (), {})()
    traj.positions, traj.particle_type = torch.rand(10, 5, 2), torch.full((5,), 5)
    cfg = TrainConfig(batch_size=16, rollout_steps=4)
    for _ in range(5):
        windows, nexts, *_ = _sample_batch([traj], cfg, GNSConfig(), "gns", g, 0.0)
        assert nexts.shape == (5 * 16, 4, 2)
        # the unrolled frames follow the window in the trajectory
        for b in range(16):
            w, nx = windows[5 * b: 5 * b + 5], nexts[5 * b: 5 * b + 5]
            t = int(((traj.positions - w[:, -1][None]).abs().sum((1, 2)) == 0).nonzero()[0])
            assert torch.equal(nx, traj.positions[t + 1: t + 5].transpose(0, 1))


@pytest.mark.parametrize("model", ["gns", "giorom"])
def test_training_with_a_rollout_loss_runs_and_records_it(model, data, tmp_path):
    cfg = {"latent": 8, "mp_steps": 1} if model == "gns" else {"latent": 8, "grid_size": 4, "modes": 2,
                                                               "sparse_fraction": 0.5}
    res = train(model, data, tmp_path / model, steps=3, progress=False, model_config=cfg, batch_size=2,
                rollout_steps=3)
    assert res.step == 3 and res.loss == res.loss
    ckpt = torch.load(res.checkpoint, weights_only=False)
    assert ckpt["train_config"]["rollout_steps"] == 3
    with pytest.raises(ValueError, match="rollout_steps must be an int >= 1"):
        train(model, data, tmp_path / "bad", steps=1, progress=False, model_config=cfg, rollout_steps=0)
