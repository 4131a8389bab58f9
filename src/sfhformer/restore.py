"""Restoring images: device choice, tiling with smooth blending, self-ensemble, ``Restorer``.

SFHformer's frequency branch sees the whole input, so the whole image is run when it fits a
pixel budget; larger images are cut into overlapping tiles whose outputs are blended with a
raised-cosine window (weights ramp over the overlap on sides that face another tile), so no
seams show.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, ImageError, ModelError, OutOfMemoryError
from .io import Picture, from_tensor, read_image, to_tensor
from .models import SFHformer, load
from .utils import keep_freed_memory as _keep_freed_memory
from .utils import release_freed_memory

# Whole images up to this many pixels are run in one pass; larger ones are tiled. On a CPU
# with freed memory kept for reuse, sfhformer_s peaks at 4-4.5 GB at 1024x1024 and
# 2.5 GB at 768x768 (benchmarks/restore.py); tiles of 640x640 keep a 4096x4096 photograph
# within 3 GB (704x704 measured 2.8-3.1 GB).
DEFAULT_MAX_PIXELS = 640 * 640
DEFAULT_TILE_OVERLAP = 64
MIN_MAX_PIXELS = 64 * 64
MAX_TILES = 10_000  # per image; beyond it a plan is refused as a mistake (hours of work)
MIN_FALLBACK_TILE = 128  # out of memory: tiles shrink down to this side, no further
MAX_TILE_BATCH = 8
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Tensor = torch.Tensor


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; ``"cuda"`` without CUDA is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available; use --device cpu")
    return device


def check_range(x: Tensor, what: str, tolerance: float = 1e-3) -> None:
    """Refuse a float image outside [0, 1] (beyond ``tolerance``, left by resampling) or with
    NaN/Inf: the network would clamp it to garbage silently."""
    if not x.is_floating_point():
        raise ImageError(f"{what}: dtype {x.dtype}; expected float in [0, 1]")
    if not torch.isfinite(x).all():
        raise ImageError(f"{what}: holds NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -tolerance or hi > 1 + tolerance:
        hint = "" if hi <= 1 + tolerance else " (divide by 255)" if hi <= 255 else \
            " (divide by 65535)" if hi <= 65535 else ""
        raise ImageError(f"{what}: {str(x.dtype).removeprefix('torch.')} values in [{lo:.4g}, {hi:.4g}]; "
                         f"expected [0, 1]{hint}")


# ---------------------------------------------------------------------------------------------
# Tiling
# ---------------------------------------------------------------------------------------------

def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap``."""
    if size <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def blend_window(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> Tensor:
    """1-D weights: 1 inside, a raised-cosine ramp over ``overlap`` on sides facing a neighbour.

    Every weight is > 0, so each pixel is covered by at least one tile with positive weight.
    """
    w = torch.ones(length)
    n = min(overlap, length // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n) + 0.5) / n)
        if ramp_start:
            w[:n] = ramp
        if ramp_end:
            w[-n:] = torch.minimum(w[-n:], ramp.flip(0))
    return w


def forward_tiled(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int,
                  on_tile: Callable[[], None] | None = None, batch: int = 1) -> Tensor:
    """Apply ``fn`` ((N, C, h, w) -> same shape) tile by tile and blend the results.

    Args:
        x: (B, C, H, W). tile: tile side in pixels. overlap: pixels shared by neighbours.
        on_tile: called after each tile (progress bars).
        batch: tiles stacked into one call of ``fn`` (every tile has the same size), so
            ``fn`` sees N = batch * B images; the result does not depend on it (eval mode).
    """
    b, _, h, w = x.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    out = torch.zeros_like(x)
    weight = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    places = [(y0, x0) for y0 in ys for x0 in xs]
    for first in range(0, len(places), batch):
        group = places[first:first + batch]
        restored = fn(torch.cat([x[..., y0:y0 + th, x0:x0 + tw] for y0, x0 in group]))
        for i, (y0, x0) in enumerate(group):
            wy = blend_window(th, overlap, y0 > 0, y0 + th < h)
            wx = blend_window(tw, overlap, x0 > 0, x0 + tw < w)
            win = (wy[:, None] * wx[None, :]).to(x)
            out[..., y0:y0 + th, x0:x0 + tw] += restored[i * b:(i + 1) * b] * win
            weight[..., y0:y0 + th, x0:x0 + tw] += win
            if on_tile is not None:
                on_tile()
    return out / weight


def forward_sliding(fn: Callable[[Tensor], Tensor], x: Tensor, size: int, stride: int) -> Tensor:
    """The authors' sliding-window inference (their GoPro test script): windows of ``size`` at
    every multiple of ``stride`` below the image size, cut short at the bottom and right edges
    rather than shifted, each output clamped to [0, 1], overlaps averaged uniformly.

    Args:
        x: (B, C, H, W).
    """
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    count = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    for i in range(max(h // stride, 1)):
        for j in range(max(w // stride, 1)):
            window = (..., slice(i * stride, i * stride + size), slice(j * stride, j * stride + size))
            out[window] += fn(x[window]).clamp(0, 1)
            count[window] += 1
    return out / count


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    return len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))


# ---------------------------------------------------------------------------------------------
# Self-ensemble
# ---------------------------------------------------------------------------------------------

def dihedral(x: Tensor, k: int) -> Tensor:
    """The k-th (0..7) of the 8 flips/rotations of the last two dims."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def dihedral_inverse(x: Tensor, k: int) -> Tensor:
    x = x.flip(-1) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def forward_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The mean of ``fn`` over the 8 flips/rotations, each mapped back (x8 self-ensemble)."""
    return sum(dihedral_inverse(fn(dihedral(x, k)), k) for k in range(8)) / 8


def cpu_has_native_bfloat16() -> bool:
    """AVX512-BF16 or AMX instructions (else oneDNN emulates bfloat16 with float32 arithmetic)."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def _check_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype for ``name`` on ``device``; float32 with a warning where it is not
    supported natively (emulated float16 or bfloat16 is slower and less accurate)."""
    if name not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    dtype = DTYPES[name]
    if dtype == torch.float16 and device.type != "cuda":
        warnings.warn("float16 is for CUDA devices; running in float32", stacklevel=3)
        return torch.float32
    if dtype == torch.bfloat16:
        native = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                  else device.type == "cpu" and cpu_has_native_bfloat16())
        if not native:
            warnings.warn(f"this {device.type.upper()} has no native bfloat16; running in float32", stacklevel=3)
            return torch.float32
    return dtype


# ---------------------------------------------------------------------------------------------
# The Restorer
# ---------------------------------------------------------------------------------------------

class Restorer:
    """Restore images with a model: paths, PIL images, numpy arrays or tensors.

    Args:
        model: an :class:`SFHformer` (put in eval mode here).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... .
        dtype: ``"fp32"``, ``"fp16"`` (autocast; CUDA only) or ``"bf16"`` (autocast; CUDA where
            supported, a CPU only where it computes bfloat16 natively (AVX512-BF16 or AMX):
            elsewhere a warning and float32). The Fourier units take their FFTs in float32
            whatever the choice.
        half: the same as ``dtype="fp16"`` (kept for older callers).
        tile: tile side; ``None`` tiles automatically only above ``max_pixels``.
        tile_batch: tiles run together in one batch (results equal within 1e-5); ``None``:
            1 on a CPU (no faster there), on CUDA as many as fit the ``max_pixels`` budget, at
            most :data:`MAX_TILE_BATCH`. On running out of CUDA memory the batch halves, then
            the tile side (down to :data:`MIN_FALLBACK_TILE`, with a warning naming the image:
            smaller tiles change the result slightly), and the image is tried again.
        tile_overlap: pixels shared by neighbouring tiles, at most half the tile; ``None``:
            ``default_tile_overlap`` (a bundled model's own), clamped to half the tile with a
            warning.
        max_pixels: the largest image run in one pass when ``tile`` is None (default
            :data:`DEFAULT_MAX_PIXELS`, at least 64x64); larger images are tiled in squares of
            that area.
        ensemble: average the 8 flips/rotations (8x slower, usually a little better).
        progress: show a progress bar over the tiles of large images.
        window: (size, stride): the authors' sliding-window inference instead of whole images
            or tiles (:func:`forward_sliding`; their GoPro test uses (128, 32)).
        on_progress: called with (done, total) after each tile or pass of an image (a web page's
            progress bar).
        keep_freed_memory: on a CPU, let the process reuse freed memory
            (:func:`sfhformer.utils.keep_freed_memory`): 3-6x faster on large images, but
            the setting is process-wide and permanent, and the process holds on to its peak
            memory (handed back between tiles). Off by default, so that a library call does
            not change the process; the commands that restore a batch and exit turn it on.
    """

    def __init__(self, model: SFHformer, device: str | torch.device = "auto", half: bool = False,
                 tile: int | None = None, tile_overlap: int | None = None,
                 tile_batch: int | None = None, dtype: str = "fp32",
                 max_pixels: int | None = None, ensemble: bool = False, progress: bool = False,
                 keep_freed_memory: bool = False, default_tile_overlap: int = DEFAULT_TILE_OVERLAP,
                 window: tuple[int, int] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.device = resolve_device(device)
        if tile is not None and tile < 16:
            raise ConfigError(f"tile must be at least 16 pixels, got {tile}")
        self.max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        if self.max_pixels < MIN_MAX_PIXELS:
            raise ConfigError(f"max_pixels must be at least {MIN_MAX_PIXELS} (64x64): smaller tiles give the "
                              f"network too little context; got {self.max_pixels}")
        self.tile = tile
        side = tile if tile is not None else self.automatic_tile
        source = f"the {side} px tile" + ("" if tile is not None else " that max_pixels gives")
        if tile_overlap is None:
            tile_overlap = min(default_tile_overlap, side // 2)
            if tile_overlap < default_tile_overlap:
                warnings.warn(f"tile overlap {tile_overlap} px: the default {default_tile_overlap} px is more than "
                              f"half {source}", stacklevel=2)
        elif not 0 <= tile_overlap <= side // 2:
            raise ConfigError(f"tile overlap must be in [0, {side // 2}], at most half {source}; got {tile_overlap}")
        self.tile_overlap = tile_overlap
        if keep_freed_memory and self.device.type == "cpu":
            _keep_freed_memory()
        self.dtype = _check_dtype("fp16" if half else dtype, self.device)
        if tile_batch is not None and tile_batch < 1:
            raise ConfigError(f"tile batch must be at least 1, got {tile_batch}")
        self.tile_batch = tile_batch
        self.model = model.to(self.device).eval()
        if window is not None and not (len(window) == 2 and 0 < window[1] <= window[0]):
            raise ConfigError(f"window must be (size, stride) with 0 < stride <= size, got {window}")
        self.window, self.on_progress = window, on_progress
        self.ensemble, self.progress = ensemble, progress

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike, device: str | torch.device = "auto",
                        preset: str | None = None, overrides: dict[str, Any] | None = None,
                        **kwargs: Any) -> "Restorer":
        """A Restorer from a weights file (ours or the authors') or a bundled model name, with
        the model in its fused inference form (:meth:`SFHformer.fuse`). A bundled model's
        tiling (:class:`~sfhformer.pretrained.BundledWeights`) applies unless ``tile`` is given
        (``tile=None``: whole images up to the pixel budget)."""
        from .pretrained import bundled_model

        model = load(weights, preset, **(overrides or {})).fuse()
        bundled = bundled_model(weights)
        if bundled is not None:
            kwargs.setdefault("tile", bundled.tile)
            kwargs.setdefault("default_tile_overlap", bundled.tile_overlap)
        return cls(model, device=device, **kwargs)

    # -- tensors ---------------------------------------------------------------------------

    def tile_size(self, h: int, w: int) -> int | None:
        """The tile side used for an h x w image, or None for one pass."""
        if self.tile is not None:
            return self.tile if max(h, w) > self.tile else None
        if h * w <= self.max_pixels:
            return None
        return self.automatic_tile

    @property
    def automatic_tile(self) -> int:
        """The side of the squares that images above ``max_pixels`` are cut into."""
        return int(math.sqrt(self.max_pixels)) // 8 * 8

    @property
    def half(self) -> bool:
        return self.dtype == torch.float16

    def batch_for(self, tile: int) -> int:
        """Tiles of side ``tile`` run together: ``tile_batch``, or the device's default."""
        if self.tile_batch is not None:
            return self.tile_batch
        if self.device.type != "cuda":
            return 1  # measured: no faster on a CPU, and each tile's memory adds up
        return max(1, min(MAX_TILE_BATCH, self.max_pixels // (tile * tile)))

    def _forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.model(x).float()

    @torch.inference_mode()
    def restore_tensor(self, x: Tensor, what: str = "input tensor") -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float32 in [0, 1] (clamped), on x's device.

        Raises:
            ImageError: another shape or dtype, values outside [0, 1], NaN or Inf (the message
                starts with ``what``).
            ModelError: the model's output holds NaN or Inf (broken weights, float16 overflow).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ImageError(f"{what}: expected shape (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-1] == 0 or x.shape[-2] == 0:
            raise ImageError(f"{what}: zero-size image ({x.shape[-1]}x{x.shape[-2]})")
        check_range(x, what)
        src_device = x.device
        x = x.to(self.device, torch.float32)
        h, w = x.shape[-2:]
        tile = None if self.window else self.tile_size(h, w)
        batch = 1 if tile is None else self.batch_for(tile)
        planned = tile
        while True:
            try:
                y = self._run(x, tile, batch)
                break
            except torch.OutOfMemoryError:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile, batch = self._smaller_plan(tile, batch, h, w, what)
        if tile != planned:
            warnings.warn(f"{what}: out of memory with {f'{planned} px tiles' if planned else 'one pass'}; restored "
                          f"with {tile} px tiles, {batch} at a time (smaller tiles change the result slightly)",
                          stacklevel=2)
        if not torch.isfinite(y).all():
            raise ModelError("the model's output holds NaN or Inf: its weights are broken (a diverged training run?)"
                             + (" or float16 overflowed (try --dtype fp32)" if self.half else ""))
        return y.clamp_(0, 1).to(src_device)

    def _smaller_plan(self, tile: int | None, batch: int, h: int, w: int, what: str) -> tuple[int, int]:
        """After running out of memory: half the tile batch (kept for later images), else tiles
        of half the side (this image only), else give up."""
        if tile is not None and batch > 1:
            self.tile_batch = batch // 2
            return tile, batch // 2
        side = max(h, w) if tile is None else tile
        if self.window is None and side > MIN_FALLBACK_TILE:
            return max(MIN_FALLBACK_TILE, side // 2 // 8 * 8), 1
        raise OutOfMemoryError(f"{what}: out of memory on {self.device} even "
                               + (f"with {tile} px tiles one at a time" if tile else "in one pass")
                               + "; use --device cpu or close what else uses the device")

    def _run(self, x: Tensor, tile: int | None, batch: int) -> Tensor:
        """One attempt at ``x`` with this tiling (None: one pass or the sliding window)."""
        tiles = 1 if tile is None else count_tiles(*x.shape[-2:], tile, self.tile_overlap)
        total, done = tiles * (8 if self.ensemble else 1), 0

        def advance() -> None:
            nonlocal done
            done += 1
            if self.on_progress is not None:
                self.on_progress(done, total)

        bar = None
        if tile is None:
            def fn(t: Tensor) -> Tensor:
                y = forward_sliding(self._forward, t, *self.window) if self.window else self._forward(t)
                advance()
                return y
        else:
            if tiles > MAX_TILES:
                raise ConfigError(f"a {x.shape[-1]}x{x.shape[-2]} image would take {tiles} tiles of {tile} px "
                                  f"(overlap {self.tile_overlap}), each a whole pass of the network; "
                                  f"use larger tiles (--tile, --max-pixels)")
            if self.progress:
                from tqdm.auto import tqdm
                bar = tqdm(total=total, desc="tiles", unit="tile", leave=False)

            def after_tile() -> None:
                release_freed_memory()  # else the heap fragments from tile to tile
                advance()
                if bar is not None:
                    bar.update()

            overlap = min(self.tile_overlap, tile // 2)  # a fallback tile may be smaller than planned

            def fn(t: Tensor) -> Tensor:
                return forward_tiled(self._forward, t, tile, overlap, on_tile=after_tile, batch=batch)
        try:
            return forward_ensemble(fn, x) if self.ensemble else fn(x)
        finally:
            if bar is not None:
                bar.close()

    # -- arrays and images -----------------------------------------------------------------

    def restore_pixels(self, pixels: np.ndarray, what: str = "input array") -> np.ndarray:
        """(H, W, 1|3) array -> same shape and dtype: uint8 (0..255), uint16 (0..65535) or float
        (in [0, 1]); integers come back rounded and clamped, floats clamped to [0, 1].

        Grayscale goes through the 3-channel model and comes back as the mean of its channels.

        Raises:
            ImageError: another dtype, floats outside [0, 1], NaN or Inf, zero size.
        """
        if pixels.shape[0] == 0 or pixels.shape[1] == 0:
            raise ImageError(f"{what}: zero-size image ({pixels.shape[1]}x{pixels.shape[0]})")
        if pixels.dtype not in (np.uint8, np.uint16) and not np.issubdtype(pixels.dtype, np.floating):
            raise ImageError(f"{what}: dtype {pixels.dtype} is not uint8, uint16 or float in [0, 1]; "
                             f"convert it first (e.g. arr.astype(np.uint8) if it holds 0..255)")
        x = to_tensor(pixels)[None]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        y = self.restore_tensor(x, what)[0]
        if pixels.shape[2] == 1:
            y = y.mean(dim=0, keepdim=True)
        return from_tensor(y, pixels.dtype)

    def restore_picture(self, picture: Picture, name: str = "image") -> Picture:
        """A decoded file, restored; alpha untouched, bit depth kept. ``name`` (the file) starts
        the message of an error."""
        return Picture(self.restore_pixels(picture.pixels, name), picture.alpha, picture.format)

    def restore(self, image: Any) -> Any:
        """Restore a path, a PIL image, a numpy array or a tensor, returning the same kind.

        - path (str or Path): the decoded file, restored, as a numpy array in the file's
          bit depth: (H, W) grayscale, (H, W, 3) RGB, or with alpha (H, W, 2) / (H, W, 4);
        - PIL image: a PIL image of the same mode (palette images come back as RGB/RGBA);
        - numpy: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), uint8, uint16 or float in [0, 1];
        - tensor: (3, H, W) or (B, 3, H, W), float in [0, 1] or uint8, on any device.

        Nothing else is guessed: other dtypes, floats outside [0, 1] (0..255 floats, say) and
        NaN or Inf raise :class:`~sfhformer.errors.ImageError` naming dtype and range.
        """
        if isinstance(image, (str, os.PathLike)):
            pic = self.restore_picture(read_image(Path(image)), str(image))
            return _join_alpha(pic.pixels, pic.alpha)
        if isinstance(image, torch.Tensor):
            return self._restore_torch(image)
        if isinstance(image, np.ndarray):
            return self._restore_numpy(image)
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            return self._restore_pil(image)
        raise TypeError(f"cannot restore a {type(image).__name__}; pass a path, PIL image, numpy array or tensor")

    def _restore_torch(self, t: Tensor) -> Tensor:
        batch = t if t.ndim == 4 else t[None]
        if t.dtype == torch.uint8:  # unambiguous: 0..255, and back to uint8, rounded
            y = self.restore_tensor(batch.float() / 255)
            y = (y * 255).round_().to(torch.uint8)
        elif t.is_floating_point():
            y = self.restore_tensor(batch).to(t.dtype)
        else:
            raise ImageError(f"input tensor: dtype {t.dtype} is not float in [0, 1] or uint8")
        return y if t.ndim == 4 else y[0]

    def _restore_numpy(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 2:
            return self.restore_pixels(arr[..., None])[..., 0]
        if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
            raise ImageError(f"input array: expected shape (H, W) or (H, W, C) with C in 1..4, got {arr.shape}")
        if arr.shape[2] in (2, 4):  # colour + alpha: alpha untouched
            return _join_alpha(self.restore_pixels(arr[..., :-1]), arr[..., -1])
        return self.restore_pixels(arr)

    def _restore_pil(self, im):
        from PIL import Image

        from .io import pixels_from_pil

        pixels, alpha = pixels_from_pil(im, Path(getattr(im, "filename", "") or "<PIL image>"))
        result = Image.fromarray(_join_alpha(self.restore_pixels(pixels), alpha))
        return result.convert("I") if im.mode == "I" else result  # 32-bit "I" holds 16-bit values


def _join_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """(H, W, C) + (H, W) alpha -> (H, W, C+1); grayscale without alpha -> (H, W)."""
    if alpha is not None:
        return np.concatenate([pixels, alpha[..., None].astype(pixels.dtype)], axis=2)
    return pixels[..., 0] if pixels.shape[2] == 1 else pixels
