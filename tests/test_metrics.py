import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from splat.metrics import psnr, ssim


def _pair(shape, noise=0.1, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(*shape, generator=g, dtype=dtype)
    b = (a + noise * torch.randn(*shape, generator=g, dtype=dtype)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("shape", [(32, 40, 3), (11, 15, 1), (64, 48, 3)])
def test_ssim_matches_skimage(shape):
    a, b = _pair(shape)
    ref = structural_similarity(
        a.numpy(), b.numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, channel_axis=-1,
    )
    assert float(ssim(a, b)) == pytest.approx(ref, abs=1e-10)


def test_psnr_matches_skimage_and_batches():
    a, b = _pair((2, 20, 24, 3))
    out = psnr(a, b)
    assert out.shape == (2,)
    for i in range(2):
        assert float(out[i]) == pytest.approx(peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=1.0))
    assert float(psnr(a[0] * 255, b[0] * 255, data_range=255.0)) == pytest.approx(float(out[0]))


def test_ssim_batch_identity_and_gradient():
    a, b = _pair((3, 16, 16, 3), dtype=torch.float32)
    s = ssim(a, b)
    assert s.shape == (3,) and (s < 1).all()
    assert float(ssim(a[0], a[0])) == pytest.approx(1.0, abs=1e-6)
    x = b.clone().requires_grad_(True)
    (1 - ssim(x, a).mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # a step down the gradient raises SSIM
    with torch.no_grad():
        assert ssim(x - 0.5 * x.grad / x.grad.abs().max(), a).mean() > ssim(x, a).mean()


def test_metric_errors():
    a = torch.rand(16, 16, 3)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, torch.rand(16, 15, 3))
    with pytest.raises(TypeError, match="img must be a torch.Tensor"):
        ssim(a.numpy(), a)
    with pytest.raises(ValueError, match=r"ref must be \[H, W, C\]"):
        psnr(a, torch.rand(16, 16))
    with pytest.raises(ValueError, match="floating-point"):
        psnr((a * 255).to(torch.uint8), (a * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(8, 8, 3), torch.rand(8, 8, 3))
    with pytest.raises(ValueError, match="window_size must be an odd"):
        ssim(a, a, window_size=4)
