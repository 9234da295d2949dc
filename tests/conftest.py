"""Shared test configuration: seeds, and skipping CUDA tests without a GPU."""

import os

import pytest
import torch

os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
