"""The bundled models and the demo: real trained weights that ship inside the package."""

import numpy as np
import pytest

import sfhformer
from sfhformer.cli import main
from sfhformer.demo import run_demo
from sfhformer.errors import NotFoundError
from sfhformer.pretrained import BUNDLED, WEIGHTS_DIR, available, resolve_weights
from sfhformer.restore import Restorer

from conftest import photo


def test_every_bundled_model_ships_and_is_small():
    assert set(available()) == set(BUNDLED) == {"denoise", "deblur"}
    total = sum((WEIGHTS_DIR / w.file).stat().st_size for w in BUNDLED.values())
    assert total < 20 * 2**20  # issue 20's budget: the two models in use, together
    # The earlier versions too (float16 copies, about 3 MB each): the wheel stays small.
    everything = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir())
    assert everything < 34 * 2**20, everything
    for name in BUNDLED:
        model = sfhformer.load(resolve_weights(name))
        assert model.config.widths == (32, 64, 128)  # sfhformer_t


def test_demo_writes_images_and_restores(tmp_path):
    results = run_demo(tmp_path, tasks=["denoise", "deblur"], device="cpu")
    for row in results:
        task = row["task"]
        for kind in ("clean", "degraded", "restored", "comparison"):
            assert (tmp_path / f"{task}_{kind}.png").is_file()
        assert row["restored_psnr"] > row["degraded_psnr"] + 2, row
        assert row["restored_ssim"] > row["degraded_ssim"], row


def test_demo_command(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--task", "denoise", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "denoise" in out and "dB" in out


def test_bundled_denoiser_on_a_held_out_photograph():
    clean = photo("coffee")[:256, :256]
    noisy = np.clip(clean + np.random.default_rng(5).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    out = Restorer.from_pretrained("denoise", device="cpu").restore(noisy)
    from sfhformer.metrics import psnr
    assert psnr(out, clean) > psnr(noisy, clean) + 5


def test_restore_command_with_a_bundled_name(tmp_path):
    from sfhformer.io import write_image
    write_image(tmp_path / "in.png", photo("chelsea")[:64, :64])
    assert main(["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--weights", "deblur",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "in.png").is_file()


def test_unknown_demo_task():
    with pytest.raises(ValueError, match="unknown demo task"):
        run_demo("x", tasks=["dehaze"])


def test_bundled_models_restore_in_their_own_tiles_unless_told_otherwise(tmp_path, monkeypatch):
    assert Restorer.from_pretrained("denoise", device="cpu").tile == BUNDLED["denoise"].tile == 128
    assert Restorer.from_pretrained("denoise", device="cpu", tile=None).tile is None
    assert Restorer.from_pretrained(resolve_weights("denoise"), device="cpu").tile is None  # a path: no defaults
    seen = []
    original = Restorer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append((self.tile, self.tile_overlap))
    monkeypatch.setattr(Restorer, "__init__", spy)
    from sfhformer.io import write_image
    write_image(tmp_path / "in.png", photo("chelsea")[:40, :40])
    for extra, expected in [([], (128, 32)), (["--tile", "0"], (None, 32)), (["--tile", "96", "--tile-overlap", "16"],
                                                                            (96, 16))]:
        assert main(["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--weights", "denoise",
                     "--device", "cpu", "--overwrite", *extra]) == 0
        assert seen[-1] == expected, extra


def test_every_bundled_file_has_its_recorded_sha256_and_a_versioned_name():
    """A retrained file copied in without its record (or a damaged one) fails here, so a result
    that names NAME@VERSION or the digest names the weights that made it."""
    import hashlib

    from sfhformer.pretrained import BUNDLED, VERSIONS, WEIGHTS_DIR, bundled_model, resolve_weights

    for name, w in BUNDLED.items():
        assert hashlib.sha256((WEIGHTS_DIR / w.file).read_bytes()).hexdigest() == w.sha256, name
        assert VERSIONS[f"{name}@{w.version}"] is w  # the latest, also by its version
    for versioned, w in VERSIONS.items():
        assert bundled_model(versioned) is w and resolve_weights(versioned) == WEIGHTS_DIR / w.file
        assert hashlib.sha256((WEIGHTS_DIR / w.file).read_bytes()).hexdigest() == w.sha256, versioned
    assert BUNDLED["denoise"].version == 7 and resolve_weights("denoise") == resolve_weights("denoise@7")
    assert len({resolve_weights(f"denoise@{v}") for v in (1, 2, 3, 4, 5, 6, 7)}) == 7  # earlier versions kept
    assert BUNDLED["deblur"].version == 2 and resolve_weights("deblur@1") != resolve_weights("deblur")
    restorer = Restorer.from_pretrained("denoise@1", device="cpu")
    assert restorer.tile == VERSIONS["denoise@1"].tile  # the version keeps its own tiling


def test_earlier_versions_are_float16_copies_that_name_their_float32_digest():
    """Earlier versions ship as float16 copies (half the size); each file records the digest of
    the float32 file it was, so a published result's digest still identifies its weights."""
    import torch
    from safetensors import safe_open

    from sfhformer.pretrained import EARLIER, WEIGHTS_DIR

    recorded = {"denoise.safetensors": "de521e7cc8e9cec0c40da420ca51b432bbd0760d878adadf2eda0df029ba18e2",
                "denoise_v2.safetensors": "02dae33ab668c552247c1a68e145b6412e0d4d71c9ffcd0fc9a8d0f276bc17d9",
                "denoise_v3.safetensors": "e32efd2176471f6a02f46f7acb27f92e5797aeb45b5069f2f4c1223fdc52e1a4",
                "denoise_v4.safetensors": "a5a6f60add8444f7e6a4ff7b18c2abc78ec376df3a66bbc63c4edcb6cbe1bba8",
                "denoise_v5.safetensors": "64dc5ad80aa31eecaf19e06bd7f303f57527fc42c6e034ec94046b1b4b356b8f",
                "denoise_v6.safetensors": "9ad977ed811d4bd9e6cc47c88c60a69dc7a5d936ff05d9742f005650bf5e9446",
                "deblur.safetensors": "6adc1ea2eb413173d21629782f16886418be55da4e7b59e644cf8ddcc95f2370"}
    assert {w.file for ws in EARLIER.values() for w in ws} == set(recorded)
    for file, float32_sha in recorded.items():
        with safe_open(str(WEIGHTS_DIR / file), "pt") as f:
            assert f.metadata()["float32_sha256"] == float32_sha
            tensors = [f.get_tensor(k) for k in f.keys()]
        floats = [t.dtype for t in tensors if t.is_floating_point()]
        assert set(floats) == {torch.float16}, file
        model = sfhformer.load(WEIGHTS_DIR / file)
        assert all(p.dtype == torch.float32 for p in model.parameters())  # computed in float32 as before


@pytest.mark.parametrize("sigma", [pytest.param(15, marks=pytest.mark.xfail(strict=True, reason=(
    "issue 20, open: denoise (version 7) is still 0.76 dB behind non-local means on rocket at sigma 15 "
    "(version 6: 0.84, 5: 0.98, 4: 1.07, 3: 1.16, 2: 1.24, 1: 1.88); "
    "strict: a model that passes fails this until the marker goes"))), 25])
def test_denoiser_beats_non_local_means_where_version_1_did_not(sigma):
    """Issue 20's required goal at version 1's worst case: on the held-out `rocket` it lost to
    non-local means by 1.88 dB at sigma 15 and 0.23 dB at sigma 25 (benchmarks/quality.py, whose
    NLM this is: h = 0.6 sigma, tuned there on a training photograph). The latest model wins."""
    from skimage.restoration import denoise_nl_means

    from sfhformer.metrics import psnr

    clean = photo("rocket")
    rng = np.random.default_rng(sigma)
    noisy = np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)
    s = sigma / 255
    nlm = denoise_nl_means(noisy / 255.0, h=0.6 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True,
                           channel_axis=-1)
    nlm = np.clip(np.rint(nlm * 255), 0, 255).astype(np.uint8)
    ours = Restorer.from_pretrained("denoise", device="cpu").restore(noisy)
    assert psnr(ours, clean) > psnr(nlm, clean), (psnr(ours, clean), psnr(nlm, clean))


def _colour_error(clean: np.ndarray, sigma: float = 25) -> np.ndarray:
    """Mean error per channel (0..255) of the bundled denoiser on ``clean`` (uint8) with
    Gaussian noise of ``sigma``, rounded and clipped to 8 bits as a camera would."""
    rng = np.random.default_rng(0)
    noisy = np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)
    restored = Restorer.from_pretrained("denoise", device="cpu").restore(noisy)
    return (restored.astype(np.float64) - clean).reshape(-1, 3).mean(0)


def test_denoise_keeps_the_colour_of_a_dark_photograph():
    """The reported case (a dark photograph, sigma 25, the default tiling): the mean colour of
    every channel stays within 2/255. A held-out photograph darkened with gamma 2.5 (mean 0.19)."""
    clean = np.rint((photo("coffee") / 255.0) ** 2.5 * 255)
    error = _colour_error(clean)
    assert np.abs(error).max() < 2, error.round(1)


@pytest.mark.parametrize("name", ["path", "one_stands_out", "fresh_flower", "yellow_flower"])
def test_denoise_keeps_the_colour_of_dark_foliage(name):
    """The same on Debian desktop backgrounds, shrunk to 640 px wide like the reported 640x427
    photograph, when installed: a dark forest path and an orange flower (validation split), dark
    moss and a yellow flower on a dark background (held out: never used to pick anything). The
    flowers' blue is 0-2 over half their pixels, where the noise is clipped at black. Versions
    1-3 failed on the moss (+4.8/+2.6/+2.3 in a channel) and on both flowers (v3: +2.8, +3.0),
    version 4 on the yellow flower (+2.2)."""
    from sfhformer.data.debian import load_debian_photograph
    try:
        clean = load_debian_photograph(name).astype(np.float64)
    except NotFoundError as e:
        pytest.skip(f"{e} (configs/bundled/install_photos.sh installs it)")
    error = _colour_error(clean)
    assert np.abs(error).max() < 2, error.round(1)
