"""``splatops graph large``: progress, table, JSON, and the memory-cap error."""

import json

import pytest

from graph.forwardgnn.memcap import require_fit
from splatops import api
from splatops.cli import main


def _result(fits: bool) -> dict:
    spec = {"num_nodes": 5000, "variant": "bp"}
    if not fits:
        return {"spec": spec, "cap_mb": 64.0, "fits": False, "reason": "out of memory (allocator)",
                "peak_rss_mb": 60.0}
    return {"spec": spec, "cap_mb": 64.0, "fits": True, "reason": "ok", "num_edges": 49000,
            "test": 0.8, "peak_rss_mb": 40.0, "peak_saved_mb": 12.0, "train_seconds": 1.5}


def test_large_run_reports_progress_table_and_json(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake(num_nodes, variant, **kw):
        seen.update(kw, num_nodes=num_nodes, variant=variant)
        kw["progress"](0.5, "bp")
        kw["progress"](1.0, "bp")
        return require_fit(_result(True))

    monkeypatch.setattr(api, "forwardgnn_large", fake)
    out = tmp_path / "large.json"
    assert main(["graph", "large", "--nodes", "5000", "--variant", "bp", "--memory-cap", "64",
                 "--epochs", "2", "--json", str(out)]) == 0
    assert seen["num_nodes"] == 5000 and seen["memory_cap_mb"] == 64.0 and seen["epochs"] == 2
    captured = capsys.readouterr()
    assert "peak_rss_mb" in captured.out and "49000" in captured.out
    assert "100%" in captured.err  # the tqdm bar reached the end
    assert json.loads(out.read_text())["test"] == 0.8


def test_a_graph_over_the_cap_exits_with_a_readable_error(monkeypatch, capsys):
    monkeypatch.setattr(api, "forwardgnn_large", lambda *a, **k: require_fit(_result(False)))
    assert main(["graph", "large", "--nodes", "5000", "--variant", "bp",
                 "--memory-cap", "64"]) == 1
    out = capsys.readouterr().out
    assert "5000 nodes with variant 'bp' does not fit the memory cap of 64 MB" in out
    assert "layer-local variant 'sf'" in out


def test_the_verb_checks_its_spec_before_starting_a_process():
    with pytest.raises(ValueError, match="num_nodes must be an int >= 100"):
        api.forwardgnn_large(10)
