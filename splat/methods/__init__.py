"""Fitting methods on one loop: the plug-in interface, the registry and :func:`fit`."""

from splat.methods.base import Method, MethodState, StepContext
from splat.methods.registry import available_methods, get_method, register_method
from splat.methods.fit import FitProgress, FitResult, fit  # noqa: E402  (binds ``fit`` to the function)

__all__ = [
    "Method", "MethodState", "StepContext", "available_methods", "get_method", "register_method",
    "fit", "FitProgress", "FitResult",
]
