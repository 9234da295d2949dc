"""``splatops graph``: forwardgnn and cgs subcommands, tables and JSON output."""

import json
import sys
import types

import pytest
import torch

from splatops.cli import main


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_forwardgnn_prints_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "res" / "karate.json"
    rc = main(["graph", "forwardgnn", "--dataset", "karate", "--variant", "sf", "--conv", "sage",
               "--seeds", "2", "--epochs", "10", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "karate" in text and "accuracy" in text and "sage" in text
    payload = json.loads(out.read_text())
    assert payload["dataset"] == "karate" and payload["variant"] == "sf"
    assert payload["seeds"] == 2 and len(payload["runs"]) == 2
    assert 0.0 <= payload["mean"] <= 1.0 and payload["peak_saved_mb"] > 0
    assert [p.name for p in out.parent.iterdir()] == ["karate.json"]  # no temporary left


def test_forwardgnn_link_task(tmp_path):
    out = tmp_path / "link.json"
    assert main(["graph", "forwardgnn", "--dataset", "les_miserables", "--variant", "bp",
                 "--task", "link", "--epochs", "10", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metric"] == "roc_auc"


def test_forwardgnn_errors_are_reported(tmp_path, capsys):
    out = tmp_path / "x.json"
    assert main(["graph", "forwardgnn", "--dataset", "karate", "--variant", "nope",
                 "--json", str(out)]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["graph", "forwardgnn", "--dataset", "cora"]) == 2
    assert "unknown dataset 'cora'" in capsys.readouterr().err
    assert main(["graph", "forwardgnn", "--dataset", "karate", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_graph_without_subcommand_prints_help(capsys):
    assert main(["graph"]) == 2
    assert "forwardgnn" in capsys.readouterr().out


def test_a_missing_cgs_module_is_an_import_error_not_a_value_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "graph.cgs.experiments", None)  # import fails
    with pytest.raises(ImportError, match="graph.cgs.experiments"):
        main(["graph", "cgs", "--task", "porous"])


def test_cgs_records_become_table_and_json(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_run(task, seed=0, quick=False):
        calls.append((task, seed, quick))
        return [{"model": "cgs", "mse": 0.01}, {"model": "gcn", "mse": 0.2, "iterations": 1}]

    monkeypatch.setitem(sys.modules, "graph.cgs.experiments",
                        types.SimpleNamespace(run=fake_run))
    out = tmp_path / "cgs.json"
    assert main(["graph", "cgs", "--task", "mdp", "--seed", "3", "--quick",
                 "--json", str(out)]) == 0
    assert calls == [("mdp", 3, True)]
    text = capsys.readouterr().out
    assert "iterations" in text and "gcn" in text
    payload = json.loads(out.read_text())
    assert payload["task"] == "mdp" and payload["records"][1]["mse"] == 0.2


def test_cgs_rejects_malformed_records(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "graph.cgs.experiments",
                        types.SimpleNamespace(run=lambda task, seed=0, quick=False: "done"))
    assert main(["graph", "cgs", "--task", "classify"]) == 2
    assert "must return a list of dicts, got str" in capsys.readouterr().err
