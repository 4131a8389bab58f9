"""The modules SFHformer is built of.

Shapes: feature maps are (B, C, H, W) float tensors. Every module keeps H and W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import dft


def conv1x1(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, bias=bias)


@torch.no_grad()
def fold_batchnorm(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> None:
    """Make ``conv(x)`` compute ``conv(bn(x))`` for eval-mode ``bn``, in place.

    Exact only for 1x1 convolutions without groups: a padded k x k convolution would see the
    BatchNorm shift where its zero padding is.
    """
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError("BatchNorm folds exactly into 1x1 convolutions without groups only")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    w = conv.weight[:, :, 0, 0]
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device, dtype=w.dtype)
    new_bias = bias + w @ shift
    conv.weight.mul_(scale[None, :, None, None])
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


@torch.no_grad()
def fold_scale(conv: nn.Conv2d, scale: torch.Tensor) -> None:
    """Make ``conv(x)`` compute ``scale * conv(x)`` (one factor per output channel), in place."""
    scale = scale.reshape(-1)
    conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.ndim - 1))))
    if conv.bias is not None:
        conv.bias.mul_(scale)


def dwconv(ch: int, kernel: int, dilation: int = 1, padding_mode: str = "zeros") -> nn.Conv2d:
    """Depthwise convolution with "same" padding."""
    return nn.Conv2d(ch, ch, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                     groups=ch, padding_mode=padding_mode)


# ---------------------------------------------------------------------------------------------
# Frequency domain
# ---------------------------------------------------------------------------------------------

def to_frequency(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) real -> (B, 2C, H, W//2+1): rfft2 (ortho), re/im interleaved per channel."""
    if dft.active():  # exporting a DFT-free graph
        return torch.stack(dft.rfft2(x), dim=2).flatten(1, 2)
    f = torch.fft.rfft2(x, norm="ortho")
    # stack() copies the strided real and imaginary views much faster than a permuted reshape
    return torch.stack((f.real, f.imag), dim=2).flatten(1, 2)


def from_frequency(f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`to_frequency`: (B, 2C, H, W//2+1) -> (B, C, *size) real."""
    b, c2, h, w = f.shape
    f = f.unflatten(1, (c2 // 2, 2))
    if dft.active():
        return dft.irfft2(f[:, :, 0], f[:, :, 1], size)
    return torch.fft.irfft2(torch.complex(f[:, :, 0], f[:, :, 1]), s=size, norm="ortho")


def drop_non_hermitian_(f: torch.Tensor, width: int) -> torch.Tensor:
    """Keep only the Hermitian part (along H) of an interleaved spectrum's first column and, for
    even ``width``, its last: (B, 2C, H, width//2+1), in place; returns ``f``.

    A real image's spectrum is Hermitian there; a network's output spectrum is not, and the
    rest has no real inverse. pocketfft (CPU) drops it inside irfft2; cuFFT's c2r leaves it
    undefined and lets it into the image for some sizes. Dropping it before irfft2 makes every
    backend compute what the CPU computes (there the result does not change).
    """
    def hermitian(k: int) -> torch.Tensor:
        col = f[..., k].unflatten(1, (-1, 2))  # (B, C, 2, H): re, im
        mirrored = torch.roll(col.flip(-1), 1, -1)  # c[-h]
        re, im = col[:, :, 0] + mirrored[:, :, 0], col[:, :, 1] - mirrored[:, :, 1]
        return torch.stack((re, im), 2).flatten(1, 2) / 2  # (c[h] + conj(c[-h])) / 2

    f[..., 0] = hermitian(0)
    if isinstance(width, torch.SymInt):
        # the last column is the Nyquist one only for even widths: weighted, not branched, so that
        # an exported graph (ONNX at any size) does not fix the width's parity
        f[..., -1] = f[..., -1] + (hermitian(-1) - f[..., -1]) * (1 - width % 2)
    elif width % 2 == 0:
        f[..., -1] = hermitian(-1)
    return f


class FourierUnit(nn.Module):
    """Global mixing by 1x1 convolutions on the image's spectrum.

    rfft2 -> [BN] -> [f + dwconv3x3(f)] (frequency-conditional positional encoding) ->
    1x1 conv, or K grouped 1x1 convs mixed per frequency by softmax weights (frequency dynamic
    convolution) -> GELU -> irfft2. The three families switch the optional parts.

    The spectrum is computed in float32 with autocast off: cuFFT in half precision accepts
    only power-of-two sizes, and the spectrum's dynamic range suffers in 16 bits.

    Args:
        channels: C, channels in and out; the spectrum has 2C real channels.
        num_kernels: K > 1 enables the dynamic mixing of K kernels.
        norm: BatchNorm on the spectrum.
        pos_enc: the depthwise 3x3 positional encoding.
        dynamic: build the softmax mixing weights (the paper family has them even at K=1).
    """

    def __init__(self, channels: int, num_kernels: int = 1, norm: bool = True, pos_enc: bool = True,
                 dynamic: bool = True) -> None:
        super().__init__()
        spec = 2 * channels
        self.num_kernels = num_kernels
        self.norm = nn.BatchNorm2d(spec) if norm else None
        self.pos_enc = dwconv(spec, 3) if pos_enc else None
        self.mix_logits = conv1x1(spec, num_kernels) if dynamic else None
        self.spectral_conv = nn.Conv2d(spec, spec * num_kernels, 1, groups=num_kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            f = to_frequency(x.float()).to(self.spectral_conv.weight.dtype)
            f = drop_non_hermitian_(self.spectral_mix(f), x.shape[-1])
            y = from_frequency(f.float(), x.shape[-2:])
        return y.to(x.dtype)

    @torch.no_grad()
    def fuse(self) -> None:
        """Inference form, in place: the spectral BatchNorm folds into the 1x1 convolution when
        nothing stands between them (low-light family); with K = 1 the softmax over one kernel
        is identically 1, so its logits go."""
        if self.norm is not None and self.pos_enc is None and self.spectral_conv.groups == 1:
            fold_batchnorm(self.norm, self.spectral_conv)
            self.norm = None
        if self.num_kernels == 1:
            self.mix_logits = None

    def spectral_mix(self, f: torch.Tensor) -> torch.Tensor:
        """The processing of the interleaved spectrum, (B, 2C, H, W') -> same."""
        if self.norm is not None:
            f = self.norm(f)
        if self.pos_enc is not None:
            f = f + self.pos_enc(f)
        g = self.spectral_conv(f)
        if self.mix_logits is not None:
            b, spec, h, w = f.shape
            weights = torch.softmax(self.mix_logits(f), dim=1)  # (B, K, H, W')
            g = (g.view(b, self.num_kernels, spec, h, w) * weights.unsqueeze(2)).sum(1)
        return F.gelu(g)


class GlobalBranch(nn.Module):
    """The frequency (global) half of the mixer, width d -> d.

    With ``project``: v = GELU(1x1 d->2d); GELU(1x1 2d->d (FourierUnit(v) + v)).
    Without (haze family): FourierUnit(x) + x.
    """

    def __init__(self, dim: int, fourier: FourierUnit, project: bool = True) -> None:
        super().__init__()
        self.proj_in = conv1x1(dim, 2 * dim) if project else None
        self.fourier = fourier
        self.proj_out = conv1x1(2 * dim, dim) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj_in is None:
            return self.fourier(x) + x
        v = F.gelu(self.proj_in(x))
        return F.gelu(self.proj_out(self.fourier(v) + v))


# ---------------------------------------------------------------------------------------------
# Spatial domain
# ---------------------------------------------------------------------------------------------

class DilatedLocalBranch(nn.Module):
    """The spatial (local) half of the mixer: depthwise 3x3, dilation 1 and 2, on channel halves."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw_dil1 = dwconv(dim // 2, 3, dilation=1)
        self.dw_dil2 = dwconv(dim // 2, 3, dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([self.dw_dil1(a), self.dw_dil2(b)], dim=1)


class MultiScaleFFN(nn.Module):
    """MCFN: 1x1 d->2d, four chunks (identity, dw 3x3, 5x5, 7x7), GELU, 1x1 2d->d."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = 2 * dim
        self.proj_in = conv1x1(dim, hidden)
        self.dw3 = dwconv(hidden // 4, 3)
        self.dw5 = dwconv(hidden // 4, 5)
        self.dw7 = dwconv(hidden // 4, 7)
        self.proj_out = conv1x1(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1, x2, x3 = self.proj_in(x).chunk(4, dim=1)
        x = torch.cat([x0, self.dw3(x1), self.dw5(x2), self.dw7(x3)], dim=1)
        return self.proj_out(F.gelu(x))

    def scale_output(self, scale: torch.Tensor) -> None:
        """Fold a per-channel factor on the output into the last convolution, in place."""
        fold_scale(self.proj_out, scale)


class LowLightMultiKernel(nn.Module):
    """The low-light family's multi-kernel module (its FFN and its mixer's local branch).

    Like :class:`MultiScaleFFN` but with reflect padding and a GELU after every convolution.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = 2 * dim
        self.proj_in = conv1x1(dim, hidden)
        self.dw3 = dwconv(hidden // 4, 3, padding_mode="reflect")
        self.dw5 = dwconv(hidden // 4, 5, padding_mode="reflect")
        self.dw7 = dwconv(hidden // 4, 7, padding_mode="reflect")
        self.proj_out = conv1x1(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1, x2, x3 = F.gelu(self.proj_in(x)).chunk(4, dim=1)
        x = torch.cat([x0, F.gelu(self.dw3(x1)), F.gelu(self.dw5(x2)), F.gelu(self.dw7(x3))], dim=1)
        return F.gelu(self.proj_out(x))


class ChannelAttention(nn.Module):
    """x * sigmoid(expand(act(reduce(mean over H, W of x))))."""

    def __init__(self, channels: int, hidden: int, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.reduce = conv1x1(channels, hidden)
        self.act = act()
        self.expand = conv1x1(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


# ---------------------------------------------------------------------------------------------
# Mixers and the block
# ---------------------------------------------------------------------------------------------

class Mixer(nn.Module):
    """LGPM, the token mixer (paper and haze families).

    1x1 d->2d, halves a and b; concat(local(a), global(b)); GELU; channel attention; 1x1 2d->d.
    """

    def __init__(self, dim: int, global_branch: GlobalBranch) -> None:
        super().__init__()
        self.proj_in = conv1x1(dim, 2 * dim)
        self.local_branch = DilatedLocalBranch(dim)
        self.global_branch = global_branch
        self.attention = ChannelAttention(2 * dim, dim, nn.ReLU)
        self.out_proj = conv1x1(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj_in(x).chunk(2, dim=1)
        z = F.gelu(torch.cat([self.local_branch(a), self.global_branch(b)], dim=1))
        return self.out_proj(self.attention(z))

    def scale_output(self, scale: torch.Tensor) -> None:
        """Fold a per-channel factor on the output into the last convolution, in place."""
        fold_scale(self.out_proj, scale)


class LowLightMixer(nn.Module):
    """The low-light family's mixer: GELU after the input projection, a multi-kernel local
    branch, and the channel attention after the output projection (1x1 + dw 3x3 reflect)."""

    def __init__(self, dim: int, global_branch: GlobalBranch) -> None:
        super().__init__()
        self.proj_in = conv1x1(dim, 2 * dim)
        self.local_branch = LowLightMultiKernel(dim)
        self.global_branch = global_branch
        self.out_proj = nn.Sequential(conv1x1(2 * dim, dim), dwconv(dim, 3, padding_mode="reflect"))
        self.attention = ChannelAttention(dim, dim // 4, nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = F.gelu(self.proj_in(x)).chunk(2, dim=1)
        z = torch.cat([self.local_branch(a), self.global_branch(b)], dim=1)
        return self.attention(F.gelu(self.out_proj(z)))


class Block(nn.Module):
    """x + beta * mixer(BN(x)), then + gamma * ffn(BN(.)); beta, gamma start at zero so a new
    block is the identity. The low-light family has no beta and gamma (``layer_scale=False``)."""

    def __init__(self, dim: int, mixer: nn.Module, ffn: nn.Module, layer_scale: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.mixer = mixer
        self.norm2 = nn.BatchNorm2d(dim)
        self.ffn = ffn
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1)) if layer_scale else None
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1)) if layer_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mixer(self.norm1(x))
        x = x + (m if self.beta is None else self.beta * m)
        f = self.ffn(self.norm2(x))
        return x + (f if self.gamma is None else self.gamma * f)

    @torch.no_grad()
    def fuse(self) -> None:
        """Inference form, in place: both BatchNorms fold into the 1x1 convolutions they feed
        (the mixer's and the FFN's input projections); the layer scales fold into the last
        convolution of the mixer and the FFN where those can take them (``scale_output``)."""
        if isinstance(self.norm1, nn.BatchNorm2d):
            fold_batchnorm(self.norm1, self.mixer.proj_in)
            fold_batchnorm(self.norm2, self.ffn.proj_in)
            self.norm1, self.norm2 = nn.Identity(), nn.Identity()
        if self.beta is not None and hasattr(self.mixer, "scale_output"):
            self.mixer.scale_output(self.beta)
            self.beta = None
        if self.gamma is not None and hasattr(self.ffn, "scale_output"):
            self.ffn.scale_output(self.gamma)
            self.gamma = None
