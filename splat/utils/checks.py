"""Argument checks for public functions, in one place for ``splat``, ``operators`` and ``graph``.

Each check raises ``TypeError`` when the kind of value is wrong and
``ValueError`` when its value or shape is, naming the argument, what was
expected and what came (as kornia's ``KORNIA_CHECK_*`` and torch-geometric's
input checks do). ``assert`` is for internal invariants only.

>>> check_int("steps", 10, minimum=1)
10
>>> check_int("steps", 0, minimum=1)
Traceback (most recent call last):
    ...
ValueError: steps must be >= 1, got 0
>>> import torch
>>> check_shape("means", torch.zeros(5, 3), ["N", "3"])
{'N': 5}
>>> check_shape("means", torch.zeros(5, 2), ["N", "3"])
Traceback (most recent call last):
    ...
ValueError: means must have shape [N, 3], got [5, 2]
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

__all__ = ["check_int", "check_real", "check_choice", "check_shape"]


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Requires an integer (numpy integers too, bools refused) within ``[minimum, maximum]``.

    Returns:
        ``value`` as a Python ``int``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_real(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    """Requires a finite real number (bools refused) within ``[minimum, maximum]``.

    >>> check_real("lr", float("nan"))
    Traceback (most recent call last):
        ...
    ValueError: lr must be finite, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Requires one of ``choices``.

    >>> check_choice("layout", "grid", ("render", "side-by-side"))
    Traceback (most recent call last):
        ...
    ValueError: layout must be one of 'render', 'side-by-side'; got 'grid'
    """
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_shape(name: str, value: Any, pattern: Sequence[str]) -> dict[str, int]:
    """Requires a tensor or array whose shape matches ``pattern``.

    Args:
        name: the argument's name, for the message.
        value: a ``torch.Tensor`` or ``numpy.ndarray``.
        pattern: one entry per dimension: a number is an exact size, a name
            (``"N"``) binds a size that must agree wherever the name repeats,
            ``"*"`` as the first entry matches any leading dimensions.

    Returns:
        The sizes bound to the names.
    """
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "ndim"):
        raise TypeError(f"{name} must be a tensor or array, got {type(value).__name__}")
    pattern = list(pattern)
    shown = "[" + ", ".join(pattern) + "]"
    got = "[" + ", ".join(str(s) for s in shape) + "]"
    if pattern and pattern[0] == "*":
        pattern = pattern[1:]
        if len(shape) < len(pattern):
            raise ValueError(f"{name} must have shape {shown}, got {got}")
        shape = shape[len(shape) - len(pattern):]
    elif len(shape) != len(pattern):
        raise ValueError(f"{name} must have shape {shown}, got {got}")
    bound: dict[str, int] = {}
    for want, size in zip(pattern, shape):
        size = int(size)
        if want.isdigit():
            ok = size == int(want)
        else:
            ok = bound.setdefault(want, size) == size
        if not ok:
            raise ValueError(f"{name} must have shape {shown}, got {got}")
    return bound
