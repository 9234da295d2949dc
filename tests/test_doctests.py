"""The ``>>>`` examples of the library's docstrings run, and give what they show.

Every module of the library packages whose source holds an example is
imported and its doctests run (ELLIPSIS and NORMALIZE_WHITESPACE on), one
test per module so that a failure names the module.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # small examples: threads only add overhead

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"splat": "splat", "operators": "operators", "graph": "graph", "splatops": "splatops",
            "assets": "splatops_assets"}


def _modules_with_examples() -> list[str]:
    names = []
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if ">>>" not in path.read_text(encoding="utf-8"):
                continue
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join([package, *parts]))
    return names


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name)  # each example sees a copy of the module's globals
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see output)"
