"""Known gravity under the learned residual, walls that hold the rollout, and training devices."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from operators.checkpoints import build_models, load_checkpoint, models_from_checkpoint
from operators.features import Normalization
from operators.splat_physics.shapes import gravity_per_frame
from operators.train import train
from toy_data import write_toy_dataset

ROOT = Path(__file__).resolve().parents[2]
G = [0.0, -2e-4, 0.0]


def _meta(dim=3):
    return {"dim": dim, "bounds": [[0.1, 0.9]] * dim, "default_connectivity_radius": 0.1,
            "vel_mean": [0.0] * dim, "vel_std": [0.01] * dim,
            "acc_mean": [0.0, 1e-4, 0.0][:dim], "acc_std": [1e-3] * dim}


def _free_fall(n=20, g=G):
    """[n, 6, 3] windows of particles falling freely (constant per-frame acceleration g)."""
    x0 = torch.rand(n, 3) * 0.2 + 0.4
    v0 = torch.randn(n, 3) * 1e-3
    t = torch.arange(7, dtype=torch.float32)[None, :, None]
    pos = x0[:, None] + v0[:, None] * t + 0.5 * torch.tensor(g) * t * (t - 1)
    return pos[:, :6], pos[:, 6]


def test_residual_statistics_are_zero_mean_rms():
    stats = Normalization.from_metadata(_meta(), 0.0, G)
    assert torch.equal(stats.acc_mean, torch.zeros(3))
    # residual a - g has mean acc_mean - g: its RMS combines that offset with the std
    want = (1e-3 ** 2 + torch.tensor([0.0, 3e-4, 0.0]) ** 2).sqrt()
    assert torch.allclose(stats.acc_std, want)
    with pytest.raises(ValueError, match="external_acceleration must be 3"):
        Normalization.from_metadata(_meta(), 0.0, [0.0, -1.0])


@pytest.mark.parametrize("model", ["gns", "giorom"])
def test_untrained_model_with_gravity_falls_freely(model):
    meta = dict(_meta(), external_acceleration=G)
    torch.manual_seed(0)
    cfg = {"latent": 8, "mp_steps": 1} if model == "gns" else {"latent": 8, "grid_size": 4, "modes": 2}
    sim, _ = build_models(model, cfg, meta, Normalization.from_metadata(meta, 0.0, G))
    window, nxt = _free_fall()
    types = torch.full((window.shape[0],), 5)
    with torch.no_grad():
        assert torch.allclose(sim.predict_positions(window, types), nxt, atol=1e-6)
        # and free fall is a zero target for the network
        assert sim.normalized_acceleration(nxt, window).abs().max() < 1e-3
    # without the prior an untrained network is not free fall
    plain, _ = build_models(model, cfg, _meta(), Normalization.from_metadata(_meta()))
    with torch.no_grad():
        assert not torch.allclose(plain.predict_positions(window, types), nxt, atol=1e-6)


def test_residual_scale_zero_is_the_prior_alone_without_the_network():
    """At residual scale 0 the step is the prior's (the residual's normalisation mean included),
    and the network is not evaluated."""
    meta = dict(_meta(), external_acceleration=G)
    stats = Normalization.from_metadata(meta, 0.0, G)
    torch.manual_seed(0)
    sim, _ = build_models("gns", {"latent": 8, "mp_steps": 1, "residual_scale": 0.0}, meta, stats)
    with torch.no_grad():
        sim.acc_mean.fill_(1e-4)  # a residual offset the prior alone must not add

    def refuse(*args, **kwargs):
        raise AssertionError("the network ran at residual scale 0")

    sim.network.forward = refuse
    window, nxt = _free_fall()
    with torch.no_grad():
        out = sim.predict_positions(window, torch.full((window.shape[0],), 5))
    assert torch.allclose(out, nxt, atol=1e-6)  # free fall exactly: gravity, no offset


def test_clamp_keeps_rollout_inside_the_walls():
    meta = dict(_meta(), external_acceleration=G)
    stats = Normalization.from_metadata(meta, 0.0, G)
    window = torch.full((4, 6, 3), 0.5)
    window[:, :, 1] = torch.linspace(0.3, 0.1, 6)  # falling onto the floor at 0.1
    types = torch.full((4,), 5)
    for clamp in (False, True):
        sim, _ = build_models("gns", {"latent": 8, "mp_steps": 1, "clamp_to_bounds": clamp}, meta, stats)
        with torch.no_grad():
            y = sim.predict_positions(window, types)[:, 1]
        if clamp:
            assert torch.allclose(y, torch.full_like(y, 0.1))
        else:
            assert (y < 0.1).all()


def test_checkpoint_keeps_gravity_and_clamp(tmp_path):
    data = write_toy_dataset(tmp_path / "data", dim=3, n=16, frames=9)
    meta = json.loads((data / "metadata.json").read_text())
    meta["external_acceleration"] = G
    (data / "metadata.json").write_text(json.dumps(meta))
    res = train("gns", data, tmp_path / "run", 2, progress=False, batch_size=1,
                model_config={"latent": 8, "mp_steps": 1, "clamp_to_bounds": True})
    ckpt = load_checkpoint(res.checkpoint)
    assert ckpt.metadata["external_acceleration"] == G
    assert ckpt.stats["acc_mean"] == [0.0, 0.0, 0.0]
    sim, _ = models_from_checkpoint(ckpt)
    assert torch.allclose(sim.external_acceleration, torch.tensor(G))
    assert sim.clamp_to_bounds


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_training_without_gpu_is_a_clear_error(tmp_path):
    data = write_toy_dataset(tmp_path / "data", dim=2, n=8, frames=8)
    with pytest.raises(ValueError, match="no CUDA device"):
        train("gns", data, tmp_path / "run", 1, progress=False, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_training_writes_cpu_checkpoint(tmp_path):
    data = write_toy_dataset(tmp_path / "data", dim=3, n=16, frames=9)
    for model in ("gns", "giorom"):
        cfg = {"latent": 8, "mp_steps": 1} if model == "gns" else {"latent": 8, "grid_size": 4, "modes": 2}
        res = train(model, data, tmp_path / model, 3, progress=False, batch_size=2, model_config=cfg,
                    device="cuda")
        ckpt = load_checkpoint(res.checkpoint)
        assert all(v.device.type == "cpu" for v in ckpt.state_dict.values())
        assert ckpt.step == 3


def test_shape_datasets_carry_gravity(tmp_path):
    assert gravity_per_frame() == pytest.approx([0.0, -9.81e-4, 0.0])
    spec = importlib.util.spec_from_file_location("msc", ROOT / "scripts" / "make_splat_checkpoints.py")
    msc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msc)
    data = write_toy_dataset(tmp_path / "data", dim=3, n=8, frames=8)
    msc.ensure_gravity(data, True)
    assert json.loads((data / "metadata.json").read_text())["external_acceleration"] == pytest.approx(
        [0.0, -9.81e-4, 0.0])
    msc.ensure_gravity(data, False)
    assert "external_acceleration" not in json.loads((data / "metadata.json").read_text())


def test_make_splat_checkpoints_selects_on_valid(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("msc2", ROOT / "scripts" / "make_splat_checkpoints.py")
    msc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msc)
    write_toy_dataset(tmp_path / "data_jelly_3d", dim=3, n=12, frames=9, material="jelly")
    assert msc.main(["--material", "jelly", "--models", "gns", "--steps", "2", "--batch", "1",
                     "--select-every", "1", "--work", str(tmp_path), "--no-ship"]) == 0
    info = json.loads((tmp_path / "run_gns_jelly_3d" / "info.json").read_text())
    sel = info["valid_selection"]
    assert [h[0] for h in sel["valid_rollout_mse"]] == [1, 2]
    assert sel["selected_step"] == min(sel["valid_rollout_mse"], key=lambda h: h[1])[0]
    assert info["steps"] == sel["selected_step"]
    assert info["model_config"]["clamp_to_bounds"] is True
    meta = json.loads((tmp_path / "data_jelly_3d" / "metadata.json").read_text())
    assert meta["external_acceleration"] == pytest.approx([0.0, -9.81e-4, 0.0])


def test_make_splat_checkpoints_selects_at_the_same_steps_when_resumed(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("msc4", ROOT / "scripts" / "make_splat_checkpoints.py")
    msc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msc)
    write_toy_dataset(tmp_path / "data_jelly_3d", dim=3, n=12, frames=9, material="jelly")
    common = ["--material", "jelly", "--models", "gns", "--batch", "1", "--work", str(tmp_path), "--no-ship"]
    assert msc.main(common + ["--steps", "1"]) == 0  # an interrupted run: a checkpoint at step 1
    assert msc.main(common + ["--steps", "4", "--select-every", "2"]) == 0
    info = json.loads((tmp_path / "run_gns_jelly_3d" / "info.json").read_text())
    assert [h[0] for h in info["valid_selection"]["valid_rollout_mse"]] == [2, 4]
    # resumed again, the valid rollouts already made are kept: the choice is over all of them
    assert msc.main(common + ["--steps", "6", "--select-every", "2"]) == 0
    sel = json.loads((tmp_path / "run_gns_jelly_3d" / "info.json").read_text())["valid_selection"]
    assert [h[0] for h in sel["valid_rollout_mse"]] == [2, 4, 6]
    assert sel["valid_rollout_mse"][:2] == info["valid_selection"]["valid_rollout_mse"]
    assert sel["selected_step"] == min(sel["valid_rollout_mse"], key=lambda h: h[1])[0]
    # run once more to the same steps: nothing to train, the same choice
    assert msc.main(common + ["--steps", "6", "--select-every", "2"]) == 0
    again = json.loads((tmp_path / "run_gns_jelly_3d" / "info.json").read_text())["valid_selection"]
    assert again == sel


def test_make_splat_checkpoints_trains_with_the_given_seed(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("msc3", ROOT / "scripts" / "make_splat_checkpoints.py")
    msc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msc)
    weights = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        work = tmp_path / name
        write_toy_dataset(work / "data_jelly_3d", dim=3, n=12, frames=9, material="jelly")
        args = ["--material", "jelly", "--models", "gns", "--steps", "1", "--batch", "1", "--work", str(work),
                "--no-ship"] + (["--seed", str(seed)] if seed else [])
        assert msc.main(args) == 0
        ckpt = load_checkpoint(work / "run_gns_jelly_3d" / "checkpoint.pt")
        assert ckpt.train_config["seed"] == seed
        weights[name] = torch.cat([v.flatten() for v in ckpt.state_dict.values()])
    assert torch.equal(weights["a"], weights["b"])  # the same seed: the same run
    assert not torch.allclose(weights["a"], weights["c"])  # another seed: other initial weights and batches


def test_make_splat_checkpoints_takes_per_model_hyper_parameters(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("msc5", ROOT / "scripts" / "make_splat_checkpoints.py")
    msc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msc)
    work = tmp_path / "w"
    write_toy_dataset(work / "data_jelly_3d", dim=3, n=12, frames=9, material="jelly")
    base = ["--material", "jelly", "--models", "gns", "--steps", "1", "--batch", "1", "--work", str(work),
            "--no-ship"]
    assert msc.main(base + ["--model-config", '{"gns": {"latent": 8, "mp_steps": 2}}']) == 0
    cfg = load_checkpoint(work / "run_gns_jelly_3d" / "checkpoint.pt").model_config
    assert (cfg["latent"], cfg["mp_steps"]) == (8, 2)
    for bad, said in (('{"gns": {"latnet": 8}}', "no hyper-parameter latnet"),
                      ('{"giorom": {"latent": 8}}', "which --models does not train"),
                      ('{"gns": {"residual": "affine"}}', "with --residual instead"),
                      ('{"gns": 8}', "a JSON object of objects"), ("{gns", "not valid JSON")):
        with pytest.raises(SystemExit):
            msc.main(base + ["--model-config", bad])
        assert said in capsys.readouterr().err


def test_wall_horizon_sees_the_wall_from_further_away():
    from operators.features import node_features

    stats = Normalization.from_metadata(_meta())
    bounds = torch.tensor([[0.1, 0.9]] * 3)
    window = torch.full((2, 6, 3), 0.5)
    window[0, :, 1], window[1, :, 1] = 0.2, 0.3  # 1 and 2 radii above the floor
    near = node_features(window, stats, bounds, 0.1)[:, -6 + 1]  # lower wall, y
    far = node_features(window, stats, bounds, 0.1, wall_horizon=4.0)[:, -6 + 1]
    assert torch.equal(near, torch.ones(2))  # GNS clip: both saturated
    assert torch.allclose(far, torch.tensor([0.25, 0.5]))
