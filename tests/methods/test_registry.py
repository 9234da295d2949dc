from dataclasses import dataclass

import pytest

from splat.methods import Method, available_methods, get_method, register_method
from splat.methods.gs3d import GS3D


def test_builtin_methods_registered():
    assert "3dgs" in available_methods()
    m = get_method("3dgs", sh_degree=1, max_gaussians=500)
    assert isinstance(m, GS3D) and m.sh_degree == 1 and m.max_gaussians == 500 and m.name == "3dgs"
    assert m.hyperparameters()["max_gaussians"] == 500


def test_register_and_get_custom_method():
    @register_method("test-dummy")
    @dataclass
    class Dummy(Method):
        lr: float = 0.1

        def trainable(self, gaussians, state):
            return {"means": self.lr}

    try:
        assert "test-dummy" in available_methods()
        assert get_method("test-dummy", lr=0.5).lr == 0.5
        with pytest.raises(ValueError, match="already registered"):
            register_method("test-dummy")(GS3D)
    finally:
        from splat.methods import registry

        registry._REGISTRY.pop("test-dummy")


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown method 'nope'; registered methods: .*3dgs"):
        get_method("nope")
    with pytest.raises(ValueError, match=r"has no hyper-parameter \['bogus'\]"):
        get_method("3dgs", bogus=1)
    with pytest.raises(TypeError, match="method name must be a string"):
        get_method(3)
    with pytest.raises(ValueError, match="non-empty string"):
        register_method("")
    with pytest.raises(TypeError, match="@dataclass subclass of Method"):
        register_method("x")(object)


def test_gs3d_hyperparameter_validation():
    with pytest.raises(ValueError, match="sh_degree must be in 0..3"):
        get_method("3dgs", sh_degree=5)
    with pytest.raises(ValueError, match="ssim_lambda"):
        get_method("3dgs", ssim_lambda=2.0)
    with pytest.raises(ValueError, match="refine_every must be >= 1"):
        get_method("3dgs", refine_every=0)
