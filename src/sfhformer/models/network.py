"""SFHformer: a 3-level U-shaped encoder-decoder of spatial-frequency blocks."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import pad_bottom_right
from .blocks import Block, FourierUnit, GlobalBranch, LowLightMixer, LowLightMultiKernel, Mixer, MultiScaleFFN, conv1x1
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


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module):
    """Keep the BatchNorms' running statistics and counters of ``module`` as they are while in
    this context: a checkpointed block's recomputation must not update them a second time, nor
    the later chunks of a batch run as DataParallel would run them."""
    saved = [(bn, bn.momentum, bn.num_batches_tracked.clone()) for bn in module.modules()
             if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats]
    for bn, _, _ in saved:
        bn.momentum = 0.0
    try:
        yield
    finally:
        for bn, momentum, count in saved:
            bn.momentum = momentum
            bn.num_batches_tracked.copy_(count)


def _recompute_contexts(block: nn.Module):
    return contextlib.nullcontext(), frozen_batchnorm_stats(block)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> torch.Tensor:
    """Pad H and W at the bottom/right up to a multiple of ``multiple`` and at least ``min_size``
    (:func:`~sfhformer.utils.pad_bottom_right`: reflect where the image is large enough)."""
    h, w = x.shape[-2:]
    if isinstance(h, torch.SymInt):  # a size-free export: no branch on the size, one graph for every size
        return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect")  # >= min_size: exported so
    return pad_bottom_right(x, max(-(-h // multiple) * multiple, min_size),
                            max(-(-w // multiple) * multiple, min_size))


class SFHformer(nn.Module):
    """SFHformer for image restoration, (B, 3, H, W) -> (B, 3, H, W).

    Any H and W: the input is padded to a multiple of 4 (reflect) and the output cropped back.
    Values are in whatever range the weights were trained on (the released checkpoints and
    ours use [0, 1] RGB); the output is not clamped.
    """

    def __init__(self, config: SFHformerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SFHformerConfig()
        self.fused = False
        self.grad_checkpointing = False
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
        s1 = self._stage(self.encoder1, self.embed(x))
        s2 = self._stage(self.encoder2, self.down1(s1))
        y = self._stage(self.bottleneck, self.down2(s2))
        y = self._stage(self.decoder2, self.fuse2(torch.cat([self.up2(y), s2], dim=1)))
        y = self._stage(self.decoder1, self.fuse1(torch.cat([self.up1(y), s1], dim=1)))
        return (x + self.head(y))[..., :h, :w]

    def extra_repr(self) -> str:
        return f"config={self.config}" + (", fused" if self.fused else "")

    @torch.no_grad()
    def fuse(self) -> "SFHformer":
        """Turn this model, in place, into its inference form and return it (eval mode).

        Every submodule with a ``fuse()`` method takes its own inference form:
        - every block's BatchNorms fold into the 1x1 convolutions they feed (the mixer's and
          the FFN's input projections), as does the low-light Fourier unit's spectral BatchNorm;
        - the layer scales beta and gamma fold into the 1x1 convolutions that end the mixer
          and the FFN;
        - with K = 1 the softmax over one kernel is identically 1: its logits are dropped.
        Outputs stay within float rounding (about 1e-6) of the plain model. A fused model
        cannot be trained or saved (its state dict lost the BatchNorms): fuse a copy.
        """
        if self.fused:
            return self
        self.eval()
        for module in list(self.modules()):
            if module is not self and hasattr(module, "fuse"):
                module.fuse()
        self.fused = True
        return self

    def save_pretrained(self, folder, **card):
        """A folder in the Hugging Face layout (:func:`sfhformer.models.checkpoint.save_pretrained`)."""
        from .checkpoint import save_pretrained

        return save_pretrained(self, folder, **card)

    def set_grad_checkpointing(self, enable: bool = True) -> "SFHformer":
        """Recompute each block's activations in the backward pass instead of storing them:
        much less training memory for about a third more compute."""
        self.grad_checkpointing = enable
        return self

    def train(self, mode: bool = True) -> "SFHformer":
        if mode and self.fused:
            raise RuntimeError("a fused SFHformer is for inference only; train the unfused model")
        return super().train(mode)

    def _stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and self.training and torch.is_grad_enabled()):
            return stage(x)
        from torch.utils.checkpoint import checkpoint
        for block in stage:
            x = checkpoint(block, x, use_reentrant=False, context_fn=lambda b=block: _recompute_contexts(b))
        return x


def create_model(preset: str | SFHformerConfig = "sfhformer_t", **overrides) -> SFHformer:
    """A new, randomly initialised model from a preset name or config, with fields overridden.

    >>> create_model("sfhformer_s", num_kernels=4)
    """
    config = get_preset(preset) if isinstance(preset, str) else preset
    return SFHformer(config.replace(**overrides) if overrides else config)
