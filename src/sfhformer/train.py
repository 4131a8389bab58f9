"""Training SFHformer: one readable loop, with DDP, AMP, EMA and checkpointing in plain sight.

    sfhformer train configs/denoise.yaml train.steps=2000            # one process
    torchrun --nproc_per_node=4 -m sfhformer train configs/gopro.yaml  # many

``train.batch_size`` is the global batch, split evenly across processes; each global batch
holds the same samples whatever the number of processes, and BatchNorm statistics are taken
over the global batch (``train.sync_bn``), so a multi-process run follows the one-process run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .metrics import psnr, ssim
from .models import SFHformer, create_model, save
from .utils import atomic_path

DEFAULTS: dict[str, Any] = {
    "name": "experiment",
    "out_dir": None,  # default: runs/<name>
    "model": {"preset": "sfhformer_t"},  # plus any SFHformerConfig field, e.g. num_kernels: 4
    "data": {"train": None, "val": None},
    "train": {
        "steps": 300_000, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-3, "min_lr": 1e-6,
        "betas": [0.9, 0.999], "fft_loss_weight": 0.1, "grad_clip": 0.0, "ema": 0.0, "amp": "auto",
        "seed": 0, "num_workers": 2, "device": "auto", "sync_bn": True, "checkpoint_activations": False,
        "stop_at_step": None,
        "init_from": None,  # weights to start from (a run's .pt checkpoint, EMA weights if kept, or a weights file)
    },
    "val": {"every": 1000, "crop_border": 0, "y_channel": False, "max_images": None, "log_images": 3},
    "log": {"every": 50},
    "checkpoint": {"every": 1000},
    "resume": "auto",  # auto: continue from out_dir/checkpoints/last.pt when present; a path; or false
}


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, bad config); the message says why and what is kept."""


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def _merge(base: dict, update: dict, where: str, free: tuple[str, ...] = ("model", "data")) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{where}.{key}" if where else key
        if key not in base and where.split(".")[0] not in free and key not in free:
            raise ValueError(f"unknown config key {path!r}; known here: {', '.join(base)}")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value, path, free)
        else:
            out[key] = value
    return out


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _numbers(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``1e-3`` as a string; turn such strings into floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    return value


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """DEFAULTS, updated by a YAML file, then by ``key.sub=value`` overrides (values in YAML syntax)."""
    import yaml

    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ValueError(f"{path}: no such config file") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        cfg = _merge(cfg, _numbers(data), "")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        nested: dict[str, Any] = {}
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _numbers(yaml.safe_load(value))
        cfg = _merge(cfg, nested, "")
    if cfg["out_dir"] is None:
        cfg["out_dir"] = str(Path("runs") / cfg["name"])
    if not cfg["data"].get("train"):
        raise ValueError("the config has no data.train section")
    return cfg


# ---------------------------------------------------------------------------------------------
# Pieces: loss, BatchNorm over the global batch, sampler, processes
# ---------------------------------------------------------------------------------------------

def restoration_loss(pred: torch.Tensor, target: torch.Tensor, fft_weight: float = 0.1) -> torch.Tensor:
    """L1(pred, target) + fft_weight * L1 of their 2-D FFTs (real and imaginary parts), as the
    authors train (``torch.fft.fft2`` with its default, unnormalised scaling)."""
    loss = F.l1_loss(pred, target)
    if fft_weight:
        fp, ft = torch.fft.fft2(pred.float()), torch.fft.fft2(target.float())
        loss = loss + fft_weight * F.l1_loss(torch.view_as_real(fp), torch.view_as_real(ft))
    return loss


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the batch of every process.

    ``nn.SyncBatchNorm`` refuses CPU tensors; this one sums per-channel moments with an
    autograd-aware all-reduce, so it works with gloo (CPU) and NCCL alike. Outside training or
    a process group it is plain BatchNorm; its state-dict keys are BatchNorm2d's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        count = torch.full((1,), xf.numel() / xf.shape[1], device=x.device)
        moments = all_reduce(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        c = x.shape[1]
        n = moments[-1]
        mean = moments[:c] / n
        var = (moments[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)).clamp_min(0) * m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def use_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by :class:`GlobalBatchNorm2d`, keeping its state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats).to(child.weight.device)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            use_global_batchnorm(child)
    return module


class EpochBatchSampler:
    """Endless batches of ``(index, epoch)``: epoch e visits a permutation seeded by (seed, e);
    global batch k is the same whatever the number of processes, each taking its slice; the
    stream can start at any step without touching the data (resume)."""

    def __init__(self, size: int, global_batch: int, seed: int = 0, rank: int = 0, world: int = 1,
                 start_step: int = 0) -> None:
        if global_batch % world:
            raise ValueError(f"batch_size {global_batch} must be divisible by the {world} processes")
        if size < global_batch:
            raise ValueError(f"the dataset has {size} samples, fewer than the batch size {global_batch}; "
                             f"raise its length or lower train.batch_size")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.rank, self.world, self.start_step = rank, world, start_step
        self.per_epoch = size // global_batch
        self.local = global_batch // world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        perm, perm_epoch = None, -1
        while True:
            epoch, pos = divmod(step, self.per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
                perm_epoch = epoch
            start = pos * self.global_batch + self.rank * self.local
            yield [(int(i), epoch) for i in perm[start:start + self.local]]
            step += 1


@dataclass
class Processes:
    """This process's place in a (possibly one-process) run; torchrun sets the environment."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str = "auto") -> "Processes":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("train.device is cuda but CUDA is not available")
        dev = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(dev)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(rank, local_rank, world, dev)

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over processes."""
        value = value.detach().clone()
        if self.world > 1:
            dist.all_reduce(value)
            value /= self.world
        return float(value)

    def all_finite(self, value: torch.Tensor) -> bool:
        ok = torch.isfinite(value.detach()).all().float().reshape(1)
        if self.world > 1:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def stop(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Validation and checkpoints
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def validate(model: nn.Module, dataset, device: torch.device, crop_border: int = 0, y_channel: bool = False,
             max_images: int | None = None) -> dict[str, Any]:
    """Mean PSNR/SSIM of ``model`` (eval mode) and of the degraded input over whole images."""
    was_training = model.training
    model.eval()
    rows, previews = [], []
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n):
        sample = dataset[i]
        lq, gt = sample["lq"][None].to(device), sample["gt"][None]
        pred = model(lq).float().clamp(0, 1).cpu()
        rows.append((psnr(pred, gt, crop_border, y_channel), ssim(pred, gt, crop_border, y_channel),
                     psnr(lq.cpu(), gt, crop_border, y_channel)))
        previews.append(torch.cat([lq[0].cpu(), pred[0], gt[0]], dim=-1))
    model.train(was_training)
    arr = np.array(rows)
    return {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean()), "input_psnr": float(arr[:, 2].mean()),
            "previews": previews}


def ema_update_fn(decay: float):
    """EMA of weights with warm-up: the decay at update n is min(decay, (1 + n) / (10 + n)), so
    short runs are not dominated by the random initial weights (timm's ModelEmaV3 warm-up)."""
    def update(ema_tensors: list[torch.Tensor], tensors: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        for e, t in zip(ema_tensors, tensors):
            if e.is_floating_point():
                e.lerp_(t, 1 - d)
            else:  # integer buffers (BatchNorm's batch counter) follow the model
                e.copy_(t)
    return update


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain values, so checkpoints load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if setting in (None, False, "none", "off", "fp32"):
        return None
    if setting == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting in ("bf16", "bfloat16"):
        return torch.bfloat16
    if setting in ("fp16", "float16"):
        if device.type != "cuda":
            raise ValueError("train.amp fp16 needs CUDA; use bf16 or none on the CPU")
        return torch.float16
    raise ValueError(f"train.amp must be auto, bf16, fp16 or none, got {setting!r}")


def initial_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict a run starts from with ``train.init_from``: from a training checkpoint
    (``.pt``) its EMA weights when it kept them, else its model; from a weights file (ours or
    the authors', :func:`sfhformer.load`) the model it holds."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: train.init_from names no file")
    if path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state:
            ema = state.get("ema")
            if ema:  # AveragedModel's state: "module."-prefixed weights plus n_averaged
                return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
            return state["model"]
    from .models import load
    return load(path).state_dict()


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

def train(cfg: dict[str, Any], model: nn.Module | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``cfg`` (see :func:`load_config`).

    ``model`` replaces the SFHformer that ``cfg["model"]`` describes with any (B, 3, H, W) ->
    (B, 3, H, W) network (peer comparisons train NAFNet this way); only SFHformers are also
    exported as safetensors.

    Returns a summary: final step, last loss, best validation PSNR, checkpoint paths.
    """
    from torch.optim.swa_utils import AveragedModel
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .data import build_dataset

    tc, vc = cfg["train"], cfg["val"]
    procs = Processes.start(tc["device"])
    out = Path(cfg["out_dir"])
    ckpt_dir = out / "checkpoints"
    try:
        # -- model, optimiser, schedule, EMA -------------------------------------------------
        torch.manual_seed(tc["seed"])
        if model is None:
            model_cfg = dict(cfg["model"])
            model = create_model(model_cfg.pop("preset", "sfhformer_t"), **model_cfg)
        resume = cfg["resume"]
        resume_path = ckpt_dir / "last.pt" if resume == "auto" else (Path(resume) if resume else None)
        if tc["init_from"] and not (resume_path is not None and resume_path.exists()):
            model.load_state_dict(initial_weights(tc["init_from"]))
        model = model.to(procs.device)
        if tc["checkpoint_activations"]:
            if not isinstance(model, SFHformer):
                raise ValueError("train.checkpoint_activations needs an SFHformer model")
            model.set_grad_checkpointing(True)
        if procs.world > 1 and tc["sync_bn"]:
            use_global_batchnorm(model)
        net: nn.Module = model
        if procs.world > 1:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[procs.local_rank] if procs.device.type == "cuda" else None)
        optimizer = torch.optim.AdamW(model.parameters(), lr=tc["lr"], betas=tuple(tc["betas"]),
                                      weight_decay=tc["weight_decay"])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tc["steps"], eta_min=tc["min_lr"])
        ema = (AveragedModel(model, multi_avg_fn=ema_update_fn(tc["ema"]), use_buffers=True)
               if tc["ema"] else None)
        amp_dtype = _amp_dtype(tc["amp"], procs.device)
        scaler = torch.amp.GradScaler(procs.device.type, enabled=amp_dtype == torch.float16)
        step, best_psnr, resume_rng = 0, -math.inf, None

        # -- resume --------------------------------------------------------------------------
        if resume_path is not None and resume_path.exists():
            state = torch.load(resume_path, map_location=procs.device, weights_only=True)
            try:
                model.load_state_dict(state["model"])
            except RuntimeError:
                raise TrainingError(f"{resume_path}: cannot resume, it holds a different model; set "
                                    f"resume=false or choose another out_dir") from None
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            step, best_psnr = state["step"], state["best_psnr"]
            resume_rng = state["rng"]
            if procs.main:
                print(f"resumed from {resume_path} at step {step}")
        elif resume not in ("auto", None, False):
            raise TrainingError(f"{resume_path}: checkpoint to resume from does not exist")

        # -- data ----------------------------------------------------------------------------
        train_set = build_dataset(cfg["data"]["train"], seed=tc["seed"])
        sampler = EpochBatchSampler(len(train_set), tc["batch_size"], tc["seed"], procs.rank, procs.world, step)
        # Its own generator: iter(loader) draws the workers' base seed from it, which would
        # otherwise consume the global RNG that a resumed run has just restored.
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=tc["num_workers"],
                            pin_memory=procs.device.type == "cuda", persistent_workers=tc["num_workers"] > 0,
                            generator=torch.Generator().manual_seed(tc["seed"]))
        val_set = build_dataset({"augment": False, **cfg["data"]["val"]}, seed=tc["seed"]) \
            if cfg["data"].get("val") else None

        writer, log_file = None, None
        if procs.main:
            from torch.utils.tensorboard import SummaryWriter
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(cfg, indent=1))
            writer = SummaryWriter(str(out / "tensorboard"))
            log_file = open(out / "log.jsonl", "a")

        def log(record: dict[str, Any]) -> None:
            if log_file is not None:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()

        def checkpoint(name: str) -> None:
            if not procs.main:
                return
            ours = isinstance(model, SFHformer)
            save_checkpoint(ckpt_dir / f"{name}.pt", {
                "config": model.config.to_dict() if ours else None, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "step": step, "best_psnr": best_psnr,
                "rng": _rng_state(), "train_config": cfg})
            if ours:  # the weights users restore with: EMA when kept, else the model
                save(ema.module if ema is not None else model, ckpt_dir / f"{name}.safetensors",
                     metadata={"step": str(step), "name": cfg["name"]})

        # -- loop ----------------------------------------------------------------------------
        bar = tqdm(total=tc["steps"], initial=step, disable=not procs.main, unit="step", dynamic_ncols=True)
        try:
            net.train()
            loss_value, t0 = math.nan, time.time()
            batches = iter(loader)
            if resume_rng is not None:  # last, so that nothing draws from it before the first step
                _set_rng_state(resume_rng)
            while step < tc["steps"]:
                batch = next(batches)
                lq, gt = batch["lq"].to(procs.device, non_blocking=True), batch["gt"].to(procs.device, non_blocking=True)
                with torch.autocast(procs.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    pred = net(lq)
                loss = restoration_loss(pred.float(), gt, tc["fft_loss_weight"])
                if not procs.all_finite(loss):
                    raise TrainingError(f"loss became {float(loss.detach())} at step {step + 1}; stopped. The last good "
                                        f"checkpoint is {ckpt_dir / 'last.pt'} (step <= {step}); lower train.lr or "
                                        f"set train.grad_clip, then resume")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if tc["grad_clip"]:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                loss_value = procs.mean(loss)
                bar.update(1)

                if step % cfg["log"]["every"] == 0 or step == tc["steps"]:
                    lr = scheduler.get_last_lr()[0]
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
                    log({"step": step, "loss": loss_value, "lr": lr, "time": time.time() - t0})
                    if writer is not None:
                        writer.add_scalar("train/loss", loss_value, step)
                        writer.add_scalar("train/lr", lr, step)

                if val_set is not None and (step % vc["every"] == 0 or step == tc["steps"]):
                    if procs.main:
                        result = validate(ema.module if ema is not None else model, val_set, procs.device,
                                          vc["crop_border"], vc["y_channel"], vc["max_images"])
                        log({"step": step, "val_psnr": result["psnr"], "val_ssim": result["ssim"],
                             "val_input_psnr": result["input_psnr"]})
                        bar.write(f"step {step}: val PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} "
                                  f"(input {result['input_psnr']:.2f} dB)")
                        writer.add_scalar("val/psnr", result["psnr"], step)
                        writer.add_scalar("val/ssim", result["ssim"], step)
                        for i, img in enumerate(result["previews"][: vc["log_images"]]):
                            writer.add_image(f"val/{i}_input_output_clean", img, step)
                        if result["psnr"] > best_psnr:
                            best_psnr = result["psnr"]
                            checkpoint("best")
                    procs.barrier()

                stop_now = tc["stop_at_step"] is not None and step >= tc["stop_at_step"]
                if step % cfg["checkpoint"]["every"] == 0 or step == tc["steps"] or stop_now:
                    checkpoint("last")
                    procs.barrier()
                if stop_now:
                    break
        finally:  # also when stopping on an error, so the bar does not hide the message
            bar.close()
            if writer is not None:
                writer.close()
            if log_file is not None:
                log_file.close()
        return {"step": step, "loss": loss_value, "best_psnr": best_psnr, "out_dir": str(out),
                "last": str(ckpt_dir / "last.safetensors")}
    finally:
        procs.stop()
