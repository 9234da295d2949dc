"""Projection of the learned residual onto each object's affine field (operators.affine)."""

import pytest
import torch

from operators.affine import project_affine
from operators.checkpoints import build_models
from operators.features import Normalization

pytestmark = pytest.mark.usefixtures("one_thread")


def test_affine_fields_are_kept_and_noise_is_removed():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(200, 3, generator=g)
    a, b = torch.tensor([0.1, -0.2, 0.3]), torch.randn(3, 3, generator=g)
    affine = a + (pos - 0.5) @ b.T
    assert torch.allclose(project_affine(affine, pos), affine, atol=1e-5)
    # zero-mean noise orthogonal to the affine modes is removed almost entirely
    noise = torch.randn(200, 3, generator=g)
    resid = noise - project_affine(noise, pos)
    assert project_affine(resid, pos).abs().max() < 1e-4
    # the projection is idempotent and keeps the object's mean
    once = project_affine(affine + noise, pos)
    assert torch.allclose(project_affine(once, pos), once, atol=1e-5)
    assert torch.allclose(once.mean(0), (affine + noise).mean(0), atol=1e-5)


def test_objects_of_a_batch_are_projected_separately():
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(60, 3, generator=g)
    batch = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(20, dtype=torch.long)])
    vals = torch.cat([torch.full((40, 3), 1.0), torch.full((20, 3), -2.0)])
    out = project_affine(vals, pos, batch)
    assert torch.allclose(out, vals, atol=1e-5)
    # one object alone gives the same result as inside the batch
    rnd = torch.randn(60, 2, generator=g)
    both = project_affine(rnd, pos, batch)
    assert torch.allclose(both[40:], project_affine(rnd[40:], pos[40:]), atol=1e-5)
    # a single particle gets its own value back
    assert torch.allclose(project_affine(rnd[:1], pos[:1]), rnd[:1])
    with pytest.raises(ValueError, match="must match"):
        project_affine(rnd, pos[:10])


@pytest.mark.parametrize("model", ["gns", "giorom"])
def test_affine_residual_model_predicts_an_affine_acceleration(model):
    meta = {"dim": 3, "bounds": [[0.1, 0.9]] * 3, "default_connectivity_radius": 0.1,
            "vel_mean": [0.0] * 3, "vel_std": [0.01] * 3, "acc_mean": [0.0] * 3, "acc_std": [1e-3] * 3}
    cfg = {"latent": 8, "mp_steps": 1} if model == "gns" else {"latent": 8, "grid_size": 4, "modes": 2}
    sim, _ = build_models(model, {**cfg, "residual": "affine"}, meta, Normalization.from_metadata(meta))
    free, _ = build_models(model, cfg, meta, Normalization.from_metadata(meta))
    free.load_state_dict(sim.state_dict())
    window = (torch.rand(50, 1, 3) * 0.3 + 0.35) + torch.randn(50, 6, 3) * 1e-3
    types = torch.full((50,), 5)
    with torch.no_grad():
        out, raw = sim(window, types), free(window, types)
    assert torch.allclose(out, project_affine(raw, window[:, -1]), atol=1e-5)
    assert not torch.allclose(out, raw, atol=1e-4)
    with pytest.raises(ValueError, match="residual must be"):
        build_models(model, {**cfg, "residual": "rigid"}, meta, Normalization.from_metadata(meta))
