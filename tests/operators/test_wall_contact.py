"""The known wall response under the learned residual (operators.contact)."""

import pytest
import torch

from operators.checkpoints import build_models
from operators.contact import WallContact, fit_wall_contact, prior_rollout, relative_rmse
from operators.features import Normalization
from operators.rollout import simulate
from operators.simulator import LearnedSimulator

pytestmark = pytest.mark.usefixtures("one_thread")

G = torch.tensor([0.0, -1e-3, 0.0])
BOUNDS = torch.tensor([[0.1, 0.9]] * 3)


def _meta():
    return {"dim": 3, "bounds": BOUNDS.tolist(), "default_connectivity_radius": 0.1,
            "vel_mean": [0.0] * 3, "vel_std": [0.01] * 3, "acc_mean": [0.0] * 3,
            "acc_std": [1e-3] * 3, "external_acceleration": G.tolist()}


def _drop(n=30, seed=0, vel=(0.004, -0.01, 0.0)):
    """[6, n, 3] window of a small blob moving down towards the floor at y = 0.1."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 3, generator=g) * 0.05 + torch.tensor([0.45, 0.2, 0.45])
    v = torch.tensor(vel)
    return torch.stack([x0 + v * t for t in range(6)])


def test_wall_response_reverses_normal_and_applies_friction():
    pos = torch.tensor([[0.5, 0.105, 0.5], [0.5, 0.5, 0.5]])
    vel = torch.tensor([[0.004, -0.01, 0.0], [0.004, -0.01, 0.0]])
    out = WallContact(restitution=0.5, friction=0.1).velocity(pos, vel, BOUNDS)
    # the first particle would cross the floor: its normal speed is reversed and halved,
    # its tangential speed drops by mu (1 + e) |v_n| = 0.1 * 1.5 * 0.01
    assert torch.allclose(out[0], torch.tensor([0.004 - 0.0015, 0.005, 0.0]), atol=1e-7)
    # the second is in free flight: unchanged
    assert torch.equal(out[1], vel[1])
    # friction never reverses the tangential motion
    stop = WallContact(restitution=0.0, friction=10.0).velocity(pos[:1], vel[:1], BOUNDS)
    assert torch.allclose(stop, torch.zeros(1, 3))
    # the offset moves the contact inside the reported wall
    assert torch.equal(WallContact(0.5, 0.0, offset=0.0).velocity(pos[:1] + 0.02 * torch.tensor([0, 1, 0]),
                                                                  vel[:1], BOUNDS), vel[:1])
    assert WallContact(0.5, 0.0, offset=0.02).velocity(pos[:1] + 0.02 * torch.tensor([0, 1, 0]),
                                                       vel[:1], BOUNDS)[0, 1] > 0


def test_invalid_constants_are_rejected():
    with pytest.raises(ValueError, match="restitution must be in"):
        WallContact(restitution=1.5)
    with pytest.raises(ValueError, match="friction must be a number >= 0"):
        WallContact(friction=-0.1)
    with pytest.raises(TypeError, match="wall_contact must be a WallContact"):
        LearnedSimulator(torch.nn.Identity(), 3, 0.1, BOUNDS, Normalization.from_metadata(_meta()),
                         wall_contact=3)


def test_a_drop_bounces_with_restitution_and_stays_in_the_box():
    win = _drop()
    elastic = prior_rollout(win, 40, G, BOUNDS, WallContact(restitution=0.9))
    dead = prior_rollout(win, 40, G, BOUNDS, None)
    assert (elastic >= BOUNDS[:, 0] - 1e-7).all() and (elastic <= BOUNDS[:, 1] + 1e-7).all()
    # with restitution the blob comes back up after the floor, without it it stays on it
    low = int(elastic[:, :, 1].mean(1).argmin())
    assert elastic[-1, :, 1].mean() > elastic[low, :, 1].mean() + 0.02
    assert dead[-1, :, 1].min() == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("model", ["gns", "giorom"])
def test_untrained_model_rolls_out_the_prior_and_inverts_it(model):
    contact = WallContact(restitution=0.7, friction=0.3, offset=0.01)
    meta = dict(_meta(), bounds=BOUNDS.tolist())
    stats = Normalization.from_metadata(meta, 0.0, meta["external_acceleration"])
    cfg = {"latent": 8, "mp_steps": 1} if model == "gns" else {"latent": 8, "grid_size": 4, "modes": 2}
    sim, _ = build_models(model, {**cfg, "clamp_to_bounds": True, "wall_contact": contact.as_dict()},
                          meta, stats)
    sim.eval()
    win = _drop()
    types = torch.full((win.shape[1],), 5)
    got = simulate(sim, win, types, 25)
    want = prior_rollout(win, 25, G, BOUNDS, contact)
    assert torch.allclose(got, want, atol=1e-6)
    # the training target of the prior's own step is zero (the network learns only a residual)
    window = got[10:16].transpose(0, 1)
    with torch.no_grad():
        assert sim.normalized_acceleration(got[16], window).abs().max() < 1e-3


def test_fit_recovers_the_constants_of_a_prior_made_trajectory():
    truth_contact = WallContact(restitution=0.6, friction=0.5, offset=0.01)
    trajs = [prior_rollout(_drop(seed=s, vel=(0.004 * (s + 1), -0.012, 0.002)), 30, G, BOUNDS, truth_contact)
             for s in range(2)]
    grid = {"restitution": (0.0, 0.6, 1.0), "friction": (0.0, 0.5), "offset": (0.0, 0.01)}
    fitted, err = fit_wall_contact(trajs, G, BOUNDS, n_steps=30, grid=grid)
    assert fitted == truth_contact
    assert err == pytest.approx(0.0, abs=1e-5)
    assert relative_rmse(trajs[0], trajs[0]).abs().max() == 0
    with pytest.raises(ValueError, match="at least one trajectory"):
        fit_wall_contact([], G, BOUNDS)


def test_coordinate_search_finds_the_grid_best_and_scores_fewer_combinations():
    from operators.contact import coordinate_search_prior, grid_search_prior

    truth_contact = WallContact(restitution=0.6, friction=0.5, offset=0.01)
    trajs = [prior_rollout(_drop(seed=s, vel=(0.004 * (s + 1), -0.012, 0.002)), 30, G, BOUNDS, truth_contact)
             for s in range(2)]
    grid = {"restitution": (0.0, 0.3, 0.6, 1.0), "friction": (0.0, 0.25, 0.5), "offset": (0.0, 0.01, 0.02)}
    make = lambda e, mu, off: WallContact(float(e), float(mu), float(off))  # noqa: E731
    full = {}
    best, _ = grid_search_prior(trajs, G, BOUNDS, 30, grid, make, prior_rollout, "walls", full)
    assert best == truth_contact and len(full) == 36
    calls = []

    def counted(*args):
        calls.append(args[-1])
        return prior_rollout(*args)

    found, err = coordinate_search_prior(trajs, G, BOUNDS, 30, grid, {"restitution": 1.0, "friction": 0.0,
                                                                      "offset": 0.0}, make, counted, "walls")
    assert found == best == truth_contact and err == pytest.approx(0.0, abs=1e-5)
    assert len(calls) < len(full)  # each combination scored once, and fewer of them
    with pytest.raises(ValueError, match="needs a start value"):
        coordinate_search_prior(trajs, G, BOUNDS, 30, grid, {}, make, prior_rollout, "walls")


def test_contact_gate_silences_the_residual_in_free_flight():
    meta = {k: v for k, v in _meta().items() if k != "external_acceleration"}
    stats = Normalization.from_metadata(meta)  # no gravity prior: the output layer is not zeroed
    sim, _ = build_models("gns", {"latent": 8, "mp_steps": 1, "contact_gate": 0.05}, meta, stats)
    free = _drop()  # the blob is 0.1 above the floor: free flight
    types = torch.full((free.shape[1],), 5)
    with torch.no_grad():
        assert sim(free.transpose(0, 1), types).abs().max() == 0
        touching = free.transpose(0, 1) - torch.tensor([0.0, 0.09, 0.0])
        assert sim(touching, types).abs().max() > 0
    # one weight per object: the blob touching the floor gets 1 throughout, the free one 0
    pos = torch.cat([free[-1], free[-1] - torch.tensor([0.0, 0.1, 0.0])])
    batch = torch.cat([torch.zeros(30, dtype=torch.long), torch.ones(30, dtype=torch.long)])
    w = sim.contact_weight(pos, batch)
    assert torch.equal(w[:30], torch.zeros(30)) and torch.equal(w[30:], torch.ones(30))
    with pytest.raises(ValueError, match="contact_gate must be positive"):
        build_models("gns", {"latent": 8, "mp_steps": 1, "contact_gate": 0.0}, meta, stats)


def test_residual_scale_zero_rolls_out_the_prior_alone():
    meta = {k: v for k, v in _meta().items() if k != "external_acceleration"}
    stats = Normalization.from_metadata(meta)  # a non-zero, untrained residual
    contact = WallContact(restitution=0.5)
    cfg = {"latent": 8, "mp_steps": 1, "clamp_to_bounds": True, "wall_contact": contact.as_dict()}
    off, _ = build_models("gns", {**cfg, "residual_scale": 0.0}, meta, stats)
    half, _ = build_models("gns", {**cfg, "residual_scale": 0.5}, meta, stats)
    full, _ = build_models("gns", cfg, meta, stats)
    half.load_state_dict(full.state_dict())
    win = _drop()
    types = torch.full((win.shape[1],), 5)
    zero_g = torch.zeros(3)
    assert torch.allclose(simulate(off, win, types, 10), prior_rollout(win, 10, zero_g, BOUNDS, contact), atol=1e-6)
    with torch.no_grad():
        w = win.transpose(0, 1)
        assert torch.allclose(half(w, types), 0.5 * full(w, types))
    with pytest.raises(ValueError, match="residual_scale must be >= 0"):
        build_models("gns", {**cfg, "residual_scale": -1.0}, meta, stats)
