"""Compiled SSIM kernel: same value and gradient as splat.metrics.ssim, input checks, and its use in the 3DGS loss."""

import pytest
import torch

from splat.core.backends import cpu
from splat.metrics import ssim

pytestmark = pytest.mark.skipif(not cpu.is_available(), reason=f"cpu backend unavailable: {cpu.unavailable_reason()}")


def pair(shape, seed=0, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g)
    y = (x + noise * torch.randn(*shape, generator=g)).clamp(0, 1)
    return x.requires_grad_(True), y


@pytest.mark.parametrize("shape", [(48, 64, 3), (2, 20, 31, 1), (1, 33, 40, 4), (3, 11, 11, 3)])
def test_value_and_gradient_match_the_specification(shape):
    x, y = pair(shape)
    ref, fast = ssim(x, y), cpu.ssim(x, y)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, atol=2e-6, rtol=1e-5)
    weights = torch.linspace(0.5, 1.5, ref.numel()).reshape(ref.shape)  # distinct upstream gradient per image
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    (g_fast,) = torch.autograd.grad((fast * weights).sum(), x)
    scale = float(g_ref.abs().max())
    assert scale > 0
    torch.testing.assert_close(g_fast, g_ref, atol=1e-5 * scale, rtol=1e-4)


def test_gradient_matches_finite_differences():
    # central differences of the specification in double precision
    x, y = pair((1, 14, 13, 3), seed=3, noise=0.3)
    (grad,) = torch.autograd.grad(cpu.ssim(x, y).sum(), x)
    eps = 1e-3
    for idx in [(0, 0, 0, 0), (0, 7, 6, 1), (0, 13, 12, 2), (0, 3, 10, 1)]:
        xp, xm = x.detach().clone(), x.detach().clone()
        xp[idx] += eps
        xm[idx] -= eps
        fd = (ssim(xp.double(), y.double()) - ssim(xm.double(), y.double())) / (2 * eps)
        assert abs(float(grad[idx]) - float(fd)) < 2e-4 * max(1.0, abs(float(fd))) + 1e-5


def test_identical_images_give_one_and_options_are_honoured():
    x, _ = pair((30, 30, 3))
    torch.testing.assert_close(cpu.ssim(x, x.detach()), torch.tensor(1.0), atol=1e-6, rtol=0)
    x2, y2 = pair((30, 30, 3), seed=1)
    torch.testing.assert_close(cpu.ssim(x2, y2 * 2, data_range=2.0, window_size=7, sigma=1.0),
                               ssim(x2, y2 * 2, data_range=2.0, window_size=7, sigma=1.0), atol=2e-6, rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    x, y = pair((20, 20, 3))
    with pytest.raises(TypeError, match="float32"):
        cpu.ssim(x.double(), y.double())
    with pytest.raises(ValueError, match="same shape"):
        cpu.ssim(x, y[:10])
    with pytest.raises(ValueError, match="at least 11x11"):
        cpu.ssim(x[:8, :8], y[:8, :8])
    with pytest.raises(ValueError, match="odd"):
        cpu.ssim(x, y, window_size=4)
    with pytest.raises(ValueError, match="ref must not require"):
        cpu.ssim(x, y.requires_grad_(True))


def test_the_3dgs_training_loss_uses_the_same_ssim():
    from splat.methods.gs3d import _training_ssim

    x, y = pair((1, 24, 32, 3), seed=2)
    torch.testing.assert_close(_training_ssim(x, y), ssim(x, y), atol=2e-6, rtol=1e-5)
    small, ysmall = pair((1, 8, 8, 3))
    with pytest.raises(ValueError, match="at least"):  # falls back to the specification and its message
        _training_ssim(small, ysmall)
