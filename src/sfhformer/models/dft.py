"""The Fourier units' 2-D transforms as matrix products, for exported graphs.

ONNX Runtime's DFT operator spends about 70% of an exported SFHformer's time (CPU, 512x512),
and some runtimes and execution providers have no DFT kernel at all. Inside
:func:`matrix_dft`, :func:`sfhformer.models.blocks.to_frequency` and ``from_frequency`` compute
the same orthonormal ``rfft2`` / ``irfft2`` with MatMul, Mul and Transpose only, from matrices
built for the concrete size being traced (so a graph exported this way has a fixed size):

- along W, one real matrix product each way (N x (N//2+1) cosines and sines; the inverse weighs
  each half-spectrum column as ``irfft`` does and ignores the imaginary part of the DC and
  Nyquist columns, as pocketfft's c2r does);
- along H, a complex DFT factorised once as N = N1 * N2 (Cooley-Tukey, decimation in
  frequency): an N1-point DFT, twiddle factors, an N2-point DFT, one transpose; this costs
  4 (N1 + N2) multiply-adds per element instead of 4 N.

Matches ``torch.fft`` within about 1e-6 on unit-range inputs (float32 matrices built in float64).
Slower than pocketfft in eager PyTorch: only for tracing.
"""

from __future__ import annotations

import contextlib
import math
from functools import lru_cache
from typing import Iterator

import torch

_active = False


@contextlib.contextmanager
def matrix_dft() -> Iterator[None]:
    """Within this block the Fourier units use :func:`rfft2` / :func:`irfft2` below."""
    global _active
    previous, _active = _active, True
    try:
        yield
    finally:
        _active = previous


def active() -> bool:
    return _active


def _factor(n: int) -> tuple[int, int]:
    """(N1, N2) with N1 the largest divisor of n up to sqrt(n): (1, n) for primes."""
    n1 = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return n1, n // n1


@lru_cache(maxsize=64)
def _dft(n: int, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of sign * 2 pi j k / n, (n, n) float32 (angles reduced mod n in integers)."""
    jk = torch.outer(torch.arange(n), torch.arange(n)).remainder(n).double()
    angle = sign * 2 * math.pi * jk / n
    return torch.cos(angle).float(), torch.sin(angle).float()


@lru_cache(maxsize=64)
def _twiddles(n1: int, n2: int, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    jk = torch.outer(torch.arange(n1), torch.arange(n2)).double()
    angle = sign * 2 * math.pi * jk / (n1 * n2)
    return torch.cos(angle).float(), torch.sin(angle).float()


@lru_cache(maxsize=32)
def _real_forward(n: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, n//2+1) matrices: real rows @ these = the half spectrum's real and imaginary parts."""
    cos, sin = _dft(n, -1)
    return (cos[: n // 2 + 1].T * scale).contiguous(), (sin[: n // 2 + 1].T * scale).contiguous()


@lru_cache(maxsize=32)
def _real_inverse(n: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(n//2+1, n) matrices: re @ first + im @ second = irfft along the last axis."""
    k = n // 2 + 1
    cos, sin = _dft(n, +1)
    weight = torch.full((k, 1), 2.0)
    weight[0] = 1  # DC appears once
    if n % 2 == 0:
        weight[-1] = 1  # and so does the Nyquist column of even sizes
    re, im = cos[:k] * weight, -sin[:k] * weight
    im[0] = 0  # their imaginary parts have no real inverse: c2r ignores them
    if n % 2 == 0:
        im[-1] = 0
    return (re * scale).contiguous(), (im * scale).contiguous()


def _apply(z: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``matrix`` (K, N) applied along ``dim`` (size N, counted from the front) of ``z``."""
    before, n, after = z.shape[:dim], z.shape[dim], z.shape[dim + 1:]
    out = matrix.to(z) @ z.reshape(math.prod(before), n, math.prod(after))
    return out.reshape(*before, matrix.shape[0], *after)


def _complex_apply(re, im, matrices, dim):
    mr, mi = matrices
    return (_apply(re, mr, dim) - _apply(im, mi, dim)), (_apply(im, mr, dim) + _apply(re, mi, dim))


def _dft_along(re: torch.Tensor, im: torch.Tensor, dim: int, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised complex DFT along ``dim`` (not the last), factorised when the size allows."""
    n = re.shape[dim]
    n1, n2 = _factor(n)
    if n1 < 4:  # a prime or nearly: one matrix
        return _complex_apply(re, im, _dft(n, sign), dim)
    shape = re.shape
    split = (*shape[:dim], n1, n2, *shape[dim + 1:])  # index n = i1 * n2 + i2
    re, im = _complex_apply(re.reshape(split), im.reshape(split), _dft(n1, sign), dim)  # i1 -> k1
    tr, ti = (t.to(re).reshape(n1, n2, *[1] * (len(shape) - dim - 1)) for t in _twiddles(n1, n2, sign))
    re, im = re * tr - im * ti, re * ti + im * tr
    re, im = _complex_apply(re, im, _dft(n2, sign), dim + 1)  # i2 -> k2
    # output index k = k1 + n1 * k2
    return tuple(t.transpose(dim, dim + 1).reshape(shape) for t in (re, im))


def rfft2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.fft.rfft2(x, norm="ortho")`` of (..., H, W) real as (real, imaginary), each
    (..., H, W//2+1)."""
    h, w = x.shape[-2:]
    cos, sin = _real_forward(w, 1 / math.sqrt(h * w))
    re, im = x @ cos.to(x), x @ sin.to(x)
    return _dft_along(re, im, x.ndim - 2, -1)


def irfft2(re: torch.Tensor, im: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``torch.fft.irfft2(torch.complex(re, im), s=size, norm="ortho")`` for (..., H, W//2+1)
    halves of a spectrum."""
    h, w = size
    re, im = _dft_along(re, im, re.ndim - 2, +1)
    to_re, to_im = _real_inverse(w, 1 / math.sqrt(h * w))
    return re @ to_re.to(re) + im @ to_im.to(im)
