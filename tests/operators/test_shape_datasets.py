"""Shape-drop datasets: the varied training shapes, initial spins, and a held-out split that
does not depend on the training variety."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from operators.datasets import read_metadata, read_split
from operators.splat_physics.shapes import (HELD_OUT_SHAPES, TRAIN_SHAPES, VARIED_TRAIN_SHAPES,
                                            generate_shape_dataset, random_shape_scene, shape_scene)
from toy_data import write_toy_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]


def test_varied_shapes_fill_inside_the_box_and_hold_nothing_out():
    assert set(TRAIN_SHAPES) < set(VARIED_TRAIN_SHAPES)
    assert not set(VARIED_TRAIN_SHAPES) & set(HELD_OUT_SHAPES)
    counts = {}
    for shape in VARIED_TRAIN_SHAPES:
        init = shape_scene(shape, 0.2, bottom=0.1)
        p = init.positions
        counts[shape] = p.shape[0]
        assert float(p.min()) >= 0.05 and float(p.max()) <= 0.95
        assert float(p[:, 1].min()) == pytest.approx(0.15, abs=1e-6)  # wall + bottom
        extent = p.max(0).values - p.min(0).values
        assert float(extent.max()) <= 0.2 + 1e-6
    # volume fractions of the unit cube: box 1 > cylinder (0.385) > cone (0.262) > octahedron (1/6)
    assert counts["box"] > counts["cylinder"] > counts["cone"] > counts["octahedron"]
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        shape_scene("blob", 0.2)


def test_spin_is_a_rigid_rotation_about_the_centroid():
    omega = np.array([0.0, 4.0, -2.0])
    init = shape_scene("sphere", 0.2, velocity=(1.0, -0.5, 0.0), spin=omega)
    p, v = init.positions.double(), init.velocities.double()
    arm = p - p.mean(0)
    assert torch.allclose(v.mean(0), torch.tensor([1.0, -0.5, 0.0], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(v, torch.tensor([1.0, -0.5, 0.0], dtype=torch.float64)
                          + torch.linalg.cross(torch.from_numpy(omega).expand_as(arm), arm), atol=1e-5)
    assert init.info["spin"] == pytest.approx(omega.tolist())
    with pytest.raises(ValueError, match="spin must be 3 finite numbers"):
        shape_scene("sphere", 0.2, spin=(1.0, float("nan"), 0.0))


def test_random_spin_leaves_the_other_draws_of_a_seed_unchanged():
    still, spun = random_shape_scene("cone", 7), random_shape_scene("cone", 7, max_spin=10.0)
    assert torch.equal(still.positions, spun.positions)
    assert torch.allclose(still.velocities.mean(0), spun.velocities.mean(0), atol=1e-5)
    assert still.info["spin"] == [0.0, 0.0, 0.0]
    assert 0.0 < float(np.linalg.norm(spun.info["spin"])) <= 10.0


def test_held_out_split_does_not_depend_on_the_training_variety(tmp_path):
    kw = dict(n_train=1, n_valid=1, n_test=1, n_frames=2, spacing=0.04, progress=False)
    plain = generate_shape_dataset("jelly", tmp_path / "plain", **kw)
    varied = generate_shape_dataset("jelly", tmp_path / "varied", train_shapes=VARIED_TRAIN_SHAPES,
                                    train_size_range=(0.2, 0.28), train_max_spin=10.0, **kw)
    meta = read_metadata(varied)
    assert meta["train_max_spin"] == 10.0 and meta["train_size_range"] == [0.2, 0.28]
    assert json.loads((plain / "metadata.json").read_text())["train_max_spin"] == 0.0
    (a,), (b,) = read_split(plain, "test", read_metadata(plain)), read_split(varied, "test", meta)
    assert torch.equal(a.positions, b.positions)
    (ta,), (tb,) = read_split(plain, "train", read_metadata(plain)), read_split(varied, "train", meta)
    assert ta.positions.shape != tb.positions.shape or not torch.equal(ta.positions, tb.positions)


def test_held_out_drops_are_the_test_split_at_any_spacing(tmp_path):
    from operators.splat_physics.shapes import held_out_drop

    data = generate_shape_dataset("jelly", tmp_path / "d", n_train=1, n_valid=1, n_test=2, n_frames=2,
                                  spacing=0.04, progress=False)
    for i, traj in enumerate(read_split(data, "test", read_metadata(data))):
        shape, scene = held_out_drop(i, 0.04)
        assert shape == ("torus", "capsule")[i]
        assert torch.equal(scene.positions.float(), traj.positions[0])
    # the same drop filled twice as finely: about 8x the particles in the same place
    _, coarse = held_out_drop(1, 0.04)
    _, fine = held_out_drop(1, 0.02)
    assert 5 < fine.positions.shape[0] / coarse.positions.shape[0] < 11
    assert torch.allclose(fine.positions.mean(0), coarse.positions.mean(0), atol=0.02)
    assert torch.allclose(fine.velocities.mean(0), coarse.velocities.mean(0), atol=1e-3)


def _make_splat_checkpoints():
    spec = importlib.util.spec_from_file_location("msc_shapes", ROOT / "scripts" / "make_splat_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_splat_checkpoints_keeps_held_out_shapes_out_of_training(tmp_path, capsys):
    msc = _make_splat_checkpoints()
    with pytest.raises(SystemExit):
        msc.main(["--train-shapes", "box,torus", "--work", str(tmp_path)])
    assert "must not hold the held-out test shapes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        msc.main(["--train-shapes", "box,blob", "--work", str(tmp_path)])
    assert "unknown --train-shapes blob" in capsys.readouterr().err
    # a shape dataset made with other training drops is not silently reused
    data = write_toy_dataset(tmp_path / "data_jelly_3d", dim=3, n=8, frames=8, material="jelly")
    meta = json.loads((data / "metadata.json").read_text())
    (data / "metadata.json").write_text(json.dumps({**meta, "train_shapes": list(TRAIN_SHAPES)}))
    with pytest.raises(SystemExit):
        msc.main(["--train-shapes", "varied", "--train-max-spin", "10", "--work", str(tmp_path)])
    assert "made with other training drops" in capsys.readouterr().err
    assert not any(tmp_path.glob("run_*"))
