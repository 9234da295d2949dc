import math

import pytest
import torch

from splat.core.gaussians import Gaussians
from splat.core.rasterization import rasterization
from splat.io.ply import load_ply
from splat.methods import fit, get_method
from splat.methods.base import StepContext
from splat.methods.ges import GES, effective_scales, load_ges_ply, log_filter, save_ges_ply, shape_factor

FAST = dict(sh_degree=1, sh_degree_interval=50, refine_start=20, refine_every=20, reset_every=0)


def _single_gaussian(shape: float) -> Gaussians:
    return Gaussians(
        {
            "means": torch.zeros(1, 3),
            "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
            "scales": torch.full((1, 3), math.log(0.1)),
            "opacities": torch.tensor([4.0]),
            "sh0": torch.ones(1, 1, 3),
            "shN": torch.zeros(1, 0, 3),
            "shape": torch.tensor([shape]),
        }
    )


def _render_alpha(method: GES, g: Gaussians) -> torch.Tensor:  # [H, W]
    size, focal = 64, 80.0
    viewmat = torch.eye(4)
    viewmat[2, 3] = 3.0  # camera 3 units in front of the Gaussian, looking down +z
    K = torch.tensor([[[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]]])
    ctx = StepContext(step=0, total_steps=1, scene=None, gaussians=g, optimizers={}, state=None, camera_ids=[0],
                      viewmats=viewmat[None], Ks=K, width=size, height=size, gt_images=torch.zeros(1, size, size, 3),
                      background=torch.zeros(1, 3), sh_degree=0, extent=1.0)
    _, alphas, _ = rasterization(**method.render_inputs(ctx), backend="torch")
    return alphas[0, ..., 0]


def _radial_std(alpha: torch.Tensor) -> float:
    h, w = alpha.shape
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    wgt = alpha / alpha.sum()
    cx, cy = (wgt * xx).sum(), (wgt * yy).sum()
    return float(((wgt * ((xx - cx) ** 2 + (yy - cy) ** 2)).sum() / 2).sqrt())


def test_shape_factor_formula():
    s = torch.tensor([-3.0, 0.0, 2.0])
    torch.testing.assert_close(shape_factor(s, 0.7), 2 * torch.sigmoid(0.7 * s))
    assert float(shape_factor(torch.zeros(1), 0.5)) == pytest.approx(1.0)


def test_shape_modulates_rendered_footprint_as_the_formula_says():
    method = get_method("ges", shape_strength=0.7)
    sigma_px = 80.0 * 0.1 / 3.0  # focal * scale / depth
    for s in (0.0, -1.5, 1.0):
        g = _single_gaussian(s)
        factor = float(shape_factor(torch.tensor(s), 0.7))
        assert float(effective_scales(g, 0.7).detach()[0, 0]) == pytest.approx(0.1 * factor, rel=1e-6)
        std = _radial_std(_render_alpha(method, g).detach())
        # screen-space std = projected effective scale, widened by the rasterizer's 0.3 px^2 low-pass
        assert std == pytest.approx(math.sqrt((factor * sigma_px) ** 2 + 0.3), rel=0.03), (s, std)


def test_shape_receives_gradients_and_is_trained(tiny_scene):
    result = fit(tiny_scene, "ges", steps=30, eval_every=0, checkpoint_every=0, show_progress=False,
                 lr_shape=0.05, **FAST)
    shape = result.gaussians.params["shape"].detach()
    assert shape.shape == (result.gaussians.num_gaussians,)
    assert float(shape.abs().max()) > 1e-2  # started at exactly 0 everywhere


def test_shape_gradient_is_nonzero_after_one_backward():
    method = get_method("ges")
    g = _single_gaussian(0.0)
    (_render_alpha(method, g) ** 2).sum().backward()
    grad = g.params["shape"].grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_checkpoint_resume_keeps_shape(tiny_scene, tmp_path):
    kw = dict(eval_every=0, show_progress=False, lr_shape=0.05, **FAST)
    full = fit(tiny_scene, "ges", steps=30, out_dir=tmp_path / "full", checkpoint_every=0, **kw)
    calls = []
    fit(tiny_scene, "ges", steps=30, out_dir=tmp_path / "resumed",
        should_stop=lambda: len(calls.append(0) or calls) > 15, **kw)
    ckpt = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 15 and "params.shape" in ckpt["gaussians"]
    resumed = fit(tiny_scene, "ges", steps=30, out_dir=tmp_path / "resumed", resume=True, **kw)
    assert resumed.gaussians.num_gaussians == full.gaussians.num_gaussians
    torch.testing.assert_close(resumed.gaussians.params["shape"], full.gaussians.params["shape"])
    torch.testing.assert_close(resumed.gaussians.params["means"], full.gaussians.params["means"])


def test_ply_round_trip_keeps_shape_and_exports_modulated_scales(tmp_path):
    gen = torch.Generator().manual_seed(0)
    g = Gaussians.from_points(torch.rand(20, 3, generator=gen), torch.rand(20, 3, generator=gen), sh_degree=1)
    params = dict(g.params)
    params["shape"] = torch.randn(20, generator=gen)
    g = Gaussians(params)
    path = save_ges_ply(g, tmp_path / "ges.ply", shape_strength=0.7)
    back = load_ges_ply(path, shape_strength=0.7)
    for key in g.params:
        torch.testing.assert_close(back.params[key], g.params[key], atol=1e-5, rtol=1e-5)
    plain = load_ply(path)  # what a standard viewer sees: the modulated footprint
    torch.testing.assert_close(plain.scales, effective_scales(g, 0.7).detach(), atol=1e-6, rtol=1e-5)
    assert not list(tmp_path.glob(".*tmp"))


def test_load_ges_ply_rejects_plain_ply(tmp_path):
    from splat.io.ply import save_ply

    g = Gaussians.from_points(torch.rand(5, 3), torch.rand(5, 3), sh_degree=0)
    path = save_ply(g, tmp_path / "plain.ply")
    with pytest.raises(ValueError, match="no 'shape' vertex property"):
        load_ges_ply(path)
    with pytest.raises(ValueError, match="gaussians have no 'shape' parameter"):
        save_ges_ply(g, tmp_path / "x.ply")
    with pytest.raises(TypeError, match="gaussians must be"):
        save_ges_ply("nope", tmp_path / "x.ply")
    with pytest.raises(ValueError, match="shape_strength must be > 0"):
        load_ges_ply(path, shape_strength=0.0)
    with pytest.raises(ValueError, match="shape_strength must be > 0"):
        save_ges_ply(g, tmp_path / "x.ply", shape_strength=-1.0)
    with pytest.raises(ValueError, match="gaussians have no 'shape' parameter"):
        effective_scales(g, 0.7)


def test_log_filter_responds_to_edges_not_flat_regions():
    img = torch.zeros(1, 16, 16, 3)
    img[:, :, 8:] = 1.0  # a vertical edge
    resp = log_filter(img, sigma=1.0).abs()[0]
    assert float(resp[:, :3].max()) < 1e-6 and float(resp[:, 13:].max()) < 1e-6
    assert float(resp[:, 7:9].min()) > 0.1
    with pytest.raises(ValueError, match=r"images must be a \[C, H, W, 3\] tensor"):
        log_filter(torch.zeros(16, 16))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        log_filter(img, sigma=0.0)


def test_frequency_loss_weight_ramps():
    m = GES(freq_lambda_start=0.1, freq_lambda_end=0.5)
    assert m.freq_lambda(0, 11) == pytest.approx(0.1)
    assert m.freq_lambda(5, 11) == pytest.approx(0.3)
    assert m.freq_lambda(10, 11) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(lr_shape=-1.0), "lr_shape must be >= 0"),
        (dict(shape_strength=0.0), "shape_strength must be > 0"),
        (dict(shape_init=float("nan")), "shape_init must be finite"),
        (dict(freq_lambda_start=-0.1), "freq_lambda_start must be >= 0"),
        (dict(freq_lambda_end=-0.1), "freq_lambda_end must be >= 0"),
        (dict(freq_sigma=0.0), "freq_sigma must be > 0"),
        (dict(sh_degree=4), "sh_degree must be in 0..3"),
    ],
)
def test_bad_hyperparameters_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        get_method("ges", **kw)


@pytest.mark.slow
def test_short_fit_on_bundled_crop_raises_heldout_psnr():
    from splat.io import load_bundled_scene

    scene = load_bundled_scene().downscaled(8)  # 40x30 pixels, held-out test views
    result = fit(scene, "ges", steps=200, eval_every=0, checkpoint_every=0, show_progress=False,
                 sh_degree=0, refine_start=50, refine_every=50, reset_every=0)
    curve = result.metrics["curve"]
    assert result.metrics["eval_split"] == "test"
    assert result.metrics["psnr"] > curve[0]["psnr"] + 4.0, (curve[0]["psnr"], result.metrics["psnr"])
    assert float(result.gaussians.params["shape"].detach().abs().max()) > 0  # the shapes moved


def test_fit_writes_the_ges_ply_with_shape(tmp_path):
    from splat.io import make_synthetic_scene
    from splat.methods.fit import fit
    from splat.methods.ges import load_ges_ply

    scene = make_synthetic_scene()
    result = fit(scene, method="ges", steps=3, out_dir=tmp_path, show_progress=False,
                 eval_every=0)
    header = result.paths["ply"].read_bytes()[:2000]
    assert b"property float shape" in header
    loaded = load_ges_ply(result.paths["ply"])
    assert loaded.num_gaussians == result.gaussians.num_gaussians
