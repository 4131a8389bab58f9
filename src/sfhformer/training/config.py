"""A training run's configuration: typed dataclasses read from YAML and ``key.sub=value``
overrides. Unknown keys and values of the wrong type are refused with the key's path
(``train.batch_size: expected an integer, got 'abc'``); ``config.json`` records what runs.

    cfg = load_config("configs/denoise.yaml", ["train.lr=5e-4", "model.num_kernels=4"])
    cfg.train.lr, cfg.to_dict()
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, NotFoundError
from ..models import SFHformerConfig, get_preset


@dataclass
class TrainConfig:
    """Optimisation. The defaults are the ones this package has always used (see
    ``docs/training.md``); the authors' per-task recipes set every value explicitly."""

    steps: int | None = None  # optimiser steps; default 300,000 unless epochs is set
    epochs: int | None = None  # when set, steps = epochs x (dataset size // batch_size)
    batch_size: int = 8  # the global batch, split across processes
    lr: float = 1e-3
    weight_decay: float = 1e-3
    min_lr: float = 1e-6  # the cosine schedule's floor
    schedule: Literal["cosine", "constant"] = "cosine"
    schedule_every: Literal["step", "epoch"] = "step"  # epoch: the rate changes once per epoch
    schedule_length: int | None = None  # steps (or epochs) the cosine takes to reach min_lr; default: the run
    steps_per_epoch: int | None = None  # default: dataset size // batch_size (one pass over the data)
    betas: tuple[float, float] = (0.9, 0.999)
    loss: Literal["l1", "psnr"] = "l1"  # the pixel term; psnr: NAFNet's, each image weighs by its error in dB
    fft_loss_weight: float = 0.1
    grad_clip: float = 0.0  # 0: off
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0: none
    amp: Literal["auto", "bf16", "bfloat16", "fp16", "float16", "none", "off", "fp32"] | bool = "auto"
    seed: int = 0
    num_workers: int = 2
    device: str = "auto"
    # auto: on a CPU, glibc keeps freed memory for reuse (sfhformer.utils.keep_freed_memory): steps
    # skip the page faults of re-mapping every large tensor, and the process keeps its peak memory
    keep_freed_memory: Literal["auto"] | bool = "auto"
    sync_bn: bool = True  # BatchNorm statistics over the global batch when several processes run
    bn_chunks: int = 1  # > 1: statistics over each of this many chunks of a batch, as nn.DataParallel computes them
    checkpoint_activations: bool = False
    stop_at_step: int | None = None  # end early (a resumable checkpoint is written)
    init_from: str | None = None  # weights to start from: a run's .pt (its EMA when kept) or a weights file
    init_grow: bool = False  # init_from has fewer blocks per stage: they fill each stage's first, the rest start as identity

    def __post_init__(self) -> None:
        if self.steps is None and self.epochs is None:
            self.steps = 300_000
        _at_least(self, "train", steps=1, epochs=1, batch_size=1, num_workers=0, bn_chunks=1, schedule_length=1,
                  steps_per_epoch=1)
        _at_least(self, "train", lr=0.0, min_lr=0.0, weight_decay=0.0, grad_clip=0.0, fft_loss_weight=0.0)
        if not 0 <= self.ema < 1:
            raise ConfigError(f"train.ema: expected a decay in [0, 1), got {self.ema}")


@dataclass
class SyntheticData:
    """Clean photographs degraded on the fly (:class:`~sfhformer.data.SyntheticDataset`).
    ``images``: ``samples:train``, ``sample:<name>``, ``debian:train`` (desktop-background
    photographs, :mod:`sfhformer.data.debian`), a folder, a file, or a list of these.
    Fields left None take the dataset's default."""

    images: str | list[str]
    degradations: list[dict[str, Any]]
    type: Literal["synthetic"] = "synthetic"
    crop: int | None = None
    augment: bool | None = None
    length: int | None = None
    fixed: bool | None = None
    seed: int | None = None
    pad_small: bool | None = None
    max_side: int | None = None
    downscale_to: int | list[int] | None = None  # a list: one drawn per sample
    photometric: dict[str, Any] | None = None
    dead_leaves: dict[str, Any] | None = None  # synthetic shapes instead of a share of the crops
    full_res_chroma: bool | None = None  # shrink chroma-subsampled JPEGs at least 2x


@dataclass
class PairedData:
    """Degraded/clean image pairs (:class:`~sfhformer.data.PairedImageDataset`): a benchmark's
    ``root`` with its ``layout``, or two folders. Fields left None take the dataset's default."""

    type: Literal["paired"] = "paired"
    root: str | None = None
    layout: str | None = None
    degraded_dir: str | None = None
    clean_dir: str | None = None
    split: str | None = None  # a shipped split (lsui_train, ...) or a file of names
    crop: int | None = None
    augment: bool | None = None
    pad_small: bool | None = None
    resize_small: bool | None = None  # resize images below the crop up (the authors' loaders)
    center_multiple: int | None = None  # centre-crop to a multiple of this (the authors' test loaders: 8)
    seed: int | None = None


DatasetConfig = SyntheticData | PairedData


@dataclass
class DataConfig:
    train: DatasetConfig
    val: DatasetConfig | None = None


@dataclass
class ValConfig:
    every: int = 1000
    every_epochs: int | None = None  # when set, every = this many epochs' steps
    protocol: Literal["basicsr", "authors"] = "basicsr"  # authors: float values, never rounded to uint8
    crop_border: int = 0
    y_channel: bool = False
    max_images: int | None = None
    log_images: int = 3
    # Validate the way the model will be used: a bundled model restores in tiles, and whole
    # images scored in one pass picked the wrong checkpoint of denoise@2 (docs/bundled-models.md).
    tile: int | None = None  # None: whole images in one pass
    tile_overlap: int = 32

    def __post_init__(self) -> None:
        _at_least(self, "val", every=1, every_epochs=1, crop_border=0, log_images=0, max_images=1, tile=8,
                  tile_overlap=0)
        if self.tile is not None and self.tile_overlap >= self.tile:
            raise ConfigError(f"val.tile_overlap must be smaller than val.tile ({self.tile}), got {self.tile_overlap}")


@dataclass
class LogConfig:
    every: int = 50

    def __post_init__(self) -> None:
        _at_least(self, "log", every=1)


@dataclass
class CheckpointConfig:
    every: int = 1000
    every_epochs: int | None = None  # when set, every = this many epochs' steps

    def __post_init__(self) -> None:
        _at_least(self, "checkpoint", every=1, every_epochs=1)


@dataclass
class RunConfig:
    """Everything a run needs. ``model``: ``preset`` plus any :class:`SFHformerConfig` field.
    ``resume``: ``auto`` continues from ``out_dir/checkpoints/last.pt`` when present; a path;
    or false."""

    data: DataConfig
    name: str = "experiment"
    out_dir: str | None = None  # default runs/<name>
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "sfhformer_t"})
    train: TrainConfig = field(default_factory=TrainConfig)
    val: ValConfig = field(default_factory=ValConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    resume: str | bool | None = "auto"

    def __post_init__(self) -> None:
        if self.out_dir is None:
            self.out_dir = str(Path("runs") / self.name)
        self.model_config()  # refuse a bad model section now, not after the data are loaded

    def model_config(self) -> SFHformerConfig:
        """The network the ``model`` section describes."""
        fields_ = dict(self.model)
        preset = fields_.pop("preset", "sfhformer_t")
        try:
            return get_preset(preset).replace(**fields_)
        except ConfigError as e:
            raise ConfigError(f"model: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready), every key with its final value."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> RunConfig:
    """The defaults, updated by a YAML file, then by ``key.sub=value`` overrides whose values
    are YAML (``off`` is false, ``1e-3`` a number, ``[16, 32]`` a list).

    Raises:
        ConfigError: bad YAML, an unknown key or a wrong type (naming the key's path).
        NotFoundError: the file does not exist.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"{path}: no such config file")
        raw = parse_yaml(path.read_text(), str(path))
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for key, value in parse_overrides(overrides or []).items():
        set_path(raw, key, value)
    if "data" not in raw or not (raw["data"] or {}).get("train"):
        raise ConfigError("the config has no data.train section")
    return from_mapping(RunConfig, raw, "")


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def parse_yaml(text: str, where: str) -> Any:
    """YAML, with ``1e-3`` read as a number (PyYAML follows YAML 1.1, which wants ``1.0e-3``)."""
    import yaml

    try:
        return _numbers(yaml.safe_load(text))
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None


def _numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=5e-4", "val.y_channel=on"]`` -> ``{"train.lr": 0.0005, "val.y_channel": True}``:
    values are YAML, the one override syntax of ``sfhformer train`` and every ``--set``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        out[key.strip()] = parse_yaml(value, f"override {item!r}") if value.strip() else None
    return out


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """``tree["a"]["b"] = value`` for ``"a.b"``, creating mappings on the way."""
    *parents, last = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parents[:i + 1])}: is {child!r}, not a section, so {dotted} cannot be set")
        node = child
    node[last] = value


def from_mapping(cls: type, data: Any, path: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping, every value checked against its type."""
    if isinstance(data, cls):
        return data
    where = path or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"unknown config key {_join(path, unknown[0])!r}; known here: {', '.join(names)}")
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in data]
    if required:
        raise ConfigError(f"{_join(path, required[0])}: required")
    try:
        return cls(**{k: _coerce(v, hints[k], _join(path, k)) for k, v in data.items()})
    except TypeError as e:  # a check in __post_init__ met a value of an unexpected kind
        raise ConfigError(f"{where}: {e}") from None


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tagged = [a for a in args if dataclasses.is_dataclass(a) and "type" in {f.name for f in dataclasses.fields(a)}]
        if tagged and isinstance(value, dict):  # a tagged union (datasets): choose by "type"
            kind = value.get("type", "paired")
            for arm in tagged:
                if kind == arm.type:
                    return from_mapping(arm, value, path)
            raise ConfigError(f"{path}.type: expected one of {', '.join(a.type for a in tagged)}, got {kind!r}")
        for arm in args:
            try:
                return _coerce(value, arm, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in args and type(value) is type(args[list(args).index(value)]):
            return value
        raise ConfigError(f"{path}: expected one of {', '.join(map(str, args))}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) != len(args):
                    raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
                return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            item = args[0] if args else Any
            return origin(_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - a type this reader was not taught
        raise TypeError(f"{path}: cannot check values of type {tp}")
    raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "nothing (null)"}.get(tp, str(tp))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at_least(obj: Any, section: str, **minimums: float) -> None:
    for name, low in minimums.items():
        value = getattr(obj, name)
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{section}.{name}: expected a finite number, got {value}")
        if value is not None and value < low:
            raise ConfigError(f"{section}.{name}: expected at least {low}, got {value}")

