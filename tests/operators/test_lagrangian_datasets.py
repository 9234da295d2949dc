"""Dataset layout (GNS / learning_to_simulate): write, load, validate, generate, resume."""

import json

import numpy as np
import pytest
import torch

from operators import datasets
from operators.datasets import (
    finite_difference_stats,
    generate_dataset,
    load_dataset,
    write_dataset,
)


def _traj(rng, T=6, N=5, d=2, start=0.0):
    pos = start + np.cumsum(rng.normal(0, 0.01, (T, N, d)), axis=0).astype(np.float32)
    return pos, np.full(N, 5, dtype=np.int64)


@pytest.fixture
def splits():
    rng = np.random.default_rng(0)
    return {"train": [_traj(rng), _traj(rng, N=7)], "valid": [_traj(rng)],
            "test": [_traj(rng, N=3)]}


def test_round_trip(tmp_path, splits):
    out = write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]],
                        extra={"material": "water"})
    ds = load_dataset(out)
    assert ds.dim == 2 and ds.dt == 0.01 and ds.metadata["sequence_length"] == 5
    assert ds.metadata["material"] == "water"
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [2, 1, 1]
    for split in ("train", "valid", "test"):
        for rec, (pos, types) in zip(ds.split(split), splits[split]):
            assert rec.positions.dtype == torch.float32 and rec.particle_type.dtype == torch.int64
            np.testing.assert_array_equal(rec.positions.numpy(), pos)
            np.testing.assert_array_equal(rec.particle_type.numpy(), types)
    # statistics are those of the training split's finite differences
    vel = np.concatenate([np.diff(p, axis=0).reshape(-1, 2) for p, _ in splits["train"]])
    acc = np.concatenate([np.diff(p, n=2, axis=0).reshape(-1, 2) for p, _ in splits["train"]])
    np.testing.assert_allclose(ds.metadata["vel_mean"], vel.mean(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ds.metadata["vel_std"], vel.std(0), rtol=1e-4)
    np.testing.assert_allclose(ds.metadata["acc_std"], acc.std(0), rtol=1e-4)
    # no temporary folders are left next to the dataset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_write_refuses_existing_and_overwrites(tmp_path, splits):
    write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]])
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]])
    splits["test"] = [_traj(np.random.default_rng(9), N=11)]
    write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]], overwrite=True)
    assert load_dataset(tmp_path / "ds").test[0].positions.shape == (6, 11, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_failed_write_leaves_nothing(tmp_path, splits, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(datasets, "write_json_atomic", boom)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s.pop("test"), "splits must be a dict"),
    (lambda s: s.__setitem__("valid", []), "split 'valid' has no trajectories"),
    (lambda s: s.__setitem__("valid", [(np.zeros((6, 0, 2), np.float32), np.zeros(0))]),
     "zero particles"),
    (lambda s: s.__setitem__("valid", [(np.full((6, 2, 2), np.nan, np.float32), np.zeros(2))]),
     "NaN"),
    (lambda s: s.__setitem__("valid", [(np.zeros((6, 2), np.float32), np.zeros(2))]),
     r"must be \[T, N, 2\|3\]"),
    (lambda s: s.__setitem__("valid", [(np.zeros((2, 2, 2), np.float32), np.zeros(2))]),
     "at least 3 frames"),
    (lambda s: s.__setitem__("valid", [(np.zeros((7, 2, 2), np.float32), np.zeros(2))]),
     "expected T=6"),
    (lambda s: s.__setitem__("valid", [(np.zeros((6, 2, 2), np.float32), np.zeros(3))]),
     r"particle_type must be \[2\]"),
])
def test_write_rejects_bad_input(tmp_path, splits, mutate, match):
    mutate(splits)
    with pytest.raises(ValueError, match=match):
        write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]])
    assert not (tmp_path / "ds").exists()


def test_write_rejects_bad_dt_bounds_and_items(tmp_path, splits):
    with pytest.raises(ValueError, match="dt must be a positive number"):
        write_dataset(tmp_path / "ds", splits, dt=0.0, bounds=[[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="bounds must have 2"):
        write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1]])
    splits["test"] = ["not a trajectory"]
    with pytest.raises(TypeError, match=r"test\[0\] must be"):
        write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]])


def test_stats_need_trajectories():
    with pytest.raises(ValueError, match="at least one trajectory"):
        finite_difference_stats([])


def _edit_metadata(path, **changes):
    meta = json.loads((path / "metadata.json").read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    (path / "metadata.json").write_text(json.dumps(meta))


def _rewrite_npz(path, **arrays):
    with np.load(path) as z:
        data = dict(z)
    for k, v in arrays.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(path, **data)


@pytest.mark.parametrize("corrupt, match", [
    (lambda p: (p / "metadata.json").unlink(), r"metadata.json: missing"),
    (lambda p: (p / "metadata.json").write_text("{not json"), "invalid JSON"),
    (lambda p: (p / "metadata.json").write_text("[1, 2]"), "expected a JSON object"),
    (lambda p: _edit_metadata(p, vel_std=None), r"missing keys \['vel_std'\]"),
    (lambda p: _edit_metadata(p, dim=4), "dim must be 2 or 3"),
    (lambda p: _edit_metadata(p, bounds=[[0, 1]]), "bounds must have 2 pairs"),
    (lambda p: _edit_metadata(p, acc_mean=[0.0]), "acc_mean must have 2 entries"),
    (lambda p: (p / "valid.npz").unlink(), r"valid.npz: missing split file"),
    (lambda p: (p / "test.npz").write_bytes(b"garbage"), r"test.npz: not a readable"),
    (lambda p: _edit_metadata(p, sequence_length=9), r"train.npz: positions_0 has 6 frames"),
    (lambda p: _rewrite_npz(p / "train.npz", particle_type_1=None), "has no particle_type_1"),
    (lambda p: _rewrite_npz(p / "train.npz", positions_0=None, particle_type_0=None),
     r"indices are not 0..0"),
    (lambda p: _rewrite_npz(p / "valid.npz", positions_0=np.zeros((6, 5, 3), np.float32)),
     r"valid.npz: positions_0 must be \[T, N, 2\]"),
    (lambda p: _rewrite_npz(p / "valid.npz", positions_0=np.zeros((6, 0, 2), np.float32),
                            particle_type_0=np.zeros(0, np.int64)), "zero particles"),
    (lambda p: _rewrite_npz(p / "valid.npz", particle_type_0=np.zeros(4, np.int64)),
     r"particle_type_0 must be \[5\]"),
    (lambda p: _rewrite_npz(p / "test.npz", positions_0=np.full((6, 3, 2), np.nan, np.float32)),
     r"test.npz: positions_0 contains NaN"),
    (lambda p: _rewrite_npz(p / "test.npz", positions_0=None, particle_type_0=None),
     r"test.npz: no positions_<i> arrays"),
])
def test_load_rejects_malformed(tmp_path, splits, corrupt, match):
    out = write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]])
    corrupt(out)
    with pytest.raises(ValueError, match=match):
        load_dataset(out)


def test_load_missing_folder_and_bad_split(tmp_path, splits):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    ds = load_dataset(write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="split must be one of"):
        ds.split("training")


def test_generate_dataset_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "water"
    kwargs = dict(material="water", scene="dam_break", dim=2, n_trajectories=3,
                  n_particles=120, n_frames=3, seed=1, progress=False)
    ds = load_dataset(generate_dataset(out_dir=out, **kwargs))
    assert ds.metadata["material"] == "water" and ds.metadata["scene"] == "dam_break"
    assert ds.metadata["particle_count"] == 120 and ds.metadata["seed"] == 1
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [1, 1, 1]
    assert ds.train[0].positions.shape == (4, 120, 2)
    assert (ds.train[0].particle_type == 5).all()
    # randomised trajectories differ from each other
    assert not torch.equal(ds.train[0].positions[0], ds.valid[0].positions[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["water"]

    # interrupt the second generation after its first trajectory, then resume
    import operators.mpm as mpm
    real, calls = mpm.simulate, []

    def flaky(*a, **k):
        calls.append(k["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(mpm, "simulate", flaky)
    out2 = tmp_path / "water2"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(out_dir=out2, **kwargs)
    assert not out2.exists() and (tmp_path / ".water2.partial" / "traj_00000.npz").exists()
    resumed = load_dataset(generate_dataset(out_dir=out2, resume=True, **kwargs))
    assert calls == [1000, 1001, 1001, 1002]  # trajectory 0 was not simulated again
    for a, b in zip(ds.train + ds.valid + ds.test, resumed.train + resumed.valid + resumed.test):
        assert torch.equal(a.positions, b.positions)
    assert not (tmp_path / ".water2.partial").exists()


def test_generate_dataset_rejects_bad_input(tmp_path):
    base = dict(material="water", scene="dam_break", dim=2, n_trajectories=3, n_particles=50,
                n_frames=3, seed=0, out_dir=tmp_path / "ds", progress=False)
    for key, value, match in [
        ("material", "lava", r"unknown material 'lava'; choose one of \['jelly'"),
        ("scene", "tsunami", r"unknown scene 'tsunami'; choose one of \['colliding_blocks'"),
        ("dim", 4, "dim must be 2 or 3"),
        ("n_particles", 0, "n_particles must be a positive int"),
        ("n_trajectories", 2, "n_trajectories must be an int >= 3"),
        ("n_frames", 1, "n_frames must be an int >= 2"),
        ("seed", -1, "seed must be a non-negative int"),
    ]:
        with pytest.raises(ValueError, match=match):
            generate_dataset(**{**base, key: value})
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        generate_dataset(**base)


def test_resume_with_other_parameters_is_refused(tmp_path):
    work = tmp_path / ".ds.partial"
    work.mkdir()
    (work / "spec.json").write_text(json.dumps({"material": "sand"}))
    with pytest.raises(ValueError, match="different parameters"):
        generate_dataset("water", "dam_break", 2, 3, 50, 3, 0, tmp_path / "ds",
                         progress=False, resume=True)


def test_default_connectivity_radius_is_three_neighbour_distances(tmp_path):
    """On a regular lattice of spacing h the default radius is 3 h."""
    h = 0.02
    grid = np.stack(np.meshgrid(np.arange(10) * h, np.arange(8) * h, indexing="ij"), -1)
    lattice = grid.reshape(-1, 2).astype(np.float32)
    pos = np.stack([lattice + 0.001 * t for t in range(4)])
    types = np.zeros(len(lattice), np.int64)
    splits = {k: [(pos, types)] for k in ("train", "valid", "test")}
    ds = load_dataset(write_dataset(tmp_path / "ds", splits, dt=0.01, bounds=[[0, 1], [0, 1]]))
    assert ds.metadata["default_connectivity_radius"] == pytest.approx(3 * h, rel=1e-4)
