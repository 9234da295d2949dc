import numpy as np
import pytest
import torch

from splat.core.gaussians import Gaussians, nearest_neighbour_scale, rgb_to_sh, sh_to_rgb


def _grid(n=4, spacing=0.5):
    ax = torch.arange(n) * spacing
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)


def test_from_points_layout_and_activations():
    pts = torch.rand(50, 3)
    cols = torch.rand(50, 3)
    g = Gaussians.from_points(pts, cols, sh_degree=2, init_opacity=0.3)
    p = g.params
    assert isinstance(p, torch.nn.ParameterDict)
    assert p["means"].shape == (50, 3) and p["quats"].shape == (50, 4) and p["scales"].shape == (50, 3)
    assert p["opacities"].shape == (50,) and p["sh0"].shape == (50, 1, 3) and p["shN"].shape == (50, 8, 3)
    assert g.sh_degree == 2 and g.num_gaussians == len(g) == 50
    torch.testing.assert_close(g.opacities, torch.full((50,), 0.3))
    torch.testing.assert_close(g.colors, cols)
    torch.testing.assert_close(g.quats, torch.tensor([[1.0, 0, 0, 0]]).expand(50, 4))
    assert g.sh.shape == (50, 9, 3)


def test_scales_are_mean_distance_to_three_nearest_neighbours():
    pts = _grid(4, spacing=0.5)  # interior points: 6 neighbours at 0.5
    g = Gaussians.from_points(pts, sh_degree=0)
    torch.testing.assert_close(g.scales, torch.full((64, 3), 0.5))
    # against a brute-force computation on random points
    pts = torch.rand(40, 3, dtype=torch.float64)
    d = torch.cdist(pts, pts)
    expected = d.sort(dim=1).values[:, 1:4].mean(1).float()
    torch.testing.assert_close(nearest_neighbour_scale(pts.float()), expected, rtol=1e-5, atol=1e-6)


def test_sh_colour_round_trip():
    c = torch.rand(10, 3)
    torch.testing.assert_close(sh_to_rgb(rgb_to_sh(c)), c)


def test_random_in_bounds_is_seeded_and_inside():
    a = Gaussians.random_in_bounds(200, [-1, 0, 2], [1, 1, 3], sh_degree=1, seed=3)
    b = Gaussians.random_in_bounds(200, [-1, 0, 2], [1, 1, 3], sh_degree=1, seed=3)
    torch.testing.assert_close(a.means, b.means)
    lo, hi = torch.tensor([-1.0, 0, 2]), torch.tensor([1.0, 1, 3])
    assert ((a.means >= lo) & (a.means <= hi)).all()
    assert a.sh_degree == 1


def test_state_dict_round_trip_and_extra_parameter():
    g = Gaussians.from_points(torch.rand(30, 3), torch.rand(30, 3), sh_degree=1)
    g.params["shape"] = torch.nn.Parameter(torch.randn(30))  # a method's extra per-Gaussian parameter
    g.validate()
    h = Gaussians.from_state_dict(g.state_dict())
    assert set(h.params) == set(g.params)
    for k in g.params:
        torch.testing.assert_close(h.params[k], g.params[k])
    assert h.to("cpu") is h


def test_from_numpy_points():
    g = Gaussians.from_points(np.random.default_rng(0).random((10, 3)), sh_degree=0)
    assert g.num_gaussians == 10 and g.params["shN"].shape == (10, 0, 3)


def _valid_params(n=5):
    return dict(
        means=torch.zeros(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), scales=torch.zeros(n, 3),
        opacities=torch.zeros(n), sh0=torch.zeros(n, 1, 3), shN=torch.zeros(n, 3, 3),
    )


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("means", torch.zeros(5, 2), r"means must have shape \[5, 3\]"),
        ("quats", torch.zeros(5, 4), "zero-norm"),
        ("scales", torch.full((5, 3), float("nan")), "scales contains NaN"),
        ("opacities", torch.zeros(4), r"opacities must have shape \[5\]"),
        ("shN", torch.zeros(5, 2, 3), "K=2"),
        ("sh0", torch.zeros(5, 1, 3, dtype=torch.int32), "floating-point|must have"),
    ],
)
def test_validate_errors(key, value, match):
    params = _valid_params()
    params[key] = value
    with pytest.raises(ValueError, match=match):
        Gaussians(params)


def test_validate_rejects_misaligned_extra_entry():
    params = _valid_params()
    params["extra"] = torch.zeros(4)
    with pytest.raises(ValueError, match="first dimension N=5"):
        Gaussians(params)


def test_constructor_errors():
    with pytest.raises(ValueError, match="missing required entries"):
        Gaussians({"means": torch.zeros(2, 3)})
    with pytest.raises(TypeError, match="mapping"):
        Gaussians([1, 2])
    with pytest.raises(TypeError, match="mapping"):
        Gaussians.from_state_dict(3)


def test_from_points_errors():
    with pytest.raises(ValueError, match=r"points must be \[N, 3\]"):
        Gaussians.from_points(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="points must be a torch.Tensor"):
        Gaussians.from_points([[0, 0, 0]])
    with pytest.raises(ValueError, match="at least one point"):
        Gaussians.from_points(torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"colors must be \[3, 3\]"):
        Gaussians.from_points(torch.rand(3, 3), torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"colors must lie in \[0, 1\]"):
        Gaussians.from_points(torch.rand(3, 3), torch.rand(3, 3) + 2)
    with pytest.raises(ValueError, match="sh_degree must be in 0..3"):
        Gaussians.from_points(torch.rand(3, 3), sh_degree=4)
    with pytest.raises(TypeError, match="sh_degree must be an int"):
        Gaussians.from_points(torch.rand(3, 3), sh_degree=1.0)
    with pytest.raises(ValueError, match="init_opacity"):
        Gaussians.from_points(torch.rand(3, 3), init_opacity=1.5)
    with pytest.raises(ValueError, match="init_scale"):
        Gaussians.from_points(torch.rand(3, 3), init_scale=0)
    with pytest.raises(ValueError, match="NaN"):
        Gaussians.from_points(torch.tensor([[0.0, float("inf"), 0.0]]))


def test_random_in_bounds_errors():
    with pytest.raises(ValueError, match="n must be >= 1"):
        Gaussians.random_in_bounds(0, [0, 0, 0], [1, 1, 1])
    with pytest.raises(TypeError, match="n must be an int"):
        Gaussians.random_in_bounds(2.0, [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="bbox_max must exceed"):
        Gaussians.random_in_bounds(2, [0, 0, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="3 entries"):
        Gaussians.random_in_bounds(2, [0, 0], [1, 1])
