"""Fixtures for the fitting tests: one tiny synthetic scene, fits on one thread."""

import pytest


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    from splat.io import make_synthetic_scene

    return make_synthetic_scene(num_views=8, size=32, num_points=150, root=tmp_path_factory.mktemp("tiny_scene"))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every fit here runs on one intra-op thread (``one_thread`` in tests/conftest.py)."""
