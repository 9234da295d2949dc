"""The object-level (rigid) contact prior: free flight, bounces, fitting, config."""

import pytest
import torch

from operators.contact import WallContact
from operators.rigid_contact import (RigidContact, best_rotation, contact_from_dict, fit_rigid_contact,
                                     rigid_prior_rollout, rotation_matrix, rotation_vector)

from rigid_frames import BOUNDS, G, cube, start


def test_rotation_helpers_round_trip():
    omega = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    rot = rotation_matrix(omega)
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(rotation_vector(rot), omega, atol=1e-9)
    src = torch.randn(50, 3, dtype=torch.float64)
    src = src - src.mean(0)
    assert torch.allclose(best_rotation(src, src @ rot.T), rot, atol=1e-9)


def test_free_flight_is_a_parabola_with_constant_spin():
    frames = rigid_prior_rollout(start((0.5, 0.6, 0.5), (0.002, 0.0, 0.0), (0.0, 0.0, 0.05)), 20,
                                 G, BOUNDS, RigidContact(0.5, 0.5, 0.0))
    com = frames.mean(1).double()
    t = torch.arange(frames.shape[0], dtype=torch.float64) - 1
    expect_y = com[1, 1] - 0.5e-3 * t * (t + 1)  # velocity -1e-3 t after t steps
    assert torch.allclose(com[:, 1], expect_y, atol=1e-5)
    assert torch.allclose(com[:, 0], com[1, 0] + 0.002 * t, atol=1e-5)  # momentum along x kept
    r0, r1 = (frames[-2] - frames[-2].mean(0)).double(), (frames[-1] - frames[-1].mean(0)).double()
    assert rotation_vector(best_rotation(r0, r1))[2] == pytest.approx(0.05, abs=1e-4)
    # rigid: pairwise distances unchanged
    f = frames.double()
    assert torch.allclose(torch.cdist(f[-1], f[-1]), torch.cdist(f[0], f[0]), atol=1e-5)


def test_elastic_cube_bounces_back_to_its_height_and_inelastic_one_stays_down():
    init = start((0.5, 0.5, 0.5))
    low = cube((0.5, 0.5, 0.5))[:, 1].min()
    frames = rigid_prior_rollout(init, 80, G, BOUNDS, RigidContact(1.0, 0.0, 0.0))
    com = frames.mean(1)[:, 1]
    assert float(frames[..., 1].min()) >= 0.0  # never through the floor
    first_low = int(com[:40].argmin())
    assert float(com[:first_low].max()) == pytest.approx(0.5, abs=1e-6)
    apex = float(com[first_low:].max())
    impact_speed = float((com[1:first_low + 1] - com[:first_low]).abs().max())
    # back to the drop height, less at most one frame's travel (the contact is found a frame early)
    assert 0.5 - impact_speed - 1e-5 <= apex <= 0.5 + 1e-5
    assert float(frames[-1][:, 1].min()) < float(low)  # and falling again
    # no spin from a flat, centred impact
    r0, r1 = (frames[-2] - frames[-2].mean(0)).double(), (frames[-1] - frames[-1].mean(0)).double()
    assert rotation_vector(best_rotation(r0, r1)).norm() < 1e-6
    dead = rigid_prior_rollout(init, 80, G, BOUNDS, RigidContact(0.0, 0.0, 0.0))
    assert float(dead[-10:].mean(1)[:, 1].max() - dead[-10:].mean(1)[:, 1].min()) < 1e-6  # resting
    assert float(dead[-1][:, 1].min()) == pytest.approx(0.0, abs=1e-6)


def test_friction_stops_sliding_and_energy_does_not_grow():
    init = start((0.3, 0.06, 0.5), (0.01, -0.005, 0.0))
    slide = rigid_prior_rollout(init, 30, G, BOUNDS, RigidContact(0.0, 0.0, 0.0))
    stick = rigid_prior_rollout(init, 30, G, BOUNDS, RigidContact(0.0, 1.0, 0.0))
    assert float(slide[-1].mean(0)[0] - slide[-2].mean(0)[0]) == pytest.approx(0.01, abs=1e-4)
    assert float(stick[-1].mean(0)[0] - stick[-2].mean(0)[0]) < 0.005

    def energy(frames, t):  # kinetic (per-particle finite differences) + potential, unit masses
        v = frames[t] - frames[t - 1]
        return float(0.5 * (v ** 2).sum() + 1e-3 * frames[t][:, 1].sum())

    spin = rigid_prior_rollout(start((0.5, 0.3, 0.5), (0.004, 0.0, 0.0), (0.02, 0.0, 0.03)), 60, G, BOUNDS,
                               RigidContact(0.7, 0.3, 0.0))
    e = [energy(spin, t) for t in range(1, spin.shape[0])]
    assert e[-1] < e[0]


def test_contact_from_dict_and_validation():
    assert isinstance(contact_from_dict({"model": "rigid", "restitution": 0.5}), RigidContact)
    assert isinstance(contact_from_dict({"restitution": 0.5}), WallContact)
    assert contact_from_dict(RigidContact(0.8, 0.0, 0.02).as_dict()) == RigidContact(0.8, 0.0, 0.02)
    with pytest.raises(ValueError, match="unknown wall contact model"):
        contact_from_dict({"model": "soft"})
    with pytest.raises(ValueError, match="restitution"):
        RigidContact(restitution=1.5)
    with pytest.raises(ValueError, match="3-D positions"):
        RigidContact().step(torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(2), torch.zeros(2, 2))


def test_fit_recovers_the_restitution_of_a_rigid_bounce():
    truth = [rigid_prior_rollout(start((0.5, 0.4, 0.5), (0.003, 0.0, 0.0)), 40, G, BOUNDS,
                                 RigidContact(0.6, 0.0, 0.0))]
    best, err = fit_rigid_contact(truth, G, BOUNDS, n_steps=40,
                                  grid={"restitution": (0.0, 0.6, 1.0), "friction": (0.0, 0.5),
                                        "offset": (0.0,), "spin": (True,)})
    assert best.restitution == 0.6 and best.friction == 0.0
    assert err < 1e-4


def test_simulator_uses_the_rigid_prior_from_a_model_config():
    from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint

    ckpt = load_checkpoint(bundled_checkpoint("jelly", 3, "gns"))
    ckpt.model_config["wall_contact"] = {"model": "rigid", "restitution": 0.8, "friction": 0.0, "offset": 0.02}
    simulator, _ = models_from_checkpoint(ckpt)
    assert isinstance(simulator.wall_contact, RigidContact)
    window = torch.stack([cube((0.5, 0.5, 0.5))] * 6, 1)  # [N, W, 3] at rest, far from the walls
    acc = simulator.prior_acceleration(window)
    assert torch.allclose(acc, simulator.external_acceleration.expand_as(acc), atol=1e-6)
