"""SFHformer in spandrel, the model loader of chaiNNer and ComfyUI.

>>> from sfhformer.integrations.spandrel import install
>>> install()                                   # once per process; idempotent
>>> import spandrel
>>> model = spandrel.ModelLoader().load_from_file("sfhformer_haze_ots.pth")  # an ImageModelDescriptor

After :func:`install`, spandrel loads the authors' ``.pth`` files of every family and our own
safetensors files. spandrel hands detection a bare state dict (never the file's metadata), so
the architecture is read from keys and shapes alone, and a state dict counts as SFHformer only
when a model built from what was read takes every one of its tensors with the right shape: an
exact fit, which another architecture's state dict cannot pass by sharing a few key names.

What the keys cannot tell: the authors' ITS and OTS dehazing files have the same keys (ITS is
evaluated with the Fourier unit's BatchNorm skipped), so an authors' haze file loads as OTS.
Convert ITS once (``sfhformer convert its.pth its.safetensors --preset haze_its``): our files
of that preset hold no Fourier BatchNorm, which is how they are told apart. See ``docs/spandrel.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

try:
    from spandrel import (
        MAIN_REGISTRY,
        Architecture,
        ArchRegistry,
        ArchSupport,
        ImageModelDescriptor,
        ModelTiling,
        SizeRequirements,
    )
except ImportError as e:  # spandrel itself, or its own dependencies (torchvision, einops)
    raise ImportError(f"sfhformer.integrations.spandrel needs spandrel (pip install 'spandrel>=0.4'): {e}") from e

from ..errors import CheckpointError, ConfigError
from ..models.authors import (
    authors_key_map,
    infer_config,
    is_unused_authors_key,
    to_authors_key,
    to_our_state,
)
from ..models.checkpoint import check_fit, nonfinite_tensors
from ..models.config import FAMILIES, SFHformerConfig, preset_name
from ..models.network import SFHformer
from ..utils import shorten_list

ARCH_ID = "SFHformer"

# Keys every model of every family has, in each naming: a cheap test before the exact one.
_AUTHORS_KEYS = ("patch_embed.proj.weight", "skip1.weight", "skip2.weight", "patch_unembed.proj.0.weight")
_OUR_KEYS = ("embed.weight", "fuse1.weight", "fuse2.weight", "head.0.weight")


@functools.lru_cache(maxsize=8)
def _meta_model(config: SFHformerConfig) -> SFHformer:
    """A model without storage: its state dict's keys and shapes are what a file must match."""
    with torch.device("meta"):
        return SFHformer(config)


def _require_fit(state: Mapping[str, Any], config: SFHformerConfig, ours: bool) -> None:
    """Raise CheckpointError unless ``state`` has exactly the tensors of ``config``'s model
    (missing BatchNorm counters and the tensors the authors' forward never reads aside)."""
    model = _meta_model(config)
    what = preset_name(config) or f"the inferred {config}"
    if ours:
        check_fit(dict(state), model.state_dict(), "state dict", what)
    else:
        names = authors_key_map(model)
        check_fit(dict(state), {names[k]: v for k, v in model.state_dict().items()}, "state dict", what,
             ignore=lambda key: is_unused_authors_key(key, config))


def infer_our_config(state: Mapping[str, Any]) -> SFHformerConfig:
    """The config of a state dict in our key names (our safetensors files without their
    metadata, or ``model.state_dict()``), from keys and shapes.

    Each family in turn: rename the keys to the authors' (:func:`~sfhformer.models.authors.to_authors_key`),
    read them with :func:`~sfhformer.models.authors.infer_config`, keep the family whose model fits
    exactly. The haze family's ``fourier_bn`` is the presence of the Fourier unit's BatchNorm
    (a model with ``fourier_bn=False``, as ``haze_its``, has none).

    Raises:
        CheckpointError: no family fits; the message says why for the families that came close.
    """
    why = []
    for family in FAMILIES:
        try:
            config = infer_config({to_authors_key(k, family): v for k, v in state.items()})
        except (KeyError, ConfigError, IndexError):
            continue
        if config.family != family:
            continue
        try:
            if family == "haze" and not any(".fourier.norm." in k for k in state):
                config = config.replace(fourier_bn=False)
            _require_fit(state, config, ours=True)
            return config
        except (ConfigError, CheckpointError) as e:
            why.append(f"{family}: {e}")
    raise CheckpointError("not an SFHformer state dict in sfhformer's key names"
                          + (f" ({'; '.join(why)})" if why else ""))


def config_of(state: Mapping[str, Any]) -> tuple[SFHformerConfig, bool]:
    """(config, whether the keys are ours rather than the authors') of a state dict that fits an
    SFHformer exactly. Raises CheckpointError saying why not."""
    if all(k in state for k in _OUR_KEYS):
        return infer_our_config(state), True
    if not all(k in state for k in _AUTHORS_KEYS):
        missing = [k for k in (*_AUTHORS_KEYS, *_OUR_KEYS) if k not in state]
        raise CheckpointError(f"not an SFHformer state dict: it has none of the key sets of the authors' files "
                              f"or ours (missing {shorten_list(missing, 4)})")
    try:
        config = infer_config(dict(state))
        if config.family == "haze" and not any(".FFC.bn1." in k for k in state):
            config = config.replace(fourier_bn=False)  # never so in the authors' files: they keep bn1
    except KeyError as e:
        raise CheckpointError(f"not an SFHformer checkpoint: it has no {e}") from None
    except ConfigError as e:
        raise CheckpointError(f"not an SFHformer checkpoint: {e}") from None
    _require_fit(state, config, ours=False)
    return config, False


def detect(state: Mapping[str, Any]) -> bool:
    """spandrel's detection: True when ``state`` is an SFHformer state dict (authors' or ours)."""
    if not (all(k in state for k in _OUR_KEYS) or all(k in state for k in _AUTHORS_KEYS)):
        return False
    try:
        config_of(state)
    except Exception:  # noqa: BLE001 -- a detector must never break the detection of the architectures after it
        return False
    return True


def _tags(config: SFHformerConfig) -> list[str]:
    """[family, preset name] (and K when a preset was trained with K kernels); shapes when no
    preset matches."""
    name = preset_name(config)
    if name:
        return [config.family, name]
    base = preset_name(config.replace(num_kernels=1)) if config.num_kernels > 1 else None
    if base:
        return [config.family, base, f"K{config.num_kernels}"]
    tags = [config.family, "custom", "-".join(map(str, config.widths)) + "nf",
            "-".join(map(str, config.depths)) + "b"]
    if config.num_kernels > 1:
        tags.append(f"K{config.num_kernels}")
    if not config.fourier_bn:
        tags.append("no-fourier-bn")
    return tags


def _tiling(config: SFHformerConfig) -> ModelTiling:
    """DISCOURAGED for dehazing and low-light models: they correct haze and exposure of the
    whole picture, which the Fourier branch reads from the whole input, so tiles would each get
    their own correction and show seams (spandrel marks MixDehazeNet, RetinexFormer and
    HVI-CIDNet so). SUPPORTED for the others (denoising, deblurring: local degradations, as
    spandrel's FFTformer): they tile well, our bundled denoiser even restores better in tiles of
    its training size."""
    if config.family == "lol" or (config.family == "haze" and preset_name(config) != "motion_blur"):
        return ModelTiling.DISCOURAGED
    return ModelTiling.SUPPORTED


class SFHformerArch(Architecture[SFHformer]):
    """SFHformer (ECCV 2024), every family: the authors' checkpoints and our files."""

    def __init__(self) -> None:
        super().__init__(id=ARCH_ID, name="SFHformer", detect=detect)

    def load(self, state_dict: Mapping[str, Any]) -> ImageModelDescriptor[SFHformer]:
        config, ours = config_of(state_dict)
        model = SFHformer(config)
        state = dict(state_dict) if ours else to_our_state(dict(state_dict), model)
        for key, value in model.state_dict().items():  # BatchNorm counters older files lack
            if key.endswith("num_batches_tracked"):
                state.setdefault(key, value)
        bad = nonfinite_tensors(state)
        if bad:
            raise CheckpointError(f"state dict holds NaN or Inf in {len(bad)} tensor(s) ({shorten_list(bad, 4)}), "
                                  f"as a diverged training run leaves them; refusing it")
        descriptor = ImageModelDescriptor(
            model,
            state,  # our key names, exactly the model's: spandrel loads it strictly
            architecture=self,
            purpose="Restoration",
            tags=_tags(config),
            # Tested on CPU (tests/test_spandrel.py): the Fourier units take their FFTs in float32
            # whatever the model's dtype, the rest runs in it; outputs stay within a few 1/255 of
            # float32, and the spectrum cannot overflow float16 below ~40000 px a side.
            supports_half=True,
            supports_bfloat16=True,
            scale=1,
            input_channels=3,
            output_channels=3,
            # None: the network pads any size itself (to a multiple of 4, and 16 px at least for
            # the low-light family) and crops back, so spandrel never pads, and its output is
            # our model's on the whole image.
            size_requirements=SizeRequirements(),
            tiling=_tiling(config),
        )
        model.eval()
        return descriptor


def install(*, ignore_duplicates: bool = True, registry: ArchRegistry | None = None) -> list[ArchSupport]:
    """Register SFHformer in spandrel's main registry (or ``registry``); returns what was added
    (nothing when it was there already, unless ``ignore_duplicates=False``, which raises
    spandrel's DuplicateArchitectureError as ``spandrel_extra_arches.install`` does).

    SFHformer is detected before every architecture registered so far: its detection is an
    exact fit of keys and shapes, so it takes nothing of theirs, and a loose detector of
    theirs cannot take an SFHformer file first.
    """
    registry = MAIN_REGISTRY if registry is None else registry
    before = tuple(support.architecture.id for support in registry.architectures())
    return registry.add(ArchSupport.from_architecture(SFHformerArch(), before=before),
                        ignore_duplicates=ignore_duplicates)


__all__ = ["ARCH_ID", "SFHformerArch", "config_of", "detect", "infer_our_config", "install"]
