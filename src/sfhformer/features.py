"""Feature maps of the spatial (local) and frequency (global) branches, captured with forward
hooks: the network code is not touched and its output is unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .models import SFHformer

STAGES = ("encoder1", "encoder2", "bottleneck", "decoder2", "decoder1")
STAGE_LEVELS = (0, 1, 2, 1, 0)  # each stage works at 1 / 2**level of the input size


@torch.no_grad()
def branch_features(model: SFHformer, x: torch.Tensor, stage: int = 1, block: int = -1
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model`` on ``x`` (B, 3, H, W) and capture, in block ``block`` of stage ``stage``
    (1 encoder1, 2 encoder2, 3 bottleneck, 4 decoder2, 5 decoder1), the outputs of the mixer's
    spatial and frequency branches, each (B, width, h, w) at that stage's resolution.

    Returns (model output, {"spatial": ..., "frequency": ...}).
    """
    if not 1 <= stage <= len(STAGES):
        raise ConfigError(f"stage must be 1..{len(STAGES)} ({', '.join(STAGES)}), got {stage}")
    blocks: nn.Sequential = getattr(model, STAGES[stage - 1])
    if len(blocks) == 0:
        raise ConfigError(f"stage {stage} ({STAGES[stage - 1]}) has no blocks in this model")
    try:
        mixer = blocks[block].mixer
    except IndexError:
        raise ConfigError(f"stage {stage} has {len(blocks)} block(s); block {block} does not exist") from None
    captured: dict[str, torch.Tensor] = {}
    hooks = [mixer.local_branch.register_forward_hook(lambda m, i, o: captured.__setitem__("spatial", o.detach())),
             mixer.global_branch.register_forward_hook(lambda m, i, o: captured.__setitem__("frequency", o.detach()))]
    try:
        was_training = model.training
        model.eval()
        out = model(x)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    # the network pads the input to a multiple of 4; keep the stage's share of the real image
    scale = 2 ** STAGE_LEVELS[stage - 1]
    h, w = -(-x.shape[-2] // scale), -(-x.shape[-1] // scale)
    return out, {k: v[..., :h, :w] for k, v in captured.items()}


def strongest_channels(features: torch.Tensor, count: int) -> list[int]:
    """Indices of the ``count`` channels with the largest mean |activation| (first image)."""
    strength = features[0].abs().mean(dim=(1, 2))
    return strength.argsort(descending=True)[:count].tolist()


def _limits(a: np.ndarray) -> dict[str, float]:
    """Colour limits at the 1st and 99th percentiles: a few extreme pixels (often at the
    borders, where the global branch sees the image's periodic wrap) must not flatten the map."""
    lo, hi = np.percentile(a, [1, 99])
    return {"vmin": float(lo), "vmax": float(hi if hi > lo else lo + 1e-6)}


def features_figure(image: np.ndarray, features: dict[str, torch.Tensor], channels: int = 8, title: str = ""):
    """For each branch: the channel mean, its log spectrum, and a grid of the strongest channels."""
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure registry

    from .spectrum import log_magnitude

    names = list(features)
    cols = 2 + channels
    fig = Figure(figsize=(2.2 * cols, 2.6 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), cols, squeeze=False)
    for row, name in enumerate(names):
        f = features[name][0].float().cpu()
        mean = f.mean(0).numpy()
        ax = axes[row, 0]
        im = ax.imshow(mean, cmap="viridis", **_limits(mean))
        ax.set_title(f"{name}: channel mean", fontsize=8)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.7)
        ax = axes[row, 1]
        im = ax.imshow(log_magnitude(mean), cmap="magma", extent=(-0.5, 0.5, -0.5, 0.5), origin="lower")
        ax.set_title(f"{name}: log spectrum", fontsize=8)
        ax.set_xlabel("cycles/pixel", fontsize=7)
        ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=ax, shrink=0.7)
        for k, c in enumerate(strongest_channels(features[name], channels)):
            ax = axes[row, 2 + k]
            ax.imshow(f[c].numpy(), cmap="viridis", **_limits(f[c].numpy()))
            ax.set_title(f"{name} ch {c}", fontsize=8)
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def save_features(weights: str | os.PathLike, image_path: str | os.PathLike, out_dir: str | os.PathLike,
                  stage: int = 1, block: int = -1, channels: int = 8, device: str = "cpu") -> dict[str, np.ndarray]:
    """Write ``features_stage<N>.png`` (and ``.npz`` with the arrays) for an image and weights."""
    from .io import read_image, rgb_pixels, to_tensor
    from .models import load
    from .utils import atomic_path

    from .restore import resolve_device

    device = resolve_device(device)
    model = load(weights, device=device)
    pixels = rgb_pixels(read_image(image_path).pixels)
    x = to_tensor(pixels)[None].to(device)
    _, feats = branch_features(model, x, stage, block)
    out = Path(out_dir)
    fig = features_figure(pixels, feats, channels,
                          title=f"{Path(image_path).name}: stage {stage} ({STAGES[stage - 1]}), block {block}")
    with atomic_path(out / f"features_stage{stage}.png", suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    arrays = {k: v[0].float().cpu().numpy() for k, v in feats.items()}
    with atomic_path(out / f"features_stage{stage}.npz", suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return arrays
