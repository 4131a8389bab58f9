"""Reading and writing weights: the authors' checkpoints and our own safetensors files.

The authors' files are ``{'state_dict': {'module.<key>': tensor}}`` in their module names
(:mod:`.authors` infers the architecture from keys and shapes and renames them); what does not
fit is reported in one error. Our own files are safetensors with the config in the metadata,
so a file alone rebuilds its model.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..utils import atomic_path, shorten_list
from .authors import authors_key_map, infer_config, is_unused_authors_key, to_our_state
from .config import SFHformerConfig, get_preset, preset_name
from .network import SFHformer

FORMAT_NAME = "sfhformer"
FOLDER_WEIGHTS, FOLDER_CONFIG, FOLDER_CARD = "model.safetensors", "config.json", "README.md"

_WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "model_state_dict", "net")
_PREFIXES = ("module.", "_orig_mod.")


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
    if path.is_dir() and (path / FOLDER_WEIGHTS).is_file():  # a folder in the Hugging Face layout
        path = path / FOLDER_WEIGHTS
    if not path.is_file():
        from ..pretrained import BUNDLED

        hint = (f"; an existing path wins over the bundled model {path.name!r}: run from another folder or "
                f"rename it" if str(path) in BUNDLED else "")
        raise CheckpointError(f"{path}: is a folder without {FOLDER_WEIGHTS}, not weights{hint}")
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


def check_fit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, what: str,
         ignore: Any = lambda key: False) -> None:
    """Raise one CheckpointError listing missing, unexpected and mis-shaped keys, if any."""
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and not ignore(k)]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or misshaped):
        return

    parts = [f"{len(items)} {label} ({shorten_list(items, 4)})" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("mis-shaped, file vs model", misshaped))
             if items]
    raise CheckpointError(f"{path}: does not fit {what}: " + "; ".join(parts))


def nonfinite_tensors(tensors: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in a (possibly nested) mapping that hold NaN or Inf
    (one wait for each device the tensors are on)."""
    named: list[tuple[str, torch.Tensor]] = []

    def collect(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                collect(f"{prefix}{k}.", v)
        elif isinstance(value, (list, tuple)):
            for k, v in enumerate(value):
                collect(f"{prefix}{k}.", v)
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            named.append((prefix[:-1], value))

    collect("", tensors)
    found: set[str] = set()
    for device in {t.device for _, t in named}:
        group = [(n, t) for n, t in named if t.device == device]
        finite = torch.stack([torch.isfinite(t).all() for _, t in group]).tolist()
        found |= {n for (n, _), ok in zip(group, finite) if not ok}
    return [n for n, _ in named if n in found]


def load(weights: str | os.PathLike, preset: str | None = None, *, device: str | torch.device = "cpu",
         allow_nonfinite: bool = False, **overrides: Any) -> SFHformer:
    """A ready model (eval mode, on ``device``) from an authors' checkpoint, one of our files or
    a bundled model's name (``"denoise"``; a path that exists wins over a bundled name).

    The architecture comes from ``preset`` when given, else from the file: the stored config
    of our files, or the keys and shapes of the authors'. ``overrides`` set config fields,
    e.g. ``fourier_bn=False`` for an ITS-style dehazing checkpoint of a non-preset size.
    Weights with NaN or Inf (a diverged training run) are refused unless ``allow_nonfinite``
    (for forensics).

    Raises:
        NotFoundError: neither an existing path nor a bundled model name.
        CheckpointError: the file is unreadable or does not fit the architecture.
    """
    from ..pretrained import resolve_weights

    path = resolve_weights(weights)
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
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None

    model = SFHformer(config)
    what = f"preset {preset!r}" if preset else (preset_name(config) or f"the inferred {config}")
    expected = model.state_dict()
    if ours:
        check_fit(state, expected, path, what)
    else:
        names = authors_key_map(model)
        check_fit(state, {names[k]: v for k, v in expected.items()}, path, what,
             ignore=lambda key: is_unused_authors_key(key, config))
        state = to_our_state(state, model)  # only what the model reads: unused tensors may hold anything
    bad = [] if allow_nonfinite else nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"{path}: holds NaN or Inf in {len(bad)} tensor(s) ({shorten_list(bad, 4)}), as a "
                              f"diverged training run leaves them; refusing it (allow_nonfinite=True loads it anyway)")
    model.load_state_dict(state, strict=False)  # strictness was checked above, with clearer errors
    return model.to(device).eval()


def save(model: SFHformer, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as safetensors with its config in the metadata, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if getattr(model, "fused", False):
        raise ConfigError(f"{path}: a fused model cannot be saved (its BatchNorms are folded away); save it "
                         f"before fuse()")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    bad = nonfinite_tensors(tensors)
    if bad:
        raise CheckpointError(f"{path}: refusing to save weights with NaN or Inf in {len(bad)} tensor(s) "
                              f"({shorten_list(bad, 4)})")
    meta = {"format": FORMAT_NAME, "config": json.dumps(model.config.to_dict()), **(metadata or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def convert(src: str | os.PathLike, dst: str | os.PathLike, preset: str | None = None, *,
            to_folder: bool = False, **overrides: Any) -> SFHformer:
    """Read any supported checkpoint and write it in our format (a safetensors file, or with
    ``to_folder`` a folder in the Hugging Face layout); returns the model."""
    from ..pretrained import bundled_model

    model = load(src, preset, **overrides)
    if to_folder:
        bundled = bundled_model(src)
        save_pretrained(model, dst, source=Path(src).name, recipe=bundled.recipe if bundled else None)
    else:
        save(model, dst, metadata={"source": Path(src).name})
    return model


def save_pretrained(model: SFHformer, folder: str | os.PathLike, *, source: str | None = None,
                    recipe: str | None = None, metrics: dict[str, float] | None = None,
                    license: str = "mit") -> Path:
    """Write ``model`` as a folder in the Hugging Face layout, with nothing fetched or pushed:
    ``model.safetensors`` (ours, its config in the metadata), ``config.json`` and a ``README.md``
    model card whose YAML header carries ``library_name: sfhformer``, ``pipeline_tag:
    image-to-image``, the license, tags, and the source, training recipe and metrics when known.
    :func:`load`, ``Restorer.from_pretrained`` and every ``--weights`` take the folder."""
    import yaml

    folder = Path(folder)
    config = model.config.to_dict()
    preset = preset_name(model.config)
    save(model, folder / FOLDER_WEIGHTS, metadata={"source": source or ""})
    with atomic_path(folder / FOLDER_CONFIG) as tmp:
        tmp.write_text(json.dumps({"library": FORMAT_NAME, "preset": preset, **config}, indent=1))
    known = {"preset": preset, "config": config, "source": source, "recipe": recipe, "metrics": metrics}
    header = {"library_name": FORMAT_NAME, "pipeline_tag": "image-to-image", "license": license,
              "tags": ["sfhformer", "image-restoration", f"{model.config.family}-family"] + ([preset] if preset else []),
              "sfhformer": {k: v for k, v in known.items() if v is not None}}
    card = (f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n# SFHformer{f' ({preset})' if preset else ''}\n\n"
            f"An SFHformer network (\"When Fast Fourier Transform Meets Transformer for Image Restoration\", "
            f"ECCV 2024) of the {model.config.family} family, in the layout of the `sfhformer` package:\n\n"
            f"```python\nimport sfhformer\nmodel = sfhformer.load(\"{folder.name}\")\n```\n\n"
            f"or `sfhformer restore photos/ -o restored/ --weights {folder.name}`.\n")
    with atomic_path(folder / FOLDER_CARD) as tmp:
        tmp.write_text(card)
    return folder
