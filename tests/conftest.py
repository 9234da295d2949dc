"""Shared test configuration: seeds, one-thread runs, and skipping CUDA tests without a GPU."""

import importlib.util
from pathlib import Path

import pytest
import torch


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


@pytest.fixture
def one_thread():
    """Runs a test on one intra-op torch thread, then restores the setting.

    The tests of small graphs and tiny tensors use it (``pytestmark =
    pytest.mark.usefixtures("one_thread")``): at these sizes intra-op threads
    only add synchronisation cost, and the machine is shared.
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _load_benchmark(name: str):
    """``benchmarks/<name>.py`` loaded as a module (benchmarks are scripts, not a package)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_{name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_benchmark():
    """A function loading ``benchmarks/<name>.py`` as a module."""
    return _load_benchmark


@pytest.fixture(scope="session")
def bm_physics_splats():
    """``benchmarks/bm_physics_splats.py`` loaded as a module."""
    return _load_benchmark("bm_physics_splats")
