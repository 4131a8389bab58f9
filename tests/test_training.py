"""Training: config, sampler, loss, resume equality, 2-process DDP (gloo) against 1 process, NaN stop."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import sfhformer
from sfhformer.errors import ConfigError, NotFoundError
from sfhformer.training import (EpochBatchSampler, GlobalBatchNorm2d, TrainingError, load_config, restoration_loss,
                                train)

TINY = {
    "name": "tiny",
    "model": {"preset": "sfhformer_t", "widths": [8, 16, 32], "up_widths": [16, 8]},
    "data": {
        "train": {"type": "synthetic", "images": ["sample:astronaut", "sample:camera"],
                  "degradations": [{"type": "gaussian_noise", "sigma": [15, 50]}], "crop": 32, "length": 32},
        "val": {"type": "synthetic", "images": "sample:chelsea", "fixed": True, "max_side": 64,
                "degradations": [{"type": "gaussian_noise", "sigma": [25, 25]}]},
    },
    "train": {"steps": 6, "batch_size": 4, "num_workers": 0, "ema": 0.9},
    "val": {"every": 3},
    "log": {"every": 1},
    "checkpoint": {"every": 2},
}


def write_config(tmp_path, **sections):
    cfg = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def final_state(out_dir):
    return torch.load(Path(out_dir) / "checkpoints" / "last.pt", weights_only=True)


def losses(out_dir):
    rows = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


# -- pieces -----------------------------------------------------------------------------------

def test_config_defaults_overrides_and_errors(tmp_path):
    path = write_config(tmp_path)
    cfg = load_config(path, ["train.lr=5e-4", "model.num_kernels=4", "val.y_channel=true"])
    assert cfg.train.lr == 5e-4 and cfg.model["num_kernels"] == 4 and cfg.val.y_channel is True
    assert cfg.train.weight_decay == 1e-3 and cfg.train.min_lr == 1e-6
    assert cfg.out_dir == str(Path("runs") / "tiny")
    with pytest.raises(ConfigError, match="unknown config key 'train.lrr'"):
        load_config(path, ["train.lrr=1"])
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(NotFoundError, match="no such config file"):
        load_config(tmp_path / "none.yaml")


def test_validation_in_tiles_scores_what_the_restorer_returns(tmp_path):
    """val.tile: validation restores as a bundled model ships (tiles blended over the overlap),
    not whole images in one pass; the two differ for a model trained on small crops."""
    from sfhformer.data import SyntheticDataset
    from sfhformer.data.samples import photograph_path
    from sfhformer.metrics import score
    from sfhformer.restore import Restorer
    from sfhformer.training.loop import validate

    torch.manual_seed(0)
    model = sfhformer.create_model("sfhformer_t", widths=[8, 16, 32], up_widths=[16, 8]).eval()
    with torch.no_grad():  # zero-initialised residual scales: give the blocks some effect
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.fill_(0.5)
    data = SyntheticDataset([photograph_path("chelsea")],
                            [{"type": "gaussian_noise", "sigma": [25, 25]}], fixed=True, max_side=96)
    sample = data[0]
    restored = Restorer(model, device="cpu", tile=48, tile_overlap=16).restore_tensor(sample["lq"][None])
    tiled = validate(model, data, torch.device("cpu"), tile=48, tile_overlap=16)
    whole = validate(model, data, torch.device("cpu"))
    assert tiled["psnr"] == pytest.approx(score(restored, sample["gt"][None])[0], abs=1e-9)
    # the previews hold (input, restored, clean) side by side: the restored parts differ
    assert (tiled["previews"][0] - whole["previews"][0]).abs().max() > 0.01
    cfg = load_config(write_config(tmp_path), ["val.tile=64", "val.tile_overlap=16"])
    assert (cfg.val.tile, cfg.val.tile_overlap) == (64, 16)
    with pytest.raises(ConfigError, match="val.tile_overlap must be smaller than val.tile"):
        load_config(write_config(tmp_path), ["val.tile=32", "val.tile_overlap=32"])


def test_sampler_splits_each_global_batch_across_processes():
    single = iter(EpochBatchSampler(10, 4, seed=1))
    ranks = [iter(EpochBatchSampler(10, 4, seed=1, rank=r, world=2)) for r in range(2)]
    for _ in range(7):  # crosses epochs (2 batches per epoch)
        assert next(single) == next(ranks[0]) + next(ranks[1])
    resumed = iter(EpochBatchSampler(10, 4, seed=1, start_step=5))
    fresh = iter(EpochBatchSampler(10, 4, seed=1))
    for _ in range(5):
        next(fresh)
    assert next(resumed) == next(fresh)
    with pytest.raises(ValueError, match="divisible"):
        EpochBatchSampler(10, 3, world=2)


def test_loss_is_l1_plus_a_tenth_of_fft_l1():
    p, t = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    fp, ft = torch.fft.fft2(p), torch.fft.fft2(t)
    fft_l1 = torch.cat([(fp.real - ft.real).abs().flatten(), (fp.imag - ft.imag).abs().flatten()]).mean()
    expected = (p - t).abs().mean() + 0.1 * fft_l1
    assert torch.allclose(restoration_loss(p, t), expected)


def test_psnr_loss_is_minus_the_mean_psnr_of_each_image():
    t = torch.rand(2, 3, 16, 16)
    p = t + torch.stack([torch.full_like(t[0], 0.1), torch.full_like(t[0], 0.01)])  # 20 dB and 40 dB
    assert float(restoration_loss(p, t, 0, "psnr")) == pytest.approx(-(20 + 40) / 2, abs=1e-3)
    # not the PSNR of the batch as one image (that would be about -23 dB: the bad image dominates)
    assert float(restoration_loss(p, t, 0, "psnr")) != pytest.approx(10 * math.log10(float((p - t).pow(2).mean())), abs=1)
    fft_term = restoration_loss(p, t, 0.1) - restoration_loss(p, t, 0)
    assert torch.allclose(restoration_loss(p, t, 0.1, "psnr") - restoration_loss(p, t, 0, "psnr"), fft_term, atol=1e-5)


def test_global_batchnorm_is_batchnorm_in_one_process():
    bn, gbn = torch.nn.BatchNorm2d(5), GlobalBatchNorm2d(5)
    x = torch.randn(4, 5, 6, 7)
    assert torch.allclose(bn(x), gbn(x), atol=1e-6)
    assert torch.allclose(bn.running_var, gbn.running_var)


# -- whole runs ---------------------------------------------------------------------------------

def test_end_to_end_writes_checkpoints_logs_and_usable_weights(tmp_path):
    cfg = load_config(write_config(tmp_path, out_dir=str(tmp_path / "run")))
    summary = train(cfg)
    ckpt = tmp_path / "run" / "checkpoints"
    assert summary["step"] == 6 and {p.name for p in ckpt.iterdir()} == {
        "last.pt", "last.safetensors", "best.pt", "best.safetensors"}
    assert final_state(tmp_path / "run")["step"] == 6
    vals = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if "val_psnr" in x]
    assert [v["step"] for v in vals] == [3, 6]
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    model = sfhformer.load(ckpt / "last.safetensors")  # EMA weights, usable by restore
    assert model.config.widths == (8, 16, 32)
    assert sfhformer.load(ckpt / "last.pt").config == model.config


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = load_config(write_config(tmp_path, out_dir=str(tmp_path / "a")))
    train(straight)
    interrupted = load_config(write_config(tmp_path, out_dir=str(tmp_path / "b")), ["train.stop_at_step=3"])
    assert train(interrupted)["step"] == 3
    assert final_state(tmp_path / "b")["step"] == 3
    train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "b"))))  # resume: auto
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert b["step"] == 6
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_run_killed_mid_way_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a real training process after its step-2 checkpoint, resume, compare."""
    steps = 20  # the kill lands after step 3 is logged, well before the end
    straight = load_config(write_config(tmp_path, out_dir=str(tmp_path / "a")),
                           ["checkpoint.every=1", f"train.steps={steps}", "val.every=100"])
    train(straight)
    cfg_path = write_config(tmp_path, out_dir=str(tmp_path / "k"), checkpoint={"every": 1},
                            train={**TINY["train"], "steps": steps})
    proc = subprocess.Popen([sys.executable, "-m", "sfhformer", "train", str(cfg_path), "val.every=100"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "k" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(losses(tmp_path / "k")) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = final_state(tmp_path / "k")["step"]
    assert 1 <= killed_at < steps
    subprocess.run([sys.executable, "-m", "sfhformer", "train", str(cfg_path), "val.every=100"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a, k = final_state(tmp_path / "a"), final_state(tmp_path / "k")
    assert k["step"] == steps
    assert all(torch.equal(a["model"][n], k["model"][n]) for n in a["model"])


def test_two_process_ddp_matches_one_process(tmp_path):
    single = load_config(write_config(tmp_path, out_dir=str(tmp_path / "one"),
                                      train={**TINY["train"], "steps": 3, "ema": 0.0}))
    train(single)
    cfg_path = write_config(tmp_path, out_dir=str(tmp_path / "two"), train={**TINY["train"], "steps": 3, "ema": 0.0})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "sfhformer", "train", str(cfg_path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert list(one) == list(two) == [1, 2, 3]
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-5, abs=1e-6), step
    a, b = final_state(tmp_path / "one")["model"], final_state(tmp_path / "two")["model"]
    for name in a:
        if a[name].is_floating_point():
            assert torch.allclose(a[name], b[name], atol=1e-4, rtol=1e-4), name
    # rank 0 alone writes: one log line per step
    assert len((tmp_path / "two" / "log.jsonl").read_text().splitlines()) == 3 + 1  # + validation at the end


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = load_config(write_config(tmp_path, out_dir=str(tmp_path / "nan")),
                      ["train.lr=1e30", "checkpoint.every=1", "train.ema=0", "val.every=100"])
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step \d+; stopped\. The last good checkpoint"):
        train(cfg)
    state = final_state(tmp_path / "nan")
    assert state["step"] >= 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_train_command_reports_divergence_in_one_line(tmp_path, capsys):
    from sfhformer.cli import main
    path = write_config(tmp_path, out_dir=str(tmp_path / "nan2"))
    assert main(["train", str(path), "train.lr=1e30", "val.every=100", "train.ema=0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sfhformer train: error: loss became")


def test_ema_warm_up_follows_the_model_early_and_decays_later():
    from sfhformer.training import EMA
    model = torch.nn.BatchNorm2d(2)
    ema = EMA(model, 0.999)
    values = [2.0, 3.0, 5.0]
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model)
    d1, d2 = 2 / 11, 3 / 12  # min(0.999, (1 + n) / (10 + n)) for n = 1, 2
    expected = (2 * d1 + 3 * (1 - d1)) * d2 + 5 * (1 - d2)
    assert torch.allclose(ema.module.weight, torch.full((2,), expected))
    assert min(0.999, (1 + 10_000) / (10 + 10_000)) == 0.999  # the configured decay once warmed up
    # the checkpoint layout of torch's AveragedModel, which earlier checkpoints hold
    from torch.optim.swa_utils import AveragedModel
    assert set(ema.state_dict()) == set(AveragedModel(model, use_buffers=True).state_dict())
    again = EMA(torch.nn.BatchNorm2d(2), 0.999)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 3 and torch.equal(again.module.weight, ema.module.weight)


def test_resuming_a_different_model_is_explained(tmp_path):
    train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "r")), ["train.steps=1", "val.every=100"]))
    other = ["train.steps=2", "model.widths=[16,32,64]", "model.up_widths=[32,16]"]
    with pytest.raises(ConfigError, match=r"last\.pt: cannot resume with a different model"):
        train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "r")), other))
    # a checkpoint without its config (older files): the weights themselves do not fit
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    torch.save({k: v for k, v in torch.load(last, weights_only=True).items() if k != "train_config"}, last)
    with pytest.raises(TrainingError, match=r"last\.pt: cannot resume, it holds a different model"):
        train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "r")), other))


def test_init_from_starts_a_new_run_from_another_runs_ema_weights(tmp_path):
    train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "a")), ["train.steps=2", "val.every=100"]))
    a = final_state(tmp_path / "a")
    # lr 0: the parameters stay where init_from put them (BatchNorm statistics still move)
    train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "b")),
                      ["train.steps=1", "val.every=100", "train.lr=0", "train.min_lr=0",
                       f"train.init_from={tmp_path / 'a' / 'checkpoints' / 'last.pt'}"]))
    b = final_state(tmp_path / "b")
    ema = {k.removeprefix("module."): v for k, v in a["ema"].items() if k.startswith("module.")}
    params = [k for k in b["model"] if "running" not in k and "num_batches" not in k]
    assert params and all(torch.equal(b["model"][k], ema[k]) for k in params)
    assert not all(torch.equal(ema[k], a["model"][k]) for k in params)  # EMA, not the raw weights
    with pytest.raises(TrainingError, match=r"nothing\.pt: train\.init_from names no file"):
        train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "c")),
                          [f"train.init_from={tmp_path / 'nothing.pt'}"]))


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)  # unknown keys and bad YAML are errors
    assert cfg.data.train and (cfg.train.steps or 0) + (cfg.train.epochs or 0) > 0


def test_stage3_script_probes_the_step_time_and_trains_both_bundled_recipes(tmp_path):
    """configs/bundled/stage3_gpu.sh (the shipped models' last stage, normally on a GPU), here
    on the CPU with tiny crops: a probe sets the step count, both runs start from the given
    weights and finish with it."""
    root = Path(__file__).resolve().parent.parent
    weights = root / "src" / "sfhformer" / "weights"
    env = {**os.environ, "RUNS_DIR": str(tmp_path), "PROBE_STEPS": "6", "OMP_NUM_THREADS": "1",
           "DENOISE_INIT": str(weights / "denoise.safetensors"), "DEBLUR_INIT": str(weights / "deblur.safetensors"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", str(root / "configs" / "bundled" / "stage3_gpu.sh"), "0.01", "train.device=cpu",
         "data.train.crop=32", "train.batch_size=2", "train.num_workers=0", "data.val.max_side=32",
         "val.every=1000", "checkpoint.every=1000", "log.every=10"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "probe:" in result.stderr and "-> 50 steps" in result.stderr  # 0.01 min: the 50-step floor
    for task in ("denoise", "deblur"):
        run = tmp_path / f"bundled_{task}_256"
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["train"]["steps"] == 50 and cfg["train"]["init_from"] == str(weights / f"{task}.safetensors")
        assert cfg["data"]["train"]["crop"] == 32
        assert [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()][-1]["step"] == 50
        assert sfhformer.load(run / "checkpoints" / "last.safetensors").config == \
            sfhformer.load(weights / f"{task}.safetensors").config


@pytest.mark.parametrize("task, version, start", [("denoise", "v2", "denoise@1"), ("deblur", "v2", "deblur@1"),
                                                  ("denoise", "v3", "denoise@2"), ("denoise", "v3_psnr", "denoise@2"),
                                                  ("denoise", "v3_mixed", "denoise@2"), ("denoise", "v4", "denoise@3"),
                                                  ("denoise", "v5_dead_leaves", "denoise@4"),
                                                  ("denoise", "v5_deep", "denoise@4"),
                                                  ("denoise", "v5_long", "denoise@4"),
                                                  ("denoise", "v5_saturation", "denoise@4"),
                                                  ("denoise", "v5", "denoise@4"),
                                                  ("denoise", "v6_chroma", "denoise@5"),
                                                  ("denoise", "v6_control", "denoise@5"),
                                                  ("denoise", "v6_long", "denoise@5"),
                                                  ("denoise", "v7_long", "denoise@6")])
def test_later_recipes_run_from_the_bundled_weights(tmp_path, capsys, task, version, start):
    """configs/bundled/{denoise,deblur}_v2.yaml, the denoise_v3*.yaml, _v4.yaml, _v5*.yaml, _v6_*.yaml and
    _v7_*.yaml experiments for a few tiny steps: each starts from the version before (`denoise@1`,
    `deblur@1`, `denoise@2`, ...) and reads Debian's desktop photographs; where they are not
    installed, the pip photographs stand in for them (said in the skip-free output below)."""
    from sfhformer.cli import main
    from sfhformer.data.debian import debian_photographs

    root = Path(__file__).resolve().parent.parent
    overrides = [f"out_dir={tmp_path / 'v2'}", "train.steps=3", "train.batch_size=2", "train.num_workers=0",
                 "data.train.crop=32", "data.val.max_side=32", "val.every=3", "checkpoint.every=3", "log.every=1"]
    if not debian_photographs("train"):
        print("Debian desktop photographs not installed: the recipe runs on the pip photographs here")
        overrides += ["data.train.images=[samples:train]", "data.val.images=sample:astronaut"]
    assert main(["train", str(root / "configs" / "bundled" / f"{task}_{version}.yaml"), *overrides]) == 0
    cfg = json.loads((tmp_path / "v2" / "config.json").read_text())
    assert cfg["train"]["init_from"] == start and cfg["data"]["train"]["photometric"]["p"] == 0.5
    expected = sfhformer.load(start).config  # the deeper recipe grows the network it starts from
    expected = expected.replace(depths=tuple(cfg["model"]["depths"])) if "depths" in cfg["model"] else expected
    assert sfhformer.load(tmp_path / "v2" / "checkpoints" / "last.safetensors").config == expected


@pytest.mark.parametrize("task, kernels", [("denoise", 1), ("deblur", 4)])
def test_same_recipe_comparisons_run_from_scratch(tmp_path, task, kernels):
    """configs/bundled/{denoise,deblur}_scratch.yaml (what benchmarks/quality.py --same-recipe trains for
    SFHformer-t and NAFNet alike) for a few tiny steps: from scratch, on the data of the bundled model's latest
    version; the pip photographs stand in for Debian's where those are not installed."""
    from sfhformer.cli import main
    from sfhformer.data.debian import debian_photographs

    root = Path(__file__).resolve().parent.parent
    overrides = [f"out_dir={tmp_path}", "train.steps=2", "train.batch_size=2", "train.num_workers=0",
                 "data.train.crop=32", "val.every=2", "checkpoint.every=2", "log.every=1"]
    if not debian_photographs("train"):
        overrides += ["data.train.images=[samples:train]", "data.val.images=sample:astronaut"]
    overrides += ["data.val.downscale_to=64"]
    assert main(["train", str(root / "configs" / "bundled" / f"{task}_scratch.yaml"), *overrides]) == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["train"]["init_from"] is None and cfg["train"]["steps"] == 2
    assert cfg["data"]["train"]["images"][-1] in ("debian:train", "samples:train")
    assert sfhformer.load(tmp_path / "checkpoints" / "last.safetensors").config.num_kernels == kernels


# -- guards against defects the suite once missed (issue 13) ----------------------------------

class DropoutNet(torch.nn.Module):
    """A tiny network that draws from the global RNG on every training step (dropout)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.drop = torch.nn.Dropout(0.5)
        self.conv2 = torch.nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(self.drop(torch.relu(self.conv1(x))))


def test_resume_is_exact_for_a_network_that_draws_from_the_global_rng(tmp_path):
    common = ["val.every=100", "train.ema=0"]
    train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "a")), common), model=DropoutNet())
    cfg_b = write_config(tmp_path, out_dir=str(tmp_path / "b"))
    assert train(load_config(cfg_b, common + ["train.stop_at_step=2"]), model=DropoutNet())["step"] == 2
    train(load_config(cfg_b, common), model=DropoutNet())  # resumes at step 2 for 4 more
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert b["step"] == 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])  # the same stream, saved alike
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_fft_loss_weight_is_the_configured_one(tmp_path):
    """lr 0: the logged step-1 loss is the loss of the initial network on the first batch."""
    from torch.utils.data import default_collate

    from sfhformer.data import build_dataset

    def first_step_loss(weight, pixel="l1"):
        torch.manual_seed(1)
        net = torch.nn.Conv2d(3, 3, 3, padding=1)
        out = tmp_path / f"w{weight}{pixel}"
        cfg = load_config(write_config(tmp_path, out_dir=str(out)),
                          ["train.steps=1", "train.lr=0", "train.min_lr=0", "val.every=100", "train.ema=0",
                           f"train.fft_loss_weight={weight}", f"train.loss={pixel}"])
        expected_net = torch.nn.Conv2d(3, 3, 3, padding=1)
        expected_net.load_state_dict(net.state_dict())
        train(cfg, model=net)
        batch = next(iter(EpochBatchSampler(32, 4, seed=cfg.train.seed)))
        data = build_dataset(TINY["data"]["train"], seed=cfg.train.seed)
        sample = default_collate([data[i] for i in batch])
        with torch.no_grad():
            pred = expected_net(sample["lq"])
        return losses(out)[1], pred, sample["gt"]

    logged, pred, gt = first_step_loss(0)
    assert logged == pytest.approx(float(torch.nn.functional.l1_loss(pred, gt)), rel=1e-5)
    logged, pred, gt = first_step_loss(0.5)
    assert logged == pytest.approx(float(restoration_loss(pred, gt, 0.5)), rel=1e-5)
    assert float(restoration_loss(pred, gt, 0.5)) != pytest.approx(float(restoration_loss(pred, gt, 0.1)), rel=1e-3)
    logged, pred, gt = first_step_loss(0.5, "psnr")
    assert logged == pytest.approx(float(restoration_loss(pred, gt, 0.5, "psnr")), rel=1e-5)


@pytest.mark.parametrize("world", [1, 2])
def test_sampler_visits_every_sample_once_per_epoch_in_a_new_order(world):
    size, batch = 23, 4  # 5 batches an epoch; 3 samples left over each epoch
    per_epoch = size // batch
    streams = [iter(EpochBatchSampler(size, batch, seed=3, rank=r, world=world)) for r in range(world)]
    orders = []
    for epoch in range(3):
        order = []
        for _ in range(per_epoch):
            local = [next(s) for s in streams]
            assert all(len(b) == batch // world for b in local)
            assert all(e == epoch for b in local for _, e in b)
            for b in local:  # each process's share holds distinct samples too
                assert len({i for i, _ in b}) == len(b)
            order += [i for b in local for i, _ in b]
        assert len(order) == len(set(order)) == size - size % batch
        orders.append(order)
    assert orders[0] != orders[1] != orders[2] and orders[0] != orders[2]


def test_init_grow_starts_a_deeper_network_exactly_where_the_shallower_one_was(tmp_path):
    """train.init_grow: the given blocks first in each stage, the added ones as the identity, so the
    grown network's output is the given one's; anything else is refused with the tensor named."""
    from sfhformer.models import create_model, get_preset
    from sfhformer.training.state import grown_weights

    small_cfg = get_preset("sfhformer_t").replace(widths=(8, 16, 32), up_widths=(16, 8))
    torch.manual_seed(0)
    small = create_model(small_cfg)
    for block in (small.encoder1[0], small.bottleneck[1]):  # trained blocks: non-zero residual scales
        torch.nn.init.normal_(block.beta, std=0.5)
        torch.nn.init.normal_(block.gamma, std=0.5)
    deep = create_model(small_cfg.replace(depths=(2, 1, 3, 1, 2)))
    deep.load_state_dict(grown_weights(deep, small.state_dict(), "small.safetensors"))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(deep.eval()(x), small.eval()(x))
    assert any(k.startswith("encoder1.1.") for k in deep.state_dict())
    with pytest.raises(TrainingError, match=r"small.safetensors: train.init_grow needs the same network with fewer "
                                            r"blocks per stage; its embed.weight does not fit"):
        grown_weights(create_model(small_cfg.replace(widths=(16, 16, 32))), small.state_dict(), "small.safetensors")
    for left_out in ("encoder1.0.beta", "head.0.weight"):  # part of a block, or outside the stages
        partial = {k: v for k, v in small.state_dict().items() if k != left_out}
        with pytest.raises(TrainingError, match=f"{left_out} is missing"):
            grown_weights(deep, partial, "small.safetensors")
    with torch.no_grad():
        deep.encoder1[1].beta.fill_(1)  # an added block that would change the output
    with pytest.raises(TrainingError, match="the added block encoder1.1 would not start as the identity"):
        grown_weights(deep, small.state_dict(), "small.safetensors")
    # in a run: init_from a shallower network is refused unless init_grow says so
    sfhformer.save(small, tmp_path / "small.safetensors")
    grown = ["model.widths=[8, 16, 32]", "model.up_widths=[16, 8]", "model.depths=[2, 1, 3, 1, 2]",
             f"train.init_from={tmp_path / 'small.safetensors'}", "train.steps=1", "val.every=100"]
    with pytest.raises(TrainingError, match="holds weights of another model"):
        train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "a")), grown))
    train(load_config(write_config(tmp_path, out_dir=str(tmp_path / "b")), [*grown, "train.init_grow=true"]))
    assert sfhformer.load(tmp_path / "b" / "checkpoints" / "last.safetensors").config.depths == (2, 1, 3, 1, 2)


@pytest.mark.parametrize("setting, kept", [("auto", True), ("false", False), ("true", True)])
def test_cpu_training_keeps_freed_memory_unless_told_not_to(tmp_path, monkeypatch, setting, kept):
    from sfhformer.training import loop
    calls = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    cfg = load_config(write_config(tmp_path, out_dir=str(tmp_path / "run")),
                      [f"train.keep_freed_memory={setting}", "train.steps=1", "val.every=100"])
    assert cfg.train.device == "auto" and not torch.cuda.is_available()  # so "auto" means the CPU here
    train(cfg)
    assert calls == ([1] if kept else [])
