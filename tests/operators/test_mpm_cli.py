"""``splatops simulate``: writes a dataset folder, resumes, reports bad input."""

import pytest

from operators.datasets import load_dataset
from splatops.cli import main


def test_simulate_command_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "sand"
    rc = main(["simulate", "--material", "sand", "--scene", "column_collapse", "--dim", "2",
               "--out", str(out), "--trajectories", "3", "--particles", "80", "--frames", "3",
               "--seed", "2", "--no-progress"])
    assert rc == 0
    assert "1/1/1 train/valid/test" in capsys.readouterr().out
    ds = load_dataset(out)
    assert ds.metadata["material"] == "sand" and ds.metadata["seed"] == 2
    assert ds.train[0].positions.shape == (4, 80, 2)
    # a second run into the same folder is refused with a clear message
    assert main(["simulate", "--material", "sand", "--scene", "column_collapse",
                 "--out", str(out), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_simulate_command_resumes(tmp_path, capsys):
    out = tmp_path / "jelly"
    work = tmp_path / ".jelly.partial"
    work.mkdir()
    (work / "spec.json").write_text('{"material": "water"}')
    args = ["simulate", "--material", "jelly", "--scene", "falling_blocks", "--out", str(out),
            "--trajectories", "3", "--particles", "60", "--frames", "2", "--no-progress"]
    assert main(args + ["--resume"]) == 2  # the work folder belongs to another generation
    assert "different parameters" in capsys.readouterr().err
    assert main(args) == 0  # without --resume it starts over
    assert load_dataset(out).metadata["material"] == "jelly"


@pytest.mark.parametrize("argv, match", [
    (["--material", "lava", "--scene", "dam_break"], "invalid choice: 'lava'"),
    (["--material", "water", "--scene", "dam_break", "--dim", "4"], "invalid choice: 4"),
])
def test_simulate_command_rejects_bad_arguments(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit):
        main(["simulate", *argv, "--out", str(tmp_path / "x")])
    assert match in capsys.readouterr().err


def test_simulate_command_reports_value_errors(tmp_path, capsys):
    rc = main(["simulate", "--material", "water", "--scene", "dam_break", "--out",
               str(tmp_path / "x"), "--trajectories", "2", "--no-progress"])
    assert rc == 2
    assert "n_trajectories must be an int >= 3" in capsys.readouterr().err
