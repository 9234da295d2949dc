"""The bundled CGS pore-network solver against SciPy's exact pressures."""

import numpy as np
import pytest
import torch

from graph.cgs.demo import load_porous_model, porous_demo, save_porous_model


def test_bundled_model_beats_the_mean_predictor_on_an_unseen_network():
    d = porous_demo(num_pores=200, seed=3)
    exact = d["exact"]
    baseline = np.abs(exact - exact.mean()).mean()
    assert d["mae"] < 0.6 * baseline
    assert d["positions"].shape == (200, 3)
    assert d["edges"].shape[0] == 2 and np.all(d["edges"][0] < d["edges"][1])
    # boundary conditions of the exact solve
    assert np.isclose(exact.max(), 1.0) and np.isclose(exact.min(), 0.0)


def test_checkpoint_round_trip(tmp_path):
    model, info = load_porous_model()
    path = save_porous_model(model, info, tmp_path / "m.pt")
    again, info2 = load_porous_model(path)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert info2 == info


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CGS checkpoint"):
        load_porous_model(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a splatops CGS checkpoint"):
        load_porous_model(tmp_path / "x.pt")
