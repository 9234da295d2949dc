"""Every benchmark script imports cleanly: its imports name functions that exist.

The benchmarks are not run in CI (they take minutes), so an API change that
breaks one would otherwise go unnoticed until someone measures.
"""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bm_*.py"))


def test_the_benchmarks_folder_holds_scripts():
    assert len(BENCHMARKS) >= 10


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports_and_has_a_main(script):
    spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # runs the imports, not the benchmark (main is guarded)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
