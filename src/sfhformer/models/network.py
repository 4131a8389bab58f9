"""SFHformer: a 3-level U-shaped encoder-decoder of spatial-frequency blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (Block, FourierUnit, GlobalBranch, LowLightMixer, LowLightMultiKernel, Mixer,
                     MultiScaleFFN, conv1x1)
from .config import SFHformerConfig, get_preset


def make_block(config: SFHformerConfig, dim: int) -> Block:
    """One block of width ``dim`` in the given family."""
    if config.family == "paper":
        fourier = FourierUnit(2 * dim, config.num_kernels, norm=True, pos_enc=True, dynamic=True)
        return Block(dim, Mixer(dim, GlobalBranch(dim, fourier)), MultiScaleFFN(dim))
    if config.family == "haze":
        fourier = FourierUnit(dim, 1, norm=config.fourier_bn, pos_enc=True, dynamic=False)
        return Block(dim, Mixer(dim, GlobalBranch(dim, fourier, project=False)), MultiScaleFFN(dim))
    fourier = FourierUnit(2 * dim, 1, norm=True, pos_enc=False, dynamic=False)
    return Block(dim, LowLightMixer(dim, GlobalBranch(dim, fourier)), LowLightMultiKernel(dim),
                 layer_scale=False)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> torch.Tensor:
    """Pad H and W at the bottom/right up to a multiple of ``multiple`` and at least ``min_size``.

    Reflect padding where the image is large enough for it, replicate otherwise.
    """
    h, w = x.shape[-2:]
    ph = max(-(-h // multiple) * multiple, min_size) - h
    pw = max(-(-w // multiple) * multiple, min_size) - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class SFHformer(nn.Module):
    """SFHformer for image restoration, (B, 3, H, W) -> (B, 3, H, W).

    Any H and W: the input is padded to a multiple of 4 (reflect) and the output cropped back.
    Values are in whatever range the weights were trained on (the released checkpoints and
    ours use [0, 1] RGB); the output is not clamped.
    """

    def __init__(self, config: SFHformerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SFHformerConfig()
        (c0, c1, c2), (u1, u0), depths = config.widths, config.up_widths, config.depths
        lol = config.family == "lol"
        pad = "reflect" if lol else "zeros"
        # The low-light family's 7x7 reflect-padded convs need >= 4 pixels at the lowest level.
        self.min_size = 16 if lol else 4

        def stage(dim: int, depth: int) -> nn.Sequential:
            return nn.Sequential(*(make_block(config, dim) for _ in range(depth)))

        def down(cin: int, cout: int) -> nn.Module:
            if lol:  # halve the channels, then trade space for channels
                return nn.Sequential(nn.Conv2d(cin, cout // 4, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
            return nn.Conv2d(cin, cout, 2, stride=2)

        def up(cin: int, cout: int) -> nn.Sequential:
            conv = (nn.Conv2d(cin, 4 * cout, 3, padding=1, padding_mode="reflect") if lol
                    else conv1x1(cin, 4 * cout, bias=False))
            return nn.Sequential(conv, nn.PixelShuffle(2))

        self.embed = nn.Conv2d(3, c0, 3, padding=1, padding_mode=pad)
        self.encoder1 = stage(c0, depths[0])
        self.down1 = down(c0, c1)
        self.encoder2 = stage(c1, depths[1])
        self.down2 = down(c1, c2)
        self.bottleneck = stage(c2, depths[2])
        self.up2 = up(c2, u1)
        self.fuse2 = conv1x1(u1 + c1, u1)
        self.decoder2 = stage(u1, depths[3])
        self.up1 = up(u1, u0)
        self.fuse1 = conv1x1(u0 + c0, u0)
        self.decoder1 = stage(u0, depths[4])
        head = [nn.Conv2d(u0, 3, 3, padding=1, padding_mode=pad)]
        if lol:
            head.append(nn.Conv2d(3, 3, 3, padding=1, padding_mode=pad))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SFHformer expects a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 4, self.min_size)
        s1 = self.encoder1(self.embed(x))
        s2 = self.encoder2(self.down1(s1))
        y = self.bottleneck(self.down2(s2))
        y = self.decoder2(self.fuse2(torch.cat([self.up2(y), s2], dim=1)))
        y = self.decoder1(self.fuse1(torch.cat([self.up1(y), s1], dim=1)))
        return (x + self.head(y))[..., :h, :w]

    def extra_repr(self) -> str:
        return f"config={self.config}"


def create_model(preset: str | SFHformerConfig = "sfhformer_t", **overrides) -> SFHformer:
    """A new, randomly initialised model from a preset name or config, with fields overridden.

    >>> create_model("sfhformer_s", num_kernels=4)
    """
    config = get_preset(preset) if isinstance(preset, str) else preset
    return SFHformer(config.replace(**overrides) if overrides else config)
