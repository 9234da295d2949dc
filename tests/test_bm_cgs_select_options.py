"""bm_cgs_select.py's options: every CGS option builds on the current classification default."""

from dataclasses import replace

import pytest

from graph.cgs.experiments import ClassificationExperiment
from graph.cgs.model import CGS, count_parameters


@pytest.fixture(scope="module")
def bm_cgs_select(load_benchmark):
    return load_benchmark("bm_cgs_select")


def test_every_cgs_option_builds_on_the_classification_default(bm_cgs_select):
    base = replace(ClassificationExperiment().model, node_dim=2, out_dim=4)
    built = 0
    for name, _lr, options in bm_cgs_select.OPTIONS:
        if isinstance(options, str):
            assert options in bm_cgs_select.GINS, name
            continue
        assert count_parameters(CGS(replace(base, **options))) > 0, name
        built += 1
    assert built == sum(not isinstance(o, str) for _, _, o in bm_cgs_select.OPTIONS) > 20
