"""The object-level affine-body contact prior: elasticity, bounces, windows, batching, fitting."""

import math

import pytest
import torch

from operators.affine_contact import (AffineContact, affine_fit, affine_prior_rollout, corotated_energy,
                                      corotated_stress, fit_affine_contact, material_moduli)
from operators.contact import contact_from_dict, contact_rollout
from operators.rigid_contact import rotation_matrix

from rigid_frames import BOUNDS, G, cube

pytestmark = pytest.mark.usefixtures("one_thread")


def window(points, frames=6):
    """An object at rest for ``frames`` frames: ``[frames, N, 3]``."""
    return torch.stack([points] * frames)


def plate(height, n=5, size=0.1):
    """One flat layer of ``n x n`` particles at ``height``."""
    g = torch.linspace(-size / 2, size / 2, n)
    x, z = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([x.reshape(-1) + 0.5, torch.full((n * n,), height), z.reshape(-1) + 0.5], -1)


def test_corotated_energy_vanishes_for_rotations_and_its_stress_is_its_gradient():
    shear, bulk = material_moduli("jelly")
    rot = rotation_matrix(torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64))
    assert torch.allclose(corotated_stress(rot, shear, bulk), torch.zeros(3, 3, dtype=torch.float64), atol=1e-12)
    assert float(corotated_energy(rot, shear, bulk)) == pytest.approx(0.0, abs=1e-14)
    F = (rot @ torch.tensor([[1.1, 0.05, 0.0], [0.0, 0.9, 0.02], [0.03, 0.0, 1.05]], dtype=torch.float64))
    F.requires_grad_(True)
    corotated_energy(F, shear, bulk).backward()
    assert torch.allclose(F.grad, corotated_stress(F.detach(), shear, bulk), rtol=1e-6, atol=1e-12)
    assert float(corotated_energy(F.detach(), shear, bulk)) > 0


def test_material_moduli_are_the_mpm_jellys_over_density_per_frame_squared():
    shear, bulk = material_moduli("jelly", frame_dt=0.01)
    E, nu, rho = 5.0e4, 0.3, 1000.0
    assert shear == pytest.approx(E / (2 * (1 + nu)) / rho * 1e-4)
    assert bulk == pytest.approx(E * nu / ((1 + nu) * (1 - 2 * nu)) / rho * 1e-4)
    assert material_moduli("jelly", frame_dt=0.02, box=2.0)[0] == pytest.approx(shear)  # dt^2 / box^2
    with pytest.raises(ValueError, match="no elastic moduli"):
        material_moduli("water")
    assert AffineContact().shear == pytest.approx(shear) and AffineContact().bulk == pytest.approx(bulk)


def test_affine_fit_recovers_a_deformation_and_keeps_rotations_across_flat_shapes():
    pts = cube((0.0, 0.0, 0.0), n=4).double()
    A = rotation_matrix(torch.tensor([0.2, 0.4, -0.1], dtype=torch.float64)) @ torch.diag(
        torch.tensor([1.1, 0.8, 1.0], dtype=torch.float64))
    assert torch.allclose(affine_fit(pts, pts @ A.T), A, atol=1e-9)
    flat = plate(0.0).double() - torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    rot = rotation_matrix(torch.tensor([0.0, 0.3, 0.0], dtype=torch.float64))
    assert torch.allclose(affine_fit(flat, flat @ rot.T, 1e-6), rot, atol=1e-6)  # no extent across: the rotation


def test_free_flight_is_the_exact_rigid_parabola():
    frames = affine_prior_rollout(window(cube((0.5, 0.6, 0.5))), 20, G, BOUNDS, AffineContact(4.0, 0.3, 0.0, 0.02))
    com = frames.mean(1).double()[5:]
    t = torch.arange(com.shape[0], dtype=torch.float64)
    assert torch.allclose(com[:, 1], com[0, 1] - 0.5e-3 * t * (t + 1), atol=1e-5)
    f = frames.double()
    assert torch.allclose(torch.cdist(f[-1], f[-1]), torch.cdist(f[0], f[0]), atol=1e-5)


def drop(points, contact, frames=60):
    """COM heights ``[T]`` and positions of ``points`` dropped from rest."""
    out = affine_prior_rollout(window(points), frames, G, BOUNDS, contact)
    return out.mean(1)[:, 1].double(), out


def test_flat_plate_bounce_keeps_its_energy_undamped_and_loses_the_analytic_fraction_damped():
    # every particle of a flat layer lands at once: no deformation mode is excited, the body is
    # a linear oscillator with w^2 = k, 2 zeta w = c (per unit mass of each particle)
    k, c, offset = 4.0, 0.4, 0.05
    top = 0.3 - offset  # drop height above the springs
    com, frames = drop(plate(0.3), AffineContact(k, 0.0, 0.0, offset))
    assert float(frames[..., 1].min()) > 0  # the springs stopped it inside the walls: no clamp acted
    assert float(com[30:].max()) - offset == pytest.approx(top, rel=0.03)  # back up to the drop height
    # (no deformation either way; sub-steps enough for the velocity-dependent force)
    com, _ = drop(plate(0.3), AffineContact(k, c, 0.0, offset, elastic=0.0, substeps=24))
    w = math.sqrt(k)
    zeta = c / (2 * w)
    e = math.exp(-zeta * math.pi / math.sqrt(1 - zeta ** 2))
    assert (float(com[30:].max()) - offset) / top == pytest.approx(e ** 2, abs=0.04)  # height ~ e^2


def test_bulk_bodies_lose_rebound_energy_to_their_deformation_the_more_the_softer():
    rebound = {}
    for elastic in (0.25, 1.0, 4.0):
        com, frames = drop(cube((0.5, 0.35, 0.5), n=4, size=0.12), AffineContact(4.0, 0.0, 0.0, 0.05,
                                                                                  elastic=elastic))
        rebound[elastic] = float(com[35:].max()) / float(com[0])
        assert torch.isfinite(frames).all()
    plate_com, _ = drop(plate(0.35), AffineContact(4.0, 0.0, 0.0, 0.05, elastic=0.0))
    assert rebound[0.25] < rebound[1.0] < rebound[4.0] < float(plate_com[35:].max()) / 0.35


def test_reference_is_the_shape_before_the_latest_contact():
    contact = AffineContact(offset=0.02)
    lo, hi = BOUNDS[:, 0] + 0.02, BOUNDS[:, 1] - 0.02
    free = cube((0.5, 0.5, 0.5))
    touching = cube((0.5, 0.06, 0.5))
    win = torch.stack([free, free + 0.01, touching, touching])
    assert torch.equal(contact.reference(win, lo, hi), free + 0.01)
    assert torch.equal(contact.reference(torch.stack([free, free + 0.01]), lo, hi), free + 0.01)
    assert contact.reference(torch.stack([touching] * 3), lo, hi) is None  # a lasting contact: no rest shape
    assert torch.equal(contact.reference(torch.stack([touching, free, free + 0.01]), lo, hi), free + 0.01)


def test_config_dict_validation_and_batched_prior():
    c = AffineContact(6.0, 0.5, 0.25, 0.01, elastic=2.0, inertia_scale=2.0)
    assert contact_from_dict(c.as_dict()) == c
    with pytest.raises(ValueError, match="stiffness must be a number >= 0"):
        AffineContact(stiffness=-1.0)
    with pytest.raises(ValueError, match="substeps must be an int >= 1"):
        AffineContact(substeps=0)
    with pytest.raises(ValueError, match="inertia_scale"):
        AffineContact(inertia_scale=0.0)
    with pytest.raises(ValueError, match="3-D positions"):
        c.step_window(torch.zeros(1, 5, 3), torch.zeros(3), BOUNDS)
    start = window(cube((0.5, 0.3, 0.5)))
    assert torch.equal(contact_rollout(start, 5, G, BOUNDS, c), affine_prior_rollout(start, 5, G, BOUNDS, c))

    from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint

    ckpt = load_checkpoint(bundled_checkpoint("jelly", 3, "gns"))
    ckpt.model_config["wall_contact"] = c.as_dict()
    simulator, _ = models_from_checkpoint(ckpt)
    assert simulator.wall_contact == c
    # two objects in one batch, each hitting a wall: the batched prior is each object's own
    rot = rotation_matrix(torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64)).float()
    one = cube((0.0, 0.0, 0.0)) @ rot.T + torch.tensor([0.5, 0.07, 0.5])
    two = cube((0.07, 0.5, 0.3))
    windows = []
    for pts, vel in ((one, (0.0, -0.01, 0.0)), (two, (-0.01, 0.0, 0.0))):
        frames = torch.stack([pts - (5 - i) * torch.tensor(vel) for i in range(6)])
        windows.append(frames.transpose(0, 1))  # [N, 6, 3]
    batch = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
    acc = simulator.prior_acceleration(torch.cat(windows), batch)
    for i, w in enumerate(windows):
        assert torch.allclose(acc[batch == i], simulator.prior_acceleration(w), atol=1e-7)
        assert not torch.allclose(acc[batch == i], G.expand(64, 3), atol=1e-4)  # the walls act
    assert not torch.allclose(simulator.prior_acceleration(torch.cat(windows)), acc, atol=1e-5)


def test_fit_recovers_the_constants_of_its_own_rollouts():
    truth = AffineContact(4.0, 0.3, 0.0, 0.02, elastic=1.0)
    rot = rotation_matrix(torch.tensor([0.3, 0.0, 0.2], dtype=torch.float64)).float()
    start = window(cube((0.0, 0.0, 0.0), n=4, size=0.1) @ rot.T + torch.tensor([0.5, 0.2, 0.5]))
    trajectories = [affine_prior_rollout(start, 30, G, BOUNDS, truth)]
    grid = {"stiffness": (2.0, 4.0), "damping": (0.0, 0.3), "offset": (0.02,), "elastic": (1.0,),
            "inertia_scale": (1.0,), "elastic_damping": (0.0,), "friction": (0.0,)}
    fitted, err = fit_affine_contact(trajectories, G, BOUNDS, n_steps=24, grid=grid,
                                     start={"stiffness": 2.0, "damping": 0.0})
    assert (fitted.stiffness, fitted.damping) == (4.0, 0.3)
    assert err == pytest.approx(0.0, abs=1e-6)
    # from two starts: the lower of the two searches' errors, each search's own result kept as found
    one = {"stiffness": 2.0, "damping": 0.0}
    two = {"stiffness": 2.0, "damping": 0.3}
    grid1 = {**grid, "stiffness": (2.0, 4.0, 8.0)}
    results = [fit_affine_contact(trajectories, G, BOUNDS, n_steps=24, grid=grid1, start=p, passes=1)
               for p in (one, two)]
    both = fit_affine_contact(trajectories, G, BOUNDS, n_steps=24, grid=grid1, starts=[one, two], passes=1)
    assert both[1] == pytest.approx(min(r[1] for r in results))
    with pytest.raises(ValueError, match="unknown affine contact grid keys"):
        fit_affine_contact(trajectories, G, BOUNDS, grid={"spring": (1.0,)})
    with pytest.raises(ValueError, match="start or starts"):
        fit_affine_contact(trajectories, G, BOUNDS, start=one, starts=[two])
