"""Maps method names to method classes.

>>> from splat.methods import get_method
>>> get_method("3dgs", sh_degree=1).sh_degree
1
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Callable, TypeVar

from splat.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}

M = TypeVar("M", bound=type)


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator registering a :class:`Method` dataclass under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def decorate(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, Method) and is_dataclass(cls)):
            raise TypeError(f"register_method expects a @dataclass subclass of Method, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered to {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin_methods() -> None:
    # Importing the modules runs their @register_method decorators.
    import splat.methods.gs3d  # noqa: F401
    import splat.methods.ges  # noqa: F401
    import splat.methods.turbo_gs  # noqa: F401
    import splat.pose.object_model  # noqa: F401  (the mask-supervised "object" method)
    import splat.methods.instantsplat  # noqa: F401


def available_methods() -> list[str]:
    """Sorted names of the registered methods."""
    _load_builtin_methods()
    return sorted(_REGISTRY)


def get_method(name: str, **overrides) -> Method:
    """Instantiates the method registered as ``name`` with hyper-parameter overrides.

    Raises:
        ValueError: for an unknown name (listing the registered ones) or an
            unknown hyper-parameter (listing the valid ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string, got {type(name).__name__}")
    _load_builtin_methods()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"method {name!r} has no hyper-parameter {unknown}; valid: {', '.join(sorted(valid))}")
    return cls(**overrides)
