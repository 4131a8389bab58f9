"""Training SFHformer: one readable loop, with DDP, AMP, EMA and checkpointing in plain sight.

    sfhformer train configs/denoise.yaml train.steps=2000            # one process
    torchrun --nproc_per_node=4 -m sfhformer train configs/gopro.yaml  # many

``train.batch_size`` is the global batch, split evenly across processes; each global batch
holds the same samples whatever the number of processes, and BatchNorm statistics are taken
over the global batch (``train.sync_bn``), so a multi-process run follows the one-process run.
The host waits for the device only every ``log.every`` steps and before checkpoints and
validation (and, in float16, where torch's GradScaler checks for overflow): then one all-reduce
brings the loss and whether any step since the last such point was not finite. Work done by the
main process alone (validation, checkpoints, logs) ends the same way on every process when it
fails, so no process is left waiting.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, OutputError, SFHformerError, TrainingError
from ..metrics import Protocol, psnr, score
from ..models import SFHformer, create_model, get_preset
from ..models.network import frozen_batchnorm_stats
from ..restore import forward_tiled
from ..utils import keep_freed_memory, shorten_list
from .config import DatasetConfig, RunConfig, TrainConfig
from .distributed import EpochBatchSampler, Processes, use_global_batchnorm
from .loss import restoration_loss
from .schedule import make_scheduler
from .state import EMA, TrainState, grown_weights, initial_weights


def train(cfg: RunConfig, model: nn.Module | None = None) -> dict[str, Any]:
    """Run (or resume) the training ``cfg`` describes (:func:`~sfhformer.training.load_config`).

    ``model`` replaces the SFHformer of ``cfg.model`` with any (B, 3, H, W) -> (B, 3, H, W)
    network (peer comparisons train NAFNet this way); only SFHformers are also saved as
    safetensors. Returns a summary: final step, last loss, best validation PSNR, weights path.
    """
    procs = Processes.start(cfg.train.device)
    if cfg.train.keep_freed_memory is True or (cfg.train.keep_freed_memory == "auto" and procs.device.type == "cpu"):
        keep_freed_memory()  # before the loader's workers fork, so they inherit it
    try:
        dataset = make_dataset(cfg.data.train, cfg.train.seed)
        cfg, steps_per_epoch = with_steps(cfg, len(dataset))
        tc = cfg.train
        state = build_state(cfg, procs, model, steps_per_epoch)
        net = procs.wrap(state.model)
        batches = iter(build_loader(dataset, tc, procs, state.step))
        val_set = make_dataset(cfg.data.val, tc.seed, validation=True) if cfg.data.val else None
        amp = autocast_dtype(tc.amp, procs.device)
        log = RunLog(cfg, procs.main, state.step)
        procs.on_main(log.start)
        health, loss_value = LossHealth(procs), float("nan")
        state.restore_rng()  # last: nothing may draw from the restored RNG before the first step
        net.train()
        try:
            while state.step < tc.steps:
                batch = next_batch(batches)
                lq, gt = batch["lq"].to(procs.device, non_blocking=True), batch["gt"].to(procs.device, non_blocking=True)
                with torch.autocast(procs.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    pred = net(lq) if tc.bn_chunks == 1 else forward_in_chunks(net, lq, tc.bn_chunks)
                loss = restoration_loss(pred.float(), gt, tc.fft_loss_weight, tc.loss)
                health.watch(loss, state.step + 1)  # on the device: no wait here
                state.optimizer.zero_grad(set_to_none=True)
                state.scaler.scale(loss).backward()
                if tc.grad_clip:
                    state.scaler.unscale_(state.optimizer)
                    nn.utils.clip_grad_norm_(state.model.parameters(), tc.grad_clip)
                state.scaler.step(state.optimizer)
                state.scaler.update()
                state.scheduler.step()
                if state.ema is not None:
                    state.ema.update(state.model)
                state.step += 1
                step = state.step
                log.bar.update(1)

                last = step == tc.steps or (tc.stop_at_step is not None and step >= tc.stop_at_step)
                validating = val_set is not None and (step % cfg.val.every == 0 or step == tc.steps)
                saving = step % cfg.checkpoint.every == 0 or last
                if step % cfg.log.every == 0 or validating or saving:
                    # raises on a loss that was not finite: nothing of it gets written below
                    loss_value = health.check(step, log.last_good)
                    if step % cfg.log.every == 0 or step == tc.steps:
                        log.train(step, loss_value, state.scheduler.get_last_lr()[0])
                if validating:
                    procs.on_main(lambda: validate_and_keep_best(state, val_set, cfg, procs.device, log))
                if saving:
                    check_state(state, procs, log.last_good)  # never replace a good checkpoint by a bad one
                    procs.on_main(lambda: log.checkpoint(state, "last"))
                    log.last_saved = state.step
                if last:
                    break
        finally:  # also when stopping on an error, so the bar does not hide the message
            log.close()
        return {"step": state.step, "loss": loss_value, "best_psnr": state.best_psnr, "out_dir": cfg.out_dir,
                "last": str(log.checkpoints / "last.safetensors")}
    finally:
        procs.stop()


# ---------------------------------------------------------------------------------------------
# Building the run
# ---------------------------------------------------------------------------------------------

def with_steps(cfg: RunConfig, dataset_size: int) -> tuple[RunConfig, int]:
    """``cfg`` with the step counts that epochs set resolved (``train.steps`` from
    ``train.epochs``, ``val.every`` and ``checkpoint.every`` from their ``every_epochs``), and the
    steps of one epoch (``train.steps_per_epoch``, else whole global batches of the dataset)."""
    tc = cfg.train
    steps_per_epoch = tc.steps_per_epoch or max(dataset_size // tc.batch_size, 1)
    changes: dict[str, Any] = {}
    if tc.epochs is not None:
        changes["train"] = dataclasses.replace(tc, steps=tc.epochs * steps_per_epoch)
    for section in ("val", "checkpoint"):
        part = getattr(cfg, section)
        if part.every_epochs is not None:
            changes[section] = dataclasses.replace(part, every=part.every_epochs * steps_per_epoch)
    return (dataclasses.replace(cfg, **changes) if changes else cfg), steps_per_epoch


def build_state(cfg: RunConfig, procs: Processes, model: nn.Module | None = None,
                steps_per_epoch: int = 1) -> TrainState:
    """Model, optimiser, schedule, scaler and EMA, resumed from the run's checkpoint when there
    is one (``cfg.resume``), else starting from ``train.init_from`` when given."""
    tc = cfg.train
    torch.manual_seed(tc.seed)
    if model is None:
        model = create_model(cfg.model_config())
    resume = cfg.resume
    path = Path(cfg.out_dir) / "checkpoints" / "last.pt" if resume in ("auto", True) else \
        (Path(resume) if resume else None)
    resuming = path is not None and path.exists()
    if resume not in ("auto", True, None, False) and not resuming:
        raise TrainingError(f"{path}: checkpoint to resume from does not exist")
    if tc.init_from and not resuming:
        weights = initial_weights(tc.init_from)
        if tc.init_grow:
            weights = grown_weights(model, weights, tc.init_from)
        try:
            model.load_state_dict(weights)
        except RuntimeError:
            raise TrainingError(f"{tc.init_from}: train.init_from holds weights of another model") from None
    model = model.to(procs.device)
    if tc.checkpoint_activations:
        if not isinstance(model, SFHformer):
            raise ConfigError("train.checkpoint_activations needs an SFHformer model")
        model.set_grad_checkpointing(True)
    if procs.world > 1 and tc.sync_bn:  # before the optimiser takes the parameters
        use_global_batchnorm(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay)
    per_epoch = steps_per_epoch if tc.schedule_every == "epoch" else 0
    length = tc.steps if tc.schedule_length is None else tc.schedule_length * (per_epoch or 1)
    scheduler = make_scheduler(optimizer, tc.schedule, tc.lr, tc.min_lr, length, per_epoch)
    ema = EMA(model, tc.ema) if tc.ema else None
    scaler = torch.amp.GradScaler(procs.device.type, enabled=autocast_dtype(tc.amp, procs.device) == torch.float16)
    state = TrainState(model, optimizer, scheduler, scaler, ema)
    if resuming:
        try:
            checkpoint = torch.load(path, map_location=procs.device, weights_only=True)
        except Exception as e:  # a truncated or foreign file makes torch raise anything
            raise TrainingError(f"{path}: cannot be read to resume ({type(e).__name__}); set resume=false or "
                                f"choose another out_dir") from None
        changed = changes_on_resume(checkpoint.get("train_config") or {}, cfg, path)
        try:
            state.model.load_state_dict(checkpoint["model"])
        except RuntimeError:
            raise TrainingError(f"{path}: cannot resume, it holds a different model; set resume=false or "
                                f"choose another out_dir") from None
        state.load_state_dict(checkpoint)
        if changed:
            state.apply_schedule(tc.lr if "train.lr" in changed else None, tc.steps, tc.min_lr, tc.weight_decay,
                                 tc.betas, reschedule=bool(RESCHEDULING & set(changed)),
                                 kind=tc.schedule, steps_per_epoch=per_epoch)
        if procs.main:
            print(f"resumed from {path} at step {state.step}"
                  + "".join(f"; {key} {old} -> {new}" for key, (old, new) in changed.items()))
    return state


# What a resumed run may change and what would make it another experiment.
APPLIED_ON_RESUME = ("train.lr", "train.min_lr", "train.steps", "train.schedule", "train.schedule_every",
                     "train.weight_decay", "train.betas")
RESCHEDULING = {"train.lr", "train.min_lr", "train.steps", "train.schedule", "train.schedule_every"}
REFUSED_ON_RESUME = ("train.batch_size", "train.seed", "model", "data.train")


def changes_on_resume(saved: dict[str, Any], cfg: RunConfig, path: Path) -> dict[str, tuple[Any, Any]]:
    """The schedule keys that differ from the run's checkpoint ({key: (old, new)}), which the
    resumed run applies. Raises :class:`ConfigError` for a change that would make it a different
    experiment. A checkpoint without its config (older files) changes nothing."""
    if not saved:
        return {}
    now = cfg.to_dict()

    def value(tree: dict[str, Any], dotted: str) -> Any:
        if dotted == "model":  # the network it describes, however it is spelled
            fields = dict(tree.get("model") or {})
            try:
                return get_preset(fields.pop("preset", "sfhformer_t")).replace(**fields).to_dict()
            except ConfigError:
                return tree.get("model")
        for part in dotted.split("."):
            tree = (tree or {}).get(part)
        return _without_nones(tree)

    for key in REFUSED_ON_RESUME:
        if value(saved, key) != value(now, key):
            raise ConfigError(f"{path}: cannot resume with a different {key} (was {value(saved, key)}, now "
                              f"{value(now, key)}): that is another experiment; start it fresh with resume=false "
                              f"and another out_dir")
    return {key: (value(saved, key), value(now, key)) for key in APPLIED_ON_RESUME
            if value(saved, key) != value(now, key)}


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_nones(v) for v in value]
    return value


def make_dataset(spec: DatasetConfig, seed: int, validation: bool = False):
    """The dataset a ``data.train`` / ``data.val`` section describes (validation: no augmentation
    unless asked)."""
    from ..data import build_dataset as from_spec

    fields = {k: v for k, v in dataclasses.asdict(spec).items() if v is not None}
    if validation:
        fields.setdefault("augment", False)
    return from_spec(fields, seed=seed)


def build_loader(dataset, tc: TrainConfig, procs: Processes, start_step: int):
    """Endless batches from ``start_step`` on, this process's share of each global batch."""
    from torch.utils.data import DataLoader

    sampler = EpochBatchSampler(len(dataset), tc.batch_size, tc.seed, procs.rank, procs.world, start_step)
    # Its own generator: iter(loader) draws the workers' base seed from it, which would
    # otherwise consume the global RNG that a resumed run restores.
    return DataLoader(
        dataset, batch_sampler=sampler, num_workers=tc.num_workers, pin_memory=procs.device.type == "cuda",
        persistent_workers=tc.num_workers > 0, generator=torch.Generator().manual_seed(tc.seed))


def forward_in_chunks(net: nn.Module, x: torch.Tensor, chunks: int) -> torch.Tensor:
    """``net`` over equal chunks of the batch, as ``nn.DataParallel`` on ``chunks`` GPUs runs it:
    BatchNorm statistics over each chunk, the running statistics updated by the first chunk only
    (DataParallel keeps the first replica's buffers)."""
    if x.shape[0] % chunks:
        raise ConfigError(f"train.bn_chunks {chunks} must divide this process's batch of {x.shape[0]}")
    parts = x.chunk(chunks)
    outputs = [net(parts[0])]
    with frozen_batchnorm_stats(net):
        outputs += [net(part) for part in parts[1:]]
    return torch.cat(outputs)


def autocast_dtype(setting: str | bool, device: torch.device) -> torch.dtype | None:
    """``train.amp``: auto (bf16, else fp16, on CUDA; none on a CPU), bf16, fp16 or none."""
    if setting in (False, "none", "off", "fp32"):
        return None
    if setting in ("auto", True):
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting in ("bf16", "bfloat16"):
        return torch.bfloat16
    if device.type != "cuda":  # fp16
        raise ConfigError("train.amp fp16 needs CUDA; use bf16 or none on the CPU")
    return torch.float16


# ---------------------------------------------------------------------------------------------
# Watching, validating and writing
# ---------------------------------------------------------------------------------------------

class LossHealth:
    """Remembers, on the device, the first step whose loss was not finite, so the loop never
    waits for the device to check it; :meth:`check` reads it (and the loss) in one all-reduce."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.first_bad = torch.zeros((), dtype=torch.int64, device=procs.device)  # 0: none yet
        self.bad_value = torch.zeros((), device=procs.device)
        self.loss = torch.zeros((), device=procs.device)

    def watch(self, loss: torch.Tensor, step: int) -> None:
        self.loss = loss.detach().float()
        new = ~torch.isfinite(self.loss) & (self.first_bad == 0)
        self.first_bad = torch.where(new, step, self.first_bad)
        self.bad_value = torch.where(new, self.loss, self.bad_value)

    def check(self, step: int, last_good) -> float:
        """This step's loss, the mean over processes; raises :class:`TrainingError` when a loss
        since the last check, on any process, was not finite."""
        summed = self.procs.sum(torch.stack([self.loss / self.procs.world, (self.first_bad > 0).float()]))
        mean_loss, bad = summed.tolist()
        if bad:
            seen_here = int(self.first_bad) > 0
            value = float(self.bad_value) if seen_here else mean_loss
            raise TrainingError(f"loss became {value} at step {int(self.first_bad) if seen_here else step}; "
                                f"stopped. {last_good()}; lower train.lr or set train.grad_clip, then resume")
        return mean_loss


def next_batch(batches):
    """The next batch; an error raised in a DataLoader worker comes back as one line (torch
    re-raises it with the worker's traceback in its message)."""
    try:
        return next(batches)
    except SFHformerError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        message = lines[-1].removeprefix(f"{type(e).__module__}.{type(e).__qualname__}: ")
        raise type(e)(message) from None


def validate_and_keep_best(state: TrainState, val_set, cfg: RunConfig, device: torch.device, log: "RunLog") -> None:
    vc = cfg.val
    protocol = Protocol(quantize=vc.protocol == "basicsr", y_channel=vc.y_channel, crop_border=vc.crop_border)
    result = validate(state.weights, val_set, device, max_images=vc.max_images, protocol=protocol, tile=vc.tile,
                      tile_overlap=vc.tile_overlap)
    log.validation(state.step, result)
    if result["psnr"] > state.best_psnr:  # NaN weights score NaN: never "best"
        state.best_psnr = result["psnr"]
        log.checkpoint(state, "best")


def check_state(state: TrainState, procs: Processes, last_good) -> None:
    """Raise :class:`TrainingError` when any process's state holds NaN or Inf (all processes
    decide together, so none waits for a checkpoint that will not come)."""
    bad = state.nonfinite()
    if procs.sum(torch.tensor([float(bool(bad))], device=procs.device)).item():
        where = f" ({shorten_list(bad, 3)})" if bad else ""
        raise TrainingError(f"step {state.step}: the weights or optimiser state hold NaN or Inf{where} although the "
                            f"loss was finite; stopped without writing them. {last_good()}; lower train.lr or set "
                            f"train.grad_clip, then resume")


@torch.no_grad()
def validate(model: nn.Module, dataset, device: torch.device, crop_border: int = 0, y_channel: bool = False,
             max_images: int | None = None, protocol: Protocol | None = None, tile: int | None = None,
             tile_overlap: int = 32) -> dict[str, Any]:
    """Mean PSNR/SSIM of ``model`` (eval mode) and of the degraded input over whole images, by
    ``protocol`` (default: BasicSR's, with ``crop_border`` and ``y_channel``); with ``tile``,
    restored in tiles of that side blended over ``tile_overlap`` pixels, as
    :class:`~sfhformer.restore.Restorer` does (an image no larger than a tile is one tile)."""
    p = protocol or Protocol(crop_border=crop_border, y_channel=y_channel)
    was_training = model.training
    model.eval()
    rows, previews = [], []
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n):
        sample = dataset[i]
        lq, gt = sample["lq"][None].to(device), sample["gt"][None]
        pred = model(lq).float() if tile is None else forward_tiled(lambda t: model(t).float(), lq, tile, tile_overlap)
        pred = pred.clamp(0, 1).cpu()
        rows.append((*score(pred, gt, name=f"validation image {sample['name']}", protocol=p),
                     psnr(lq.cpu(), gt, p.crop_border, p.y_channel, quantize=p.quantize, multiple=p.multiple)))
        previews.append(torch.cat([lq[0].cpu(), pred[0], gt[0]], dim=-1))
    model.train(was_training)
    arr = np.array(rows)
    return {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean()), "input_psnr": float(arr[:, 2].mean()),
            "previews": previews}


class RunLog:
    """What a run writes, on the main process only: ``config.json``, ``log.jsonl``, TensorBoard,
    checkpoints, and a progress bar."""

    def __init__(self, cfg: RunConfig, main: bool, step: int) -> None:
        from tqdm.auto import tqdm

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.checkpoints = self.out / "checkpoints"
        self.last_saved, self.t0 = step, time.time()
        self.bar = tqdm(total=cfg.train.steps, initial=step, disable=not main, unit="step", dynamic_ncols=True)
        self.writer = self.file = None

    def start(self) -> None:
        """Open the run's folder (main process): config.json, TensorBoard, log.jsonl."""
        from torch.utils.tensorboard import SummaryWriter

        try:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=1))
            self.file = open(self.out / "log.jsonl", "a")
        except OSError as e:
            raise OutputError(f"{self.out}: cannot write the run's folder ({e.strerror or e})") from None
        self.writer = SummaryWriter(str(self.out / "tensorboard"))

    def _record(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def train(self, step: int, loss: float, lr: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        self._record({"step": step, "loss": loss, "lr": lr, "time": time.time() - self.t0})
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def validation(self, step: int, result: dict[str, Any]) -> None:
        self._record({"step": step, "val_psnr": result["psnr"], "val_ssim": result["ssim"],
                      "val_input_psnr": result["input_psnr"]})
        self.bar.write(f"step {step}: val PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} "
                       f"(input {result['input_psnr']:.2f} dB)")
        self.writer.add_scalar("val/psnr", result["psnr"], step)
        self.writer.add_scalar("val/ssim", result["ssim"], step)
        for i, img in enumerate(result["previews"][: self.cfg.val.log_images]):
            self.writer.add_image(f"val/{i}_input_output_clean", img, step)

    def checkpoint(self, state: TrainState, name: str) -> None:
        state.save(self.checkpoints, name, self.cfg.to_dict(), self.cfg.name)

    def last_good(self) -> str:
        """Where the run can resume from, in words."""
        if not (self.checkpoints / "last.pt").exists():
            return "No checkpoint was written yet"
        return f"The last good checkpoint is {self.checkpoints / 'last.pt'} (step {self.last_saved})"

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()
