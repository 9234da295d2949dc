import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from operators.datasets import read_metadata, read_split
from operators.train import train
from toy_data import write_toy_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY_GIOROM = {"latent": 8, "mp_before": 1, "mp_after": 1, "grid_size": 4, "modes": 2, "sparse_fraction": 0.5}
TINY_GNS = {"latent": 8, "mp_steps": 1}


@pytest.fixture
def data(tmp_path):
    return write_toy_dataset(tmp_path / "data", n=24, frames=10)


def test_checkpoint_contents(data, tmp_path):
    res = train("giorom", data, tmp_path / "run", 3, progress=False, model_config=TINY_GIOROM)
    ck = torch.load(res.checkpoint, weights_only=False)
    assert ck["step"] == 3 and ck["model"] == "giorom"
    assert ck["metadata"]["dim"] == 2 and ck["metadata"]["particle_types"] == [5]
    assert ck["metadata"]["material"] == "toy"
    assert set(ck["stats"]) == {"vel_mean", "vel_std", "acc_mean", "acc_std"}
    assert ck["optimizer"]["state"]
    assert any(k.startswith("query.") for k in ck["state_dict"])
    assert not [p for p in os.listdir(tmp_path / "run") if p.endswith(".tmp")]


def test_resume_continues_from_checkpoint_step(data, tmp_path):
    out = tmp_path / "run"
    first = train("gns", data, out, 4, progress=False, model_config=TINY_GNS, log_every=1)
    saved = torch.load(first.checkpoint, weights_only=False)
    res = train("gns", data, out, 7, resume=True, progress=False, log_every=1)
    ck = torch.load(res.checkpoint, weights_only=False)
    assert res.step == 7 and ck["step"] == 7
    assert [s for s, _ in ck["history"]] == list(range(1, 8))
    assert ck["history"][:4] == saved["history"]
    # the same 7 steps in one go give the same weights (sampling is keyed by step)
    straight = train("gns", data, tmp_path / "straight", 7, progress=False, model_config=TINY_GNS, log_every=1)
    for k, v in straight.state_dict.items():
        torch.testing.assert_close(res.state_dict[k], v, atol=1e-5, rtol=1e-4)


def test_resume_errors(data, tmp_path):
    with pytest.raises(ValueError, match="resume=True but .* does not exist"):
        train("gns", data, tmp_path / "none", 2, resume=True, progress=False)
    train("gns", data, tmp_path / "run", 1, progress=False, model_config=TINY_GNS)
    with pytest.raises(ValueError, match="holds a gns model, not giorom"):
        train("giorom", data, tmp_path / "run", 2, resume=True, progress=False)
    other = write_toy_dataset(tmp_path / "d3", dim=3, n=10, frames=8)
    with pytest.raises(ValueError, match="trained on 2-D data but the data is 3-D"):
        train("gns", other, tmp_path / "run", 2, resume=True, progress=False)


def test_argument_errors(data, tmp_path):
    with pytest.raises(ValueError, match="model must be one of"):
        train("mlp", data, tmp_path / "r", 2)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train("gns", data, tmp_path / "r", 0)
    with pytest.raises(TypeError, match="unknown training settings"):
        train("gns", data, tmp_path / "r", 2, learning_rate=1.0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train("gns", tmp_path / "missing", tmp_path / "r", 2)


def _corrupt(path: Path, kind: str) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    if kind == "no_metadata":
        (path / "metadata.json").unlink()
    elif kind == "bad_json":
        (path / "metadata.json").write_text("{not json")
    elif kind == "missing_key":
        del meta["acc_std"]
        (path / "metadata.json").write_text(json.dumps(meta))
    elif kind == "bad_bounds":
        meta["bounds"] = [[0.9, 0.1], [0.1, 0.9]]
        (path / "metadata.json").write_text(json.dumps(meta))
    elif kind == "no_train":
        (path / "train.npz").unlink()
    else:
        arrays = dict(np.load(path / "train.npz"))
        if kind == "nan":
            arrays["positions_0"][3, 2, 1] = np.nan
        elif kind == "zero_particles":
            arrays["positions_0"] = arrays["positions_0"][:, :0]
            arrays["particle_type_0"] = arrays["particle_type_0"][:0]
        elif kind == "wrong_dim":
            arrays["positions_0"] = np.concatenate([arrays["positions_0"]] * 2, axis=2)[..., :3]
        elif kind == "no_types":
            del arrays["particle_type_1"]
        np.savez(path / "train.npz", **arrays)


@pytest.mark.parametrize("kind, message", [
    ("no_metadata", "metadata.json: missing"),
    ("bad_json", "invalid JSON"),
    ("missing_key", r"missing keys \['acc_std'\]"),
    ("bad_bounds", "bounds must have 2 pairs"),
    ("no_train", "train.npz: missing split file"),
    ("nan", "contains NaN or Inf"),
    ("zero_particles", "has zero particles"),
    ("wrong_dim", r"must be \[T, N, 2\]"),
    ("no_types", "no particle_type_1"),
])
def test_malformed_dataset_leaves_no_output(data, tmp_path, kind, message):
    _corrupt(data, kind)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train("gns", data, out, 2, progress=False, model_config=TINY_GNS)
    assert not out.exists()


def test_read_helpers(data):
    meta = read_metadata(data)
    assert meta["dim"] == 2
    assert len(read_split(data, "valid", meta)) == 1


DDP_SCRIPT = """
import os, sys, torch
sys.path.insert(0, {root!r})
torch.manual_seed(int(os.environ["RANK"]) + 100)  # different seeds: DDP must still agree
from operators.train import train
res = train("giorom", {data!r}, {out!r}, 4, progress=False, model_config={cfg!r}, checkpoint_every=2)
torch.save(res.state_dict, os.path.join({out!r}, "rank%s.pt" % os.environ["RANK"]))
"""


@pytest.mark.slow
def test_torchrun_two_processes_agree(data, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), data=str(data), out=str(out), cfg=TINY_GIOROM))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(out / "rank0.pt")
    r1 = torch.load(out / "rank1.pt")
    assert r0.keys() == r1.keys()
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], atol=0, rtol=0)
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 4
    for k in r0:
        torch.testing.assert_close(ck["state_dict"][k], r0[k], atol=0, rtol=0)


def test_checkpoint_records_the_particle_spacing_of_its_data(data, tmp_path):
    meta = json.loads((data / "metadata.json").read_text())
    res = train("gns", data, tmp_path / "no_spacing", 1, progress=False, model_config=TINY_GNS)
    assert "particle_spacing" not in torch.load(res.checkpoint, weights_only=False)["metadata"]
    (data / "metadata.json").write_text(json.dumps({**meta, "particle_spacing": 0.02}))
    res = train("gns", data, tmp_path / "spacing", 1, progress=False, model_config=TINY_GNS)
    assert torch.load(res.checkpoint, weights_only=False)["metadata"]["particle_spacing"] == 0.02
