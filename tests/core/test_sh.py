"""Spherical harmonics: gsplat parity, orthonormality, argument checks."""

import math

import pytest
import torch

from splat.core.sh import num_sh_bases, sh_bases, spherical_harmonics

gsplat_torch = pytest.importorskip("gsplat.cuda._torch_impl")


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_matches_gsplat_spherical_harmonics(degree):
    dirs = torch.randn(500, 3) * 3  # not unit length: both normalise
    coeffs = torch.randn(500, 16, 3)
    ours = spherical_harmonics(degree, dirs, coeffs)
    ref = gsplat_torch._spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_bases_are_orthonormal_on_the_sphere():
    # Fibonacci-sphere quadrature of the products of all 16 bases.
    n = 20000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)
    Y = sh_bases(3, dirs)  # [n, 16]
    gram = 4 * math.pi * (Y.T @ Y) / n
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=2e-3, rtol=0)


def test_higher_coefficients_are_ignored_below_their_degree():
    dirs, coeffs = torch.randn(10, 3), torch.randn(10, 16, 3)
    tweaked = coeffs.clone()
    tweaked[:, 4:] += 5.0
    torch.testing.assert_close(spherical_harmonics(1, dirs, coeffs), spherical_harmonics(1, dirs, tweaked))
    assert num_sh_bases(3) == 16


def test_argument_errors():
    with pytest.raises(ValueError, match="degree must be an int in 0..3, got 4"):
        sh_bases(4, torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"dirs must be \[..., 3\], got \(2, 2\)"):
        sh_bases(1, torch.randn(2, 2))
    with pytest.raises(ValueError, match="coeffs must have K >= 9 bases for degree 2, got K=4"):
        spherical_harmonics(2, torch.randn(2, 3), torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"coeffs must be \[..., K, D\], got \(3,\)"):
        spherical_harmonics(0, torch.randn(3), torch.randn(3))
