"""What a run must keep to continue exactly where it stopped: :class:`TrainState`, its
checkpoint files, and the weights a new run may start from."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, OutputError, TrainingError
from ..models import SFHformer, load, save
from ..models.checkpoint import nonfinite_tensors
from ..utils import atomic_path
from .schedule import make_scheduler


class TrainState:
    """The model, optimiser, schedule, gradient scaler, EMA, step, best validation PSNR and the
    random number generators, saved and restored as one ``state_dict()``.

    A checkpoint holds ``config`` (the network's, for our models), ``model``, ``optimizer``,
    ``scheduler``, ``scaler``, ``ema``, ``step``, ``best_psnr`` and ``rng``;
    :func:`sfhformer.load` reads its model from it.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                 ema: torch.optim.swa_utils.AveragedModel | None = None) -> None:
        self.model, self.optimizer, self.scheduler, self.scaler, self.ema = model, optimizer, scheduler, scaler, ema
        self.step = 0
        self.best_psnr = -math.inf
        self._pending_rng: dict[str, Any] | None = None

    @property
    def weights(self) -> nn.Module:
        """The network users restore with: the EMA when kept, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        ours = isinstance(self.model, SFHformer)
        return {"config": self.model.config.to_dict() if ours else None, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
                "step": self.step, "best_psnr": self.best_psnr, "rng": rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Everything but the RNGs, which :meth:`restore_rng` sets once the run is ready to step
        (building the data must not draw from them)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.best_psnr = state["step"], state["best_psnr"]
        self._pending_rng = state["rng"]

    def apply_schedule(self, lr: float | None, steps: int, min_lr: float, weight_decay: float,
                       betas: tuple[float, float], reschedule: bool, kind: str = "cosine",
                       steps_per_epoch: int = 0) -> None:
        """Continue with changed optimiser settings: the new weight decay and betas and, when
        ``reschedule``, a schedule from ``lr`` (None: the rate reached so far) at the current
        step down to ``min_lr`` at ``steps``. A resumed run that extends its steps thus keeps
        decaying instead of climbing back up the old cosine."""
        for group in self.optimizer.param_groups:
            group.update(weight_decay=weight_decay, betas=tuple(betas))
        if not reschedule:
            return
        if steps <= self.step:
            raise ConfigError(f"train.steps {steps}: the run is already at step {self.step}")
        start = self.scheduler.get_last_lr()[0] if lr is None else lr
        self.scheduler = make_scheduler(self.optimizer, kind, start, min_lr, steps - self.step, steps_per_epoch,
                                        offset=self.step)

    def restore_rng(self) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    def nonfinite(self) -> list[str]:
        """Names of the saved tensors (weights, BatchNorm statistics, EMA, optimiser moments)
        that hold NaN or Inf: a run that diverged without its loss showing it."""
        return nonfinite_tensors({"model": self.model.state_dict(),
                                  "ema": self.ema.state_dict() if self.ema is not None else {},
                                  "optimizer": self.optimizer.state_dict()["state"]})

    def save(self, folder: Path, name: str, run_config: dict[str, Any], run_name: str) -> None:
        """``<name>.pt`` (everything, to resume) and, for our models, ``<name>.safetensors``
        (the weights users restore with), each written atomically."""
        try:
            with atomic_path(folder / f"{name}.pt") as tmp:
                torch.save({**self.state_dict(), "train_config": run_config}, tmp)
        except OSError as e:
            raise OutputError(f"{folder / f'{name}.pt'}: cannot be written ({e.strerror or e})") from None
        if isinstance(self.model, SFHformer):
            save(self.weights, folder / f"{name}.safetensors", metadata={"step": str(self.step), "name": run_name})


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain values, so checkpoints load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    return load(path).state_dict()
