"""PSNR/SSIM against scikit-image on real photographs, and the BT.601 Y channel."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sfhformer.metrics import psnr, rgb_to_y, ssim, to_uint8_array

from conftest import photo


def degrade(img, sigma, seed=0):
    noisy = img.astype(float) + np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def sk_ssim(a, b):
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, **kw)


@pytest.mark.parametrize("name", ["chelsea", "coffee", "camera", "astronaut"])
@pytest.mark.parametrize("sigma", [5, 25])
def test_agrees_with_scikit_image(name, sigma):
    clean = photo(name)
    noisy = degrade(clean, sigma)
    assert abs(psnr(noisy, clean) - peak_signal_noise_ratio(clean, noisy, data_range=255)) < 1e-4
    assert abs(ssim(noisy, clean) - sk_ssim(clean, noisy)) < 1e-4


def test_crop_border_agrees_with_cropping_first():
    clean = photo("chelsea")
    noisy = degrade(clean, 15)
    c = clean[4:-4, 4:-4]
    n = noisy[4:-4, 4:-4]
    assert abs(psnr(noisy, clean, crop_border=4) - peak_signal_noise_ratio(c, n, data_range=255)) < 1e-4
    assert abs(ssim(noisy, clean, crop_border=4) - sk_ssim(c, n)) < 1e-4


def test_y_channel_is_the_bt601_formula():
    clean = photo("coffee")
    noisy = degrade(clean, 20)

    def y(img):  # direct: MATLAB rgb2ycbcr's luma row
        r, g, b = (img[..., i].astype(np.float64) for i in range(3))
        return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    assert np.allclose(rgb_to_y(clean)[..., 0], y(clean))
    assert abs(rgb_to_y(np.full((1, 1, 3), 255, np.uint8)).item() - 235) < 1e-9
    assert abs(rgb_to_y(np.zeros((1, 1, 3), np.uint8)).item() - 16) < 1e-9
    ya, yb = y(noisy), y(clean)
    expected = 10 * np.log10(255 ** 2 / np.mean((ya - yb) ** 2))
    assert abs(psnr(noisy, clean, y_channel=True) - expected) < 1e-6
    ssim_y = structural_similarity(yb, ya, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255)
    assert abs(ssim(noisy, clean, y_channel=True) - ssim_y) < 1e-4
    assert psnr(noisy, clean, y_channel=True) != pytest.approx(psnr(noisy, clean))


def test_float_and_tensor_inputs_are_quantized_like_uint8():
    clean = photo("chelsea")
    noisy = degrade(clean, 10)
    f = noisy.astype(np.float32) / 255 + 0.4 / 255  # rounds back to the same levels
    t = torch.from_numpy(f).permute(2, 0, 1)[None]
    assert psnr(f, clean) == psnr(noisy, clean) == psnr(t, clean)
    assert np.array_equal(to_uint8_array(np.array([[1.7, -0.2]])), np.array([[[255], [0]]], np.uint8))


def test_identical_images_and_errors():
    clean = photo("chelsea")
    assert psnr(clean, clean) == float("inf") and ssim(clean, clean) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(clean, clean[1:])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(clean[:8, :8], clean[:8, :8])


def test_sixteen_bit_values_are_rounded_to_the_nearest_8_bit_level(tmp_path):
    """A 16-bit level v is v / 257 in 8 bits, rounded: 200 -> 0.78 -> 1 (truncation gives 0)."""
    deep = np.array([[200, 128, 65535 - 128, 385, 386]], np.uint16)
    assert to_uint8_array(deep)[0, :, 0].tolist() == [1, 0, 255, 1, 2]
    from sfhformer.evaluate import evaluate_folders
    from sfhformer.io import write_image
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
    write_image(tmp_path / "pred" / "a.png", np.full((16, 16, 3), 200, np.uint16))
    write_image(tmp_path / "gt" / "a.png", np.full((16, 16, 3), 1, np.uint8))
    assert evaluate_folders(tmp_path / "pred", tmp_path / "gt")[0]["psnr"] == float("inf")
