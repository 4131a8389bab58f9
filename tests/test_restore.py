"""Restorer: every input kind, quantization, self-ensemble, tiling; the restore command."""

import numpy as np
import pytest
import torch
from PIL import Image

import sfhformer
from sfhformer.cli import main
from sfhformer.io import read_image, write_image
from sfhformer.restore import (Restorer, blend_window, dihedral, dihedral_inverse, forward_tiled, tile_starts)

from conftest import active_model, identity_model, photo


@pytest.fixture(scope="module")
def rgb():
    return photo("chelsea")[:96, :128]


@pytest.fixture(scope="module")
def same():
    return Restorer(identity_model(), device="cpu")


def test_identity_model_round_trips_every_kind_exactly(rgb, same):
    deep = rgb.astype(np.uint16) * 257 + 3
    alpha = np.full(rgb.shape[:2], 77, np.uint8)
    cases = [rgb, deep, rgb[..., 0], deep[..., :1], np.dstack([rgb, alpha]), rgb.astype(np.float32) / 255]
    for arr in cases:
        out = same.restore(arr)
        assert out.dtype == arr.dtype and out.shape == arr.shape
        np.testing.assert_allclose(out.astype(float), arr.astype(float), atol=1e-6)
    for mode in ("RGB", "L", "RGBA", "LA", "I;16", "I"):
        im = Image.fromarray(rgb).convert(mode) if mode not in ("I;16", "I") else \
            Image.fromarray(deep[..., 1]).convert(mode)
        out = same.restore(im)
        assert out.mode == mode and np.array_equal(np.array(out), np.array(im)), mode
    pal = Image.fromarray(rgb).quantize(32)
    assert np.array_equal(np.array(same.restore(pal)), np.array(pal.convert("RGB")))
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    assert torch.allclose(same.restore(t), t, atol=1e-6) and same.restore(t[None]).shape == (1, 3, 96, 128)


def test_path_input_returns_the_files_pixels(rgb, same, tmp_path):
    write_image(tmp_path / "a.png", rgb, np.full(rgb.shape[:2], 9, np.uint8))
    out = same.restore(tmp_path / "a.png")
    assert out.shape == (96, 128, 4) and np.array_equal(out[..., :3], rgb) and (out[..., 3] == 9).all()


def test_outputs_are_rounded_and_clamped(rgb):
    model = identity_model()
    with torch.no_grad():
        model.head[0].bias.fill_(0.7 / 255)  # +0.7 of a level: rounding gives +1, truncation +0
    up = Restorer(model, device="cpu").restore(rgb)
    assert np.array_equal(up, np.minimum(rgb.astype(int) + 1, 255))
    with torch.no_grad():
        model.head[0].bias.fill_(-2.0)
    assert (Restorer(model, device="cpu").restore(rgb) == 0).all()
    deep = Restorer(model, device="cpu").restore(rgb.astype(np.uint16))
    assert deep.dtype == np.uint16 and (deep == 0).all()


def test_active_model_keeps_alpha_and_depth(rgb):
    r = Restorer(active_model(), device="cpu")
    alpha = np.random.default_rng(0).integers(0, 65535, rgb.shape[:2], dtype=np.uint16)
    deep = np.dstack([rgb.astype(np.uint16) * 257, alpha])
    out = r.restore(deep)
    assert out.dtype == np.uint16 and np.array_equal(out[..., 3], alpha)
    assert np.abs(out[..., :3].astype(int) - deep[..., :3]).mean() > 100  # it did change the colours
    assert (out[..., :3] % 257 != 0).any()  # real 16-bit output, not 8 bits scaled
    gray = r.restore(rgb[..., 0])
    assert gray.shape == rgb.shape[:2] and gray.dtype == np.uint8


def test_bad_inputs_to_the_api(same):
    with pytest.raises(ValueError, match="zero-size"):
        same.restore(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        same.restore(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(TypeError, match="cannot restore a list"):
        same.restore([1, 2, 3])
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("has CUDA")
        Restorer(identity_model(), device="cuda")


def test_ensemble_is_the_mean_of_the_eight_passes(rgb):
    model = active_model()
    x = torch.from_numpy(rgb[:64, :80]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        manual = sum(dihedral_inverse(model(dihedral(x, k)), k) for k in range(8)) / 8
        single = model(x)
    ens = Restorer(model, device="cpu", ensemble=True).restore_tensor(x)
    assert torch.allclose(ens, manual.clamp(0, 1), atol=1e-5)
    assert not torch.allclose(ens, single.clamp(0, 1), atol=1e-3)
    # the 8 transforms are distinct and each is undone by its inverse
    assert len({tuple(dihedral(x, k).flatten()[:50].tolist()) for k in range(8)}) == 8
    assert all(torch.equal(dihedral_inverse(dihedral(x, k), k), x) for k in range(8))


# -- tiling ------------------------------------------------------------------------------------

def test_tile_starts_cover_the_image():
    for size, tile, overlap in [(100, 32, 8), (64, 64, 8), (30, 64, 8), (129, 64, 16)]:
        starts = tile_starts(size, tile, overlap)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all() and starts[-1] + min(tile, size) == size
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blend_window_ramps_only_towards_neighbours():
    w = blend_window(32, 8, ramp_start=True, ramp_end=False)
    assert (w > 0).all() and w[-1] == 1 and w[0] < 0.1 and torch.all(w[1:8] >= w[:7])
    assert torch.equal(blend_window(32, 8, False, False), torch.ones(32))


def test_tiling_an_identity_function_is_exact():
    x = torch.rand(1, 3, 70, 90)
    assert torch.allclose(forward_tiled(lambda t: t, x, 32, 8), x, atol=1e-6)


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def _tile_edges(size, tile, overlap):
    edges = set()
    for s in tile_starts(size, tile, overlap):
        edges |= {e for e in (s, s + tile) if 0 < e < size}
    return sorted(edges)


def _gradient_at_edges_and_near(img, tile, overlap):
    """Mean |horizontal/vertical difference| across tile edges, and 3-4 px away from them."""
    f = img.astype(float).mean(axis=2)
    gx, gy = np.abs(np.diff(f, axis=1)), np.abs(np.diff(f, axis=0))
    ex, ey = _tile_edges(f.shape[1], tile, overlap), _tile_edges(f.shape[0], tile, overlap)
    at = np.concatenate([gx[:, [e - 1 for e in ex]].ravel(), gy[[e - 1 for e in ey]].ravel()]).mean()
    near_x = [e - 1 + o for e in ex for o in (-4, -3, 3, 4) if 0 <= e - 1 + o < gx.shape[1]]
    near_y = [e - 1 + o for e in ey for o in (-4, -3, 3, 4) if 0 <= e - 1 + o < gy.shape[0]]
    near = np.concatenate([gx[:, near_x].ravel(), gy[near_y].ravel()]).mean()
    return at, near


def test_tiled_restoration_matches_whole_image_and_shows_no_seams():
    clean = photo("chelsea")  # 300 x 451, a real photograph
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    model = active_model()
    whole = Restorer(model, device="cpu").restore(noisy)
    tiled = Restorer(model, device="cpu", tile=128, tile_overlap=48).restore(noisy)
    assert abs(_psnr(tiled, clean) - _psnr(whole, clean)) < 0.5
    assert _psnr(tiled, whole) > 35
    at, near = _gradient_at_edges_and_near(tiled, 128, 48)
    assert at <= near * 1.02
    # the measure does see seams: hard tiles without overlap show them
    hard = Restorer(model, device="cpu", tile=128, tile_overlap=0).restore(noisy)
    at0, near0 = _gradient_at_edges_and_near(hard, 128, 0)
    assert at0 > near0 * 1.1


class TileRamp(torch.nn.Module):
    """Identity plus an offset that grows across each tile it is given: its output depends on
    the position inside the tile, so tiles disagree wherever they overlap."""

    def forward(self, x):
        h, w = x.shape[-2:]
        ramp = 0.2 * (torch.arange(h, dtype=x.dtype)[:, None] / h + torch.arange(w, dtype=x.dtype)[None, :] / w)
        return x + ramp

    def fuse(self):
        return self


def test_tiled_restoration_blends_tiles_that_disagree_smoothly():
    x = torch.from_numpy(photo("chelsea")).permute(2, 0, 1)[None].float() / 255 * 0.5  # room for the offset
    r = Restorer(TileRamp(), device="cpu", tile=128, tile_overlap=48)
    offset = (r.restore_tensor(x) - x)[0, 0].numpy()
    # a ramp of 0.2 over a 128-px tile rises 0.0016 a pixel; tiles 80 px apart disagree by 0.125,
    # which the window spreads over the 48-px overlap; averaging them unweighted jumps by 0.0625
    steps = max(np.abs(np.diff(offset, axis=0)).max(), np.abs(np.diff(offset, axis=1)).max())
    assert steps < 0.006
    assert offset.max() - offset.min() > 0.1  # the tiles' offsets really differ


def test_grayscale_goes_through_the_model_and_back_as_the_mean_of_its_channels(tmp_path):
    model = identity_model()
    with torch.no_grad():
        model.head[0].bias.copy_(torch.tensor([30.0, -12.0, 12.0]) / 255)  # mean +10 levels
    r = Restorer(model, device="cpu")
    gray = np.full((40, 48), 100, np.uint8)
    assert (r.restore(gray) == 110).all()
    assert (r.restore(gray[..., None]) == 110).all()
    write_image(tmp_path / "g.png", gray)
    assert (r.restore(tmp_path / "g.png") == 110).all()
    assert np.array_equal(np.array(r.restore(Image.fromarray(gray))), np.full((40, 48), 110))


def test_automatic_tiling_above_the_pixel_budget(monkeypatch):
    calls = []
    model = identity_model()
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda x: calls.append(tuple(x.shape[-2:])) or original(x))
    r = Restorer(model, device="cpu", max_pixels=64 * 64, tile_overlap=16)
    assert r.tile_size(64, 64) is None and r.tile_size(65, 64) == 64
    x = torch.rand(1, 3, 100, 150)
    assert torch.allclose(r.restore_tensor(x), x, atol=1e-6)
    assert calls and max(h * w for h, w in calls) <= 64 * 64 and len(calls) == 2 * 3


# -- the restore command -------------------------------------------------------------------------

@pytest.fixture
def weights(tmp_path):
    return str(sfhformer.save(active_model(), tmp_path / "w.safetensors"))


def test_restore_command_batch_with_bad_inputs(rgb, weights, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb).save(src / "photo.jpg", quality=90)
    write_image(src / "deep.png", rgb.astype(np.uint16) * 257)
    write_image(src / "scan.tif", rgb[..., 0])
    (src / "broken.png").write_bytes((src / "deep.png").read_bytes()[:300])
    (src / "notes.png").write_text("hello")
    out = tmp_path / "out"
    code = main(["restore", str(src), str(tmp_path / "missing.png"), "-o", str(out), "--weights", weights,
                 "--device", "cpu", "--suffix", "_r"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["deep_r.png", "photo_r.png", "scan_r.tif"]
    assert read_image(out / "deep_r.png").pixels.dtype == np.uint16
    assert read_image(out / "scan_r.tif").grayscale
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3
    assert any("missing.png: no such file" in line for line in lines)
    assert any("broken.png: truncated or corrupt" in line for line in lines)
    assert any("notes.png: not an image file" in line for line in lines)


def test_restore_command_keeps_existing_outputs(rgb, weights, tmp_path, capsys):
    write_image(tmp_path / "a.png", rgb)
    out = tmp_path / "out"
    write_image(out / "a.png", np.zeros_like(rgb))
    args = ["restore", str(tmp_path / "a.png"), "-o", str(out), "--weights", weights, "--device", "cpu"]
    assert main(args) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (read_image(out / "a.png").pixels == 0).all()
    assert main(args + ["--overwrite"]) == 0
    assert (read_image(out / "a.png").pixels != 0).any()
    assert [p.name for p in out.iterdir()] == ["a.png"]


def test_restore_command_unknown_weights(tmp_path, capsys):
    assert main(["restore", "x.png", "-o", str(tmp_path), "--weights", "no_such_model"]) == 2
    assert "no_such_model: no such weights file" in capsys.readouterr().err
