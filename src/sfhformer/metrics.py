"""PSNR and SSIM as image-restoration papers compute them.

Conventions (those of BasicSR, which most PyTorch restoration papers evaluate with):
- images are compared as uint8 (0..255); float inputs in [0, 1] are quantized first
  (clamp, x255, round);
- ``crop_border`` pixels are removed on every side before measuring;
- ``y_channel=True`` measures the luma of ITU-R BT.601 YCbCr as MATLAB's ``rgb2ycbcr``
  defines it: Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1], so Y is in
  16..235; it is not rounded again (BasicSR's ``rgb2ycbcr(y_only=True)``);
- SSIM is Wang et al.'s with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  data range 255, population (not sample) covariances, averaged over the valid region and,
  for RGB, over channels: what scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)`` computes.
All arithmetic is float64.

The authors of SFHformer score differently (their training scripts' ``valid()`` and test
scripts): on the float outputs, clamped to [0, 1] but never rounded; on images centre-cropped
to a multiple of 8; for dehazing, SSIM on images average-pooled so that the short side is about
256. :class:`Protocol` holds either way; :data:`AUTHORS` has theirs per task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

_BT601_Y = (65.481, 128.553, 24.966)


def _hwc(img: ArrayLike) -> np.ndarray:
    """One image as an (H, W, C) array: numpy (H, W) / (H, W, C), or a tensor (C, H, W) /
    (1, C, H, W) (as float64)."""
    if isinstance(img, torch.Tensor):
        t = img.detach().to("cpu", torch.float64)
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        arr = t.permute(1, 2, 0).numpy() if t.ndim == 3 else t.numpy()
    else:
        arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


def to_uint8_array(img: ArrayLike) -> np.ndarray:
    """(H, W, C) / (H, W) numpy (uint8, uint16 or float in [0, 1]) or (C, H, W) / (1, C, H, W)
    tensor in [0, 1] -> (H, W, C) uint8, rounded and clamped."""
    arr = _hwc(img)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def to_rgb_uint8(img: ArrayLike) -> np.ndarray:
    """Like :func:`to_uint8_array`, with grayscale repeated to 3 channels: (H, W, 3) uint8."""
    u8 = to_uint8_array(img)
    return np.repeat(u8, 3, axis=2) if u8.shape[2] == 1 else u8


def to_float_array(img: ArrayLike) -> np.ndarray:
    """Like :func:`to_uint8_array` but never rounded: (H, W, C) float64 on the 0..255 scale;
    floats (taken in [0, 1]) are clamped, 16-bit values keep their precision."""
    arr = _hwc(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 257.0
    return np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB on the 0..255 scale (uint8 or float) -> (H, W, 1) float64 BT.601 luma in
    16..235 (MATLAB rgb2ycbcr)."""
    x = img.astype(np.float64) / 255.0
    return (x @ np.array(_BT601_Y) + 16.0)[..., None]


def center_crop_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    """(H, W, ...) cut to the largest multiple of ``multiple`` in each side, keeping the centre
    (the authors' ``align``: H - H % m rows from (H - that) // 2)."""
    h, w = img.shape[:2]
    ch, cw = h - h % multiple, w - w % multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top:top + ch, left:left + cw]


def _prepare(pred: ArrayLike, target: ArrayLike, crop_border: int, y_channel: bool, quantize: bool = True,
             multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    convert = to_uint8_array if quantize else to_float_array
    a, b = convert(pred), convert(target)
    if multiple > 1:
        a, b = center_crop_multiple(a, multiple), center_crop_multiple(b, multiple)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
        if a.size == 0:
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {pred.shape} image")
    if y_channel and a.shape[2] == 3:
        return rgb_to_y(a), rgb_to_y(b)
    return a.astype(np.float64), b.astype(np.float64)


def psnr(pred: ArrayLike, target: ArrayLike, crop_border: int = 0, y_channel: bool = False, *,
         quantize: bool = True, multiple: int = 1) -> float:
    """PSNR in dB of two images (see the module doc for conventions); inf when identical.
    ``quantize=False`` scores the values as they are (the authors' way); ``multiple`` centre-crops
    both images to a multiple of it first."""
    a, b = _prepare(pred, target, crop_border, y_channel, quantize, multiple)
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _gaussian_window(sigma: float = 1.5, radius: int = 5) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(pred: ArrayLike, target: ArrayLike, crop_border: int = 0, y_channel: bool = False, *,
         quantize: bool = True, multiple: int = 1, pool: bool = False) -> float:
    """SSIM of two images (see the module doc for conventions), averaged over channels.
    ``quantize`` and ``multiple`` as for :func:`psnr`; ``pool`` first average-pools both images
    by r = max(1, round(min(H, W) / 256)) to (int(H / r), int(W / r)), as the authors' dehazing
    test scripts (and DehazeFormer's) do."""
    a, b = _prepare(pred, target, crop_border, y_channel, quantize, multiple)
    if pool:
        a, b = _pool_for_ssim(a), _pool_for_ssim(b)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape[1]}x{a.shape[0]}")
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[:, None]  # (C, 1, H, W)
    y = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)))[:, None]
    win = _gaussian_window()

    def blur(t: torch.Tensor) -> torch.Tensor:  # "valid" filtering = scikit-image's border crop
        return F.conv2d(t, win)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean(dim=(1, 2, 3)).mean())


def _pool_for_ssim(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    r = max(1, round(min(h, w) / 256))  # Python's round: half to even, as in their scripts
    if r == 1:
        return img
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    return F.adaptive_avg_pool2d(t, (int(h / r), int(w / r)))[0].numpy().transpose(1, 2, 0)


@dataclass(frozen=True)
class Protocol:
    """How PSNR and SSIM are computed for a benchmark.

    Attributes:
        quantize: round to uint8 first (BasicSR's way); False scores the float values.
        y_channel: the BT.601 luma instead of RGB.
        crop_border: pixels removed on every side.
        multiple: centre-crop both images to a multiple of this first.
        pool_ssim: average-pool so the short side is about 256 before SSIM (dehazing tests).
    """

    quantize: bool = True
    y_channel: bool = False
    crop_border: int = 0
    multiple: int = 1
    pool_ssim: bool = False


# The authors' scoring per task: their test script where one exists (dehazing: SOTS, with pooled
# SSIM; low light: LOLv2; motion blur: GoPro), else their training script's valid() (rain and
# raindrop on Y; the others RGB). Always float values and a centre crop to a multiple of 8.
AUTHORS: dict[str, Protocol] = {
    "haze": Protocol(quantize=False, multiple=8, pool_ssim=True),
    "rain": Protocol(quantize=False, multiple=8, y_channel=True),
    "raindrop": Protocol(quantize=False, multiple=8, y_channel=True),
    "lowlight": Protocol(quantize=False, multiple=8),
    "underwater": Protocol(quantize=False, multiple=8),
    "motion_blur": Protocol(quantize=False, multiple=8),
    "other": Protocol(quantize=False, multiple=8),
}


def score(pred: ArrayLike, target: ArrayLike, crop_border: int = 0, y_channel: bool = False,
          name: str = "image", protocol: Protocol | None = None) -> tuple[float, float]:
    """(PSNR, SSIM) of one image pair, by ``protocol`` when given (else BasicSR's conventions
    with ``crop_border`` and ``y_channel``); a pair these cannot be computed on (smaller than
    SSIM's window, or than the border crop; shapes that differ) raises an ImageError naming
    ``name``."""
    from .errors import ImageError

    p = protocol or Protocol(crop_border=crop_border, y_channel=y_channel)
    try:
        return (psnr(pred, target, p.crop_border, p.y_channel, quantize=p.quantize, multiple=p.multiple),
                ssim(pred, target, p.crop_border, p.y_channel, quantize=p.quantize, multiple=p.multiple,
                     pool=p.pool_ssim))
    except ValueError as e:
        raise ImageError(f"{name}: {e}") from None
