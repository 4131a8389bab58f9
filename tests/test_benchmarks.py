"""The benchmark scripts run end to end (tiny sizes; the NAFNet peer only where spandrel is installed, as .ci/run does)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_speed_benchmark_writes_a_row_per_case(tmp_path):
    out = tmp_path / "speed.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--presets", "sfhformer_t", "--peers",
                    "--sizes", "32", "--train-size", "32", "--repeats", "1", "--threads", "1", "--json", str(out)],
                   check=True, capture_output=True, text=True)
    rows = json.loads(out.read_text())["rows"]
    cases = {(r["variant"], r["mode"], r["allocator"]) for r in rows}
    assert cases == {("plain", "infer", "default"), ("fused", "infer", "default"), ("plain", "infer", "reuse"),
                     ("fused", "infer", "reuse"), ("plain", "train", "default"), ("checkpointed", "train", "default")}
    infer = [r for r in rows if r["mode"] == "infer"]
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    # sfhformer_t: 10.1 GMAC at 256x256, so about 1/64 of that at 32x32 (a bit more for the FFTs)
    assert all(0.15 < r["gmacs"] < 0.2 for r in infer)


def test_speed_benchmark_times_the_peers_training_step_on_the_same_batch(tmp_path):
    """--train-batch reaches every training case; NAFNet-w16, the bundled models' peer, gets a training row and a
    printed ratio against our preset's."""
    if importlib.util.find_spec("spandrel") is None:
        pytest.skip("needs spandrel (.ci/run installs it)")
    out = tmp_path / "speed.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--presets", "sfhformer_t", "--peers",
                          "nafnet_w16", "--sizes", "32", "--allocators", "default", "--train-size", "32",
                          "--train-batch", "3", "--repeats", "1", "--threads", "1", "--json", str(out)],
                         check=True, capture_output=True, text=True)
    rows = json.loads(out.read_text())["rows"]
    train = {(r["model"], r["variant"]): r for r in rows if r["mode"] == "train"}
    assert set(train) == {("sfhformer_t", "plain"), ("sfhformer_t", "checkpointed"), ("nafnet_w16", "-")}
    assert all(r["batch"] == 3 for r in train.values())
    assert 1.55e6 < train["nafnet_w16", "-"]["params"] < 1.65e6  # quality.py's NAFNet-w16 (1.60 M)
    ratio = train["sfhformer_t", "plain"]["median_s"] / train["nafnet_w16", "-"]["median_s"]
    assert f"sfhformer_t training step (3 x 32² crops): takes {ratio:.2f}x nafnet_w16's time" in run.stdout


def test_tiling_benchmark_scores_every_tiling_at_every_level(tmp_path):
    out = tmp_path / "tiling.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tiling.py"), "--tasks", "denoise", "--side", "64",
                          "--tilings", "0:0", "32:8", "--json", str(out)], check=True, capture_output=True, text=True)
    rows = json.loads(out.read_text())["rows"]
    assert {(r["level"], r["tiling"]) for r in rows} == {(level, tiling) for level in (15, 25, 50)
                                                        for tiling in (None, "whole image", "tiles 32, overlap 8")}
    for r in rows:  # the bundled denoiser gains several dB on its input at every level
        if r["tiling"] is not None:
            degraded = next(d["psnr"] for d in rows if d["level"] == r["level"] and d["tiling"] is None)
            assert r["psnr"] > degraded + 3, r
    assert "denoise  best " in run.stdout
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tiling.py"), "--tasks", "denoise", "--side", "64",
                    "--tilings", "0:0", "--weights", "denoise@1", "--threads", "1", "--json", str(out)], check=True,
                   capture_output=True, text=True)
    earlier = json.loads(out.read_text())
    assert earlier["weights"] == "denoise@1" and len(earlier["rows"]) == 6


def test_serve_load_check_loses_nothing_and_answers_only_202_or_503(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    out = tmp_path / "serve.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--clients", "12", "--seconds", "6",
                           "--size", "64", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["completed"] > 0 and result["lost"] == 0
    assert set(result["statuses"]) <= {"202", "503"} and result["server_peak_rss_mb"] > 0


def test_validation_benchmark_scores_weights_as_a_recipe_validates(tmp_path):
    """benchmarks/validation.py --recipe: each weights' PSNR on a config's validation set, tiled as
    its val section says: what picked the version 3 candidate's checkpoint, rerunnable on any weights."""
    import torch
    import yaml

    import sfhformer
    from sfhformer.training import load_config
    from sfhformer.training.loop import make_dataset, validate

    cfg = {"name": "v", "model": {"preset": "sfhformer_t"},
           "data": {"train": {"type": "synthetic", "images": "sample:camera", "degradations": []},
                    "val": {"type": "synthetic", "images": "sample:chelsea", "fixed": True, "max_side": 96,
                            "degradations": [{"type": "gaussian_noise", "sigma": [25, 25]}]}},
           "val": {"tile": 64, "tile_overlap": 16}}
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validation.py"), "denoise@1", "denoise@2",
                          "--recipe", str(path)], check=True, capture_output=True, text=True)
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["denoise@1", "denoise@2"]
    loaded = load_config(path)
    data = make_dataset(loaded.data.val, loaded.train.seed, validation=True)
    expected = validate(sfhformer.load("denoise@2").eval(), data, torch.device("cpu"), tile=64, tile_overlap=16)
    assert f"denoise@2: {expected['psnr']:.3f} dB" in lines[1]
    assert float(lines[0].split()[1]) != float(lines[1].split()[1])
    # --set changes the recipe first: here its validation noise
    change = "data.val.degradations=[{type: gaussian_noise, sigma: [50, 50]}]"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validation.py"), "denoise@2",
                          "--recipe", str(path), "--set", change], check=True, capture_output=True, text=True)
    changed = load_config(path, [change])
    data = make_dataset(changed.data.val, changed.train.seed, validation=True)
    expected = validate(sfhformer.load("denoise@2").eval(), data, torch.device("cpu"), tile=64, tile_overlap=16)
    assert run.stdout.strip() == f"denoise@2: {expected['psnr']:.3f} dB (input {expected['input_psnr']:.3f})"
    assert f"{expected['psnr']:.3f}" not in lines[1]


def test_validation_benchmark_noise_does_not_depend_on_which_photos_are_chosen():
    """benchmarks/validation.py --photos: a photograph's noise (and so its margin) is the same
    alone as beside others; it once took its seed from its place in the chosen list."""
    from sfhformer.data.debian import installed_names

    names = installed_names("val")
    if len(names) < 2:
        pytest.skip("needs Debian's validation photographs (configs/bundled/install_photos.sh)")
    last = names[-1]

    def margin(*photos):
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validation.py"), "denoise@1", "--levels", "50",
                              "--width", "128", "--photos", *photos], check=True, capture_output=True, text=True)
        return run.stdout.split(f"{last} ")[1].split()[0]

    assert margin(last) == margin(names[0], last)


def test_where_it_loses_scores_the_deblurrer_as_the_quality_table_does():
    """benchmarks/where_it_loses.py --task deblur: the blurred input, Wiener with the true kernel and
    the model, each PSNR the one the held-out table computes for the same photograph, seed and length."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality

    from sfhformer.data import HELD_OUT
    from sfhformer.restore import Restorer

    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "where_it_loses.py"), "deblur", "--task", "deblur",
                          "--photos", "chelsea", "--levels", "7", "--threads", "2"],
                         capture_output=True, text=True, timeout=300, check=True)
    rows = {line[19:59].strip(): line for line in run.stdout.splitlines() if line.startswith("chelsea")}
    assert list(rows) == ["degraded input", "Wiener (true kernel)", "deblur"], run.stdout
    clean = quality.load_photo("chelsea")
    blurred, _ = quality.degrade(clean, "deblur", 7, seed=quality.held_out_seed(list(HELD_OUT).index("chelsea")))
    expected = quality.psnr(Restorer.from_pretrained("deblur", device="cpu").restore(blurred), clean)
    assert f"{expected:6.2f} dB" in rows["deblur"], (expected, rows["deblur"])
    assert f"{quality.psnr(blurred, clean):6.2f} dB" in rows["degraded input"]
    assert "undoing 5 / 10 / 20 % of what it changed" in run.stdout and np.isfinite(expected)


def test_same_recipe_trains_both_networks_from_scratch_once_and_scores_their_ema_weights(tmp_path, monkeypatch):
    """quality.py --same-recipe: SFHformer-t and the NAFNet peer each trained through one recipe from
    scratch (skipped once finished), each row the run's EMA weights; a recipe that starts from other
    weights, or names no task, is refused."""
    if importlib.util.find_spec("spandrel") is None:  # not imported whole: its __init__ wants torchvision
        pytest.skip("the NAFNet peer is spandrel's architecture (.ci/run installs it)")
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality

    from sfhformer.training import initial_weights

    recipes = tmp_path / "configs" / "bundled"
    recipes.mkdir(parents=True)
    photo = tmp_path / "noise.png"
    Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype("uint8")).save(photo)
    recipe = (f"name: tiny\nout_dir: {tmp_path / 'runs' / 'tiny'}\nmodel: {{preset: sfhformer_t}}\n"
              f"data:\n  train: {{type: synthetic, images: ['{photo}'], degradations: [{{type: gaussian_noise}}], "
              f"crop: 32, length: 4}}\n"
              "train: {steps: 2, batch_size: 2, num_workers: 0, ema: 0.9, device: cpu}\n"
              "log: {every: 1}\ncheckpoint: {every: 2}\n")
    (recipes / "denoise_tiny.yaml").write_text(recipe)
    (recipes / "denoise_from.yaml").write_text(recipe.replace("ema: 0.9", "ema: 0.9, init_from: denoise"))
    monkeypatch.setattr(quality, "ROOT", tmp_path)
    models = quality.same_recipe("denoise_tiny", "cpu")
    assert [name.split(" (")[0] for name in models] == ["SFHformer-t", "NAFNet-w16"]
    ours, peer = models.values()
    peer_run = tmp_path / "runs" / "peer_nafnet_denoise_tiny" / "checkpoints" / "last.pt"
    for model, run in ((ours, tmp_path / "runs" / "tiny" / "checkpoints" / "last.pt"), (peer, peer_run)):
        assert torch.load(run, weights_only=True)["step"] == 2
        ema = initial_weights(run)
        assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items() if k in ema)
    stamp = peer_run.stat().st_mtime_ns
    quality.same_recipe("denoise_tiny", "cpu")  # both finished: nothing trains again
    assert peer_run.stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="starts from denoise"):
        quality.same_recipe("denoise_from", "cpu")
    with pytest.raises(SystemExit, match="no such recipe"):
        quality.recipe_task("sharpen_tiny")
