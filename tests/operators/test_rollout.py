import dataclasses
import json

import numpy as np
import pytest
import torch

from operators.checkpoints import bundled_checkpoint, load_checkpoint, models_from_checkpoint, save_checkpoint
from operators.mpm import simulate as mpm_simulate
from operators.rollout import preview, rollout
from operators.train import train
from splatops.cli import main as cli_main
from toy_data import write_toy_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_GIOROM = {"latent": 8, "mp_before": 1, "mp_after": 1, "grid_size": 4, "modes": 2, "sparse_fraction": 0.5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout")
    data = write_toy_dataset(root / "data", n=24, frames=12)
    torch.set_num_threads(1)
    gio = train("giorom", data, root / "giorom", 3, progress=False, model_config=TINY_GIOROM).checkpoint
    gns = train("gns", data, root / "gns", 3, progress=False, model_config={"latent": 8, "mp_steps": 1}).checkpoint
    return root, data, gio, gns


@pytest.mark.parametrize("which", ["giorom", "gns"])
def test_rollout_writes_predictions_and_metrics(trained, tmp_path, which):
    root, data, gio, gns = trained
    out = tmp_path / "out"
    res = rollout(gio if which == "giorom" else gns, data, split="test", out_dir=out, progress=False)
    assert [p.name for p in res.files] == ["rollout.npz", "metrics.json"]
    arrays = np.load(out / "rollout.npz")
    pred, truth = arrays["predicted_0"], arrays["ground_truth_0"]
    assert pred.shape == truth.shape == (12, 24, 2)
    np.testing.assert_array_equal(pred[:6], truth[:6])  # the given window
    metrics = json.loads((out / "metrics.json").read_text())
    per_step = ((pred[6:] - truth[6:]) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(metrics["mse_per_step"], per_step, rtol=1e-5)
    assert metrics["mean_mse"] == pytest.approx(float(per_step.mean()), rel=1e-5)
    assert metrics["model"] == which


def test_rollout_n_steps_and_errors(trained, tmp_path):
    root, data, gio, gns = trained
    res = rollout(gns, data, n_steps=2, progress=False)
    assert res.predictions[0].shape[0] == 8 and len(res.mse_per_step[0]) == 2
    with pytest.raises(ValueError, match=r"n_steps must be an int in \[1, 6\]"):
        rollout(gns, data, n_steps=7, progress=False)
    with pytest.raises(ValueError, match="max_trajectories must be >= 1"):
        rollout(gns, data, max_trajectories=0, progress=False)


def test_checkpoint_for_other_dimension_or_material_is_refused(trained, tmp_path):
    root, data, gio, gns = trained
    d3 = write_toy_dataset(tmp_path / "d3", dim=3, n=10, frames=8)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="trained on 2-D data but the data is 3-D"):
        rollout(gio, d3, out_dir=out, progress=False)
    assert not out.exists()
    sand = write_toy_dataset(tmp_path / "sand", n=10, frames=8, ptype=6, material="toy")
    with pytest.raises(ValueError, match=r"knows particle types \[5\] but the data has \[6\]"):
        rollout(gio, sand, out_dir=out, progress=False)
    other = write_toy_dataset(tmp_path / "other", n=10, frames=8, material="goop")
    with pytest.raises(ValueError, match="trained on material 'toy' but the data is 'goop'"):
        rollout(gio, other, out_dir=out, progress=False)
    assert not out.exists()


def test_load_checkpoint_errors(trained, tmp_path):
    root, data, gio, gns = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a splatops-learned-simulator checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    ck = load_checkpoint(gns)
    ck.model = "mlp"
    save_checkpoint(ck, tmp_path / "bad_model.pt")
    with pytest.raises(ValueError, match="has model 'mlp'"):
        load_checkpoint(tmp_path / "bad_model.pt")


def test_preview_with_dense_points(trained):
    root, data, gio, gns = trained
    start = np.random.default_rng(0).uniform(0.3, 0.7, size=(24, 2))
    dense = np.random.default_rng(1).uniform(0.3, 0.7, size=(500, 2))
    out = preview("toy", 2, start, 4, dense_points=dense, checkpoint=gio)
    assert out["positions"].shape == (10, 24, 2) and out["dense"].shape == (10, 500, 2)
    assert out["model"] == "giorom"
    # the simulated sparse subset starts as a strict subset of the particles
    sparse = out["sparse"]
    assert sparse.shape[0] == 10 and 0 < sparse.shape[1] < 24
    hits = np.isclose(start[None], sparse[0][:, None], atol=1e-6).all(-1)
    assert hits.any(1).all()
    # at rest in the first frame, the dense points start where they were given
    np.testing.assert_allclose(out["dense"][0], dense, atol=1e-5)
    assert np.isfinite(out["dense"]).all()
    gns_out = preview("toy", 2, start, 3, checkpoint=gns)
    assert gns_out["positions"].shape == (9, 24, 2) and gns_out["dense"] is None
    assert gns_out["sparse"] is None


def test_preview_errors(trained):
    root, data, gio, gns = trained
    start = np.full((10, 2), 0.5)
    with pytest.raises(ValueError, match="0 particles"):
        preview("toy", 2, np.zeros((0, 2)), 3, checkpoint=gio)
    nan = start.copy()
    nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        preview("toy", 2, nan, 3, checkpoint=gio)
    with pytest.raises(ValueError, match="is 2-D but dim=3"):
        preview("toy", 3, np.full((10, 3), 0.5), 3, checkpoint=gio)
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        preview("toy", 2, start, 0, checkpoint=gio)
    with pytest.raises(ValueError, match="trained on material 'toy' but the data is 'lava'"):
        preview("lava", 2, start, 2, checkpoint=gio)
    with pytest.raises(ValueError, match="dense_points needs a GIOROM checkpoint"):
        preview("toy", 2, start, 2, dense_points=start, checkpoint=gns)
    with pytest.raises(ValueError, match="no bundled giorom checkpoint for material='lava'"):
        bundled_checkpoint("lava", 2)
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        bundled_checkpoint("water", 4)
    with pytest.raises(TypeError, match="material must be a str"):
        bundled_checkpoint(5, 2)


def test_cli_train_and_rollout(trained, tmp_path, capsys):
    root, data, gio, gns = trained
    assert cli_main(["train", "gns", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2",
                     "--no-progress"]) == 0
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert cli_main(["rollout", "--model", str(gio), "--data", str(data), "--out", str(tmp_path / "ro"),
                     "--no-progress"]) == 0
    assert (tmp_path / "ro" / "metrics.json").is_file()
    assert "mean position MSE" in capsys.readouterr().out
    assert cli_main(["rollout", "--model", str(tmp_path / "none.pt"), "--data", str(data)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("material", ["water", "sand"])
def test_bundled_checkpoints_load_and_preview_with_dense_points(material):
    path = bundled_checkpoint(material, 2)
    ck = load_checkpoint(path)
    assert ck.model == "giorom" and ck.dim == 2 and ck.metadata["material"] == material
    assert path.stat().st_size < 8e6
    lo, hi = np.asarray(ck.metadata["bounds"])[0]
    g = np.random.default_rng(0)
    block = lo + (hi - lo) * (0.1 + 0.3 * g.random((300, 2)))
    out = preview(material, 2, block, 5, dense_points=block[:50])
    assert out["positions"].shape == (11, 300, 2) and out["dense"].shape == (11, 50, 2)
    assert np.isfinite(out["positions"]).all()


HELD_OUT_SEEDS = (4242, 777)  # the bundled models were trained on generate_dataset(seed=0): seeds 0..13
BOUND = 0.25  # rollout MSE must be below a quarter of constant-velocity extrapolation's


def _untrained_like(ckpt, tmp_path):
    """The checkpoint's architecture and statistics with freshly initialised weights."""
    sim, query = models_from_checkpoint(ckpt)
    torch.manual_seed(0)
    for module in [*sim.modules(), *(query.modules() if query is not None else [])]:
        if module is not sim and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    state = {f"simulator.{k}": v for k, v in sim.state_dict().items()}
    if query is not None:
        state.update({f"query.{k}": v for k, v in query.state_dict().items()})
    return save_checkpoint(dataclasses.replace(ckpt, state_dict=state), tmp_path / "untrained.pt")


def _rollout_error_ratio(material, checkpoint, steps=20):
    """Mean over held-out MPM trajectories of rollout MSE / constant-velocity MSE."""
    ratios = []
    for seed in HELD_OUT_SEEDS:
        gt = mpm_simulate(material, "dam_break", dim=2, n_particles=600, n_frames=steps + 5, seed=seed,
                          randomize=True).positions.numpy()  # [6 + steps, N, 2]
        pred = preview(material, 2, gt[:6], n_steps=steps, checkpoint=checkpoint)["positions"]
        velocity = gt[5] - gt[4]
        extrapolated = gt[5] + velocity * np.arange(1, steps + 1)[:, None, None]
        ratios.append(np.mean((pred[6:] - gt[6:]) ** 2) / np.mean((extrapolated - gt[6:]) ** 2))
    return float(np.mean(ratios))


@pytest.mark.slow
@pytest.mark.parametrize("material", ["water", "sand"])
def test_bundled_checkpoints_predict_held_out_mpm_trajectories(material, tmp_path):
    path = bundled_checkpoint(material, 2)
    trained = _rollout_error_ratio(material, path)
    assert trained < BOUND, f"{material}: rollout MSE is {trained:.2f}x constant-velocity's"
    # the bound is one an untrained network of the same architecture cannot meet
    untrained = _rollout_error_ratio(material, _untrained_like(load_checkpoint(path), tmp_path))
    assert untrained > BOUND, f"{material}: an untrained network reaches {untrained:.2f}x"
