"""``benchmarks/bm_physics_splats.py`` contact priors with given constants (``--contact-json``) or
fitted on a subset of the training drops (``--fit-drops``), scored on both splits."""

import sys
from pathlib import Path

import pytest
import torch

from operators.contact import fit_contact
from operators.datasets import read_metadata, read_split

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "operators"))

from toy_data import write_toy_dataset  # noqa: E402


@pytest.fixture(scope="module")
def bench(bm_physics_splats):
    return bm_physics_splats


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("bm")
    write_toy_dataset(root / "data_toy_3d", dim=3, n=27, frames=16, n_train=3, material="toy")
    meta = read_metadata(root / "data_toy_3d")
    return root, meta, read_split(root / "data_toy_3d", "test", meta)


def test_given_constants_are_scored_on_both_splits_without_a_fit(bench, toy):
    root, meta, test = toy
    rows = bench.object_contact_rows("toy", root, meta, test, "affine",
                                     constants={"stiffness": 4.0, "offset": 0.01, "elastic": 2.0})
    row = rows[0]
    assert row["constants_given"] and row["fit_train_rmse_frac"] is None and row["fit_drops"] is None
    assert row["wall_contact"]["model"] == "affine" and row["wall_contact"]["elastic"] == 2.0
    assert len(row["train_rmse_frac_per_trajectory"]) == 3 and len(row["rmse_frac_per_trajectory"]) == 1
    assert row["train_rmse_frac_mean"] == pytest.approx(sum(row["train_rmse_frac_per_trajectory"]) / 3)
    assert row["train_rmse_frac_mean"] > 0 and row["rmse_frac_mean"] > 0


def test_fit_on_a_subset_is_scored_on_the_whole_training_split(bench, toy):
    root, meta, test = toy
    row = bench.object_contact_rows("toy", root, meta, test, "particle", fit_drops=1)[0]
    assert row["fit_drops"] == 1 and not row["constants_given"]
    assert len(row["train_rmse_frac_per_trajectory"]) == 3
    # the fit saw the first training drop only: the same constants and error as a fit on it alone
    first = read_split(root / "data_toy_3d", "train", meta)[0].positions
    fitted, err = fit_contact("particle", [first], torch.zeros(3), torch.tensor(meta["bounds"]))
    assert row["wall_contact"] == fitted.as_dict() and row["fit_train_rmse_frac"] == pytest.approx(err)


@pytest.mark.parametrize("args, message", [
    (["--contact-json", "{stiffness: 2}"], "--contact-json is not valid JSON"),
    (["--contact-json", '{"stiffness": 2.0}'], "must map contact model names"),
    (["--fit-drops", "0"], "--fit-drops must be >= 1"),
])
def test_bad_contact_options_are_refused(bench, capsys, args, message):
    with pytest.raises(SystemExit):
        bench.main(args + ["--skip", "frame", "rollout", "objects"])
    assert message in capsys.readouterr().err
