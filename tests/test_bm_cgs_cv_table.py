"""bm_cgs_cv_table.py: CGS against the baselines from saved cross-validation records."""

import json

import pytest


@pytest.fixture(scope="module")
def table(load_benchmark):
    return load_benchmark("bm_cgs_cv_table")


def _write(path, records):
    path.write_text(json.dumps({"records": records}))
    return path


def _rec(model, accs):
    return {"dataset": "mice", "model": model, "fold_accuracies": accs, "folds": [[0, 1], [2, 3]],
            "value": sum(accs) / len(accs), "std": 0.0}


def test_baselines_from_another_file_are_compared_fold_by_fold(table, tmp_path, capsys):
    cgs = _write(tmp_path / "cgs.json", [_rec("cgs", [1.0, 0.5])])
    base = _write(tmp_path / "base.json", [_rec("gin", [0.5, 0.5]), _rec("gcn", [1.0, 1.0])])
    out = tmp_path / "table.json"
    assert table.main([str(base), str(cgs), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| mice | 2 | 75.0 +- 0.0 | 50.0 +- 0.0 | - | 100.0 +- 0.0 | +25.0 (25.0; 1/1/0) | - |" in printed
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["cgs_minus_gcn"]["difference"] == pytest.approx(-0.25)


def test_unreadable_files_are_named(table, tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        table.main([str(bad)])
    err = capsys.readouterr().err
    assert "notes.json: not a readable bm_cgs_cv.py result" in err and str(tmp_path) not in err
    other = _write(tmp_path / "other.json", [_rec("gin", [1.0, 1.0])])
    with pytest.raises(SystemExit):
        table.main([str(other)])
    assert "no CGS record" in capsys.readouterr().err
