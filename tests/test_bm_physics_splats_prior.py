"""The prior timing of ``benchmarks/bm_physics_splats.py --contact-model``: one step of a fitted
wall-contact prior on a landing block of grains, at the requested particle counts."""

import pytest
import torch

from operators.granular_contact import GranularContact

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench(bm_physics_splats):
    return bm_physics_splats


def test_prior_step_is_timed_at_each_particle_count(bench):
    bounds = torch.tensor([[0.08, 0.92]] * 3)
    ms = bench.prior_step_ms(GranularContact(), torch.tensor([0.0, -1e-3, 0.0]), bounds, [64, 500], repeats=2)
    assert sorted(ms) == [64, 512]  # cubes of 4 and 8 grains a side
    assert all(v > 0 for v in ms.values())


def test_unknown_contact_model_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--contact-model", "granuar", "--skip", "frame", "rollout", "objects", "reduction"])
    assert "unknown wall contact models ['granuar']" in capsys.readouterr().err
