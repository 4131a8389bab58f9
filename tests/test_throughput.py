"""Throughput and scale: tiles in batches, falling back on out-of-memory, precision choice, and
restore / eval split across torchrun processes."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import sfhformer
from sfhformer.errors import ConfigError, OutOfMemoryError
from sfhformer.restore import MIN_FALLBACK_TILE, Restorer

from conftest import active_model, photo


@pytest.fixture(scope="module")
def model():
    return active_model("sfhformer_t", seed=3)


@pytest.fixture(scope="module")
def image():
    return torch.from_numpy(photo("astronaut")[::2, ::2][:200, :232].copy()).permute(2, 0, 1)[None].float() / 255


def test_tiles_in_batches_equal_tiles_one_at_a_time(model, image):
    one = Restorer(model, "cpu", tile=64, tile_overlap=16, tile_batch=1).restore_tensor(image)
    for batch in (3, 4, 64):  # uneven last batch, even, more than there are tiles (20)
        many = Restorer(model, "cpu", tile=64, tile_overlap=16, tile_batch=batch).restore_tensor(image)
        assert (many - one).abs().max() <= 1e-5, batch
    assert (one - image).abs().max() > 0.05  # the model does act
    two = torch.cat([image, image.flip(-1)])  # a batch of images, tiled in batches too
    both = Restorer(model, "cpu", tile=64, tile_overlap=16, tile_batch=4).restore_tensor(two)
    assert (both[:1] - one).abs().max() <= 1e-5


def test_the_default_tile_batch_follows_the_device(model):
    restorer = Restorer(model, "cpu", max_pixels=512 * 512)
    assert restorer.batch_for(128) == 1  # a CPU gains nothing from batches
    restorer.device = torch.device("cuda")  # the rule alone; no GPU is needed to check it
    assert restorer.batch_for(256) == 4 and restorer.batch_for(128) == 8 and restorer.batch_for(1024) == 1
    with pytest.raises(ConfigError, match="tile batch must be at least 1"):
        Restorer(model, "cpu", tile_batch=0)


class RunsOutOfMemory(torch.nn.Module):
    """``model``, but raising CUDA's out-of-memory error for inputs of more than ``budget``
    pixels in all (a simulated GPU)."""

    def __init__(self, model, budget):
        super().__init__()
        self.model, self.budget, self.sizes = model, budget, []

    def forward(self, x):
        self.sizes.append(tuple(x.shape))
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.budget:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return self.model(x)


def test_out_of_memory_halves_the_tile_batch_first(model, image):
    fake = RunsOutOfMemory(model, budget=2 * 64 * 64)
    restorer = Restorer(fake, "cpu", tile=64, tile_overlap=16, tile_batch=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same tiles: the result does not change, no warning
        y = restorer.restore_tensor(image, "astronaut.png")
    assert restorer.tile_batch == 2  # kept for the next images
    assert {s[0] for s in fake.sizes} == {8, 4, 2}
    expected = Restorer(model, "cpu", tile=64, tile_overlap=16, tile_batch=1).restore_tensor(image)
    assert (y - expected).abs().max() <= 1e-5


def test_out_of_memory_then_shrinks_the_tile_and_says_so(model, image):
    fake = RunsOutOfMemory(model, budget=130 * 130)
    restorer = Restorer(fake, "cpu", max_pixels=1 << 20, tile_overlap=32)  # one pass planned
    with pytest.warns(UserWarning, match=r"astronaut\.png: out of memory with one pass; restored with 128 px tiles"):
        y = restorer.restore_tensor(image, "astronaut.png")
    # 232 -> 112 would be below the floor: 128 px tiles, after the whole image failed
    assert fake.sizes[0] == (1, 3, 200, 232) and fake.sizes[-1][-2:] == (128, 128)
    expected = Restorer(model, "cpu", tile=MIN_FALLBACK_TILE, tile_overlap=32).restore_tensor(image)
    assert (y - expected).abs().max() <= 1e-5
    assert restorer.tile is None  # the next image is planned afresh


def test_out_of_memory_at_the_smallest_tile_is_one_clear_error(model, image):
    restorer = Restorer(RunsOutOfMemory(model, budget=100), "cpu", tile=256, tile_batch=4)
    with pytest.raises(OutOfMemoryError, match=r"astronaut\.png: out of memory on cpu even with 128 px tiles one "
                                               r"at a time"):
        restorer.restore_tensor(image, "astronaut.png")


def test_precision_choice(model, image, monkeypatch):
    from sfhformer import restore

    with pytest.warns(UserWarning, match="float16 is for CUDA"):
        assert Restorer(model, "cpu", dtype="fp16").dtype == torch.float32
    with pytest.warns(UserWarning, match="float16 is for CUDA"):
        assert Restorer(model, "cpu", half=True).dtype == torch.float32  # the old switch still works
    with pytest.raises(ConfigError, match="dtype must be one of fp32, fp16, bf16"):
        Restorer(model, "cpu", dtype="int8")
    monkeypatch.setattr(restore, "cpu_has_native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16; running in float32"):
        assert Restorer(model, "cpu", dtype="bf16").dtype == torch.float32
    monkeypatch.setattr(restore, "cpu_has_native_bfloat16", lambda: True)
    bf16 = Restorer(model, "cpu", dtype="bf16")
    assert bf16.dtype == torch.bfloat16
    y, ref = bf16.restore_tensor(image), Restorer(model, "cpu").restore_tensor(image)
    assert y.dtype == torch.float32
    assert 0 < (y - ref).abs().mean() < 2e-3  # it does run in bfloat16, and close to float32


def test_cli_dtype_and_half(tmp_path, capsys):
    from sfhformer.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(photo("coffee")[:48, :64]).save(src)
    assert main(["restore", str(src), "-o", str(tmp_path / "o"), "--weights", "denoise", "--half",
                 "--dtype", "bf16"]) == 2
    assert "--half is --dtype fp16; it contradicts --dtype bf16" in capsys.readouterr().err
    assert main(["restore", str(src), "-o", str(tmp_path / "o"), "--weights", "denoise", "--dtype", "fp16"]) == 0
    assert "note: float16 is for CUDA devices; running in float32" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# torchrun: restore and eval split across processes
# ---------------------------------------------------------------------------------------------

def _torchrun(*args, processes=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "-m", "sfhformer", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, model):
    small = active_model("sfhformer_t", seed=5)
    return sfhformer.save(small, tmp_path_factory.mktemp("w") / "w.safetensors")


def _folder(root):
    """Seven inputs: real photographs in PNG, JPEG and 16-bit TIFF, two whose outputs collide
    (same stem), and a broken file."""
    root.mkdir()
    pics = [photo(n) for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]
    for i, p in enumerate(pics):
        Image.fromarray(p[:72, :88]).save(root / f"img{i}.png")
    Image.fromarray(pics[0][100:164, 50:130]).save(root / "img1.jpg", quality=90)  # collides with img1.png
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_restore_across_two_processes_equals_one_process(tmp_path, weights):
    from sfhformer.cli import main

    inputs = _folder(tmp_path / "in")
    assert main(["restore", str(inputs), "-o", str(tmp_path / "one"), "--weights", str(weights), "--tile", "32",
                 "--tile-overlap", "8"]) == 1
    done = _torchrun("restore", inputs, "-o", tmp_path / "two", "--weights", weights, "--tile", "32",
                     "--tile-overlap", "8", "--dtype", "fp16")  # fp16 on a CPU: fp32 and a note
    assert done.returncode != 0  # a failed input: every process exits 1
    one, two = sorted(p.name for p in (tmp_path / "one").iterdir()), sorted(p.name for p in (tmp_path / "two").iterdir())
    assert one == two == [f"img{i}.png" for i in range(5)]
    for name in one:
        a = np.asarray(Image.open(tmp_path / "one" / name))
        assert np.array_equal(a, np.asarray(Image.open(tmp_path / "two" / name))), name
    assert done.stdout.count("restored 5 image(s)") == 1 and "2 failed (2 processes)" in done.stdout
    assert done.stderr.count("broken.png") == 1  # each failure reported once, by the process that had it
    assert done.stderr.count("would overwrite that of") == 1
    assert done.stderr.count("note: float16 is for CUDA devices") == 1  # notes once, not per process


def test_eval_across_two_processes_equals_one_process(tmp_path, weights):
    from sfhformer.cli import main

    data = tmp_path / "data"
    for sub in ("input", "target"):
        (data / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(("astronaut", "chelsea", "coffee", "rocket", "camera")):
        clean = photo(name)[:64, :80]
        clean = np.repeat(clean[..., None], 3, 2) if clean.ndim == 2 else clean
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(data / "target" / f"p{i}.png")
        Image.fromarray(noisy).save(data / "input" / f"p{i}.png")
    common = ["eval", "--weights", str(weights), "--data", str(data), "--rgb"]
    assert main([*common, "--json", str(tmp_path / "one.json")]) == 0
    done = _torchrun(*common, "--json", tmp_path / "two.json")
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert one == two and [r["name"] for r in two["images"]] == [f"p{i}" for i in range(5)]
    assert done.stdout.count("5 images") == 1  # the table and summary printed once
