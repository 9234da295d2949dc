"""Every input error of rasterization() names the argument, the expectation and what came."""

import pytest
import torch

from raster_helpers import random_scene
from splat.core.rasterization import rasterization, resolve_backend


@pytest.fixture
def scene():
    s, W, H = random_scene(n=6, n_cameras=2, width=16, height=12, seed=0)
    return s, W, H


def _call(scene, **overrides):
    s, W, H = scene
    args = dict(s, width=W, height=H, backend="torch")
    args.update(overrides)
    return rasterization(**args)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(means=[[0.0, 0.0, 0.0]]), TypeError, "means must be a torch.Tensor, got list"),
        (dict(opacities=torch.ones(6, dtype=torch.int64)), TypeError, "opacities must be a floating-point tensor, got dtype torch.int64"),
        (dict(means=torch.zeros(6, 2)), ValueError, r"means must have shape \[N, 3\], got \[6, 2\]"),
        (dict(quats=torch.zeros(5, 4)), ValueError, r"quats must have shape \[N, 4\] with N=6 \(from means\), got \[5, 4\]"),
        (dict(scales=torch.zeros(6, 2)), ValueError, r"scales must have shape \[N, 3\] with N=6 \(from means\), got \[6, 2\]"),
        (dict(opacities=torch.zeros(6, 1)), ValueError, r"opacities must have shape \[N\] with N=6 \(from means\), got \[6, 1\]"),
        (dict(viewmats=torch.eye(4)), ValueError, r"viewmats must have shape \[C, 4, 4\], got \[4, 4\]"),
        (dict(viewmats=torch.zeros(0, 4, 4)), ValueError, "viewmats must hold at least one camera, got C=0"),
        (dict(Ks=torch.zeros(1, 3, 3)), ValueError, r"Ks must have shape \[C, 3, 3\] with C=2 \(from viewmats\), got \[1, 3, 3\]"),
        (dict(colors=torch.zeros(5, 3)), ValueError, r"colors must have shape \[N, D\] or \[C, N, D\] with N=6, C=2, got \[5, 3\]"),
        (dict(colors=torch.zeros(3, 6, 3)), ValueError, r"colors must have shape \[N, D\] or \[C, N, D\] with N=6, C=2, got \[3, 6, 3\]"),
        (dict(colors=torch.zeros(6, 0)), ValueError, r"colors must have at least one channel, got \[6, 0\]"),
        (dict(colors=torch.zeros(6, 4, 3), sh_degree=2), ValueError, "colors must have K >= 9 SH bases for sh_degree=2, got K=4"),
        (dict(colors=torch.zeros(6, 16, 2), sh_degree=1), ValueError, r"colors must have shape \[N, K, 3\] or \[C, N, K, 3\] SH coefficients with N=6, C=2, got \[6, 16, 2\]"),
        (dict(colors=torch.zeros(2, 6, 16, 4), sh_degree=1), ValueError, r"colors must have shape \[N, K, 3\] or \[C, N, K, 3\]"),
        (dict(colors=torch.zeros(6, 16, 3), sh_degree=4), ValueError, "sh_degree must be in 0..3, got 4"),
        (dict(colors=torch.zeros(6, 16, 3), sh_degree=1.0), TypeError, "sh_degree must be an int or None, got float"),
        (dict(backgrounds=torch.zeros(2, 4)), ValueError, r"backgrounds must have shape \[C, D\] with C=2, D=3, got \[2, 4\]"),
        (dict(width=0), ValueError, "width must be > 0, got 0"),
        (dict(height=-3), ValueError, "height must be > 0, got -3"),
        (dict(width=16.0), TypeError, "width must be an int, got float"),
        (dict(tile_size=0), ValueError, "tile_size must be > 0, got 0"),
        (dict(near_plane=5.0, far_plane=1.0), ValueError, "near_plane must be < far_plane, got near_plane=5.0, far_plane=1.0"),
        (dict(near_plane="0.1"), TypeError, "near_plane must be a real number, got str"),
        (dict(far_plane=float("nan")), ValueError, "far_plane must be finite, got nan"),
        (dict(radius_clip=-1.0), ValueError, "radius_clip must be >= 0, got -1.0"),
        (dict(eps2d=-0.1), ValueError, "eps2d must be >= 0, got -0.1"),
        (dict(render_mode="RGBD"), ValueError, "render_mode must be one of 'RGB', 'D', 'ED', 'RGB\\+D', 'RGB\\+ED'; got 'RGBD'"),
        (dict(rasterize_mode="aa"), ValueError, "rasterize_mode must be one of 'classic', 'antialiased'; got 'aa'"),
        (dict(backend="cuda"), ValueError, "backend must be one of 'auto', 'torch', 'cpu', 'gsplat'; got 'cuda'"),
        (dict(backend="gsplat"), ValueError, "backend='gsplat' needs CUDA tensors, got tensors on cpu"),
        (dict(absgrad=1), TypeError, "absgrad must be a bool, got int"),
        (dict(means=torch.zeros(6, 3, dtype=torch.float64)), TypeError, "all floating tensors must share one dtype, got means torch.float64, quats torch.float32"),
        (dict(means=torch.zeros(6, 3, device="meta")), ValueError, "all tensors must be on one device, got means on meta, quats on cpu"),
    ],
)
def test_invalid_arguments_raise(scene, overrides, error, match):
    with pytest.raises(error, match=match):
        _call(scene, **overrides)


@pytest.mark.parametrize("name", ["means", "quats", "scales", "opacities", "colors", "viewmats", "Ks", "backgrounds"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_refused(scene, name, bad):
    s, W, H = scene
    s = dict(s, backgrounds=torch.zeros(2, 3))
    value = s[name].clone()
    value.view(-1)[0] = bad
    with pytest.raises(ValueError, match=f"{name} must be finite, got 1 NaN/inf value"):
        _call((s, W, H), **{name: value})


def test_resolve_backend_errors():
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("metal", torch.device("cpu"))
    with pytest.raises(ValueError, match="backend='cpu' needs CPU tensors, got tensors on cuda:0"):
        resolve_backend("cpu", torch.device("cuda:0"))
    assert resolve_backend("torch", torch.device("cpu")) == "torch"


def _composite_args():
    C, N = 2, 5
    return dict(means2d=torch.zeros(C, N, 2), conics=torch.zeros(C, N, 3), colors=torch.zeros(C, N, 3),
                opacities=torch.zeros(C, N), depths=torch.zeros(C, N), radii=torch.zeros(C, N, 2, dtype=torch.int32),
                width=8, height=8, tile_size=4, backgrounds=None)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(colors=torch.zeros(2, 5)), ValueError, r"colors must have shape \[C, N, D\], got \[2, 5\]"),
        (dict(means2d=torch.zeros(2, 4, 2)), ValueError, r"means2d must have shape \[C, N, 2\] with C=2, N=5 \(from colors\), got \[2, 4, 2\]"),
        (dict(conics=torch.zeros(2, 5, 2)), ValueError, r"conics must have shape \[C, N, 3\] with C=2, N=5"),
        (dict(opacities=torch.zeros(5)), ValueError, r"opacities must have shape \[C, N\] with C=2, N=5"),
        (dict(depths=torch.zeros(2, 6)), ValueError, r"depths must have shape \[C, N\] with C=2, N=5"),
        (dict(radii=torch.zeros(2, 5, 2)), TypeError, "radii must be an integer tensor, got torch.float32"),
        (dict(radii=torch.zeros(2, 5, dtype=torch.int32)), ValueError, r"radii must have shape \[C, N, 2\]"),
        (dict(backgrounds=torch.zeros(2, 4)), ValueError, r"backgrounds must have shape \[C, D\] with C=2, D=3"),
        (dict(tile_size=0), ValueError, "tile_size must be > 0, got 0"),
        (dict(width=2.5), TypeError, "width must be an int, got float"),
        (dict(batch_size=0), ValueError, "batch_size must be > 0, got 0"),
        (dict(means2d=None), TypeError, "means2d must be a torch.Tensor, got NoneType"),
    ],
)
def test_torch_composite_invalid_arguments_raise(overrides, error, match):
    from splat.core.backends.torch_backend import composite

    with pytest.raises(error, match=match):
        composite(**dict(_composite_args(), **overrides))
