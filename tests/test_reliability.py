"""Nothing lost, nothing silently wrong (issue 15): diverged runs, resumes that change settings,
outputs that would destroy inputs, plans that would hang, inputs the API would misread, and a
fuzzed folder of broken files."""

import json
import os
import stat
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import sfhformer
from sfhformer.cli import main
from sfhformer.errors import CheckpointError, ConfigError, ImageError, ModelError, OutputError
from sfhformer.io import read_image, write_image
from sfhformer.restore import Restorer
from sfhformer.training import load_config, train

from conftest import identity_model, photo
from test_training import write_config


def _err_lines(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip() and "\r" not in line and "%|" not in line]


# -- 1. a diverged run ships nothing broken ------------------------------------------------------

def test_diverged_run_stops_with_exit_1_and_keeps_the_good_checkpoint(tmp_path, capsys):
    cfg = str(write_config(tmp_path, out_dir=str(tmp_path / "run")))
    args = ["train", cfg, "train.lr=1e3", "train.steps=10", "checkpoint.every=1", "train.ema=0", "val.every=100"]
    assert main(args) == 1
    err = _err_lines(capsys)[-1]
    assert err.startswith("sfhformer train: error: ") and "NaN or Inf" in err and "last good checkpoint" in err
    ckpt = tmp_path / "run" / "checkpoints"
    state = torch.load(ckpt / "last.pt", weights_only=True)
    assert 1 <= state["step"] < 10
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (ckpt / "best.safetensors").exists() or sfhformer.load(ckpt / "best.safetensors")
    # the weights left behind restore a real image
    write_image(tmp_path / "a.png", photo()[:48, :48])
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights",
                 str(ckpt / "last.safetensors"), "--device", "cpu"]) == 0
    assert read_image(tmp_path / "out" / "a.png").pixels.std() > 1  # not a black image


def _broken_model():
    model = identity_model()
    with torch.no_grad():
        model.encoder1[0].norm1.running_mean[0] = float("nan")
    return model


def test_save_and_load_refuse_nonfinite_weights(tmp_path):
    with pytest.raises(CheckpointError, match=r"w\.safetensors: refusing to save weights with NaN or Inf in 1 tensor"):
        sfhformer.save(_broken_model(), tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()
    from safetensors.torch import save_file
    good = sfhformer.save(identity_model(), tmp_path / "good.safetensors")
    from safetensors import safe_open
    with safe_open(str(good), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors["encoder1.0.norm1.running_var"][0] = float("nan")
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: holds NaN or Inf in 1 tensor\(s\) "
                                              r"\(encoder1\.0\.norm1\.running_var\)"):
        sfhformer.load(tmp_path / "bad.safetensors")
    assert sfhformer.load(tmp_path / "bad.safetensors", allow_nonfinite=True) is not None


def test_restorer_refuses_to_return_nonfinite_output(tmp_path, capsys):
    with pytest.raises(ModelError, match="NaN or Inf"):
        Restorer(_broken_model(), device="cpu").restore(photo()[:32, :32])
    weights = tmp_path / "w.pth"
    torch.save({"config": _broken_model().config.to_dict(), "model": _broken_model().state_dict()}, weights)
    write_image(tmp_path / "a.png", photo()[:32, :32])
    # refused at load already; forensics only with the API's allow_nonfinite
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(weights)]) == 2
    assert "holds NaN or Inf" in _err_lines(capsys)[-1]
    assert not (tmp_path / "out").exists()


# -- 2. a resumed run applies what changed, or refuses ------------------------------------------

def _lrs(out_dir):
    rows = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["lr"] for r in rows if "lr" in r}


def test_resume_applies_a_new_lr_and_step_count(tmp_path):
    path = write_config(tmp_path, out_dir=str(tmp_path / "r"))
    common = ["val.every=100", "train.ema=0"]
    train(load_config(path, common + ["train.steps=4"]))
    first = _lrs(tmp_path / "r")
    assert first[4] == pytest.approx(1e-6)  # the cosine reached its floor
    train(load_config(path, common + ["train.steps=8", "train.lr=1e-4", "train.weight_decay=0.05"]))
    lrs = _lrs(tmp_path / "r")
    assert sorted(lrs) == list(range(1, 9))
    later = [lrs[s] for s in range(5, 9)]
    assert later[0] <= 1e-4 and later == sorted(later, reverse=True) and later[-1] == pytest.approx(1e-6)
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert recorded["lr"] == 1e-4 and recorded["steps"] == 8 and recorded["weight_decay"] == 0.05
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert all(g["weight_decay"] == 0.05 for g in state["optimizer"]["param_groups"])


def test_extending_a_finished_run_keeps_decaying(tmp_path):
    path = write_config(tmp_path, out_dir=str(tmp_path / "e"))
    common = ["val.every=100", "train.ema=0"]
    train(load_config(path, common + ["train.steps=4"]))
    train(load_config(path, common + ["train.steps=7"]))
    lrs = _lrs(tmp_path / "e")
    assert max(lrs[s] for s in range(5, 8)) <= lrs[4] * (1 + 1e-9)  # no climb back up the old cosine


@pytest.mark.parametrize("change, key", [("train.batch_size=2", "train.batch_size"), ("train.seed=3", "train.seed"),
                                         ("model.num_kernels=2", "model"), ("data.train.crop=16", "data.train")])
def test_resume_refuses_a_different_experiment(tmp_path, change, key):
    path = write_config(tmp_path, out_dir=str(tmp_path / "x"))
    train(load_config(path, ["val.every=100", "train.steps=1"]))
    with pytest.raises(ConfigError, match=rf"last\.pt: cannot resume with a different {key} .*resume=false"):
        train(load_config(path, ["val.every=100", "train.steps=2", change]))


def test_steps_must_be_positive(capsys, tmp_path):
    assert main(["train", str(write_config(tmp_path)), "train.steps=0"]) == 2
    assert "train.steps: expected at least 1, got 0" in _err_lines(capsys)[-1]


# -- 3. outputs never replace inputs --------------------------------------------------------------

def test_restore_refuses_to_write_over_its_inputs(tmp_path, capsys):
    src = tmp_path / "photos"
    write_image(src / "a.png", photo()[:40, :40])
    before = (src / "a.png").read_bytes()
    weights = str(sfhformer.save(identity_model(), tmp_path / "w.safetensors"))
    (tmp_path / "link").symlink_to(src)
    for out in (src, tmp_path / "link"):
        assert main(["restore", str(src), "-o", str(out), "--weights", weights, "--overwrite", "--device", "cpu"]) == 1
        assert "is an input image; refusing to replace it" in _err_lines(capsys)[0]
        assert (src / "a.png").read_bytes() == before


# -- 4. tiling plans that would hang are refused --------------------------------------------------

def test_tiling_plans_are_validated(tmp_path, capsys):
    with pytest.raises(ConfigError, match="max_pixels must be at least 4096"):
        Restorer(identity_model(), device="cpu", tile=None, max_pixels=100)
    with pytest.raises(ConfigError, match=r"tile overlap must be in \[0, 8\], at most half the 16 px tile"):
        Restorer(identity_model(), device="cpu", tile=16, tile_overlap=12)
    with pytest.raises(ConfigError, match=r"at most half the 64 px tile that max_pixels gives"):
        Restorer(identity_model(), device="cpu", max_pixels=64 * 64, tile_overlap=40)
    with pytest.warns(UserWarning, match="tile overlap 8 px: the default 32 px is more than half the 16 px tile"):
        r = Restorer.from_pretrained("denoise", device="cpu", tile=16)
    assert r.tile_overlap == 8
    write_image(tmp_path / "a.png", photo()[:40, :40])
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights", "denoise",
                 "--tile", "16", "--device", "cpu"]) == 0
    assert "note: tile overlap 8 px" in capsys.readouterr().err
    big = Restorer(identity_model(), device="cpu", tile=16, tile_overlap=0)

    def no_tile_may_run(x):
        raise AssertionError("the plan must be refused before any tile runs")

    big._forward = no_tile_may_run
    with pytest.raises(ConfigError, match=r"a 1700x1700 image would take 11449 tiles of 16 px"):
        big.restore_tensor(torch.zeros(1, 3, 1700, 1700))


# -- 5. the API converts what is unambiguous and refuses the rest ---------------------------------

def test_api_inputs_are_taken_as_documented():
    r = Restorer(identity_model(), device="cpu")
    rgb = photo()[:32, :40]
    with pytest.raises(ImageError, match=r"input array: float32 values in \[\d+, \d+\]; expected \[0, 1\] "
                                         r"\(divide by 255\)"):
        r.restore(rgb.astype(np.float32))
    with pytest.raises(ImageError, match="input array: dtype int32 is not uint8, uint16 or float in"):
        r.restore(rgb.astype(np.int32))
    with pytest.raises(ImageError, match="NaN or Inf"):
        nan = rgb.astype(np.float32) / 255
        nan[3, 4, 1] = np.nan
        r.restore(nan)
    t = torch.from_numpy(rgb).permute(2, 0, 1)  # a uint8 tensor: 0..255, returned as uint8
    out = r.restore(t)
    assert out.dtype == torch.uint8 and torch.equal(out, t)
    with pytest.raises(ImageError, match="dtype torch.int32"):
        r.restore(t.int())
    assert r.restore(rgb.astype(np.float32) / 255).dtype == np.float32


# -- 6, 7. one line where a traceback was, and the smaller items ---------------------------------

def test_decompression_bomb_is_one_line(tmp_path, capsys, monkeypatch):
    write_image(tmp_path / "bomb.png", photo()[:100, :100])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 100x100 image is now a bomb
    assert main(["spectrum", str(tmp_path / "bomb.png"), "-o", str(tmp_path / "s.png")]) == 1
    assert "bomb.png: refused: Image size (10000 pixels) exceeds limit" in _err_lines(capsys)[-1]


def test_eval_json_is_valid_when_images_are_identical(tmp_path, capsys):
    for folder in ("pred", "gt"):
        write_image(tmp_path / folder / "a.png", photo()[:32, :32])
        write_image(tmp_path / folder / "b.png", photo()[32:64, :32])
    write_image(tmp_path / "pred" / "b.png", photo()[32:64, :32] // 2)
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "identical" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"invalid {c}"))
    assert report["images"][0]["psnr"] is None and report["summary"]["identical_images"] == ["a"]
    assert report["images"][1]["psnr"] > 0


def test_unwritable_output_says_why(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"a\.png: cannot be written \(File exists"):  # a file where a folder goes
        write_image(tmp_path / "file" / "a.png", photo()[:8, :8])

    def denied(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pathlib.Path.write_bytes", denied)
    with pytest.raises(OutputError, match=r"b\.png: cannot be written \(Permission denied\)"):
        write_image(tmp_path / "b.png", photo()[:8, :8])


def test_gray_alpha_stays_gray_alpha_and_float_tiff_round_trips(tmp_path):
    r = Restorer(identity_model(), device="cpu")
    la = np.dstack([photo()[:32, :32, 0], np.full((32, 32), 200, np.uint8)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    pic = r.restore_picture(read_image(tmp_path / "la.png"))
    write_image(tmp_path / "out.png", pic.pixels, pic.alpha)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "LA" and np.array_equal(np.array(im), la)
    rgb = (photo()[:24, :30].astype(np.float32) / 255)
    write_image(tmp_path / "f.tif", rgb)  # an RGB float32 TIFF, which Pillow cannot read
    pic = read_image(tmp_path / "f.tif")
    assert pic.pixels.dtype == np.float32 and pic.format == "TIFF"
    assert main(["restore", str(tmp_path / "f.tif"), "-o", str(tmp_path / "o"), "--weights",
                 str(sfhformer.save(identity_model(), tmp_path / "w.safetensors")), "--device", "cpu"]) == 0
    out = read_image(tmp_path / "o" / "f.tif").pixels
    assert out.dtype == np.float32 and np.abs(out - rgb).max() < 1e-6  # not quantized


def test_animated_gif_says_only_its_first_frame_is_restored(tmp_path, capsys):
    frames = [Image.fromarray(photo()[:32, :32]), Image.fromarray(photo()[32:64, :32])]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    weights = str(sfhformer.save(identity_model(), tmp_path / "w.safetensors"))
    assert main(["restore", str(tmp_path / "anim.gif"), "-o", str(tmp_path / "o"), "--weights", weights,
                 "--device", "cpu"]) == 0
    assert "anim.gif: 2 frames or pages: only the first is restored" in capsys.readouterr().err


def test_files_get_the_umask_mode_and_temporary_leftovers_are_ignored(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        path = sfhformer.save(identity_model(), tmp_path / "w.safetensors")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)
    src = tmp_path / "in"
    write_image(src / "a.png", photo()[:32, :32])
    (src / ".b.png.tmp-4242.png").write_bytes(b"")  # what kill -9 during a write leaves
    assert main(["restore", str(src), "-o", str(tmp_path / "o"), "--weights", str(path), "--device", "cpu"]) == 0
    assert "empty file" not in capsys.readouterr().err


def test_sample_photographs_name_the_package_to_install(monkeypatch):
    from sfhformer.data import samples
    monkeypatch.setattr(samples, "_data_dir", lambda package: None)
    with pytest.raises(sfhformer.errors.NotFoundError, match=r"pip install scikit-image"):
        samples.photograph_path("astronaut")


# -- the fuzz: a folder of broken files ----------------------------------------------------------

def _png_chunk_ends(data):
    pos, ends = 8, []
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        pos += 12 + length
        ends.append(pos)
    return ends


def _jpeg_marker_offsets(data):
    return [i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] not in (0x00, 0xFF)
            and not 0xD0 <= data[i + 1] <= 0xD7]


def _fuzz_folder(folder, rng):
    good = {}
    for i, (name, ext) in enumerate([("good_png", ".png"), ("good_jpg", ".jpg"), ("good_gray", ".png")]):
        img = photo()[40 * i:40 * i + 40, :48]
        write_image(folder / f"{name}{ext}", img[..., 0] if "gray" in name else img)
        good[name] = folder / f"{name}{ext}"
    png, jpg = good["good_png"].read_bytes(), good["good_jpg"].read_bytes()
    bad = []

    def add(name, data):
        (folder / name).write_bytes(data)
        bad.append(name)

    for i, end in enumerate(_png_chunk_ends(png)[:-1]):
        add(f"png_chunk_{i}.png", png[:end])
    for i, end in enumerate(range(9, len(png) - 1, max(1, len(png) // 60))):
        add(f"png_cut_{i}.png", png[:end])
    for i, end in enumerate(_jpeg_marker_offsets(jpg)[:60]):
        add(f"jpg_marker_{i}.jpg", jpg[:end])
    for i in range(90):
        add(f"random_{i}{['.png', '.jpg', '.tif', '.webp', '.bmp', '.gif'][i % 6]}",
            rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8).tobytes())
    headers = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"GIF89a", b"BM", b"RIFF"]
    for i, head in enumerate(headers):
        add(f"header_{i}.png", head + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
        add(f"header_body_{i}.jpg", head + jpg[len(head):])
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    add("huge_header.png", png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:])
    add("empty.png", b"")
    return good, bad


def test_fuzzed_folder_restore_and_eval_never_trace_back(tmp_path, capsys):
    rng = np.random.default_rng(0)
    src = tmp_path / "fuzz"
    src.mkdir()
    good, bad = _fuzz_folder(src, rng)
    assert len(bad) > 150
    weights = str(sfhformer.save(identity_model(), tmp_path / "w.safetensors"))
    out = tmp_path / "out"
    code = main(["restore", str(src), "-o", str(out), "--weights", weights, "--device", "cpu"])
    lines = _err_lines(capsys)
    assert code == 1
    restored = {p.stem for p in out.iterdir()}
    named = {name for name in bad if any(f"/{name}:" in line for line in lines)}
    assert set(good) <= restored
    for name in bad:  # every file restored or named, each named once
        stem = name.rsplit(".", 1)[0]
        assert (stem in restored) != (name in named), name
    assert all(sum(f"/{name}:" in line for line in lines) <= 1 for name in bad)
    # eval over the same files as predictions, against clean copies
    gt = tmp_path / "gt"
    for path in src.iterdir():
        write_image(gt / f"{path.stem}.png", photo()[:40, :48])
    code = main(["eval", "--pred", str(src), "--gt", str(gt), "--rgb"])
    lines = _err_lines(capsys)
    assert code == 1
    assert all(line.startswith("error: ") for line in lines)
    assert not any(f"/{name}:" in "\n".join(lines) for name in (p.name for p in good.values()))


def test_an_error_in_a_dataloader_worker_is_one_line(tmp_path, capsys):
    root = tmp_path / "pairs"
    for i in range(4):
        for folder in ("input", "target"):
            write_image(root / folder / f"{i}.png", photo()[:48, 48 * i:48 * i + 48])
    (root / "input" / "2.png").write_bytes((root / "input" / "1.png").read_bytes()[:200])  # truncated
    cfg = write_config(tmp_path, out_dir=str(tmp_path / "run"), data={"train": {"root": str(root), "crop": 32}})
    assert main(["train", str(cfg), "train.num_workers=1", "train.batch_size=2", "val.every=100"]) == 1
    err = _err_lines(capsys)[-1]
    assert err.startswith("sfhformer train: error: ") and "2.png: truncated or corrupt image" in err
    assert "Caught" not in err and "worker" not in err


def test_a_failure_on_the_main_process_stops_every_process(tmp_path):
    """Validation runs on rank 0 alone; when it fails (a validation image too small for SSIM)
    rank 1 must stop too instead of waiting at the next collective."""
    import subprocess
    import sys
    cfg = write_config(tmp_path, out_dir=str(tmp_path / "ddp"), train={"steps": 4, "batch_size": 4, "num_workers": 0},
                       val={"every": 2}, data={**json.loads(json.dumps(__import__("test_training").TINY["data"]))})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "sfhformer", "train", str(cfg), "data.val.max_side=8"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode != 0
    assert "validation image" in done.stderr and "at least 11x11" in done.stderr
    assert "the main process failed" in done.stderr  # rank 1's own line: it did not hang
