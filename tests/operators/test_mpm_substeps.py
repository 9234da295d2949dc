"""MPMSolver.fit_substeps: a whole number of substeps per frame, never longer than the stable step."""

import pytest

from operators.mpm import MPMConfig
from operators.mpm.simulate import build_solver


@pytest.mark.parametrize("material", ["jelly", "sand", "water"])
def test_substeps_tile_the_frame_and_do_not_lengthen_the_step(material):
    config = MPMConfig()
    solver, _ = build_solver(material, "dam_break", 2, 200, config=config)
    stable = solver.dt
    substeps = solver.fit_substeps(config.frame_dt)
    assert substeps >= 1 and solver.dt <= stable * (1 + 1e-9)
    assert substeps * solver.dt == pytest.approx(config.frame_dt)
    assert solver.fit_substeps(config.frame_dt) == substeps  # already whole: unchanged
