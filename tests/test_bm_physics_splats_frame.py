"""The per-frame part of ``benchmarks/bm_physics_splats.py`` at a tiny size: MPM, the
GIOROM preview and the GNS step on all particles each give a row with positive timings."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench(bm_physics_splats):
    return bm_physics_splats


def test_per_frame_rows_time_mpm_giorom_and_gns(bench, tmp_path):
    rows = bench.per_frame("jelly", [200, 400], n_gaussians=300, data_dir=tmp_path)
    assert [r["material"] for r in rows] == ["jelly", "jelly"]
    for row in rows:
        for key in ("mpm_ms", "mpm_cpu_ms", "giorom_step_ms", "query_ms", "preview_ms", "preview_cpu_ms",
                    "gns_graph_ms", "gns_ms", "gns_cpu_ms", "giorom_vs_gns_cpu", "giorom_vs_gns_wall"):
            assert row[key] > 0, key
        assert row["gns_checkpoint"] == "gns_jelly_3d.pt"
        assert row["giorom_checkpoint"] == "giorom_jelly_3d.pt"
        # the GNS graph spans every particle, at most max_num_neighbors (32) edges each
        assert 0 < row["gns_edges"] <= 32 * row["particles"]
        assert row["giorom_vs_gns_cpu"] == pytest.approx(row["gns_cpu_ms"] / row["preview_cpu_ms"])
    # a finer fill: more particles, a smaller GNS radius
    assert rows[1]["particles"] > rows[0]["particles"]
    assert rows[1]["gns_radius"] < rows[0]["gns_radius"]


def test_per_frame_cli_writes_the_gns_columns(bench, tmp_path, capsys):
    out = tmp_path / "frame.json"
    assert bench.main(["--sizes", "200", "--gaussians", "300", "--materials", "sand", "--skip", "rollout",
                       "objects", "reduction", "--data-dir", str(tmp_path), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["per_frame"]
    assert len(rows) == 1 and rows[0]["material"] == "sand" and rows[0]["gns_cpu_ms"] > 0
    header = capsys.readouterr().out
    assert "| gns_ms | gns_cpu_ms | giorom_vs_gns_cpu |" in header


def test_per_frame_without_gns_has_no_gns_columns(bench, tmp_path):
    (row,) = bench.per_frame("jelly", [200], n_gaussians=300, data_dir=tmp_path, gns=False)
    assert row["preview_cpu_ms"] > 0 and "gns_ms" not in row


def test_splat_objects_preview_the_runs_valid_selected_giorom(bench, tmp_path, monkeypatch):
    import types

    import operators.splat_physics.pipeline as pipeline

    seen = []

    def fake_run(ply, material, box, frames, preview, video, checkpoint=None, spacing=None, max_particles=None):
        seen.append((Path(ply).stem, material, checkpoint, spacing))
        summary = {"gaussians_simulated": 1, "particles": 2, "preview_info": {"sparse_points": 1},
                   "mpm_ms_per_frame": 1.0, "preview_ms_per_frame": 1.0, "deform_ms_per_frame": 1.0,
                   "rmse_fraction_last": 0.1, "rmse_fraction_mean": 0.05}
        return types.SimpleNamespace(summary=summary)

    monkeypatch.setattr(pipeline, "run_splat_physics", fake_run)
    run = tmp_path / "run_giorom_sand_3d"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "best.pt").write_bytes(b"")
    rows = bench.splat_objects(["sand", "jelly"], 5, data_dir=tmp_path)
    assert rows and {r["checkpoint"] for r in rows if r["material"] == "sand"} == {str(run / "best.pt")}
    assert {r["checkpoint"] for r in rows if r["material"] == "jelly"} == {"bundled"}  # no run: bundled
    assert all(c is None for _, m, c, _ in seen if m == "jelly")
    assert {r["checkpoint"] for r in bench.splat_objects(["sand"], 5)} == {"bundled"}
    # a finer fill for MPM, and a subset of the objects
    seen.clear()
    rows = bench.splat_objects(["jelly"], 5, spacing=0.01, names=["ring"])
    assert [(o, sp) for o, _, _, sp in seen] == [("ring", 0.01)] and rows[0]["fill_spacing"] == 0.01


def test_reduction_rows_compare_the_preview_with_mpm_on_a_finer_fill(bench):
    rows = bench.reduction_errors("jelly", [0.02, 0.015], frames=10, shapes=("capsule",), size=0.2)
    assert [r["fill_spacing"] for r in rows] == [0.02, 0.015]
    coarse, fine = rows
    assert fine["particles"] > 2 * coarse["particles"]
    # the preview steps the trained density whatever the fill
    assert abs(fine["stepped_points"] - coarse["stepped_points"]) < 0.35 * coarse["stepped_points"]
    for r in rows:
        assert r["mpm_cpu_ms"] > 0 and r["preview_step_cpu_ms"] > 0
        assert 0 <= r["rmse_frac_mean"] < 0.05  # 10 frames of a drop: the bundled reduced MPM follows MPM
        # the error split: at the moved points, and the query carrying MPM's own motion of them
        assert 0 <= r["stepped_rmse_frac_mean"] < 0.05
        assert 0 <= r["query_of_truth_rmse_frac_mean"] < 0.05
    # at the fill's own spacing every point is moved: the query of MPM's motion is MPM's
    assert coarse["stepped_points"] == coarse["particles"]
    assert coarse["query_of_truth_rmse_frac_mean"] < 1e-3


def test_reduction_rows_add_gns_on_every_particle_of_fills_within_the_budget(bench):
    rows = bench.reduction_errors("jelly", [0.02, 0.015], frames=8, shapes=("capsule",), size=0.2,
                                  gns_max_particles=200)
    small, large = rows
    assert small["particles"] <= 200 < large["particles"]
    assert "gns_cpu_ms" not in large  # over the budget: GNS not rolled out
    assert small["gns_cpu_ms"] > 0 and small["gns_checkpoint"].endswith("gns_jelly_3d.pt")
    # the bundled GNS at residual 0 is the reduced MPM on every particle: it follows MPM
    assert 0 <= small["gns_rmse_frac_mean"] < 0.05


def test_reduction_rolls_gns_out_on_the_points_the_preview_moves(bench):
    rows = bench.reduction_errors("jelly", [0.02, 0.015], frames=8, shapes=("capsule",), size=0.2,
                                  gns_max_particles=10 ** 6, gns_on_stepped=True)
    same, finer = rows
    # at the data's spacing the preview moves every particle: GNS on them is GNS on every particle
    assert same["stepped_points"] == same["particles"]
    assert same["gns_stepped_rmse_frac_mean"] == pytest.approx(same["gns_rmse_frac_mean"], rel=1e-5)
    # on a finer fill it moves fewer: GNS on those points is scored apart, and follows MPM (reduced MPM prior)
    assert finer["stepped_points"] < finer["particles"]
    assert 0 <= finer["gns_stepped_rmse_frac_mean"] < 0.05
    assert "gns_stepped_rmse_frac_mean" not in bench.reduction_errors(
        "jelly", [0.02], frames=8, shapes=("capsule",), size=0.2, gns_max_particles=10 ** 6)[0]


def test_reduction_can_drop_the_datasets_test_drops_instead_of_throwing(bench):
    rows = bench.reduction_errors("jelly", [0.02], frames=8, test_drops=2, gns_max_particles=10 ** 6)
    assert [(r["shape"], r["test_drop"]) for r in rows] == [("torus", 0), ("capsule", 1)]
    assert [r["particles"] for r in rows] == [78, 288]  # the test split's drops of seed 0 at 0.02
    for r in rows:
        assert 0 <= r["rmse_frac_mean"] < 0.05 and 0 <= r["gns_rmse_frac_mean"] < 0.05


def test_reduction_can_take_its_mpm_truth_on_another_grid(bench):
    fill, = bench.reduction_errors("jelly", [0.015], frames=8, shapes=("capsule",), size=0.2)
    data, = bench.reduction_errors("jelly", [0.015], frames=8, shapes=("capsule",), size=0.2, truth_cell=0.04)
    # by default the grid follows the fill (twice its spacing); given, the training data's grid
    assert fill["mpm_cell"] == pytest.approx(0.03, rel=0.1)
    assert data["mpm_cell"] == pytest.approx(0.04, rel=0.1)
    assert data["particles"] == fill["particles"]
    # and how far that truth is from MPM on the fill's own grid
    assert "truth_vs_fill_grid_rmse_frac_mean" not in fill
    assert 0 < data["truth_vs_fill_grid_rmse_frac_mean"] < 0.05
    # another truth, which the bundled preview (reduced MPM) still follows over 8 frames
    assert data["rmse_frac_mean"] != fill["rmse_frac_mean"]
    assert 0 <= data["rmse_frac_mean"] < 0.05
    # asked for the fill's own grid: one MPM run, nothing to compare
    same, = bench.reduction_errors("jelly", [0.02], frames=8, shapes=("capsule",), size=0.2, truth_cell=0.04)
    assert same["truth_vs_fill_grid_rmse_frac_mean"] == 0.0


def test_reduction_scores_more_runs_against_the_same_mpm_runs(bench, tmp_path):
    import shutil

    from operators.checkpoints import bundled_checkpoint

    run = tmp_path / "seed1"
    for model in ("giorom", "gns"):
        (run / f"run_{model}_jelly_3d").mkdir(parents=True)
        shutil.copy(bundled_checkpoint("jelly", 3, model), run / f"run_{model}_jelly_3d" / "best.pt")
    rows = bench.reduction_errors("jelly", [0.02], frames=8, shapes=("capsule",), size=0.2,
                                  gns_max_particles=10 ** 6, more_runs=(run,))
    assert [r["run"] for r in rows] == ["bundled", str(run)]
    # the same checkpoints on the same MPM run: the same errors
    for key in ("rmse_frac_mean", "gns_rmse_frac_mean", "mpm_cpu_ms"):
        assert rows[0][key] == pytest.approx(rows[1][key], rel=1e-6), key
    summary = bench.reduction_summary(rows)
    assert [s["run"] for s in summary] == ["bundled", str(run), "mean of 2 runs"]
    assert summary[0]["difference"] == pytest.approx(rows[0]["rmse_frac_mean"] - rows[0]["gns_rmse_frac_mean"])
    assert summary[-1]["difference_se"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(FileNotFoundError, match="run_giorom_jelly_3d"):
        bench.reduction_errors("jelly", [0.02], frames=8, shapes=("capsule",), more_runs=(tmp_path / "none",))



def test_reduction_summary_pairs_giorom_and_gns_per_run(bench):
    rows = [{"material": "jelly", "run": run, "rmse_frac_mean": g, "gns_rmse_frac_mean": n}
            for run, g, n in (("a", 0.3, 0.4), ("a", 0.5, 0.4), ("b", 0.2, 0.3), ("b", 0.2, 0.5))]
    rows.append({"material": "jelly", "run": "b", "rmse_frac_mean": 9.0})  # no GNS: left out
    per_a, per_b, both = bench.reduction_summary(rows)
    assert per_a["giorom_rmse_frac"] == pytest.approx(0.4) and per_a["difference"] == pytest.approx(0.0)
    assert per_b["trajectories"] == 2 and per_b["difference"] == pytest.approx(-0.2)
    assert both["difference"] == pytest.approx(-0.1) and both["difference_se"] == pytest.approx(0.1)
