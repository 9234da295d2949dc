"""Sim(3) alignment and trajectory errors against constructed ground truth."""

import math

import numpy as np
import pytest
import torch

from splat.core.camera import Camera, look_at
from splat.posefree import align_sim3, trajectory_errors


def _rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _orbit(n: int = 10, radius: float = 4.0) -> np.ndarray:
    """``[n, 4, 4]`` world-to-camera matrices on a circle looking at the origin."""
    mats = []
    for k in range(n):
        a = 2 * math.pi * k / n
        eye = torch.tensor([radius * math.cos(a), radius * math.sin(a), 1.5], dtype=torch.float64)
        mats.append(look_at(eye, torch.zeros(3, dtype=torch.float64)).numpy())
    return np.stack(mats)


def _apply_sim3_to_w2c(w2c: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The same cameras seen in a world mapped by ``x -> s R x + t``."""
    c2w = np.linalg.inv(w2c)
    out = c2w.copy()
    out[:, :3, :3] = R @ c2w[:, :3, :3]
    out[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    return np.linalg.inv(out)


def test_align_sim3_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(12, 3))
    R, s, t = _rotation(rng), 0.37, rng.normal(size=3)
    est = (gt - t) @ R / s  # gt = s R est + t
    sim = align_sim3(est, gt)
    assert sim.scale == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(sim.R, R, atol=1e-9)
    np.testing.assert_allclose(sim.t, t, atol=1e-9)
    np.testing.assert_allclose(sim.apply(est), gt, atol=1e-9)


def test_align_sim3_is_least_squares_under_noise():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(50, 3)) * 3
    est = gt + rng.normal(scale=0.05, size=gt.shape)
    sim = align_sim3(est, gt)
    residual = np.linalg.norm(sim.apply(est) - gt, axis=1).mean()
    identity = np.linalg.norm(est - gt, axis=1).mean()
    assert residual <= identity + 1e-12
    assert sim.scale == pytest.approx(1.0, abs=0.02)


def test_trajectory_errors_vanish_for_a_similar_trajectory():
    rng = np.random.default_rng(2)
    gt = _orbit()
    est = _apply_sim3_to_w2c(gt, 2.5, _rotation(rng), rng.normal(size=3))
    err = trajectory_errors(torch.tensor(est), Camera(torch.tensor(gt, dtype=torch.float32),
                                                       torch.eye(3).expand(len(gt), 3, 3), 8, 8))
    assert err.ate_relative < 1e-5
    assert err.median_rotation_deg < 0.05
    assert err.sim3.scale == pytest.approx(1 / 2.5, rel=1e-5)


def test_trajectory_errors_measure_a_known_perturbation():
    gt = _orbit(n=9)
    est = gt.copy()
    # Rotate view 3 by 10 degrees about its optical axis: the centre is unchanged.
    a = math.radians(10.0)
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    est[3, :3, :] = Rz @ est[3, :3, :]
    err = trajectory_errors(est, gt)
    assert err.rotation_errors_deg[3] == pytest.approx(10.0, abs=1e-6)
    assert err.median_rotation_deg < 1e-6
    assert err.ate < 1e-9
    # One camera centre off by 0.4: the alignment spreads it, the ATE stays below 0.4.
    moved = np.linalg.inv(gt)
    moved[0, :3, 3] += np.array([0.4, 0.0, 0.0])
    err2 = trajectory_errors(np.linalg.inv(moved), gt)
    radius = np.linalg.norm(np.linalg.inv(gt)[:, :3, 3] - np.linalg.inv(gt)[:, :3, 3].mean(0), axis=1).mean()
    assert 0.0 < err2.ate < 0.4
    assert err2.ate_relative == pytest.approx(err2.ate / radius)
    assert err2.to_dict()["ate_percent_of_radius"] == pytest.approx(100 * err2.ate_relative)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"at least 3 camera centres"):
        align_sim3(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"must match"):
        align_sim3(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"must be \[N, 3\]"):
        align_sim3(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"all the same point"):
        align_sim3(np.ones((4, 3)), np.random.default_rng(0).normal(size=(4, 3)))
    with pytest.raises(ValueError, match=r"NaN"):
        align_sim3(np.full((4, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(TypeError, match=r"array or tensor"):
        align_sim3("abc", np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"poses must match"):
        trajectory_errors(_orbit(5), _orbit(6))
