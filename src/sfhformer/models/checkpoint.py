"""Reading and writing weights: the authors' checkpoints and our own safetensors files.

The authors' files are ``{'state_dict': {'module.<key>': tensor}}`` in their module names;
this module infers the architecture from the keys and shapes alone, renames the keys to
ours and reports what does not fit. Our own files are safetensors with the config in the
metadata, so a file alone rebuilds its model.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ..utils import atomic_path
from .config import SFHformerConfig, get_preset, preset_name
from .network import SFHformer

FORMAT_NAME = "sfhformer"


class CheckpointError(ValueError):
    """A weights file that cannot be read or does not fit the model; the message names the file."""


# Our module names -> the authors', one dotted name component at a time (the last component,
# the parameter name, is never renamed). Our names are unique within a family, so the map is
# a bijection on the keys of any one model.
_COMMON_NAMES = {
    "embed": "patch_embed.proj",
    "encoder1": "layer1.blocks",
    "encoder2": "layer2.blocks",
    "bottleneck": "layer3.blocks",
    "fuse2": "skip2",
    "fuse1": "skip1",
    "head": "patch_unembed.proj",
    "proj_in": "conv_init.0",
    "proj_out": "conv_fina.0",
    "dw3": "conv1_1.0",
    "dw5": "conv1_2.0",
    "dw7": "conv1_3.0",
    "local_branch": "mixer_local",
    "global_branch": "mixer_gloal",
    "fourier": "FFC",
    "dw_dil1": "CDilated_1",
    "dw_dil2": "CDilated_2",
    "attention": "ca",
    "reduce": "1",
    "expand": "3",
}
AUTHORS_NAMES: dict[str, dict[str, str]] = {
    "paper": {**_COMMON_NAMES,
              "down1": "downsample1.proj.0", "down2": "downsample2.proj.0",
              "up2": "upsample3.proj", "up1": "upsample4.proj",
              "decoder2": "layer8.blocks", "decoder1": "layer9.blocks",
              "out_proj": "ca_conv.0",
              "norm": "bn", "pos_enc": "fpe", "mix_logits": "weight.0", "spectral_conv": "fdc"},
    "haze": {**_COMMON_NAMES,
             "down1": "downsample1.proj.0", "down2": "downsample2.proj.0",
             "up2": "upsample3.proj", "up1": "upsample4.proj",
             "decoder2": "layer8.blocks", "decoder1": "layer9.blocks",
             "out_proj": "ca_conv.0",
             "norm": "bn1", "pos_enc": "conv_layer2.0", "spectral_conv": "conv_layer1.0"},
    "lol": {**_COMMON_NAMES,
            "down1": "downsample1.proj", "down2": "downsample2.proj",
            "up2": "upsample1.proj", "up1": "upsample2.proj",
            "decoder2": "layer4.blocks", "decoder1": "layer5.blocks",
            "out_proj": "ca_conv",
            "norm": "bn1", "spectral_conv": "conv_layer1.0"},
}

# Tensors in the authors' files that their forward never reads (SPEC-families.md).
_UNUSED_AUTHORS_KEYS = {
    "paper": None,
    "haze": re.compile(r"\.FFC\.(conv_layer\.weight|bn2\.\w+|norm1\.body\.\w+)$"),
    "lol": re.compile(r"\.FFC\.(conv_layer\.weight|bn2\.\w+)$"),
}
# Checked only when the Fourier BN is switched off (the ITS dehazing checkpoint).
_FOURIER_BN_KEYS = re.compile(r"\.FFC\.bn1\.\w+$")

_WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "model_state_dict", "net")
_PREFIXES = ("module.", "_orig_mod.")


def to_authors_key(key: str, family: str) -> str:
    """Our state-dict key -> the authors' name for the same tensor."""
    names = AUTHORS_NAMES[family]
    *path, param = key.split(".")
    return ".".join([names.get(part, part) for part in path] + [param])


def authors_key_map(model: SFHformer) -> dict[str, str]:
    """{our key: authors' key} for every entry of ``model.state_dict()``."""
    return {k: to_authors_key(k, model.config.family) for k in model.state_dict()}


def is_unused_authors_key(key: str, config: SFHformerConfig) -> bool:
    """True for tensors in the authors' files that the forward with ``config`` never reads."""
    pattern = _UNUSED_AUTHORS_KEYS[config.family]
    if pattern is not None and pattern.search(key):
        return True
    return config.family == "haze" and not config.fourier_bn and bool(_FOURIER_BN_KEYS.search(key))


# ---------------------------------------------------------------------------------------------
# Inferring the architecture from the authors' keys and shapes
# ---------------------------------------------------------------------------------------------

def _stage_depth(state: dict[str, torch.Tensor], layer: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(rf"{layer}\.blocks\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def infer_config(state: dict[str, torch.Tensor]) -> SFHformerConfig:
    """The config of an authors'-format state dict (no ``module.`` prefix), from keys and shapes.

    The Fourier BN switch of the haze family cannot be seen in the keys; it is left on.
    Raises KeyError naming a key the architecture cannot be told without.
    """
    def shape(key: str) -> torch.Size:
        if key not in state:
            raise KeyError(key)
        return state[key].shape

    c0 = shape("patch_embed.proj.weight")[0]
    if any(k.startswith("upsample1.") for k in state):
        family = "lol"
        c1, c2 = 4 * shape("downsample1.proj.0.weight")[0], 4 * shape("downsample2.proj.0.weight")[0]
        u1, u0 = shape("upsample1.proj.0.weight")[0] // 4, shape("upsample2.proj.0.weight")[0] // 4
        layers = ("layer1", "layer2", "layer3", "layer4", "layer5")
    else:
        family = "haze" if any(".FFC.conv_layer1." in k for k in state) else "paper"
        c1, c2 = shape("downsample1.proj.0.weight")[0], shape("downsample2.proj.0.weight")[0]
        u1, u0 = shape("upsample3.proj.0.weight")[0] // 4, shape("upsample4.proj.0.weight")[0] // 4
        layers = ("layer1", "layer2", "layer3", "layer8", "layer9")
    kernels = [v.shape[0] for k, v in state.items() if k.endswith(".FFC.weight.0.weight")]
    return SFHformerConfig(family=family, widths=(c0, c1, c2), up_widths=(u1, u0),
                           depths=tuple(_stage_depth(state, layer) for layer in layers),
                           num_kernels=kernels[0] if kernels else 1)


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------

def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], SFHformerConfig | None]:
    """The tensors of a weights file (wrappers and ``module.`` prefixes removed) and, for our
    own files, the stored config. Never unpickles anything but tensors and containers."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    config_data: Any = None
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                config_data = (f.metadata() or {}).get("config")
            obj: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): "
                                  f"{_first_line(e)}") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise CheckpointError(f"{path}: holds objects other than tensors, or is not a PyTorch "
                                  f"checkpoint; refusing to unpickle it ({_first_line(e)})") from None
        except Exception as e:  # garbage makes torch raise anything (KeyError, EOFError, zip errors...)
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): "
                                  f"{_first_line(e)}") from None
        if isinstance(obj, dict) and "config" in obj:
            config_data = obj["config"]
    state = _unwrap(obj, path)
    config = None
    if config_data is not None:
        try:
            config = SFHformerConfig.from_dict(json.loads(config_data) if isinstance(config_data, str)
                                               else dict(config_data))
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: its stored config is invalid: {e}") from None
    return state, config


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:  # an 8-byte header length, then a JSON header starting with '{'
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # e.g. {'state_dict': {...}} or {'model': {'params': {...}}}
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    state = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, torch.Tensor):
                for prefix in _PREFIXES:
                    key = key.removeprefix(prefix)
                state[key] = value
    if not state:
        found = f"top-level keys: {', '.join(map(str, list(obj)[:6]))}" if isinstance(obj, dict) and obj \
            else f"found {type(obj).__name__}"
        raise CheckpointError(f"{path}: holds no state dict (expected a dict of tensors, or one under one of "
                              f"{', '.join(_WRAPPER_KEYS)}; {found})")
    return state


# ---------------------------------------------------------------------------------------------
# Loading and saving
# ---------------------------------------------------------------------------------------------

def _has_our_names(state: dict[str, torch.Tensor]) -> bool:
    return any(k.split(".", 1)[0] in ("embed", "encoder1", "bottleneck") for k in state)


def _fit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, what: str,
         ignore: Any = lambda key: False) -> None:
    """Raise one CheckpointError listing missing, unexpected and mis-shaped keys, if any."""
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and not ignore(k)]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or misshaped):
        return

    def few(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f", ... ({len(items) - 4} more)" if len(items) > 4 else "")

    parts = [f"{len(items)} {label} ({few(items)})" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("mis-shaped, file vs model", misshaped))
             if items]
    raise CheckpointError(f"{path}: does not fit {what}: " + "; ".join(parts))


def load(path: str | os.PathLike, preset: str | None = None, *, device: str | torch.device = "cpu",
         **overrides: Any) -> SFHformer:
    """A ready model (eval mode, on ``device``) from an authors' checkpoint or one of our files.

    The architecture comes from ``preset`` when given, else from the file: the stored config
    of our files, or the keys and shapes of the authors'. ``overrides`` set config fields,
    e.g. ``fourier_bn=False`` for an ITS-style dehazing checkpoint of a non-preset size.

    Raises:
        CheckpointError: the file is missing, unreadable, or does not fit the architecture.
    """
    path = Path(path)
    state, stored = read_checkpoint(path)
    ours = _has_our_names(state)
    try:
        if preset is not None:
            config = get_preset(preset)
        elif stored is not None:
            config = stored
        elif ours:
            raise CheckpointError(f"{path}: has sfhformer key names but no stored config; pass a preset")
        else:
            try:
                config = infer_config(state)
            except KeyError as e:
                raise CheckpointError(f"{path}: not an SFHformer checkpoint: it has no {e} (first keys: "
                                      f"{', '.join(list(state)[:3])})") from None
        config = config.replace(**overrides) if overrides else config
    except ValueError as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: {e}") from None

    model = SFHformer(config)
    what = f"preset {preset!r}" if preset else (preset_name(config) or f"the inferred {config}")
    expected = model.state_dict()
    if ours:
        _fit(state, expected, path, what)
    else:
        names = authors_key_map(model)
        _fit(state, {names[k]: v for k, v in expected.items()}, path, what,
             ignore=lambda key: is_unused_authors_key(key, config))
        state = {k: state[a] for k, a in names.items() if a in state}
    model.load_state_dict(state, strict=False)  # strictness was checked above, with clearer errors
    return model.to(device).eval()


def save(model: SFHformer, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as safetensors with its config in the metadata, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if getattr(model, "fused", False):
        raise ValueError(f"{path}: a fused model cannot be saved (its BatchNorms are folded away); save it "
                         f"before fuse()")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT_NAME, "config": json.dumps(model.config.to_dict()), **(metadata or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def convert(src: str | os.PathLike, dst: str | os.PathLike, preset: str | None = None,
            **overrides: Any) -> SFHformer:
    """Read any supported checkpoint and write it in our format; returns the model."""
    model = load(src, preset, **overrides)
    save(model, dst, metadata={"source": Path(src).name})
    return model
