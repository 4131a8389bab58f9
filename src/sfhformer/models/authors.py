"""The authors' checkpoints (deng-ai-lab/SFHformer): their module names, the tensors their
forward never reads, and the architecture read back from keys and shapes alone.

This is the one place that knows the authors' format; :mod:`.checkpoint` reads files and
calls it, and an ecosystem adapter (spandrel) can detect the format with it. What each family
computes: ``docs/families.md``.
"""

from __future__ import annotations

import re

import torch

from .config import SFHformerConfig
from .network import SFHformer

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

# Tensors in the authors' files that their forward never reads (docs/families.md).
_UNUSED_AUTHORS_KEYS = {
    "paper": None,
    "haze": re.compile(r"\.FFC\.(conv_layer\.weight|bn2\.\w+|norm1\.body\.\w+)$"),
    "lol": re.compile(r"\.FFC\.(conv_layer\.weight|bn2\.\w+)$"),
}
# Checked only when the Fourier BN is switched off (the ITS dehazing checkpoint).
_FOURIER_BN_KEYS = re.compile(r"\.FFC\.bn1\.\w+$")



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


def to_our_state(state: dict[str, torch.Tensor], model: SFHformer) -> dict[str, torch.Tensor]:
    """The entries of an authors'-format state dict under ``model``'s key names (those it has)."""
    return {ours: state[theirs] for ours, theirs in authors_key_map(model).items() if theirs in state}
