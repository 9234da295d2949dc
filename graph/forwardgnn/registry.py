"""One registry of variants: name -> implementation per task."""

from __future__ import annotations

from graph.forwardgnn.backprop import BackpropLink, BackpropNode
from graph.forwardgnn.base import Variant
from graph.forwardgnn.linkpred import SingleForwardLink, SingleForwardTopDownLink
from graph.forwardgnn.nodeclass import FFLabel, FFVirtualNodes, SingleForward, SingleForwardTopDown

VARIANTS: dict[str, dict[str, type[Variant]]] = {
    "bp": {"node": BackpropNode, "link": BackpropLink},
    "ff-label": {"node": FFLabel},
    "ff-vn": {"node": FFVirtualNodes},
    "sf": {"node": SingleForward, "link": SingleForwardLink},
    "sf-topdown": {"node": SingleForwardTopDown, "link": SingleForwardTopDownLink},
}


def available_variants(task: str | None = None) -> list[str]:
    """Variant names, optionally only those supporting ``task`` (``node`` or ``link``)."""
    return [name for name, impl in VARIANTS.items() if task is None or task in impl]


def get_variant(name: str, task: str = "node") -> type[Variant]:
    """The class implementing variant ``name`` for ``task``.

    Raises:
        ValueError: unknown variant, or a variant without an implementation for ``task``.
    """
    if not isinstance(name, str):
        raise TypeError(f"variant must be a str, got {type(name).__name__}")
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {available_variants()}")
    if task not in VARIANTS[name]:
        raise ValueError(f"variant {name!r} does not support task {task!r}; variants for "
                         f"{task!r}: {available_variants(task)}")
    return VARIANTS[name][task]
