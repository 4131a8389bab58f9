"""Reproducing the paper (issue 16): the authors' recipes, their scoring, the datasets' layouts.

The tables below were read from the authors' repository, deng-ai-lab/SFHformer at 1f79941: each
row names the script (and JSON settings) a recipe follows. They are written here independently of
configs/paper/, so that a recipe that drifts from its script fails."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sfhformer.cli import main
from sfhformer.data import LAYOUTS, PairedImageDataset, split_names
from sfhformer.io import write_image
from sfhformer.metrics import AUTHORS, psnr, ssim
from sfhformer.training import load_config

from conftest import photo

PAPER = Path(__file__).resolve().parent.parent / "configs" / "paper"

# recipe: (script, model, batch, images per GPU (DataParallel's BatchNorm), crop, weight decay, min lr,
#          schedule, epochs, steps per epoch (None: the data's), fft weight, lr, seed)
AUTHORS_VALUES = {
    "haze_its": ("train_for_haze_its.py + configs/haze/SFHformer_s.json", "sfhformer_s", 24, 6, 256, 0.01, 1e-6,
                 "cosine", 1001, None, 0.1, 1e-3, 8001),
    "rain200h": ("train_for_rain_rain100H.py + configs/rain/SFHformer_m.json", "sfhformer_m", 12, 3, 256, 0.01, 1e-6,
                 "cosine", 1001, None, 0.1, 1e-3, 8001),
    "rain200l": ("train_for_rain_rain100L.py (Light data: its evident intent)", "sfhformer_m", 12, 3, 256, 0.01, 1e-6,
                 "cosine", 1001, None, 0.1, 1e-3, 801),
    "raindrop": ("train_for_raindrop.py + configs/raindrop/SFHformer_m.json", "sfhformer_m", 12, 3, 256, 0.01, 1e-6,
                 "cosine", 1001, None, 0.1, 1e-3, 8001),
    "underwater_lsui": ("train_for_underwater_lsui.py + configs/underwater/SFHformer_s.json", "sfhformer_s", 24, 6,
                        256, 0.01, 1e-5, "cosine", 1001, 500, 0.1, 1e-3, 8001),
    "lolv1": ("train_for_low_lol.py + configs/lowlight/SFHformer_t.json", "sfhformer_t", 32, 16, 128, 0.01, 1e-5,
              "cosine", 1001, None, 0.1, 1e-3, 8001),
    "lolv2_real": ("lowlight/train_for_lolv2r.py + sfhformer_lol_m.json (no scheduler)", "lol_m", 12, 12, 256, 0.01,
                   None, "constant", 10001, 20, 0.1, 1e-3, 8001),
    "lolv2_synthetic": ("lowlight/train_for_lolv2s.py + sfhformer_lol_s.json (no scheduler)", "lol_s", 12, 12, 128,
                        0.01, None, "constant", 10001, 20, 0.1, 1e-3, 8001),
    "gopro": ("train_for_motion_blur_gopro.py + configs/motion_blur/SFHformer_l.json", "sfhformer_l", 8, 1, 256,
              1e-3, 1e-6, "cosine", 1001, 1000, 0.1, 1e-3, 8001),
    "gopro_released": ("motion_blur/train_motion_blur.py + sfhformer_motion_blur.json", "motion_blur", 40, 10, 128,
                       1e-3, 1e-7, "cosine", 1001, 800, 0.5, 8e-4, 8001),
}
# their validation: Y channel or RGB, always float values and a centre crop to a multiple of 8
AUTHORS_VALIDATION_Y = {"rain200h": True, "rain200l": True, "raindrop": True}


def test_every_script_has_a_recipe_and_nothing_else_is_there():
    assert sorted(p.stem for p in PAPER.glob("*.yaml")) == sorted(AUTHORS_VALUES)


@pytest.mark.parametrize("recipe", sorted(AUTHORS_VALUES))
def test_recipe_resolves_to_the_authors_values(recipe):
    script, preset, batch, per_gpu, crop, wd, min_lr, schedule, epochs, per_epoch, fft, lr, seed = \
        AUTHORS_VALUES[recipe]
    cfg = load_config(PAPER / f"{recipe}.yaml")
    tc = cfg.train
    header = (PAPER / f"{recipe}.yaml").read_text().split("\nname:")[0]
    assert script.split(" ")[0].split("/")[-1] in header  # the header names the script it follows
    assert cfg.model["preset"] == preset and cfg.model_config().num_kernels == 1
    assert tc.batch_size == batch and tc.batch_size // tc.bn_chunks == per_gpu
    assert cfg.data.train.crop == crop and cfg.data.train.augment is True
    assert (tc.weight_decay, tc.lr, tc.fft_loss_weight, tc.seed, tc.betas) == (wd, lr, fft, seed, (0.9, 0.999))
    assert tc.schedule == schedule and tc.schedule_every == "epoch" and tc.epochs == epochs
    assert tc.steps_per_epoch == per_epoch
    if schedule == "cosine":  # T_max = their JSON's 1000 epochs, run for 1000 + 1
        assert tc.min_lr == min_lr and tc.schedule_length == epochs - 1
    assert (tc.ema, tc.amp, tc.grad_clip) == (0.0, "none", 0.0)  # no EMA, fp32, no clipping
    assert cfg.val.every_epochs == 1 and cfg.checkpoint.every_epochs == 1
    assert cfg.val.protocol == "authors" and cfg.val.y_channel == AUTHORS_VALIDATION_Y.get(recipe, False)
    assert cfg.data.val.center_multiple == 8


def test_dry_run_prints_every_key_and_touches_no_data(capsys):
    assert main(["train", str(PAPER / "lolv2_real.yaml"), "--dry-run", "train.batch_size=6"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["train"]["batch_size"] == 6 and resolved["train"]["schedule"] == "constant"
    assert resolved["data"]["train"]["root"] == "/data/LOLv2/Real_captured/Train"  # not there: never read
    assert {"name", "out_dir", "model", "data", "train", "val", "log", "checkpoint", "resume"} <= set(resolved)


# -- a 2-step run of each recipe on a tiny tree in its layout -------------------------------------

# degraded and clean names of a layout's pairs, as the datasets name them
PAIR_NAMES = {
    "rain200": ("rain/X2/norain-{n}x2.png", "norain/norain-{n}.png"),
    "raindrop": ("data/{k}_rain.png", "gt/{k}_clean.png"),
    "lol_v1": ("low/{n}.png", "high/{n}.png"),
    "lol_v2_real": ("Low/low{n:05d}.png", "Normal/normal{n:05d}.png"),
    "lol_v2_synthetic": ("Low/r{k:04d}.png", "Normal/r{k:04d}.png"),
    "gopro": ("input_crops/GOPR0372_07_00_{k:06d}.png", "target_crops/GOPR0372_07_00_{k:06d}.png"),
}


def _tree(root: Path, layout: str, split: str = "train") -> None:
    """A few pairs under the real names of the dataset the layout describes."""
    img = photo("coffee")

    def pair(lq: str, gt: str, k: int, size=(48, 48)) -> None:
        h, w = size
        write_image(root / lq, img[40 * k:40 * k + h, 50 * k:50 * k + w])
        write_image(root / gt, img[40 * k:40 * k + h, 50 * k:50 * k + w])

    if layout == "its":
        for k in range(4):
            write_image(root / "clear" / f"{k + 1}.png", img[40 * k:40 * k + 48, :48])
            write_image(root / "hazy" / f"{k + 1}_1_0.9{k}.png", img[40 * k:40 * k + 48, :48])
    elif layout == "sots_indoor":
        for k in range(2):
            write_image(root / "tgt" / f"{1400 + k}.png", img[40 * k:40 * k + 52, :52])
            write_image(root / "hazy" / f"{1400 + k}_1.png", img[40 * k:40 * k + 50, :50])
    elif layout == "lsui":
        for k, name in enumerate(sorted(split_names(f"lsui_{split}"))[:4]):
            pair(f"input/{name}", f"GT/{name}", k)
    elif layout in PAIR_NAMES:  # k counts from 0, n from 1
        degraded, clean = PAIR_NAMES[layout]
        for k in range(4):
            size = (24, 40) if layout == "rain200" and k == 0 else (48, 48)  # one below the crop: resized
            pair(degraded.format(k=k, n=k + 1), clean.format(k=k, n=k + 1), k, size)
    else:  # pragma: no cover
        raise AssertionError(layout)


@pytest.mark.parametrize("recipe", sorted(AUTHORS_VALUES))
def test_two_steps_of_each_recipe_on_a_tiny_tree(recipe, tmp_path):
    cfg = load_config(PAPER / f"{recipe}.yaml")
    train_root, val_root = tmp_path / "train", tmp_path / "val"
    _tree(train_root, cfg.data.train.layout, "train")
    _tree(val_root, cfg.data.val.layout, "test")
    chunks = 2 if cfg.train.bn_chunks > 1 else 1  # keep the DataParallel emulation in play
    cfg = load_config(PAPER / f"{recipe}.yaml", [
        f"out_dir={tmp_path / 'run'}", f"data.train.root={train_root}", f"data.val.root={val_root}",
        "data.train.crop=32", "train.batch_size=2", f"train.bn_chunks={chunks}", "train.epochs=1",
        "train.steps_per_epoch=2", "train.num_workers=0", "train.device=cpu", "log.every=1"])
    from sfhformer.training import train
    summary = train(cfg)
    assert summary["step"] == 2 and math.isfinite(summary["loss"])
    run = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run["train"]["steps"] == 2 and run["val"]["every"] == 2  # epochs resolved to steps
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "val_psnr" in r] == [2]


# -- the authors' scoring ----------------------------------------------------------------------

def _float_pair(h, w, seed=0, name="coffee"):
    rng = np.random.default_rng(seed)
    clean = photo(name)[:h, :w].astype(np.float64) / 255
    return np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1), clean


def _center8(a):
    h, w = a.shape[:2]
    return a[(h % 8) // 2:(h % 8) // 2 + h - h % 8, (w % 8) // 2:(w % 8) // 2 + w - w % 8]


def _sk_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                 channel_axis=-1)


def test_authors_rgb_scoring_is_float_and_centre_cropped():
    pred, clean = _float_pair(397, 603)
    p = AUTHORS["lowlight"]
    a, b = _center8(pred), _center8(clean)
    assert a.shape == (392, 600, 3)
    assert psnr(pred, clean, quantize=False, multiple=8) == pytest.approx(
        peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-9)
    assert ssim(pred, clean, quantize=False, multiple=8) == pytest.approx(_sk_ssim(a, b), abs=1e-6)
    assert not p.quantize and p.multiple == 8 and not p.y_channel and not p.pool_ssim
    # rounding to uint8 first (BasicSR) gives another number
    assert abs(psnr(pred, clean, multiple=8) - psnr(pred, clean, quantize=False, multiple=8)) > 1e-3


def test_authors_rain_scoring_is_float_y():
    pred, clean = _float_pair(64, 80)
    y = lambda x: x @ np.array([65.481, 128.553, 24.966]) / 255 + 16 / 255  # their calculate_psnr_torch
    assert AUTHORS["rain"].y_channel and AUTHORS["raindrop"].y_channel
    assert psnr(pred, clean, y_channel=True, quantize=False) == pytest.approx(
        peak_signal_noise_ratio(y(clean), y(pred), data_range=1.0), abs=1e-9)
    assert ssim(pred, clean, y_channel=True, quantize=False) == pytest.approx(
        structural_similarity(y(pred), y(clean), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                              data_range=1.0), abs=1e-6)


def test_authors_dehazing_ssim_is_on_images_pooled_to_a_short_side_near_256():
    pred, clean = _float_pair(464, 504, name="astronaut")  # multiples of 8, as after their crop
    r = max(1, round(464 / 256))  # 2
    pool = lambda x: x.reshape(464 // r, r, 504 // r, r, 3).mean(axis=(1, 3))
    assert AUTHORS["haze"].pool_ssim
    assert ssim(pred, clean, quantize=False, multiple=8, pool=True) == pytest.approx(
        _sk_ssim(pool(pred), pool(clean)), abs=1e-6)
    assert ssim(pred, clean, quantize=False, pool=True) != pytest.approx(ssim(pred, clean, quantize=False), abs=1e-3)


def test_sliding_window_inference_is_the_authors_loop():
    from sfhformer.restore import forward_sliding
    x = torch.rand(1, 3, 100, 150)
    fn = lambda t: (t * 0.5 + t.shape[-1] / 1000).clamp(0, 1)  # depends on the window's width
    out, count = torch.zeros_like(x), torch.zeros(1, 1, 100, 150)
    for i in range(100 // 32):  # their motion_blur/test_motion_blur.py, l.48-60
        for j in range(150 // 32):
            out[:, :, i * 32:i * 32 + 128, j * 32:j * 32 + 128] += fn(x[:, :, i * 32:i * 32 + 128, j * 32:j * 32 + 128])
            count[:, :, i * 32:i * 32 + 128, j * 32:j * 32 + 128] += 1
    assert torch.allclose(forward_sliding(fn, x, 128, 32), out / count)


def test_eval_authors_protocol_on_float_tiff_predictions_is_not_quantized(tmp_path, capsys):
    pred, clean = _float_pair(96, 120)
    write_image(tmp_path / "pred" / "a.tif", pred.astype(np.float32))
    write_image(tmp_path / "gt" / "a.png", np.rint(clean * 255).astype(np.uint8))
    gt8 = np.rint(clean * 255) / 255
    for protocol, expected in [("authors", peak_signal_noise_ratio(gt8, pred.astype(np.float32).astype(np.float64),
                                                                    data_range=1.0)),
                               ("basicsr", peak_signal_noise_ratio(np.rint(gt8 * 255), np.rint(pred * 255),
                                                                   data_range=255))]:
        assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--protocol", protocol,
                     "--json", str(tmp_path / f"{protocol}.json")]) == 0
        got = json.loads((tmp_path / f"{protocol}.json").read_text())["images"][0]["psnr"]
        assert got == pytest.approx(expected, abs=1e-6), protocol
    capsys.readouterr()


def test_eval_authors_protocol_with_a_model_crops_first_and_uses_windows_for_motion_blur(tmp_path, monkeypatch,
                                                                                         capsys):
    import sfhformer
    import sfhformer.restore as restore
    from conftest import identity_model
    weights = str(sfhformer.save(identity_model(), tmp_path / "w.safetensors"))
    _tree(tmp_path / "gopro", "gopro")
    shapes, windows = [], []
    original = restore.forward_sliding
    monkeypatch.setattr(restore, "forward_sliding", lambda *a: windows.append(a[2:]) or original(*a))
    monkeypatch.setattr(restore.Restorer, "_forward", lambda self, x: shapes.append(tuple(x.shape[-2:])) or x)
    assert main(["eval", "--weights", weights, "--data", str(tmp_path / "gopro"), "--layout", "gopro",
                 "--protocol", "authors", "--device", "cpu"]) == 0
    assert windows and set(windows) == {(128, 32)}
    assert "the authors' scoring for motion_blur" in capsys.readouterr().out
    _tree(tmp_path / "lol", "lol_v1")
    write_image(tmp_path / "lol" / "low" / "odd.png", photo()[:45, :53])
    write_image(tmp_path / "lol" / "high" / "odd.png", photo()[:45, :53])
    shapes.clear()
    assert main(["eval", "--weights", weights, "--data", str(tmp_path / "lol"), "--layout", "lol_v1",
                 "--protocol", "authors", "--device", "cpu"]) == 0
    assert (40, 48) in shapes  # 45x53 cropped to a multiple of 8 before the network, whole
    assert main(["eval", "--weights", weights, "--data", str(tmp_path / "lol"), "--layout", "lol_v1",
                 "--protocol", "authors", "--y-channel"]) == 2
    capsys.readouterr()


# -- layouts: each naming rule on a tree with the real names ---------------------------------------

LAYOUT_TREES = {
    "did": [("input/1.png", "target/1.png"), ("input/1200.png", "target/1200.png")],
    "ddn": [("rainy_image/901_1.jpg", "ground_truth/901.jpg"), ("rainy_image/901_14.jpg", "ground_truth/901.jpg")],
    "spa": [("rain/000.png", "gt/000gt.png"), ("rain/999.png", "gt/999gt.png")],
    "raindrop": [("data/0_rain.png", "gt/0_clean.png"), ("data/248_rain.jpg", "gt/248_clean.jpg")],
    "srrs": [("Snow/beautiful_1.png", "Gt/beautiful_1.jpg")],
    "csd": [("Snow/1.tif", "Gt/1.tif")],
    "snow100k": [("synthetic/beautiful_smile_00003.jpg", "gt/beautiful_smile_00003.jpg")],
    "o_haze": [("hazy/01_outdoor_hazy.jpg", "GT/01_outdoor_GT.jpg")],
    "nh_haze": [("01_hazy.png", "01_GT.png"), ("55_hazy.png", "55_GT.png")],
    "dense_haze": [("hazy/01_hazy.png", "GT/01_GT.png")],
    "sots_outdoor": [("hazy/0001_0.8_0.2.jpg", "gt/0001.png")],
    "ots": [("hazy/0005_0.8_0.04.jpg", "clear/0005.jpg")],
    "hide": [("test/test-close-ups/1fromGOPR0950.png", "GT/1fromGOPR0950.png"),
             ("test/test-long-shot/10fromGOPR1077.png", "GT/10fromGOPR1077.png")],
    "realblur": [("scene230/blur/blur_1.png", "scene230/gt/gt_1.png"), ("scene231/blur/blur_7.png", "scene231/gt/gt_7.png")],
    "dpdd": [("test_c/source/1P0A0917.png", "test_c/target/1P0A0916.png"),
             ("test_c/source/1P0A1001.png", "test_c/target/1P0A1000.png")],
    "fivek": [("input/JPG/480p/a0001.jpg", "expertC/JPG/480p/a0001.jpg")],
    "lsui": [("input/983.jpg", "GT/983.jpg")],
    "uieb": [("raw-890/908_img_.png", "reference-890/908_img_.png")],
    "sidd": [("Data/0001_001_S6_00100_00060_3200_L/0001_NOISY_SRGB_010.PNG",
              "Data/0001_001_S6_00100_00060_3200_L/0001_GT_SRGB_010.PNG")],
    "lol_v2_real": [("Low/low00001.png", "Normal/normal00001.png")],
}


@pytest.mark.parametrize("layout", sorted(LAYOUT_TREES))
def test_layout_pairs_the_real_names(layout, tmp_path):
    img = photo("coffee")[:24, :24]
    for lq, gt in LAYOUT_TREES[layout]:
        write_image(tmp_path / lq, img)
        write_image(tmp_path / gt, img)
    pairs = PairedImageDataset(tmp_path, layout=layout).pairs
    got = sorted((str(a.relative_to(tmp_path)), str(b.relative_to(tmp_path))) for a, b in pairs)
    assert got == sorted(LAYOUT_TREES[layout])
    assert LAYOUTS[layout].task in AUTHORS


def test_did_original_splits_each_file_into_rainy_and_clean(tmp_path):
    rainy, clean = photo("coffee")[:32, :40], photo("chelsea")[:32, :40]
    write_image(tmp_path / "0.jpg", np.concatenate([rainy, clean], axis=1))
    sample = PairedImageDataset(tmp_path, layout="did_original")[0]
    assert sample["lq"].shape == sample["gt"].shape == (3, 32, 40)
    assert abs(sample["gt"].mean().item() - clean.mean() / 255) < 0.02  # JPEG: near, not exact


def test_shipped_splits_are_the_authors_lists():
    assert len(split_names("lsui_train")) == 3500 and len(split_names("lsui_test")) == 400
    assert len(split_names("uieb_train")) == 800 and len(split_names("uieb_test")) == 90
    assert not split_names("lsui_train") & split_names("lsui_test")


# -- the model zoo -------------------------------------------------------------------------------

def test_models_lists_every_release_with_a_command_that_parses(capsys):
    import shlex

    from sfhformer.cli import build_parser
    from sfhformer.models import PRESETS
    from sfhformer.zoo import MODELS, PAPER_SCORES
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    released = [m for m in MODELS if m.preset != "bundled"]
    assert {m.dataset for m in released} == {"SOTS-indoor", "SOTS-outdoor", "LOL-v2-real", "LOL-v2-synthetic", "GoPro"}
    for m in released:
        assert m.weights in out and m.preset in PRESETS and m.layout in LAYOUTS
        assert PAPER_SCORES[m.dataset] == m.paper
        args = build_parser().parse_args(shlex.split(m.eval_command("/data/x"))[1:])
        assert (args.protocol, args.layout, args.preset) == ("authors", m.layout, m.preset)
    assert len(PAPER_SCORES) == 27 and PAPER_SCORES["LSUI"] == (30.18, 0.9449)
    assert main(["models", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["models"]) == len(MODELS)


@pytest.mark.parametrize("task", sorted(AUTHORS))
def test_eval_authors_protocol_per_task_against_scikit_image(task, tmp_path, capsys):
    """Folders scored with --task T match scikit-image on the arrays T's scripts score: float,
    centre-cropped to a multiple of 8, Y for rain/raindrop, pooled for haze."""
    pool = AUTHORS[task].pool_ssim
    pred, clean = _float_pair(468, 509, name="astronaut") if pool else _float_pair(300, 451, name="chelsea")
    write_image(tmp_path / "pred" / "a.png", np.rint(pred * 65535).astype(np.uint16))  # 16 bits: kept
    write_image(tmp_path / "gt" / "a.png", np.rint(clean * 255).astype(np.uint8))
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--protocol", "authors",
                 "--task", task, "--json", str(tmp_path / "r.json")]) == 0
    row = json.loads((tmp_path / "r.json").read_text())["images"][0]
    a, b = _center8(np.rint(pred * 65535) / 65535), _center8(np.rint(clean * 255) / 255)
    if AUTHORS[task].y_channel:
        y = lambda x: x @ np.array([65.481, 128.553, 24.966]) / 255 + 16 / 255
        a, b = y(a)[..., None], y(b)[..., None]
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-6)
    if pool:  # 464x504 after the crop: r = round(464 / 256) = 2
        a, b = (x.reshape(232, 2, 252, 2, -1).mean(axis=(1, 3)) for x in (a, b))
    assert row["ssim"] == pytest.approx(_sk_ssim(a, b), abs=1e-6)
    capsys.readouterr()
