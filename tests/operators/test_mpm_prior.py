"""The reduced-order MPM prior: walls placed on any grid, free flight, rest on the floor,
continuation of a rollout, agreement with a finer MPM, configs and fitting."""

import math

import pytest
import torch

from operators.contact import contact_for_point_set, contact_from_dict, contact_rollout, fit_contact, prior_spacing
from operators.mpm import MPMConfig, MPMSolver, make_material
from operators.mpm_prior import ReducedMPM, fit_reduced_mpm, mpm_prior_rollout

BOUNDS = torch.tensor([[0.08, 0.92]] * 3)
G = torch.tensor([0.0, -9.81e-4, 0.0])  # 9.81 m/s^2 at 10 ms frames


def cube(spacing=0.02, n=6, corner=(0.4, 0.3, 0.4)):
    axes = [torch.arange(n, dtype=torch.float32) * spacing + spacing / 2 for _ in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3) + torch.tensor(corner)


def mpm_frames(x, velocity, cell, frames, spacing=0.02, material="jelly"):
    """``[frames + 1, N, 3]`` positions of MPM on a grid of ``cell`` with walls at ``BOUNDS``."""
    cfg = MPMConfig()
    v = torch.tensor([velocity]).expand_as(x).clone()
    s = MPMSolver.for_walls(make_material(material), x, v, spacing ** 3, (0.08, 0.92), cell, cfg)
    sub = max(1, math.ceil(cfg.frame_dt / s.dt - 1e-9))
    s.dt = cfg.frame_dt / sub
    out = [s.x]
    with cfg.threads():
        for _ in range(frames):
            for _ in range(sub):
                s.substep()
            out.append(s.x)
    return torch.stack(out)


def test_for_walls_puts_the_innermost_wall_node_on_each_wall_at_any_resolution():
    for cell in (0.02, 0.037, 0.05):
        x = cube()
        s = MPMSolver.for_walls(make_material("jelly"), x, torch.zeros_like(x), 0.02 ** 3, (0.08, 0.92), cell,
                                MPMConfig())
        pad = s.config.boundary_cells - 1
        assert s.origin + pad * s.dx == pytest.approx(0.08)
        assert s.origin + (s.n_grid - pad) * s.dx == pytest.approx(0.92)
        assert abs(s.dx - cell) <= 0.5 * cell  # the nearest whole number of cells
        assert torch.allclose(s.x, x)  # positions read back in the box frame


def test_grid_origin_and_cell_size_do_not_change_the_physics_of_a_free_body():
    """A body away from the walls moves the same on a grid shifted by a whole cell."""
    x = cube()
    v = torch.tensor([[0.3, 0.5, -0.2]]).expand_as(x).clone()
    runs = []
    for origin in (0.0, -0.04):
        s = MPMSolver(make_material("jelly"), x - origin + origin, v, 0.02 ** 3, 50, MPMConfig(), walls=False,
                      cell_size=0.02, origin=origin)
        for _ in range(10):
            s.substep()
        runs.append(s.x)
    assert torch.allclose(runs[0], runs[1], atol=1e-5)


def test_free_flight_is_a_parabola():
    prior = ReducedMPM(material="jelly")
    x = cube()
    v = torch.tensor([0.004, 0.002, -0.003])  # box units per frame
    t = torch.arange(-1.0, 9.0)
    path = x[None] + t[:, None, None] * v + G * (t * t / 2)[:, None, None]  # a body in free flight
    out = mpm_prior_rollout(path[:2], 8, G, BOUNDS, prior)
    # started from the two frames, MPM follows the parabola to a small fraction of a spacing
    assert float((out - path).abs().max()) < 0.05 * 0.02


def test_a_dropped_body_reaches_the_floor_and_stays_in_the_box():
    x = cube(n=5, corner=(0.4, 0.2, 0.4))
    for material in ("jelly", "sand"):
        out = mpm_prior_rollout(torch.stack([x, x]), 28, G, BOUNDS, ReducedMPM(material=material))
        assert torch.isfinite(out).all()
        bottom = out[:, :, 1].min(1).values
        assert float(bottom.min()) >= 0.08 - 1e-6  # clamped to the walls it was given
        assert float(bottom.min()) < 0.08 + 0.04  # it reached the floor's wall layer (one cell)
        width = out[:, :, 0].max(1).values - out[:, :, 0].min(1).values
        if material == "jelly":  # elastic: bounces back up and keeps its width
            assert float(bottom[-1]) > float(bottom.min()) + 0.005
            assert float(width.max()) < 1.3 * float(width[0])
        else:  # sand: stays down and spreads
            assert float(bottom[-1]) < 0.08 + 0.02
            assert float(width[-1]) > 1.3 * float(width[0])


def test_a_rollout_carries_the_solver_state_and_a_residual_is_taken_as_given():
    prior = ReducedMPM(material="jelly")
    x = cube()
    v = torch.tensor([0.0, -0.01, 0.0])
    a = prior.step(x - v, x, G, BOUNDS)
    solver = prior._solver
    b = prior.step(x, a, G, BOUNDS)  # continues: the same solver
    assert prior._solver is solver
    # a shifted frame (a learned residual) is taken: the next frame moves by it and keeps its velocity
    shift = torch.tensor([0.002, 0.0, 0.0])
    c = prior.step(a, b + shift, G, BOUNDS)
    assert prior._solver is solver
    ref = ReducedMPM(material="jelly")
    ref.step(x - v, x, G, BOUNDS)
    ref.step(x, a, G, BOUNDS)
    c_ref = ref.step(a, b, G, BOUNDS)
    assert torch.allclose((c - c_ref).mean(0), 2 * shift, atol=2e-4)  # moved once, and again by the velocity
    # a window that does not continue (another object, or this one at another time) starts a fresh solver
    prior.step(x + 0.2, x + 0.2, G, BOUNDS)
    assert prior._solver is not solver
    again = prior._solver
    prior.step(x - v, x + 0.2, G, BOUNDS)  # last frame close, but not the frame before
    assert prior._solver is not again


def test_started_from_two_frames_it_follows_the_mpm_that_made_them():
    """MPM data of a jelly thrown at a wall: the prior restarts from two frames (no deformation
    gradient, no grid state given) and stays within a few percent of the object's size."""
    truth = mpm_frames(cube(corner=(0.62, 0.2, 0.4)), [1.0, 0.0, 0.0], 0.04, 24)
    out = mpm_prior_rollout(truth[:2], 23, G, BOUNDS, ReducedMPM(material="jelly"))
    size = 0.12
    rmse = ((out - truth) ** 2).sum(-1).mean(-1).sqrt() / size
    assert float(truth[:, :, 0].max()) > 0.92 - 0.04  # the data hit the wall's layer
    assert float(rmse.mean()) < 0.03
    # gravity alone (no wall, no elasticity) is far off once the body lands
    t = torch.arange(25.0)[:, None, None]
    free = truth[1][None] + (truth[1] - truth[0])[None] * (t - 1) + G * ((t - 1) ** 2 / 2)
    free_rmse = ((free - truth) ** 2).sum(-1).mean(-1).sqrt() / size
    assert float(free_rmse.mean()) > 3 * float(rmse.mean())


def test_config_round_trip_sparse_spacing_and_errors():
    prior = contact_from_dict({"model": "mpm", "material": "sand", "cell_ratio": 1.5})
    assert isinstance(prior, ReducedMPM) and prior.material == "sand"
    assert contact_from_dict(prior.as_dict()) == prior
    assert prior_spacing(prior.as_dict()) == pytest.approx(0.02)
    assert contact_for_point_set(prior.as_dict(), 2.0)["spacing"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="material"):
        ReducedMPM(material="honey")
    with pytest.raises(ValueError, match="cell_ratio"):
        ReducedMPM(cell_ratio=0)
    x = cube()
    with pytest.raises(ValueError, match="same walls"):
        ReducedMPM().step(x, x, G, torch.tensor([[0.0, 1.0], [0.1, 0.9], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="along -y"):
        ReducedMPM().step(x, x, torch.tensor([1e-3, 0.0, 0.0]), BOUNDS)
    with pytest.raises(ValueError, match="material"):
        fit_contact("mpm", [torch.stack([x] * 10)], G, BOUNDS)


def test_fit_chooses_the_grid_of_the_data_and_contact_rollout_uses_the_prior():
    x = cube(corner=(0.4, 0.2, 0.4))
    data = [mpm_frames(x, [0.5, 0.0, 0.0], 0.04, 20)]
    best, err = fit_reduced_mpm(data, G, BOUNDS, n_steps=14, material="jelly",
                                grid={"cell_ratio": (1.0, 2.0, 3.0)})
    assert best.cell_ratio == 2.0 and err < 0.05
    via = fit_contact("mpm", data, G, BOUNDS, n_steps=14, grid={"cell_ratio": (2.0,)}, material="jelly")
    assert via[0] == best
    out = contact_rollout(data[0][:6], 14, G, BOUNDS, best)
    assert out.shape == (20, x.shape[0], 3)
