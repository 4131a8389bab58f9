"""What a run must keep to continue exactly where it stopped: :class:`TrainState`, its
checkpoint files, and the weights a new run may start from."""

from __future__ import annotations

import copy
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, TrainingError
from ..models import SFHformer, load, save
from ..models.checkpoint import nonfinite_tensors
from ..utils import atomic_path
from .schedule import make_scheduler


class TrainState:
    """The model, optimiser, schedule, gradient scaler, EMA, step, best validation PSNR and the
    random number generators, saved and restored as one ``state_dict()``.

    A checkpoint holds ``config`` (the network's, for our models), ``model``, ``optimizer``,
    ``scheduler``, ``scaler``, ``ema``, ``step``, ``best_psnr`` and ``rng``, and, written by
    :meth:`save`, ``train_config`` (the run's configuration); :func:`sfhformer.load` reads its
    model from it.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                 ema: EMA | None = None) -> None:
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
        if state["scaler"]:  # empty when the run was not in float16: a new float16 run starts afresh
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
        with atomic_path(folder / f"{name}.pt") as tmp:
            torch.save({**self.state_dict(), "train_config": run_config}, tmp)
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


class EMA:
    """An exponential moving average of a model's weights and buffers, with warm-up: update n
    (from 0) copies the model at n = 0, then mixes with decay min(decay, (1 + n) / (10 + n)), so
    short runs are not dominated by the random initial weights (timm's ModelEmaV3 warm-up).

    The update count lives on the host and the mixing is one fused in-place operation, so an
    update never waits for the device. ``state_dict()`` has the layout of
    ``torch.optim.swa_utils.AveragedModel`` (``module.``-prefixed entries and ``n_averaged``),
    which earlier checkpoints hold.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ours, theirs = self.module.state_dict(), model.state_dict()
        floats = [k for k, v in ours.items() if v.is_floating_point()]
        if self.updates == 0:
            for k, v in ours.items():
                v.copy_(theirs[k])
        else:
            n = self.updates
            torch._foreach_lerp_([ours[k] for k in floats], [theirs[k] for k in floats],
                                 1 - min(self.decay, (1 + n) / (10 + n)))
            for k, v in ours.items():  # integer buffers (BatchNorm's batch counter) follow the model
                if not v.is_floating_point():
                    v.copy_(theirs[k])
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{f"module.{k}": v for k, v in self.module.state_dict().items()},
                "n_averaged": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict({k.removeprefix("module."): v for k, v in state.items() if k.startswith("module.")})
        self.updates = int(state["n_averaged"])


def grown_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor],
                  source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``weights`` of a network with fewer blocks per stage, completed for ``model`` (``train.init_grow``):
    each stage's first blocks are the given ones, the blocks it adds keep ``model``'s own
    initial weights. A new SFHformer block starts as the identity (its residual scales beta and
    gamma are zero), so the grown network computes what the given one did, with room to learn.

    Raises:
        TrainingError: a tensor of ``weights`` that ``model`` lacks or holds in another shape, or
            a missing tensor that is not part of a whole block the given network lacks.
    """
    def block(key: str) -> str | None:  # "encoder1.1.mixer.conv.weight" -> "encoder1.1"; None outside stages
        parts = key.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else None

    target = model.state_dict()
    foreign = [k for k, v in weights.items() if k not in target or target[k].shape != v.shape]
    given = {block(k) for k in weights}
    missing = [k for k in target if k not in weights and (block(k) is None or block(k) in given)]
    added = sorted({block(k) for k in target if k not in weights} - {None} - given)
    not_identity = [b for b in added if not all(f"{b}.{scale}" in target and not target[f"{b}.{scale}"].any()
                                                for scale in ("beta", "gamma"))]
    if foreign or missing or not_identity:
        problem = f"its {foreign[0]} does not fit" if foreign else f"{missing[0]} is missing" if missing else \
            f"the added block {not_identity[0]} would not start as the identity (no zero beta and gamma)"
        raise TrainingError(f"{source}: train.init_grow needs the same network with fewer blocks per stage; {problem}")
    return {**target, **weights}


def initial_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict a run starts from with ``train.init_from``: from a training checkpoint
    (``.pt``) its EMA weights when it kept them, else its model; from a weights file (ours or
    the authors', :func:`sfhformer.load`) or a bundled model's name, the model it holds."""
    from ..pretrained import bundled_model, resolve_weights

    if not Path(path).is_file() and bundled_model(path) is None:
        raise TrainingError(f"{path}: train.init_from names no file, nor a bundled model")
    path = resolve_weights(path)
    if path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state:
            ema = state.get("ema")
            if ema:  # AveragedModel's state: "module."-prefixed weights plus n_averaged
                return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
            return state["model"]
    return load(path).state_dict()
