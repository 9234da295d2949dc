"""Device and backend choice: the GPU when gsplat runs there, else the CPU, with clear errors."""

import importlib

import pytest
import torch

from splat.core.backends import gsplat_backend
from splat.core.device import resolve_device
from splat.core.rasterization import resolve_backend

raster_module = importlib.import_module("splat.core.rasterization")  # the package re-exports the function


def test_auto_picks_the_cpu_on_this_machine_when_gsplat_cannot_run():
    if gsplat_backend.is_available():
        pytest.skip("gsplat runs here: auto picks CUDA (tested by the cuda tests)")
    assert gsplat_backend.unavailable_reason()
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", backend="cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu"), backend="torch") == torch.device("cpu")


def test_auto_picks_cuda_when_gsplat_runs_and_warns_when_it_does_not(monkeypatch):
    monkeypatch.setattr(gsplat_backend, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", backend="cpu") == torch.device("cpu")
    monkeypatch.setattr(gsplat_backend, "is_available", lambda: False)
    monkeypatch.setattr(gsplat_backend, "unavailable_reason", lambda: "gsplat cannot be imported (test)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.warns(RuntimeWarning, match=r"a CUDA GPU is present but gsplat cannot be imported \(test\); fitting on the CPU"):
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    "device, backend, error, match",
    [
        (3, "auto", TypeError, "device must be 'auto', a device string or a torch.device, got int"),
        ("gpu", "auto", ValueError, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
        ("meta", "auto", ValueError, "device must be a CPU or CUDA device, got 'meta'"),
        ("cpu", "gsplat", ValueError, "backend='gsplat' needs device='cuda', got device='cpu'"),
    ],
)
def test_bad_devices_raise(device, backend, error, match):
    with pytest.raises(error, match=match):
        resolve_device(device, backend)


def test_cuda_asked_for_without_a_gpu_raises():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device='cuda' was asked for but no CUDA GPU is available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="backend='gsplat' needs a CUDA GPU where gsplat runs"):
        resolve_device("auto", backend="gsplat")


def test_auto_backend_on_cuda_tensors_falls_back_to_torch_with_one_warning(monkeypatch):
    monkeypatch.setattr(gsplat_backend, "is_available", lambda: False)
    monkeypatch.setattr(gsplat_backend, "unavailable_reason", lambda: "no CUDA GPU is available")
    monkeypatch.setattr(raster_module, "_warned_gsplat_fallback", False)
    with pytest.warns(RuntimeWarning, match=r"gsplat cannot run \(no CUDA GPU is available\); rendering the CUDA "
                                            "tensors with the pure-PyTorch backend"):
        assert resolve_backend("auto", torch.device("cuda:0")) == "torch"
    monkeypatch.setattr(gsplat_backend, "is_available", lambda: True)
    assert resolve_backend("auto", torch.device("cuda:0")) == "gsplat"
