"""Compiled CPU compositing kernel: parity with the PyTorch specification, determinism,
absgrad, the fast exp, input validation and the unavailable path."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from splat.core.backends import cpu, torch_backend

pytestmark = pytest.mark.skipif(not cpu.is_available(), reason=f"cpu backend unavailable: {cpu.unavailable_reason()}")


def random_2d(C=2, N=80, D=3, width=37, height=29, seed=0, opacity=(0.05, 1.0), size=(1.0, 6.0), margin=6.0):
    """Random projected Gaussians: means partly off-screen, anisotropic, radii from 3 sigma."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([-margin, -margin])
    span = torch.tensor([width + 2 * margin, height + 2 * margin])
    means2d = lo + torch.rand(C, N, 2, generator=g) * span
    sig = size[0] + (size[1] - size[0]) * torch.rand(C, N, 2, generator=g)
    theta = torch.rand(C, N, generator=g) * torch.pi
    R = torch.stack([torch.cos(theta), -torch.sin(theta), torch.sin(theta), torch.cos(theta)], -1).view(C, N, 2, 2)
    cov = R @ torch.diag_embed(sig**2) @ R.transpose(-1, -2)
    inv = torch.linalg.inv(cov)
    conics = torch.stack([inv[..., 0, 0], inv[..., 0, 1], inv[..., 1, 1]], -1)
    radius = torch.ceil(3.0 * sig.max(-1).values).int()
    radii = torch.stack([radius, radius], -1)
    radii[:, : N // 10] = 0  # culled
    radii[:, N // 10 : N // 5, 1] = -1  # one axis culled is culled too
    colors = torch.rand(C, N, D, generator=g)
    opacities = opacity[0] + (opacity[1] - opacity[0]) * torch.rand(C, N, generator=g)
    depths = torch.rand(C, N, generator=g) * 10 + 0.1
    depths[:, 1::7] = depths[:, ::7][:, : depths[:, 1::7].shape[1]]  # depth ties: index order decides
    backgrounds = torch.rand(C, D, generator=g)
    return dict(means2d=means2d, conics=conics, colors=colors, opacities=opacities, depths=depths,
                radii=radii, width=width, height=height, backgrounds=backgrounds)


DIFF = ("means2d", "conics", "colors", "opacities", "backgrounds")


def run(fn, inputs, tile_size, use_bg=True, absgrad=False, seed=1):
    """Renders and back-propagates a fixed random cotangent; returns outputs and gradients."""
    leaves = {k: (v.clone().requires_grad_() if k in DIFF else v) for k, v in inputs.items()}
    if not use_bg:
        leaves["backgrounds"] = None
    rgb, alpha = fn(leaves["means2d"], leaves["conics"], leaves["colors"], leaves["opacities"], leaves["depths"],
                    leaves["radii"], leaves["width"], leaves["height"], tile_size, leaves["backgrounds"], absgrad)
    g = torch.Generator().manual_seed(seed)
    w_rgb = torch.randn(rgb.shape, generator=g)
    w_alpha = torch.randn(alpha.shape, generator=g)
    ((rgb * w_rgb).sum() + (alpha * w_alpha).sum()).backward()
    grads = {k: leaves[k].grad for k in DIFF if leaves[k] is not None}
    absg = getattr(leaves["means2d"], "absgrad", None)
    return rgb.detach(), alpha.detach(), grads, absg


def assert_close_rel(actual, expected, rtol, name):
    scale = expected.abs().max().clamp(min=1e-6)
    err = (actual - expected).abs().max() / scale
    assert err < rtol, f"{name}: max error {err:.2e} of max |value| {scale:.3g}"


@pytest.mark.parametrize(
    "D,tile_size,width,height,use_bg,seed",
    [(3, 16, 37, 29, True, 0), (3, 8, 40, 24, False, 1), (1, 16, 33, 17, True, 2),
     (4, 8, 21, 35, True, 3), (5, 16, 48, 32, True, 4), (2, 4, 19, 13, False, 5)],
)
def test_composite_matches_torch_backend(D, tile_size, width, height, use_bg, seed):
    inputs = random_2d(N=width * height // 15, D=D, width=width, height=height, seed=seed)
    c_rgb, c_alpha, c_grads, _ = run(cpu.composite, inputs, tile_size, use_bg)
    t_rgb, t_alpha, t_grads, _ = run(torch_backend.composite, inputs, tile_size, use_bg)
    assert c_rgb.shape == (2, height, width, D) and c_alpha.shape == (2, height, width, 1)
    torch.testing.assert_close(c_rgb, t_rgb, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(c_alpha, t_alpha, rtol=1e-5, atol=2e-6)
    assert set(c_grads) == set(t_grads)
    for k in t_grads:
        assert_close_rel(c_grads[k], t_grads[k], 1e-4, k)
    assert c_alpha.max() > 0.9 and c_alpha.min() < 0.5  # both nearly opaque and thin pixels


def test_saturated_pixels_stop_like_the_specification():
    # Many opaque Gaussians: most pixels reach T <= 1e-4 and stop early.
    inputs = random_2d(N=300, width=32, height=32, seed=7, opacity=(0.85, 1.0), size=(3.0, 8.0))
    c_rgb, c_alpha, c_grads, _ = run(cpu.composite, inputs, 16)
    t_rgb, t_alpha, t_grads, _ = run(torch_backend.composite, inputs, 16)
    assert (c_alpha > 0.999).float().mean() > 0.8
    assert (c_alpha <= 1 - 1e-4 + 1e-6).all()  # the stopping contribution is excluded
    torch.testing.assert_close(c_rgb, t_rgb, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(c_alpha, t_alpha, rtol=1e-5, atol=2e-6)
    # Saturated pixels recover T by division from 1e-4 in backward, as gsplat: a
    # little more float32 round-off than elsewhere.
    for k in t_grads:
        assert_close_rel(c_grads[k], t_grads[k], 5e-4, k)


def test_tile_membership_comes_from_radii_not_from_the_gaussian_extent():
    # A wide Gaussian whose radius says it only touches tile (0, 0): pixels in the
    # next tile stay empty even though its alpha there is far above 1/255.
    kw = dict(width=32, height=16, backgrounds=None)
    means2d = torch.tensor([[[8.0, 8.0]]])
    conics = torch.tensor([[[1 / 400.0, 0.0, 1 / 400.0]]])
    out = cpu.composite(means2d, conics, torch.ones(1, 1, 3), torch.full((1, 1), 0.9), torch.ones(1, 1),
                        torch.tensor([[[4, 4]]], dtype=torch.int32), tile_size=16, **kw)
    ref = torch_backend.composite(means2d, conics, torch.ones(1, 1, 3), torch.full((1, 1), 0.9), torch.ones(1, 1),
                                  torch.tensor([[[4, 4]]], dtype=torch.int32), tile_size=16, **kw)
    assert out[1][0, :, :16].min() > 0.5 and out[1][0, :, 16:].max() == 0
    torch.testing.assert_close(out[1], ref[1])


def test_non_positive_definite_conics_skip_negative_sigma():
    inputs = random_2d(N=30, seed=11)
    inputs["conics"][:, ::3, 1] = 5.0  # b^2 > a c: sigma < 0 for part of the plane
    c = run(cpu.composite, inputs, 8)
    t = run(torch_backend.composite, inputs, 8)
    torch.testing.assert_close(c[0], t[0], rtol=1e-5, atol=2e-6)
    for k in t[2]:
        assert_close_rel(c[2][k], t[2][k], 1e-4, k)


def test_results_are_bitwise_deterministic_across_runs_and_thread_counts():
    inputs = random_2d(N=400, width=64, height=48, seed=3, size=(2.0, 10.0))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = run(cpu.composite, inputs, 16, absgrad=True)
        b = run(cpu.composite, inputs, 16, absgrad=True)
        torch.set_num_threads(1)
        c = run(cpu.composite, inputs, 16, absgrad=True)
    finally:
        torch.set_num_threads(old)
    for other in (b, c):
        assert torch.equal(a[0], other[0]) and torch.equal(a[1], other[1])
        for k in a[2]:
            assert torch.equal(a[2][k], other[2][k]), k
        assert torch.equal(a[3], other[3])


def test_absgrad_is_the_sum_of_per_pixel_absolute_gradients():
    inputs = random_2d(C=1, N=12, D=3, width=8, height=6, seed=5, margin=1.0, size=(1.0, 3.0))
    _, _, grads, absgrad = run(cpu.composite, inputs, 4, absgrad=True)
    assert absgrad is not None and absgrad.shape == (1, 12, 2)
    # Another way: one backward per pixel through the PyTorch specification.
    g = torch.Generator().manual_seed(1)
    w_rgb = torch.randn(1, 6, 8, 3, generator=g)
    w_alpha = torch.randn(1, 6, 8, 1, generator=g)
    means2d = inputs["means2d"].clone().requires_grad_()
    rgb, alpha = torch_backend.composite(means2d, inputs["conics"], inputs["colors"], inputs["opacities"],
                                         inputs["depths"], inputs["radii"], 8, 6, 4, inputs["backgrounds"])
    per_pixel = (rgb * w_rgb).sum(-1) + (alpha * w_alpha).sum(-1)  # [1, H, W]
    expected = torch.zeros(1, 12, 2)
    for y in range(6):
        for x in range(8):
            (gp,) = torch.autograd.grad(per_pixel[0, y, x], means2d, retain_graph=True)
            expected += gp.abs()
    assert expected.abs().sum() > 0
    torch.testing.assert_close(absgrad, expected, rtol=1e-4, atol=1e-5)
    # ... and |sum| <= sum |.| with equality only where all pixels agree in sign.
    assert (grads["means2d"].abs() <= absgrad + 1e-5).all()


def test_fast_exp_relative_error_is_below_1e_7():
    ext = cpu.load_extension()
    x = torch.cat([torch.linspace(-87.0, 88.0, 1_000_003), -torch.rand(100_000) * 30, torch.zeros(1)])
    approx = ext.fast_exp(x).double()
    exact = torch.exp(x.double())
    rel = ((approx - exact).abs() / exact).max().item()
    assert rel < 1.5e-7, rel
    assert ext.fast_exp(torch.zeros(1)).item() == 1.0


def test_empty_and_fully_culled_inputs_give_background_and_zero_grads():
    inputs = random_2d(N=10, seed=2)
    inputs["radii"].zero_()
    rgb, alpha, grads, _ = run(cpu.composite, inputs, 16)
    assert torch.equal(alpha, torch.zeros_like(alpha))
    torch.testing.assert_close(rgb, inputs["backgrounds"][:, None, None, :].expand_as(rgb))
    for k in ("means2d", "conics", "colors", "opacities"):
        assert torch.equal(grads[k], torch.zeros_like(grads[k])), k
    # Nothing drawn: T = 1 everywhere, so dL/dbackground is the cotangent summed over pixels.
    w_rgb = torch.randn(rgb.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(grads["backgrounds"], w_rgb.sum(dim=(1, 2)))
    inputs = random_2d(N=0, seed=2)
    rgb, alpha, grads, _ = run(cpu.composite, inputs, 16)
    assert grads["means2d"].shape == (2, 0, 2) and torch.equal(alpha, torch.zeros_like(alpha))


def test_float64_inputs_are_computed_in_float32_with_float64_gradients():
    inputs = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in random_2d(seed=4).items()}
    rgb, _, grads, _ = run(cpu.composite, inputs, 16)
    assert rgb.dtype == torch.float32 and grads["means2d"].dtype == torch.float64


def _args(**over):
    base = random_2d(N=5, seed=0)
    base["tile_size"] = 16
    base.update(over)
    return base


@pytest.mark.parametrize(
    "over,err,match",
    [
        (dict(means2d=[[0.0, 0.0]]), TypeError, "means2d must be a torch.Tensor, got list"),
        (dict(means2d=torch.zeros(2, 5, 3)), ValueError, r"means2d must be \[C, N, 2\]"),
        (dict(means2d=torch.zeros(5, 2)), ValueError, r"means2d must be \[C, N, 2\], got shape \(5, 2\)"),
        (dict(conics=torch.zeros(2, 4, 3)), ValueError, r"conics must be \[C, N, 3\] = \[2, 5, 3\]"),
        (dict(colors=torch.zeros(2, 5, 0)), ValueError, r"colors must be \[C, N, D\] with C=2, N=5, D>=1"),
        (dict(opacities=torch.zeros(2, 6)), ValueError, r"opacities must be \[C, N\] = \[2, 5\]"),
        (dict(depths=torch.zeros(1, 5)), ValueError, r"depths must be \[C, N\] = \[2, 5\]"),
        (dict(radii=torch.zeros(2, 5)), ValueError, r"radii must be \[C, N, 2\]"),
        (dict(radii=torch.zeros(2, 5, 2)), TypeError, "radii must be an integer tensor, got torch.float32"),
        (dict(colors=torch.zeros(2, 5, 3, dtype=torch.int64)), TypeError, "colors must be a floating-point tensor"),
        (dict(width=0), ValueError, "width must be positive, got 0"),
        (dict(height=2.5), TypeError, "height must be an int, got float"),
        (dict(tile_size=True), TypeError, "tile_size must be an int, got bool"),
        (dict(backgrounds=torch.zeros(2, 4)), ValueError, r"backgrounds must be \[C, D\] = \[2, 3\]"),
        (dict(backgrounds=torch.zeros(2, 3, dtype=torch.int32)), TypeError, "backgrounds must be a floating-point"),
        (dict(conics=torch.zeros(2, 5, 3, device="meta")), ValueError, "conics must be on the CPU"),
    ],
)
def test_invalid_inputs_raise(over, err, match):
    with pytest.raises(err, match=match):
        cpu.composite(**_args(**over))


@pytest.mark.slow
def test_unbuildable_kernel_reports_why_and_never_raises_at_import(tmp_path):
    # A fresh build directory and a compiler that does not exist.
    code = textwrap.dedent(
        """
        import pytest
        from splat.core.backends import cpu
        assert cpu.is_available() is False
        reason = cpu.unavailable_reason()
        assert reason, reason
        with pytest.raises(RuntimeError, match="the cpu backend is unavailable"):
            cpu.load_extension()
        print("REASON", reason)
        """
    )
    env = dict(os.environ, CXX=str(tmp_path / "no-such-compiler"), SPLATOPS_BUILD_DIR=str(tmp_path / "build"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REASON" in proc.stdout
