"""The granular contact prior: grain non-penetration, resting piles, friction, batching, fitting."""

import math

import pytest
import torch

from operators.contact import contact_from_dict, contact_rollout, fit_contact
from operators.granular_contact import GranularContact, fit_granular_contact, granular_prior_rollout

BOUNDS = torch.tensor([[0.0, 1.0]] * 3)
G = torch.tensor([0.0, -1e-3, 0.0])
NO_G = torch.zeros(3)
#: One undamped, unrelaxed projection (the defaults are the fitted sand constants).
EXACT = dict(iterations=4, relaxation=1.0, viscosity=0.0)


def frames(prev, last):
    return torch.as_tensor(prev, dtype=torch.float32), torch.as_tensor(last, dtype=torch.float32)


def test_two_grains_closer_than_the_contact_distance_are_pushed_apart_to_it():
    c = GranularContact(spacing=0.02, distance=1.0, recovery=1.0, friction=0.0, offset=0.0, pressed_only=False,
                        **EXACT)
    pair = [[0.5, 0.5, 0.5], [0.51, 0.5, 0.5]]  # 0.01 apart, at rest, contact distance 0.02
    nxt = c.step(*frames(pair, pair), NO_G, BOUNDS)
    assert float((nxt[1] - nxt[0]).norm()) == pytest.approx(0.02, abs=1e-6)
    assert torch.allclose(nxt.mean(0), torch.tensor([0.505, 0.5, 0.5]), atol=1e-6)  # pushed symmetrically
    # by default only a pair being pressed together is pushed: at rest it stays, approaching it is pushed
    pressed = GranularContact(spacing=0.02, distance=1.0, recovery=1.0, friction=0.0, offset=0.0, **EXACT)
    assert torch.allclose(pressed.step(*frames(pair, pair), NO_G, BOUNDS), torch.tensor(pair), atol=1e-7)
    approaching = frames([[0.49, 0.5, 0.5], [0.52, 0.5, 0.5]], [[0.5, 0.5, 0.5], [0.51, 0.5, 0.5]])
    nxt = pressed.step(*approaching, NO_G, BOUNDS)
    assert float((nxt[1] - nxt[0]).norm()) == pytest.approx(0.02, abs=1e-6)
    # without recovery an overlapping pair is only kept from getting closer
    still = GranularContact(spacing=0.02, distance=1.0, recovery=0.0, offset=0.0, **EXACT)
    nxt = still.step(*approaching, NO_G, BOUNDS)
    assert float((nxt[1] - nxt[0]).norm()) == pytest.approx(0.01, abs=1e-6)
    # grains farther apart than the distance pass freely
    far = [[0.5, 0.5, 0.5], [0.53, 0.5, 0.5]]
    assert torch.allclose(c.step(*frames(far, far), NO_G, BOUNDS), torch.tensor(far))


def test_free_flight_is_a_parabola_that_keeps_the_shape():
    torch.manual_seed(0)
    blob = 0.5 + 0.05 * torch.rand(200, 3)  # random fill: many pairs well inside the contact distance
    v = torch.tensor([0.003, 0.001, -0.002])
    c = GranularContact(spacing=0.02, distance=0.8, recovery=1.0, viscosity=0.3, friction=0.5)
    out = granular_prior_rollout(torch.stack([blob - v, blob]), 20, G, BOUNDS, c)
    t = torch.arange(out.shape[0], dtype=torch.float32) - 1
    expect = blob[None] + t[:, None, None] * v + G * (t * (t + 1) / 2)[:, None, None]
    assert torch.allclose(out, expect, atol=1e-5)


def lattice(nx=4, ny=3, nz=4, d=0.02, floor=0.0):
    """``[nx*ny*nz, 3]`` grains of a cubic lattice at spacing ``d`` resting on the floor ``floor``."""
    axes = [torch.arange(n, dtype=torch.float32) * d for n in (nx, ny, nz)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return pts + torch.tensor([0.5, floor, 0.5])


def test_a_resting_pile_on_the_floor_stays_put():
    c = GranularContact(spacing=0.02, distance=1.0, recovery=1.0, friction=0.5, wall_friction=0.5, offset=0.01,
                        iterations=8, relaxation=1.5, stacking=3.0, viscosity=0.3)
    pile = lattice(floor=0.01)  # three layers of grains in contact
    out = granular_prior_rollout(torch.stack([pile, pile]), 60, G, BOUNDS, c)
    # it jitters by less than a sixth of a spacing (the pressed grains are pushed back each frame) and
    # keeps its height and footprint
    assert float((out - pile).norm(dim=-1).max()) < 0.02 / 6
    assert float(out[-1, :, 1].max()) > 0.05 - 0.02 / 6
    assert torch.allclose(out[-1, :, [0, 2]], pile[:, [0, 2]], atol=1e-4)
    # grains ten times smaller than their spacing do not hold each other up: the pile falls into a layer
    flat = granular_prior_rollout(torch.stack([pile, pile]), 40, G, BOUNDS,
                                  GranularContact(spacing=0.002, distance=1.0, offset=0.01))
    assert float(flat[-1, :, 1].max()) < 0.01 + 0.002


@pytest.mark.parametrize("tilt, slides", [(10.0, False), (20.0, False), (30.0, True), (40.0, True)])
def test_wall_friction_holds_a_grain_on_a_slope_below_the_friction_angle(tilt, slides):
    mu = 0.5  # friction angle atan(0.5) = 26.6 degrees
    a = math.radians(tilt)
    g = 1e-3 * torch.tensor([math.sin(a), -math.cos(a), 0.0])  # gravity tilted against the floor
    grain = torch.tensor([[0.5, 0.0, 0.5]])
    out = granular_prior_rollout(torch.stack([grain, grain]), 30, g, BOUNDS,
                                 GranularContact(wall_friction=mu, offset=0.0))
    moved = float(out[-1, 0, 0] - 0.5)
    assert float(out[:, 0, 1].abs().max()) == 0.0  # stays on the floor
    if slides:  # accelerates at g (sin - mu cos) per frame squared
        expect = 1e-3 * (math.sin(a) - mu * math.cos(a)) * 30 * 31 / 2
        assert moved == pytest.approx(expect, rel=0.05)
    else:
        assert moved == 0.0


def test_friction_between_grains_stops_their_relative_slip():
    # two overlapping grains, one sliding past the other along z at 0.003 per frame
    prev, last = frames([[0.5, 0.5, 0.5], [0.515, 0.5, 0.497]], [[0.5, 0.5, 0.5], [0.515, 0.5, 0.5]])
    pred = torch.tensor([0.015, 0.0, 0.003])  # predicted separation
    normal, pen = pred / pred.norm(), 0.02 - float(pred.norm())

    def slip(mu):  # relative displacement over the frame across the contact normal
        c = GranularContact(friction=mu, spacing=0.02, distance=1.0, recovery=1.0, offset=0.0, pressed_only=False,
                            **EXACT)
        nxt = c.step(prev, last, NO_G, BOUNDS)
        rel = (nxt[1] - nxt[0]) - (last[1] - last[0])
        return float((rel - (rel @ normal) * normal).norm())

    free = slip(0.0)
    assert free == pytest.approx(float((pred - torch.tensor([0.015, 0.0, 0.0])).cross(normal, dim=0).norm()),
                                 abs=1e-6)  # frictionless: the slip goes on
    assert slip(1.0) == pytest.approx(0.0, abs=1e-6)  # static: the slip is below mu times the overlap
    assert slip(0.2) == pytest.approx(free - 0.2 * pen, abs=1e-6)  # kinetic: shortened by mu times the overlap


def test_config_dict_registry_and_batched_prior_match_single_calls():
    c = GranularContact(distance=0.8, friction=0.3, recovery=0.5, viscosity=0.2)
    assert c.as_dict()["model"] == "granular"
    assert contact_from_dict(c.as_dict()) == c
    with pytest.raises(ValueError, match="friction must be a number >= 0"):
        GranularContact(friction=-1.0)
    with pytest.raises(ValueError, match="iterations must be an int >= 1"):
        GranularContact(iterations=0)
    with pytest.raises(ValueError, match="spacing must be a number > 0"):
        GranularContact(spacing=0.0)
    with pytest.raises(ValueError, match="recovery and viscosity must be in"):
        GranularContact(recovery=2.0)
    with pytest.raises(ValueError, match="pressed_only must be True or False"):
        GranularContact(pressed_only=1)
    with pytest.raises(ValueError, match="two frames"):
        c.step(torch.zeros(5, 3), torch.zeros(4, 3), G, BOUNDS)

    from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint

    ckpt = load_checkpoint(bundled_checkpoint("sand", 3, "gns"))
    ckpt.model_config["wall_contact"] = c.as_dict()
    simulator, _ = models_from_checkpoint(ckpt)
    assert simulator.wall_contact == c
    # two piles landing on the same spot in one batch: each window's grains meet only their own
    one = lattice(floor=0.09)
    two = lattice(floor=0.09) + torch.tensor([0.007, 0.005, 0.004])
    windows = [torch.stack([p + 0.01 * k * torch.tensor([0.0, 1.0, 0.0]) for k in range(5, -1, -1)], 1)
               for p in (one, two)]  # [N, 6, 3], falling 0.01 per frame
    n = one.shape[0]
    batch = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    acc = simulator.prior_acceleration(torch.cat(windows), batch)
    for i, w in enumerate(windows):
        assert torch.allclose(acc[batch == i], simulator.prior_acceleration(w), atol=1e-7)
    assert not torch.allclose(simulator.prior_acceleration(torch.cat(windows)), acc, atol=1e-5)
    # the registry's rollout is the granular one
    start = torch.stack([one + torch.tensor([0.0, 0.1, 0.0]), one + torch.tensor([0.0, 0.09, 0.0])])
    ext, bounds = simulator.external_acceleration, simulator.bounds
    assert torch.equal(contact_rollout(start, 5, ext, bounds, c), granular_prior_rollout(start, 5, ext, bounds, c))


def test_fit_recovers_the_constants_of_its_own_rollouts():
    torch.manual_seed(1)
    truth_contact = GranularContact(distance=1.0, friction=0.5, wall_friction=0.1, offset=0.0, recovery=1.0, **EXACT)
    trajectories = []
    for shift in (0.0, 0.1):
        blob = lattice(3, 3, 3, floor=0.15 + shift) + 0.002 * torch.rand(27, 3)
        v = torch.tensor([0.004 - shift / 20, -0.01, 0.002])
        trajectories.append(granular_prior_rollout(torch.stack([blob - v, blob]), 33, G, BOUNDS, truth_contact)[1:])
    grid = {"distance": (0.5, 1.0), "friction": (0.0, 0.5), "wall_friction": (0.1, 0.5), "offset": (0.0,),
            "recovery": (1.0,), "iterations": (4,), "relaxation": (1.0,), "stacking": (0.0,), "viscosity": (0.0,)}
    best, err = fit_granular_contact(trajectories, G, BOUNDS, n_steps=25, grid=grid,
                                     start={"distance": 0.5, "friction": 0.0, "wall_friction": 0.5})
    assert (best.distance, best.friction, best.wall_friction) == (1.0, 0.5, 0.1)
    assert err < 1e-4
    via_registry, err2 = fit_contact("granular", trajectories, G, BOUNDS, n_steps=25, grid=grid)
    assert err2 == pytest.approx(err) and via_registry == best
    with pytest.raises(ValueError, match="unknown granular contact grid keys"):
        fit_granular_contact(trajectories, G, BOUNDS, grid={"frction": (0.1,)})


def test_giorom_applies_the_granular_prior_at_the_spacing_of_its_sparse_graph():
    from operators.checkpoints import build_models
    from operators.contact import contact_for_point_set
    from operators.features import Normalization
    from operators.rollout import simulate

    meta = {"dim": 3, "bounds": BOUNDS.tolist(), "default_connectivity_radius": 0.05,
            "external_acceleration": G.tolist()}
    zero = torch.zeros(3)
    stats = Normalization(zero, torch.full((3,), 0.01), zero, torch.full((3,), 1e-3))
    prior = GranularContact().as_dict()  # fitted at the datasets' spacing, 0.02
    giorom, _ = build_models("giorom", dict(latent=8, mp_before=1, mp_after=1, grid_size=4, modes=2,
                                            sparse_fraction=0.5, wall_contact=prior, residual_scale=0.0),
                             meta, stats)
    gns, _ = build_models("gns", dict(latent=8, mp_steps=1, wall_contact=prior), meta, stats)
    sparse = 0.02 * 2 ** (1 / 3)  # half the particles: each stands for twice the volume
    assert giorom.wall_contact.spacing == pytest.approx(sparse)
    assert gns.wall_contact.spacing == 0.02  # GNS steps every particle
    assert giorom.wall_contact.distance == prior["distance"] and prior["spacing"] == 0.02  # config kept
    # a resting pile of the sparse points (GIOROM's prior alone: residual scale 0) stays put: not pushed
    # apart, and not collapsing as it does under the prior at the dense spacing
    pile = lattice(d=sparse, floor=GranularContact().offset)
    with torch.no_grad():
        out = simulate(giorom, pile[None].repeat(6, 1, 1), torch.zeros(pile.shape[0], dtype=torch.long), 30)
    assert float((out - pile).norm(dim=-1).max()) < sparse / 5
    assert float(out[-1, :, 1].max()) > float(pile[:, 1].max()) - sparse / 5
    dense = granular_prior_rollout(torch.stack([pile, pile]), 30, G, BOUNDS, GranularContact())
    assert float(dense[-1, :, 1].max()) < float(pile[:, 1].max()) - sparse / 3
    # other priors carry no spacing and are left as they are
    assert contact_for_point_set({"restitution": 0.0, "friction": 0.25}, 2.0) == {"restitution": 0.0,
                                                                                 "friction": 0.25}
    assert contact_for_point_set(None, 2.0) is None
    assert contact_for_point_set({"model": "granular"}, 2.0)["spacing"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="spacing_factor must be a number > 0"):
        contact_for_point_set(prior, 0.0)


def test_splat_preview_steps_at_the_trained_density_whatever_the_fill():
    from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint
    from operators.splat_physics.simulate import at_fill_spacing

    ckpt = load_checkpoint(bundled_checkpoint("sand", 3, "giorom"))
    ckpt.model_config["wall_contact"] = GranularContact().as_dict()
    ckpt.model_config["sparse_fraction"] = 0.5
    trained, _ = models_from_checkpoint(ckpt)
    assert at_fill_spacing(ckpt, 0.02) is ckpt  # filled at the data's spacing: as trained
    # a fill twice as fine: an eighth as large a fraction, the same points per volume, prior and radius
    fine = at_fill_spacing(ckpt, 0.01)
    assert fine.model_config["sparse_fraction"] == pytest.approx(0.5 / 8)
    simulator, query = models_from_checkpoint(fine)
    assert simulator.wall_contact.spacing == pytest.approx(trained.wall_contact.spacing)
    assert simulator.radius == pytest.approx(trained.radius)
    # a coarser fill than the trained points: all of it is moved, at its own spacing
    coarse = at_fill_spacing(ckpt, 0.03)
    assert coarse.model_config["sparse_fraction"] == 1.0
    assert coarse.model_config["wall_contact"]["spacing"] == pytest.approx(0.03)
    assert ckpt.model_config["wall_contact"]["spacing"] == 0.02  # the loaded checkpoint is not changed
    simulator, _ = models_from_checkpoint(coarse)
    assert simulator.wall_contact.spacing == pytest.approx(0.03)
    assert simulator.radius == pytest.approx(trained.radius * 0.03 / (0.02 * 2 ** (1 / 3)))
    per_particle = dict(ckpt.model_config, wall_contact={"restitution": 0.0, "friction": 0.25, "offset": 0.02})
    ckpt.model_config = per_particle
    assert at_fill_spacing(ckpt, 0.03) is ckpt
    for bad in (0, -0.01, "0.01"):
        with pytest.raises(ValueError, match="step_spacing must be a number > 0"):
            at_fill_spacing(ckpt, 0.03, step_spacing=bad)
