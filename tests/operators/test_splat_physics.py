"""Physics on splats: volume fill, the covariance update, a splat drop, GIOROM on splats,
the CLI path and the bad inputs."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest
import torch

from operators.checkpoints import BUNDLED_DIR
from operators.splat_physics import (covariances, interpolation_plan, load_preview_checkpoint, prepare_object,
                                     preview_object, select_gaussians, simulate_object, transform_covariances)
from operators.splat_physics.simulate import SplatMotion
from splat.core.gaussians import Gaussians
from splat.core.quaternion import quat_to_rotmat, rotmat_to_quat
from splat.io.ply import save_ply

pytestmark = pytest.mark.usefixtures("one_thread")


def _sphere_surface(n: int = 1500, radius: float = 1.0, centre=(0.0, 0.0, 0.0)) -> Gaussians:
    """Opaque Gaussians on a sphere's surface (Fibonacci points), coloured by height."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * i / n)
    theta = math.pi * (1 + 5 ** 0.5) * i
    pts = radius * torch.stack([torch.cos(theta) * torch.sin(phi), torch.cos(phi),
                                torch.sin(theta) * torch.sin(phi)], -1) + torch.tensor(centre)
    colors = torch.stack([(pts[:, 1] - pts[:, 1].min()) / (2 * radius), torch.full((n,), 0.5),
                          torch.full((n,), 0.2)], -1)
    return Gaussians.from_points(pts.float(), colors.float().clamp(0, 1), sh_degree=0, init_opacity=0.9)


def _random_gaussians(n: int = 200, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    scales = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 0.1 + 0.01
    return quats, scales, gen


# ----------------------------------------------------------------------------- fill


def test_particles_fill_the_volume_of_a_surface_splat():
    g = _sphere_surface(1500, radius=1.0)
    obj = prepare_object(g, spacing=0.02, object_size=0.25)
    p = obj.particles.double()
    centre = torch.tensor([0.5, float(obj.frame.shift[1]), 0.5], dtype=torch.float64)
    r = 0.125  # the sphere's radius in box units
    volume_count = 4 / 3 * math.pi * r ** 3 / 0.02 ** 3  # ~1020 particles
    assert 0.8 * volume_count < p.shape[0] < 1.35 * volume_count
    dist = (p - centre).norm(dim=-1)
    assert float(dist.max()) < r + 2 * 0.02  # nothing far outside the surface
    assert int((dist < 0.5 * r).sum()) > 0.8 * volume_count / 8  # the hollow splat became solid
    # and the box frame maps the Gaussians back exactly
    back = obj.frame.to_world(obj.frame.to_box(g.means.detach()))
    assert torch.allclose(back.float(), g.means.detach(), atol=1e-5)


def test_select_inside_a_box():
    g = _sphere_surface(400)
    idx = select_gaussians(g, box=[[-2, 0.0, -2], [2, 2, 2]])
    assert 0 < idx.numel() < 400
    assert bool((g.means.detach()[idx, 1] >= 0).all())


# ------------------------------------------------------------------------ deformation


def test_identity_deformation_leaves_gaussians_unchanged():
    quats, scales, _ = _random_gaussians()
    q2, s2 = transform_covariances(quats, scales, torch.eye(3, dtype=torch.float64).expand(200, 3, 3))
    q1 = torch.nn.functional.normalize(quats, dim=-1)
    assert torch.allclose(q2, q1, atol=1e-10) and torch.allclose(s2, scales, atol=1e-12)
    # a motion that does not move leaves the whole model as it was
    g = _sphere_surface(300)
    obj = prepare_object(g, spacing=0.03)
    n = obj.particles.shape[0]
    still = obj.particles[None].repeat(2, 1, 1)
    grads = torch.eye(3).expand(2, n, 3, 3)
    motion = SplatMotion(obj, "mpm", still, grads, interpolation_plan(obj.particles, obj.centres_box.float()),
                         None, 0.0)
    g1 = motion.gaussians_at(1)
    assert torch.allclose(g1.means, g.means, atol=1e-5)
    assert torch.allclose(g1.scales, g.scales, rtol=1e-5)
    assert torch.allclose(covariances(g1.quats, g1.scales), covariances(g.quats, g.scales), atol=1e-9)


@pytest.mark.parametrize("kind", ["rotation", "scale", "rotation_scale", "general"])
def test_deformation_transforms_covariances_exactly(kind):
    quats, scales, gen = _random_gaussians(seed=1)
    n = quats.shape[0]
    Q = quat_to_rotmat(torch.randn(n, 4, generator=gen, dtype=torch.float64))
    D = torch.diag_embed(torch.rand(n, 3, generator=gen, dtype=torch.float64) * 1.5 + 0.5)
    F = {"rotation": Q, "scale": D, "rotation_scale": Q @ D,
         "general": torch.eye(3, dtype=torch.float64) + 0.4 * torch.randn(n, 3, 3, generator=gen,
                                                                            dtype=torch.float64)}[kind]
    q2, s2 = transform_covariances(quats, scales, F)
    expected = F @ covariances(quats, scales) @ F.transpose(-1, -2)
    assert torch.allclose(covariances(q2, s2), expected, atol=1e-12)
    if kind == "rotation":  # a rotation turns the axes and keeps the sizes
        assert torch.allclose(s2, scales, atol=1e-12)
        turned = rotmat_to_quat(Q @ quat_to_rotmat(quats))
        assert torch.allclose((q2 * turned).sum(-1).abs(), torch.ones(n, dtype=torch.float64), atol=1e-10)


# ----------------------------------------------------------------------------- drop


def test_splat_drop_keeps_mass_falls_freely_and_gains_the_lost_energy():
    g = _sphere_surface(600, radius=0.5, centre=(3.0, 1.0, -2.0))
    obj = prepare_object(g, spacing=0.03, bottom=0.3)
    frames = 8  # 80 ms: still in free fall (the floor is 0.3 below)
    motion = simulate_object(obj, "jelly", frames)
    pos = motion.points.double()
    assert pos.shape == (frames + 1, obj.particles.shape[0], 3)  # no particle lost or made
    t = 0.01 * frames
    drop = float(pos[0, :, 1].mean() - pos[-1, :, 1].mean())
    assert drop == pytest.approx(0.5 * 9.81 * t ** 2, rel=0.05)
    v = (pos[-1] - pos[-2]) / 0.01  # finite-difference velocity at the end
    kinetic = 0.5 * float((v ** 2).sum(-1).mean())
    assert kinetic == pytest.approx(9.81 * drop, rel=0.15)  # per unit mass
    # the Gaussians follow: their mean drop in world units is the particles' drop / scale
    means = motion.gaussians_at(frames).means.detach().double()
    world_drop = float(g.means.detach().double()[:, 1].mean() - means[:, 1].mean())
    assert world_drop == pytest.approx(drop / obj.frame.scale, rel=0.05)


# ---------------------------------------------------------------------- GIOROM on splats


def test_giorom_preview_moves_every_gaussian_from_a_sparse_graph():
    g = _sphere_surface(2000, radius=0.5)
    obj = prepare_object(g, spacing=0.02)
    path = BUNDLED_DIR / "giorom_water_3d.pt"
    motion = preview_object(obj, "water", frames=8, checkpoint=path)
    assert motion.info["sparse_points"] < obj.particles.shape[0]
    assert motion.centres.shape == (9, g.num_gaussians, 3)
    assert torch.allclose(motion.centres[0], obj.centres_box.float(), atol=1e-5)
    assert bool(torch.isfinite(motion.centres).all())
    moved = motion.gaussians_at(8)
    # the preview moves the object downwards under gravity
    assert float(moved.means.detach()[:, 1].mean()) < float(g.means.detach()[:, 1].mean())


# ------------------------------------------------------------------------- entry points


@pytest.fixture(scope="module")
def tiny_ply(tmp_path_factory):
    return save_ply(_sphere_surface(400, radius=0.5), tmp_path_factory.mktemp("splat") / "ball.ply")


def test_cli_simulates_a_tiny_splat_model(tiny_ply, tmp_path, capsys):
    from splatops.cli import main

    out = tmp_path / "drop"
    rc = main(["simulate", "--ply", str(tiny_ply), "--material", "jelly", "--frames", "3",
               "--out", str(out), "--spacing", "0.04", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "400 Gaussians" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["mpm.mp4", "splats.npz", "summary.json"]
    with np.load(out / "splats.npz") as z:
        assert z["means"].shape == (4, 400, 3) and z["quats"].shape == (4, 400, 4)
        assert np.isfinite(z["scales"]).all() and z["particles"].shape[0] == 4
    assert (out / "mpm.mp4").stat().st_size > 1000
    assert zipfile.is_zipfile(out / "splats.npz")


def test_bad_inputs_raise_clear_errors_and_write_nothing(tiny_ply, tmp_path, capsys):
    from splatops import api
    from splatops.cli import main

    g = _sphere_surface(300)
    with pytest.raises(ValueError, match="empty selection"):
        select_gaussians(g, box=[[5, 5, 5], [6, 6, 6]])
    with pytest.raises(ValueError, match="over the budget of 50"):
        prepare_object(g, spacing=0.02, max_particles=50)
    with pytest.raises(ValueError, match="trained on 'water', not 'jelly'"):
        load_preview_checkpoint("jelly", BUNDLED_DIR / "giorom_water_3d.pt")
    with pytest.raises(ValueError, match="2-D; splats need a 3-D checkpoint"):
        load_preview_checkpoint("water", BUNDLED_DIR / "giorom_water_2d.pt")
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="empty selection"):
        api.simulate_splats(tiny_ply, "jelly", out_dir=out, frames=3, box=[[5, 5, 5], [6, 6, 6]],
                            show_progress=False)
    with pytest.raises(ValueError, match="over the budget"):
        api.simulate_splats(tiny_ply, "jelly", out_dir=out, frames=3, max_particles=20, show_progress=False)
    with pytest.raises(ValueError, match="2-D"):
        api.simulate_splats(tiny_ply, "water", out_dir=out, frames=8, preview="giorom",
                            checkpoint=BUNDLED_DIR / "giorom_water_2d.pt", show_progress=False)
    assert main(["simulate", "--ply", str(tiny_ply), "--material", "jelly", "--out", str(out),
                 "--box", "5", "5", "5", "6", "6", "6", "--no-progress"]) == 2
    assert "empty selection" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_preview_beside_mpm_writes_both_and_tracks_the_drop(tiny_ply, tmp_path):
    from splatops import api

    out = tmp_path / "preview"
    res = api.simulate_splats(tiny_ply, "jelly", out_dir=out, frames=10, preview="giorom", video=False,
                              show_progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["preview_splats.npz", "splats.npz", "summary.json"]
    with np.load(out / "preview_splats.npz") as z:
        assert z["means"].shape == (11, 400, 3) and np.isfinite(z["quats"]).all()
    assert res.sparse_points < res.particles
    # the bundled jelly checkpoint follows MPM over the first frames of a drop from rest
    assert res.rmse < 0.05
    # a finer step spacing moves more of MPM's particles, and follows it at least as closely
    finer = api.simulate_splats(tiny_ply, "jelly", out_dir=None, frames=10, preview="giorom", video=False,
                                preview_step_spacing=0.014, show_progress=False)
    assert res.sparse_points < finer.sparse_points <= finer.particles
    assert finer.rmse < 0.05


def test_large_fills_are_previewed_finer_than_the_trained_density_by_default():
    from operators.splat_physics.simulate import FINE_STEP_SHARE, default_step_spacing

    jelly = load_preview_checkpoint("jelly")
    fine = FINE_STEP_SHARE["jelly"] * 0.02  # the bundled prior was fitted at spacing 0.02
    assert default_step_spacing(jelly, 0.01) is None  # the default fill: an eighth at the trained density
    assert default_step_spacing(jelly, 0.0045) == pytest.approx(fine)  # ~100k particles
    assert default_step_spacing(jelly, fine / 2) == pytest.approx(fine)  # an eighth of the fill moved
    assert default_step_spacing(jelly, 1.01 * fine / 2) is None
    sand = load_preview_checkpoint("sand")
    assert default_step_spacing(sand, 0.0045) == pytest.approx(FINE_STEP_SHARE["sand"] * 0.02)
    water = load_preview_checkpoint("water", BUNDLED_DIR / "giorom_water_3d.pt")
    assert default_step_spacing(water, 0.0045) is None  # its prior does not know a spacing
    obj = prepare_object(_sphere_surface(600, radius=0.5), spacing=0.006, max_particles=60000)
    motion = preview_object(obj, "jelly", frames=6)
    assert motion.info["step_spacing"] == pytest.approx(fine)
    n = obj.particles.shape[0]
    assert motion.info["sparse_points"] == pytest.approx(n * (0.006 / fine) ** 3, rel=0.15)


def test_a_prior_free_checkpoint_that_knows_its_data_spacing_steps_the_trained_density():
    import dataclasses

    from operators.checkpoints import models_from_checkpoint
    from operators.splat_physics.simulate import at_fill_spacing

    base = load_preview_checkpoint("water", BUNDLED_DIR / "giorom_water_3d.pt")  # no spacing-aware prior
    assert "particle_spacing" not in base.metadata and at_fill_spacing(base, 0.01) is base
    ckpt = dataclasses.replace(base, metadata={**base.metadata, "particle_spacing": 0.02},
                               model_config={**base.model_config, "sparse_fraction": 0.5})
    trained, _ = models_from_checkpoint(ckpt)
    assert at_fill_spacing(ckpt, 0.02) is ckpt
    fine = at_fill_spacing(ckpt, 0.01)  # twice as fine: an eighth of the fraction, the trained radius
    assert fine.model_config["sparse_fraction"] == pytest.approx(0.5 / 8)
    assert fine.model_config["wall_contact"] == base.model_config.get("wall_contact")
    simulator, _ = models_from_checkpoint(fine)
    assert simulator.radius == pytest.approx(trained.radius)
