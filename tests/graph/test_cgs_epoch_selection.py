"""Epoch selection on the inner validation part: train's per-epoch hook and BestEpoch."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from graph.cgs.compare import GIN
from graph.cgs.crossval import BestEpoch, Candidate, evaluate, inner_split, repeated_cv, select_model
from graph.cgs.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _graph(y: int, x: float = 1.0) -> Data:
    ring = torch.tensor([[0, 1, 2, 1, 2, 0], [1, 2, 0, 0, 1, 2]])
    return Data(x=torch.full((3, 1), x), edge_index=ring, edge_attr=torch.zeros(6, 1),
                y=torch.tensor([y]))


def _rings(count: int, seed: int = 0) -> list[Data]:
    """Rings whose noisy node feature (+1 or -1) gives the class."""
    gen = torch.Generator().manual_seed(seed)
    return [_graph(i % 2, (1.0 if i % 2 else -1.0) + 0.3 * float(torch.randn(1, generator=gen)))
            for i in range(count)]


class FixedLogits(nn.Module):
    """The same logits for every graph: one parameter vector."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))

    def forward(self, x, edge_index, edge_attr=None, batch=None):
        graphs = 1 if batch is None else int(batch.max()) + 1
        return self.logits.expand(graphs, -1) * 1.0, None


def test_train_calls_the_hook_after_every_epoch_in_training_mode():
    model = GIN(1, 2, 8, layers=1)
    seen = []

    def hook(epoch, m):
        seen.append((epoch, m.training))
        m.eval()  # train() must switch back

    config = TrainConfig(epochs=3, batch_size=4, loss="cross_entropy", progress=False)
    result = train(model, _rings(8), config, on_epoch=hook)
    assert seen == [(1, True), (2, True), (3, True)]
    assert len(result.losses) == 3
    assert model.training


def test_best_epoch_keeps_the_best_weights_and_breaks_ties_by_loss():
    val = [_graph(1), _graph(1), _graph(0)]
    model = FixedLogits([0.0, 0.0])
    hook = BestEpoch(val)
    trajectory = [[2.0, 0.0],   # epoch 1: all class 0, accuracy 1/3
                  [0.0, 0.5],   # epoch 2: all class 1, accuracy 2/3
                  [0.0, 3.0],   # epoch 3: accuracy 2/3 but a higher loss
                  [5.0, 0.0]]   # epoch 4: accuracy 1/3
    for epoch, logits in enumerate(trajectory, start=1):
        with torch.no_grad():
            model.logits.copy_(torch.tensor(logits))
        hook(epoch, model)
    assert hook.epoch == 2
    assert [round(a, 3) for a, _ in hook.history] == [0.333, 0.667, 0.667, 0.333]
    scores = hook.restore(model)
    assert torch.equal(model.logits.detach(), torch.tensor([0.0, 0.5]))
    assert scores == evaluate(model, val)


def test_best_epoch_errors():
    with pytest.raises(ValueError, match="graphs must not be empty"):
        BestEpoch([])
    with pytest.raises(RuntimeError, match="no epoch was scored"):
        BestEpoch([_graph(0)]).restore(FixedLogits([0.0, 0.0]))


def test_select_model_reports_the_kept_epoch_and_its_scores():
    graphs = _rings(16)
    config = TrainConfig(epochs=5, batch_size=4, loss="cross_entropy", progress=False)
    grid = [Candidate(1e-3), Candidate(3e-2)]
    sel = select_model(lambda c: GIN(1, 2, 8, layers=2), grid, graphs, config, seed=3,
                       epoch_selection=True)
    assert all(1 <= s["epoch"] <= 5 for s in sel.scores)
    chosen = next(s for s in sel.scores if s["candidate"] == sel.candidate.label)
    assert sel.epoch == chosen["epoch"]
    _, val = inner_split([int(g.y) for g in graphs], 0.25, seed=3)
    again = evaluate(sel.model, [graphs[i] for i in val])  # the restored weights
    assert again["accuracy"] == chosen["accuracy"]
    assert again["loss"] == pytest.approx(chosen["loss"])
    # without epoch selection no epoch is reported
    plain = select_model(lambda c: GIN(1, 2, 8, layers=2), grid, graphs, config, seed=3)
    assert plain.epoch is None and all("epoch" not in s for s in plain.scores)


def test_repeated_cv_records_the_kept_epochs():
    config = TrainConfig(epochs=3, batch_size=4, loss="cross_entropy", progress=False)
    rec = repeated_cv(_rings(16), {"gin": lambda c: GIN(1, 2, 8, layers=2)},
                      {"gin": [Candidate(3e-2)]}, config, splits=1, folds=2,
                      epoch_selection=True)[0]
    assert rec["epoch_selection"] is True
    assert len(rec["chosen_epochs"]) == 2 and all(1 <= e <= 3 for e in rec["chosen_epochs"])
