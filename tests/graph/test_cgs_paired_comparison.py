"""graph.cgs.crossval.paired_comparison: fold-by-fold differences of two CV records."""

import math

import pytest

from graph.cgs.crossval import paired_comparison


def _record(model, accs, dataset="mice", folds=((0, 1), (2, 3))):
    return {"dataset": dataset, "model": model, "fold_accuracies": list(accs),
            "folds": [list(f) for f in folds]}


def test_mean_difference_standard_error_and_fold_counts():
    out = paired_comparison(_record("cgs", [0.75, 0.5, 0.5, 1.0]), _record("gin", [0.5, 0.5, 0.75, 0.75]))
    assert out["difference"] == pytest.approx(0.0625)
    diffs = [0.25, 0.0, -0.25, 0.25]
    mean = sum(diffs) / 4
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3) / 2
    assert out["standard_error"] == pytest.approx(se)
    assert (out["won"], out["tied"], out["lost"], out["folds"]) == (2, 1, 1, 4)


def test_records_of_other_folds_or_datasets_are_refused():
    with pytest.raises(ValueError, match="different datasets"):
        paired_comparison(_record("cgs", [1, 1]), _record("gin", [1, 1], dataset="sbm"))
    with pytest.raises(ValueError, match="not scored on the same folds"):
        paired_comparison(_record("cgs", [1, 1]), _record("gin", [1, 1], folds=((0, 2), (1, 3))))
