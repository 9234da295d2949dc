"""The object-level compliant contact prior: free flight, a spring-damper bounce, friction, fitting."""

import math

import pytest
import torch

from operators.compliant_contact import (DEFAULT_GRID, DEFAULT_STARTS, CompliantContact, compliant_prior_rollout,
                                        fit_compliant_contact)
from operators.contact import contact_from_dict, contact_rollout
from operators.rigid_contact import best_rotation, rigid_prior_rollout, rotation_matrix, rotation_vector

from rigid_frames import BOUNDS, G, cube, start


def test_free_flight_is_an_exact_parabola_with_constant_spin():
    frames = rigid_prior_rollout(start((0.5, 0.6, 0.5), (0.002, 0.0, 0.0), (0.0, 0.0, 0.05)), 20,
                                 G, BOUNDS, CompliantContact(10.0, 1.0, 0.5, 0.02))
    com = frames.mean(1).double()
    t = torch.arange(frames.shape[0], dtype=torch.float64) - 1
    assert torch.allclose(com[:, 1], com[1, 1] - 0.5e-3 * t * (t + 1), atol=1e-5)  # x'' = g per frame
    assert torch.allclose(com[:, 0], com[1, 0] + 0.002 * t, atol=1e-5)
    r0, r1 = (frames[-2] - frames[-2].mean(0)).double(), (frames[-1] - frames[-1].mean(0)).double()
    assert rotation_vector(best_rotation(r0, r1))[2] == pytest.approx(0.05, abs=1e-4)
    f = frames.double()
    assert torch.allclose(torch.cdist(f[-1], f[-1]), torch.cdist(f[0], f[0]), atol=1e-5)  # rigid


def bounce(contact, frames=60):
    """A cube dropped flat from rest (bottom face at 0.25): COM heights ``[T]`` and all positions."""
    out = rigid_prior_rollout(start((0.5, 0.3, 0.5)), frames, G, BOUNDS, contact)
    return out.mean(1)[:, 1].double(), out


def test_flat_drop_rebounds_with_the_spring_damper_restitution():
    k, c = 4.0, 0.2
    com, frames = bounce(CompliantContact(k, c, 0.0, 0.0, substeps=20))
    v = com[1:] - com[:-1]  # velocity per frame
    # one face (16 of 64 particles) touches: a linear oscillator with w^2 = k/4, 2 zeta w = c/4
    w = math.sqrt(k / 4)
    zeta = c / 4 / (2 * w)
    expect = math.exp(-zeta * math.pi / math.sqrt(1 - zeta ** 2))
    impact = int((frames[1:, :, 1].min(1).values < 0).nonzero()[0])  # first frame below the floor
    leave = impact + int((frames[impact + 1:, :, 1].min(1).values >= 0).nonzero()[0])
    assert leave - impact >= 2  # the contact lasts several frames
    # speeds just before touching and just after leaving, corrected for a frame of gravity each
    v_in = -float(v[impact - 1]) + 0.5e-3
    v_out = float(v[leave + 1]) + 1.5e-3
    assert v_out / v_in == pytest.approx(expect, abs=0.05)
    # penetration bounded by the undamped spring's amplitude (plus gravity's static sag)
    depth = -float(frames[..., 1].min())
    assert 0 < depth <= v_in / w + 1e-3 / w ** 2 + 1e-3
    # symmetric: no spin, no sideways drift
    assert torch.allclose(frames.mean(1)[:, [0, 2]], frames.mean(1)[:1, [0, 2]].expand(frames.shape[0], 2),
                          atol=1e-5)


def test_undamped_drop_keeps_its_energy_and_damped_one_loses_it():
    def energy(com, t):  # mid-frame COM kinetic + potential per unit mass (a rigid drop without spin)
        return 0.5 * float(com[t] - com[t - 1]) ** 2 + 1e-3 * float(com[t] + com[t - 1]) / 2

    elastic, _ = bounce(CompliantContact(4.0, 0.0, 0.0, 0.0, substeps=20), 80)
    damped, _ = bounce(CompliantContact(4.0, 1.0, 0.0, 0.0, substeps=20), 80)
    e0 = energy(elastic, 2)
    free = [t for t in range(2, 80) if float(elastic[t]) > 0.06 and float(elastic[t - 1]) > 0.06]
    assert max(abs(energy(elastic, t) - e0) for t in free) < 0.01 * e0  # out of contact
    first, second = [t for t in range(3, 80) if t in free and t - 1 not in free][:2]  # after each bounce
    assert float(elastic[first:second].max()) == pytest.approx(0.3, abs=0.005)  # back up to the drop height
    assert energy(damped, 79) < 0.6 * e0


def test_off_centre_contact_spins_and_friction_stops_sliding():
    tilt = rotation_matrix(torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)).float()
    c = torch.tensor([0.5, 0.3, 0.5])
    tilted = (cube((0.5, 0.3, 0.5)) - c) @ tilt.T + c  # one edge lands first
    frames = rigid_prior_rollout(torch.stack([tilted, tilted]), 60, G, BOUNDS, CompliantContact(8.0, 0.5, 0.0, 0.0))
    spins = [float(rotation_vector(best_rotation((frames[t - 1] - frames[t - 1].mean(0)).double(),
                                                 (frames[t] - frames[t].mean(0)).double())).norm())
             for t in range(1, frames.shape[0])]
    assert spins[5] < 1e-6 < max(spins)  # no spin in free flight, spin after the edge lands
    init = start((0.3, 0.0495, 0.5), (0.01, 0.0, 0.0))  # resting on the floor, sliding along x
    slide = rigid_prior_rollout(init, 30, G, BOUNDS, CompliantContact(8.0, 1.0, 0.0, 0.0))
    stick = rigid_prior_rollout(init, 30, G, BOUNDS, CompliantContact(8.0, 1.0, 0.5, 0.0))
    assert float(slide[-1].mean(0)[0] - slide[-2].mean(0)[0]) == pytest.approx(0.01, abs=1e-5)  # momentum
    assert abs(float(stick[-1].mean(0)[0] - stick[-2].mean(0)[0])) < 1e-3  # stopped by friction


def test_rollout_is_deterministic_and_offset_moves_the_contact():
    a = rigid_prior_rollout(start((0.5, 0.3, 0.5), (0.003, 0.0, 0.001), (0.01, 0.02, 0.0)), 40, G, BOUNDS,
                            CompliantContact(6.0, 0.3, 0.25, 0.02))
    b = rigid_prior_rollout(start((0.5, 0.3, 0.5), (0.003, 0.0, 0.001), (0.01, 0.02, 0.0)), 40, G, BOUNDS,
                            CompliantContact(6.0, 0.3, 0.25, 0.02))
    assert torch.equal(a, b)
    base, _ = bounce(CompliantContact(6.0, 0.3, 0.0, 0.0))
    raised, _ = bounce(CompliantContact(6.0, 0.3, 0.0, 0.02))
    assert float(raised.min()) == pytest.approx(float(base.min()) + 0.02, abs=2e-3)


def test_clamped_rollout_stays_in_the_walls_and_carry_keeps_or_relaxes_the_squash():
    init = start((0.5, 0.3, 0.5), (0.0, -0.01, 0.0))
    soft = CompliantContact(1.0, 0.0, 0.0, 0.0, carry=0.0)  # soft springs: the cube reaches the floor
    frames = compliant_prior_rollout(init, 40, G, BOUNDS, soft)
    assert torch.equal(frames, contact_rollout(init, 40, G, BOUNDS, soft))
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
    assert float(rigid_prior_rollout(init, 40, G, BOUNDS, soft)[..., 1].min()) < 0.0  # unclamped: through
    # carry 0 keeps the clamp's squash (a flat bottom layer the springs do not restore)...
    h0 = frames[0, :, 1].max() - frames[0, :, 1].min()
    assert float(frames[-1, :, 1].max() - frames[-1, :, 1].min()) < float(h0) - 1e-3
    # ...and with carry 1 the clamp's non-rigid step is carried on: the shape keeps changing
    carried = compliant_prior_rollout(init, 40, G, BOUNDS, CompliantContact(1.0, 0.0, 0.0, 0.0, carry=1.0))
    ext = lambda f: float(f[:, 1].max() - f[:, 1].min())  # noqa: E731
    assert abs(ext(carried[-1]) - ext(frames[-1])) > 1e-3


@pytest.mark.slow
def test_fit_recovers_the_constants_of_its_own_rollouts():
    truth = [compliant_prior_rollout(start((0.5, 0.12, 0.5), (0.003, -0.004, 0.0), (0.0, 0.0, 0.02)), 25, G,
                                     BOUNDS, CompliantContact(6.0, 0.5, 0.25, 0.01))]
    grid = {"stiffness": (2.0, 6.0), "damping": (0.0, 0.5), "friction": (0.25,), "offset": (0.0, 0.01),
            "inertia_scale": (1.0,), "carry": (1.0,)}
    best, err = fit_compliant_contact(truth, G, BOUNDS, n_steps=25, grid=grid)
    assert (best.stiffness, best.damping, best.friction, best.offset) == (6.0, 0.5, 0.25, 0.01)
    assert err < 1e-5
    with pytest.raises(ValueError, match="unknown compliant contact grid keys"):
        fit_compliant_contact(truth, G, BOUNDS, grid={"stifness": (1.0,)})


@pytest.mark.slow
def test_fit_from_several_starts_keeps_the_lowest_training_error():
    # two drops made with two different constant sets: the coordinate search has two local bests
    truth = [compliant_prior_rollout(start((0.5, 0.14, 0.5), (0.004, -0.004, 0.0), (0.0, 0.0, 0.03)), 25, G,
                                     BOUNDS, CompliantContact(8.0, 0.0, 0.5, 0.03)),
             compliant_prior_rollout(start((0.4, 0.14, 0.6), (-0.003, -0.005, 0.002), (0.02, 0.0, 0.0)), 25, G,
                                     BOUNDS, CompliantContact(1.0, 0.5, 0.0, 0.01))]
    grid = {"stiffness": (1.0, 2.0, 4.0, 8.0), "damping": (0.0, 0.5), "friction": (0.0, 0.5),
            "offset": (0.01, 0.03), "inertia_scale": (1.0,), "carry": (1.0,)}
    soft = {"stiffness": 1.0, "damping": 0.5, "friction": 0.0, "offset": 0.01}
    stiff = {"stiffness": 7.0, "damping": 0.1, "friction": 0.5, "offset": 0.03}  # moved onto the grid: 8, 0
    singles = [fit_compliant_contact(truth, G, BOUNDS, n_steps=25, grid=grid, start=s) for s in (stiff, soft)]
    assert singles[0][1] != pytest.approx(singles[1][1], rel=1e-3)  # the two starts end apart
    best, err = fit_compliant_contact(truth, G, BOUNDS, n_steps=25, grid=grid, starts=[stiff, soft])
    assert err <= min(e for _, e in singles)
    assert (best, err) == min(singles, key=lambda r: r[1])  # the later start wins here
    assert best.stiffness in grid["stiffness"] and best.damping in grid["damping"]
    with pytest.raises(ValueError, match="not both"):
        fit_compliant_contact(truth, G, BOUNDS, grid=grid, start=soft, starts=[soft])
    with pytest.raises(ValueError, match="at least one start"):
        fit_compliant_contact(truth, G, BOUNDS, grid=grid, starts=[])


def test_default_starts_are_distinct_points_of_the_default_grid():
    assert len(DEFAULT_STARTS) >= 2 and DEFAULT_STARTS[0] != DEFAULT_STARTS[1]
    for point in DEFAULT_STARTS:
        assert set(point) == set(DEFAULT_GRID) and all(point[k] in DEFAULT_GRID[k] for k in point)


def test_config_dict_validation_and_batched_prior():
    c = CompliantContact(6.0, 0.5, 0.25, 0.01, substeps=4, inertia_scale=2.0)
    assert contact_from_dict(c.as_dict()) == c
    with pytest.raises(ValueError, match="stiffness must be a number >= 0"):
        CompliantContact(stiffness=-1.0)
    with pytest.raises(ValueError, match="substeps must be an int >= 1"):
        CompliantContact(substeps=0)
    with pytest.raises(ValueError, match="inertia_scale"):
        CompliantContact(inertia_scale=0.0)
    with pytest.raises(ValueError, match="carry must be a number >= 0"):
        CompliantContact(carry=-0.5)
    with pytest.raises(ValueError, match="3-D positions"):
        c.step(torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown wall contact model"):
        contact_from_dict({"model": "soft"})

    from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint

    ckpt = load_checkpoint(bundled_checkpoint("jelly", 3, "gns"))
    ckpt.model_config["wall_contact"] = c.as_dict()
    simulator, _ = models_from_checkpoint(ckpt)
    assert simulator.wall_contact == c
    # two objects in one batch, each near a wall: the batched prior is each object's own
    one = start((0.5, 0.06, 0.5), (0.0, -0.01, 0.0), (0.0, 0.0, 0.1))
    two = start((0.06, 0.5, 0.3), (-0.01, 0.0, 0.0))
    windows = [torch.cat([w[:1].expand(4, -1, -1), w]).transpose(0, 1) for w in (one, two)]  # [N, 6, 3]
    batch = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
    acc = simulator.prior_acceleration(torch.cat(windows), batch)
    for i, w in enumerate(windows):
        assert torch.allclose(acc[batch == i], simulator.prior_acceleration(w), atol=1e-7)
    assert not torch.allclose(simulator.prior_acceleration(torch.cat(windows)), acc, atol=1e-5)


def test_model_configs_share_the_prior_options_and_load_bundled_configs():
    import dataclasses

    from operators.checkpoints import build_models, bundled_checkpoint, load_checkpoint
    from operators.features import Normalization
    from operators.giorom import GIOROMConfig
    from operators.gns import GNSConfig
    from operators.prior_options import PriorOptions

    shared = {f.name for f in dataclasses.fields(PriorOptions)}
    for cls in (GIOROMConfig, GNSConfig):
        assert issubclass(cls, PriorOptions) and shared <= {f.name for f in dataclasses.fields(cls)}
        assert not any(name in (cls.__doc__ or "").split("Attributes:")[1].split("The walls")[0]
                       for name in shared)  # documented once, in PriorOptions
    for material in ("jelly", "sand"):  # the bundled checkpoints' stored model_config dicts still load
        for model in ("giorom", "gns"):
            ckpt = load_checkpoint(bundled_checkpoint(material, 3, model))
            cls = GIOROMConfig if model == "giorom" else GNSConfig
            cfg = cls(**ckpt.model_config)
            assert cfg.simulator_kwargs()["wall_contact"] == ckpt.model_config.get("wall_contact")
    stats = Normalization(*(torch.zeros(3) if i % 2 == 0 else torch.ones(3) for i in range(4)))
    meta = {"dim": 3, "bounds": [[0, 1]] * 3, "default_connectivity_radius": 0.05}
    sim, _ = build_models("gns", {"latent": 8, "mp_steps": 1, "residual_scale": 0.5,
                                  "wall_contact": {"model": "compliant", "stiffness": 4.0}}, meta, stats)
    assert sim.residual_scale == 0.5 and sim.wall_contact == CompliantContact(stiffness=4.0)


def test_make_splat_checkpoints_trains_over_the_compliant_contact(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    from toy_data import write_toy_dataset

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("msc_compliant", root / "scripts" / "make_splat_checkpoints.py")
    msc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msc)
    write_toy_dataset(tmp_path / "data_jelly_3d", dim=3, n=12, frames=9, material="jelly")
    given = {"stiffness": 3.0, "damping": 0.1, "friction": 0.0, "offset": 0.02, "carry": 0.0}
    # batch 2: the object-level prior of each window is its own in the training targets
    assert msc.main(["--material", "jelly", "--models", "gns", "--steps", "2", "--batch", "2", "--work",
                     str(tmp_path), "--no-ship", "--wall-contact", "--contact-model", "compliant",
                     "--contact-json", json.dumps(given)]) == 0
    info = json.loads((tmp_path / "run_gns_jelly_3d" / "info.json").read_text())
    assert info["model_config"]["wall_contact"] == CompliantContact(**given).as_dict()
    assert math.isfinite(info["final_train_loss"]) and math.isfinite(info["test_rollout_mse"])
    with pytest.raises(ValueError, match=r"unknown compliant wall contact settings \['stifness'\]"):
        msc.main(["--material", "jelly", "--models", "gns", "--steps", "1", "--work", str(tmp_path), "--no-ship",
                  "--wall-contact", "--contact-model", "compliant", "--contact-json", '{"stifness": 1}'])
