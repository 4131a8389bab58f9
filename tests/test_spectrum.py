"""Spectrum analysis and branch feature maps."""

import numpy as np
import pytest
import torch

import sfhformer
from sfhformer.cli import main
from sfhformer.features import branch_features, save_features
from sfhformer.io import write_image
from sfhformer.spectrum import luminance, radial_profile, save_spectrum

from conftest import SMALL, active_model, photo


def gradient_plus_grating(f0, h=192, w=256, amplitude=0.2):
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = 0.3 + 0.4 * (xx / w) * (0.5 + yy / h)  # smooth, low frequency
    return np.clip(gradient + amplitude * np.sin(2 * np.pi * f0 * xx), 0, 1)


@pytest.mark.parametrize("f0", [0.1, 0.2, 0.3, 0.4])
def test_radial_profile_peaks_at_the_grating_frequency(f0):
    prof = radial_profile(gradient_plus_grating(f0))
    band = prof.edges[1] - prof.edges[0]
    assert abs(prof.peak() - f0) <= band
    # and without the grating the same band holds next to nothing
    plain = radial_profile(gradient_plus_grating(f0, amplitude=0.0))
    k = int(np.argmax(prof.energy))
    assert plain.energy[k] < 0.01 < prof.energy[k]


def test_vertical_grating_and_colour_and_gray_agree():
    img = np.transpose(gradient_plus_grating(0.25, 256, 256))  # grating along y
    assert abs(radial_profile(img).peak() - 0.25) <= 0.025
    rgb = np.repeat((img * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    assert np.allclose(luminance(rgb), luminance(rgb[..., 0]), atol=1e-9)
    assert abs(radial_profile(rgb).peak() - 0.25) <= 0.025


def test_noise_is_high_frequency_and_blur_is_not():
    clean = photo("coffee")
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    residual = luminance(noisy) - luminance(clean)
    assert radial_profile(residual).high_frequency_share() > 0.5
    assert radial_profile(clean).high_frequency_share() < 0.1


def test_spectrum_command_writes_a_png(tmp_path, capsys):
    clean = photo("chelsea")
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    write_image(tmp_path / "clean.png", clean)
    write_image(tmp_path / "noisy.png", noisy)
    assert main(["spectrum", str(tmp_path / "noisy.png"), str(tmp_path / "clean.png"), "-o",
                 str(tmp_path / "s.png")]) == 0
    assert "difference" in capsys.readouterr().out
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size[0] > 600
    profiles = save_spectrum(tmp_path / "noisy.png", tmp_path / "g.png")  # single image, grayscale-safe
    assert list(profiles) == ["noisy"]


def test_size_mismatch_is_explained(tmp_path):
    write_image(tmp_path / "a.png", photo("chelsea"))
    write_image(tmp_path / "b.png", photo("coffee"))
    with pytest.raises(ValueError, match="differ in size"):
        save_spectrum(tmp_path / "a.png", tmp_path / "o.png", tmp_path / "b.png")


@pytest.mark.parametrize("family", ["paper_k4", "haze", "lol"])
@pytest.mark.parametrize("stage, scale", [(1, 1), (2, 2), (3, 4), (4, 2), (5, 1)])
def test_hooks_return_stage_width_and_size_and_change_nothing(family, stage, scale):
    torch.manual_seed(0)
    model = sfhformer.SFHformer(sfhformer.SFHformerConfig(**SMALL[family])).eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        before = model(x)
    out, feats = branch_features(model, x, stage)
    widths = {1: model.config.widths[0], 2: model.config.widths[1], 3: model.config.widths[2],
              4: model.config.up_widths[0], 5: model.config.up_widths[1]}
    for name in ("spatial", "frequency"):
        assert feats[name].shape == (1, widths[stage], -(-37 // scale), -(-53 // scale)), name
    assert torch.equal(out, before)
    with torch.no_grad():
        assert torch.equal(model(x), before)  # hooks removed
    assert not any(m._forward_hooks for m in model.modules())


def test_bad_stage_and_block():
    model = active_model()
    with pytest.raises(ValueError, match="stage must be 1..5"):
        branch_features(model, torch.rand(1, 3, 16, 16), 6)
    with pytest.raises(ValueError, match="block 7 does not exist"):
        branch_features(model, torch.rand(1, 3, 16, 16), 1, block=7)


def test_features_command(tmp_path, capsys):
    weights = sfhformer.save(active_model(), tmp_path / "w.safetensors")
    write_image(tmp_path / "img.png", photo("chelsea")[:96, :128])
    assert main(["features", str(weights), str(tmp_path / "img.png"), "-o", str(tmp_path / "f"), "--stage", "2",
                 "--channels", "4"]) == 0
    assert "spatial    64 channels of 48x64" in capsys.readouterr().out
    data = np.load(tmp_path / "f" / "features_stage2.npz")
    assert data["frequency"].shape == (64, 48, 64)
    assert (tmp_path / "f" / "features_stage2.png").stat().st_size > 10_000
    arrays = save_features(weights, tmp_path / "img.png", tmp_path / "g", stage=3)
    assert arrays["spatial"].shape == (128, 24, 32)
