"""Fixtures for the fitting tests: one tiny synthetic scene, fits on one thread."""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    from splat.io import make_synthetic_scene

    return make_synthetic_scene(num_views=8, size=32, num_points=150, root=tmp_path_factory.mktemp("tiny_scene"))


@pytest.fixture(autouse=True)
def _one_thread():
    # Small tensors on a shared 2-core machine run fastest without intra-op threading.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
