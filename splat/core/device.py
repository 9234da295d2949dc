"""Which device a fit runs on: the GPU when gsplat can run there, else the CPU.

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import warnings

import torch

from splat.core.backends import gsplat_backend

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto", backend: str = "auto") -> torch.device:
    """Maps ``device`` (possibly ``"auto"``) and a rasterization backend to the device to use.

    ``auto`` is CUDA when a GPU is present and gsplat loads (unless
    ``backend="cpu"``), else the CPU; a GPU without a working gsplat gives the
    CPU with a warning, since the compiled ``cpu`` backend is then the fastest.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`.
        backend: the rasterization backend the caller will use
            (``"auto"``, ``"cpu"``, ``"torch"`` or ``"gsplat"``).

    Returns:
        The :class:`torch.device`.

    Raises:
        TypeError: ``device`` is not a string or a torch.device.
        ValueError: an unknown device string, CUDA asked for where there is
            none, or a backend that cannot run on the device.
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be 'auto', a device string or a torch.device, got {type(device).__name__}")
    if isinstance(device, str) and device == "auto":
        if backend == "cpu":
            return torch.device("cpu")
        if gsplat_backend.is_available():
            return torch.device("cuda")
        reason = gsplat_backend.unavailable_reason()
        if backend == "gsplat":
            raise ValueError(f"backend='gsplat' needs a CUDA GPU where gsplat runs: {reason}")
        if torch.cuda.is_available():
            warnings.warn(f"a CUDA GPU is present but {reason}; fitting on the CPU", RuntimeWarning, stacklevel=3)
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but no CUDA GPU is available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {str(device)!r}")
    if backend == "gsplat" and resolved.type != "cuda":
        raise ValueError(f"backend='gsplat' needs device='cuda', got device={str(device)!r}")
    if backend == "cpu" and resolved.type != "cpu":
        raise ValueError(f"backend='cpu' needs device='cpu', got device={str(device)!r}")
    return resolved
