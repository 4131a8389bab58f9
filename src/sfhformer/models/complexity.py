"""Parameters and multiply-accumulates (MACs) of a model.

What is counted, per image:
- convolutions: output elements x (input channels / groups) x kernel area;
- FFTs, analytically (hooks on each :class:`FourierUnit`): a real 2-D FFT of H x W points
  costs 1.25 * H*W * log2(H*W) real MACs per channel, and so does its inverse. This is the
  classic radix-2 count (5 N log2 N real flops for a complex N-point FFT, half that for real
  input, 2 flops per MAC); rows then columns of the half spectrum add up to the same figure;
- the frequency dynamic convolution's per-frequency mixing of K kernels: K MACs per output.
BatchNorm (folded into convolutions at inference), activations and residual additions are
not counted, as in fvcore / thop conventions for convolutional networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import FourierUnit


@dataclass
class Complexity:
    params: int
    conv_macs: int
    fft_macs: int
    mixing_macs: int
    input_size: tuple[int, int]

    @property
    def macs(self) -> int:
        return self.conv_macs + self.fft_macs + self.mixing_macs


def fft_macs(channels: int, h: int, w: int) -> int:
    """MACs of one real 2-D FFT (forward or inverse) of ``channels`` maps of h x w."""
    n = h * w
    return round(1.25 * channels * n * math.log2(n)) if n > 1 else 0


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def measure(model: nn.Module, size: tuple[int, int] = (256, 256)) -> Complexity:
    """Count parameters and MACs of one forward pass on a (1, 3, *size) input."""
    counts = {"conv": 0, "fft": 0, "mix": 0}

    def on_conv(module: nn.Conv2d, inputs, output) -> None:
        kh, kw = module.kernel_size
        counts["conv"] += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    def on_fourier(module: FourierUnit, inputs, output) -> None:
        c, h, w = inputs[0].shape[1:]
        counts["fft"] += 2 * fft_macs(c, h, w)
        if module.mix_logits is not None:
            counts["mix"] += module.num_kernels * 2 * c * h * (w // 2 + 1)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, FourierUnit):
            hooks.append(m.register_forward_hook(on_fourier))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        model(torch.zeros(1, 3, *size, dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return Complexity(count_params(model), counts["conv"], counts["fft"], counts["mix"], tuple(size))
