"""The Fourier units' transforms as matrix products (for DFT-free exported graphs) against torch.fft."""

import pytest
import torch

from sfhformer.models import dft

from conftest import tiny_active_model

# even, odd, prime, a power of two that factorises, and sizes too small to factorise
SIZES = [(64, 80), (67, 93), (97, 31), (128, 128), (16, 17), (6, 5)]


@pytest.mark.parametrize("h, w", SIZES)
def test_rfft2_matches_torch(h, w):
    x = torch.rand(2, 3, h, w)
    re, im = dft.rfft2(x)
    f = torch.fft.rfft2(x, norm="ortho")
    assert re.shape == f.shape
    # float32 sums of H*W terms near 1 (the DC term is 64 at 128 x 128): errors of a few 1e-6
    torch.testing.assert_close(re, f.real, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(im, f.imag, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("h, w", SIZES)
def test_irfft2_matches_torch_for_any_half_spectrum(h, w):
    # random, so not Hermitian in the DC and Nyquist columns: those parts must be ignored as pocketfft does
    f = torch.randn(2, 3, h, w // 2 + 1, dtype=torch.complex64)
    expected = torch.fft.irfft2(f, s=(h, w), norm="ortho")
    torch.testing.assert_close(dft.irfft2(f.real, f.imag, (h, w)), expected, atol=3e-6, rtol=1e-5)


def test_the_network_computes_the_same_with_matrix_products():
    model = tiny_active_model()
    x = torch.rand(1, 3, 67, 90)
    with torch.no_grad():
        expected = model(x)
        with dft.matrix_dft():
            assert dft.active()
            got = model(x)
    assert not dft.active()
    assert (expected - x).abs().max() > 0.05  # the Fourier units matter
    assert (got - expected).abs().max() < 1e-5
