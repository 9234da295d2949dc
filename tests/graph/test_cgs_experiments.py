"""CGS experiments: training lowers the porous error, implicit gradients cost less memory, errors."""

import types

import pytest
import torch

from graph.cgs import profiling
from graph.cgs import CGS, CGSConfig, TrainConfig, count_parameters, train
from graph.cgs.experiments import (GraphExperiment, benchmark, format_table, gradient_cost,
                                   matched_gcn, run, run_porous, torch_threads)
from graph.cgs.profiling import median_seconds, saved_tensor_bytes
from graph.cgs.tasks import make_porous_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_porous():
    return GraphExperiment(
        train_graphs=16, train_sizes=(30, 60), test_graphs=3, test_sizes=(100, 150),
        model=CGSConfig(node_dim=4, edge_dim=1, hidden=16, heads=8, enc_layers=1,
                        gamma_max=0.999, init_contraction=0.95, tol=1e-4, max_iter=300),
        train=TrainConfig(epochs=30, batch_size=4, lr=1e-2, progress=False))


@pytest.mark.slow
def test_training_brings_porous_error_well_below_the_mean_predictor():
    records = run_porous(seed=0, setting=tiny_porous())
    by = {(r["model"], r["metric"]): r for r in records}
    cgs, mean = by[("cgs", "test_mse")]["value"], by[("mean", "test_mse")]["value"]
    assert cgs < 0.35 * mean, (cgs, mean)
    assert by[("cgs", "test_mse")]["iterations"] > 1
    assert by[("cgs", "test_mse")]["train_seconds"] > 0


def test_implicit_backward_keeps_less_for_backward_than_unrolling():
    torch.manual_seed(0)
    graphs = make_porous_dataset(2, (40, 60), seed=3)
    model = CGS(tiny_porous().model)
    recs = gradient_cost(model, graphs, repeats=1)
    by = {(r["model"], r["metric"]): r["value"] for r in recs}
    depth = recs[0]["iterations"]
    assert depth > 5
    # unrolling saves one [N, H] state per iteration; the implicit solve saves one in all
    state = sum(d.num_nodes for d in graphs) * 8 * 4
    for prefix in ("", "solver_"):
        assert by[("cgs-unrolled", prefix + "saved_bytes")] \
            - by[("cgs-implicit", prefix + "saved_bytes")] >= (depth - 4) * state
    # the implicit solve keeps only its weights [E, H] and the fixed point [N, H]
    # (plus the [N, H] cotangent the test loss multiplies by)
    weights = sum(d.num_edges for d in graphs) * 8 * 4
    assert by[("cgs-implicit", "solver_saved_bytes")] <= weights + 2 * state
    assert by[("cgs-unrolled", "grad_cosine_vs_implicit")] > 0.99
    assert model.config.gradient == "implicit"  # restored


def test_saved_tensor_bytes_and_median_seconds(monkeypatch):
    x = torch.randn(100, 10, requires_grad=True)
    out, saved = saved_tensor_bytes(lambda: (x.exp() * 2).sum())
    assert saved == 100 * 10 * 4  # exp saves its result
    with torch.no_grad():
        _, none = saved_tensor_bytes(lambda: x.exp())
    assert none == 0
    calls = []
    ticks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # three timed runs of 3 s, 1 s and 2 s
    monkeypatch.setattr(profiling, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert median_seconds(lambda: calls.append(1), repeats=3, warmup=2) == 2.0
    assert len(calls) == 5  # the two warm-up runs are not timed
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        median_seconds(lambda: None, repeats=0)


def test_matched_gcn_has_about_the_same_size():
    cgs = CGS(CGSConfig(node_dim=4, edge_dim=1, hidden=32, heads=16))
    n = count_parameters(cgs)
    gcn = matched_gcn(n, 4)
    assert abs(count_parameters(gcn) - n) < 0.05 * n


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_format_table():
    text = format_table([{"task": "porous", "model": "cgs", "metric": "test_mse",
                          "value": 0.0123, "iterations": 40.0, "train_seconds": 3.5}])
    assert "porous" in text and "0.0123" in text and "40.0" in text


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown task 'maze'; choose one of \['porous', 'gvi', "
                                         r"'classification'\] \(aliases: .*'mdp'.*'classify'"):
        run("maze")
    with pytest.raises(ValueError, match="threads must be a positive int or None"):
        run("porous", threads=0)
    with pytest.raises(TypeError, match="task must be a str"):
        run(3)
    with pytest.raises(TypeError, match="seed must be an int"):
        run("porous", seed="0")
    with pytest.raises(TypeError, match="quick must be a bool"):
        run("porous", quick="yes")
    with pytest.raises(TypeError, match="quick must be a bool"):
        benchmark(quick=1)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="l1")
    with pytest.raises(ValueError, match="dataset must be a non-empty list"):
        train(CGS(CGSConfig(node_dim=4, edge_dim=1)), [])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train("cgs", make_porous_dataset(1, (20, 20), seed=0))


def test_warmup_rises_linearly_then_decays_to_the_final_ratio():
    from graph.cgs.training import _schedule

    config = TrainConfig(lr=1e-2, warmup=0.2, final_lr_ratio=0.05)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=config.lr)
    sched = _schedule(opt, config, total=50)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3)  # lr / 10 at the first step
    assert lrs[:10] == sorted(lrs[:10]) and lrs[10] == pytest.approx(1e-2)  # 20 % of 50 steps
    assert lrs[10:] == sorted(lrs[10:], reverse=True)
    assert lrs[-1] == pytest.approx(5e-4, rel=0.05)
    plain = _schedule(torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-2),
                      TrainConfig(lr=1e-2), total=50)
    assert isinstance(plain, torch.optim.lr_scheduler.CosineAnnealingLR)
    with pytest.raises(ValueError, match="warmup must be a fraction"):
        TrainConfig(warmup=1.0)


def test_classification_trains_its_setting_over_the_base_model(monkeypatch):
    from dataclasses import replace

    from graph.cgs import experiments
    from graph.cgs.crossval import CGS_SETTINGS

    built = []

    def recording_cgs(config):
        built.append(config)
        return CGS(config)

    monkeypatch.setattr(experiments, "CGS", recording_cgs)
    tiny = experiments.ClassificationExperiment(
        folds=2, train=TrainConfig(epochs=1, batch_size=8, lr=3e-3, loss="cross_entropy", progress=False))
    assert tiny.setting == CGS_SETTINGS[-1]
    records = experiments.run_classification(0, tiny)
    assert len(built) == 2 and all(c.encoder == "gin" and c.readout == "pool" and c.hidden == 35
                                   for c in built)
    assert 0.0 <= records[0]["value"] <= 1.0 and records[1]["model"] == "chance"
    built.clear()
    experiments.run_classification(0, replace(tiny, setting=()))
    assert all(c.encoder == "edge_mlp" and c.readout == "node" and c.hidden == 32 for c in built)
