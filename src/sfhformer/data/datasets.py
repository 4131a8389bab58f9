"""Paired datasets (degraded / clean folders, the standard benchmarks' layouts) and synthetic
ones (clean photographs degraded on the fly).

Randomness (crops, flips, rotations, degradations) is drawn from a generator seeded by
``(seed, epoch, index)``: a sample is the same whatever the worker, process or resume point,
which is what makes resumed and multi-process training reproduce a single uninterrupted run.
Samples are dicts: ``lq`` (degraded) and ``gt`` (clean), (3, H, W) float32 in [0, 1], and
``name``. Indices may be ``int`` or ``(index, epoch)`` (see ``train.EpochBatchSampler``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError, ImageError, NotFoundError
from ..io import IMAGE_EXTENSIONS, is_temporary, read_image, rgb_pixels, to_tensor
from ..utils import pad_bottom_right, shorten_list
from .degradations import Compose


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's randomness."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + index)


def load_rgb(path: str | os.PathLike) -> torch.Tensor:
    """An image file as (3, H, W) float32 in [0, 1]: grayscale repeated, alpha dropped."""
    return to_tensor(rgb_pixels(read_image(path).pixels))


def center_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def random_crop(tensors: list[torch.Tensor], size: int, g: torch.Generator, pad_small: bool,
                name: str) -> list[torch.Tensor]:
    """The same random ``size`` x ``size`` crop of each tensor; images smaller than the crop are
    reflect-padded (``pad_small``) or refused with a clear message."""
    h, w = tensors[0].shape[-2:]
    if h < size or w < size:
        if not pad_small:
            raise DataError(f"{name}: image is {w}x{h}, smaller than the {size}x{size} crop "
                            f"(set pad_small: true to pad it)")
        tensors = [pad_bottom_right(t, size, size) for t in tensors]
        h, w = tensors[0].shape[-2:]
    top = int(torch.randint(0, h - size + 1, (), generator=g))
    left = int(torch.randint(0, w - size + 1, (), generator=g))
    return [t[..., top:top + size, left:left + size] for t in tensors]


def random_flip_rotate(tensors: list[torch.Tensor], g: torch.Generator) -> list[torch.Tensor]:
    """The same random horizontal flip and 90-degree rotation of each tensor."""
    k, flip = int(torch.randint(0, 4, (), generator=g)), bool(torch.randint(0, 2, (), generator=g))
    out = [torch.rot90(t, k, dims=(-2, -1)) for t in tensors]
    return [t.flip(-1) for t in out] if flip else out


def _split_index(item: int | tuple[int, int]) -> tuple[int, int]:
    return (int(item[0]), int(item[1])) if isinstance(item, (tuple, list)) else (int(item), 0)


# ---------------------------------------------------------------------------------------------
# Benchmark layouts
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """How a benchmark stores its pairs under a root folder.

    Attributes:
        degraded, clean: candidate sub-folders (the first that exists is used; "." = root).
        pattern: regex the degraded file stems must match to take part.
        rename: (regex, replacement) turning a degraded stem into its clean stem.
        crop_clean: centre-crop clean images to their degraded partner's size (SOTS indoor).
        y_channel, crop_border: how papers score this benchmark (``sfhformer eval`` defaults).
    """

    degraded: tuple[str, ...]
    clean: tuple[str, ...]
    pattern: str = r".*"
    rename: tuple[str, str] | None = None
    crop_clean: bool = False
    y_channel: bool = False
    crop_border: int = 0


_HAZE = dict(degraded=("hazy",), clean=("gt", "GT", "clear"), rename=(r"_.*$", ""), crop_clean=True)
LAYOUTS: dict[str, Layout] = {
    # input/ and target/ with the same names (Restormer's and BasicSR's prepared test sets)
    "paired": Layout(("input", "lq", "degraded"), ("target", "gt", "clean")),
    "rain100": Layout(("rainy", "input", "."), ("norain", "target", "."), pattern=r"^rain-\d+$",
                      rename=(r"^rain-", "norain-"), y_channel=True),
    "rain200": Layout(("rain/X2", "rain", "input"), ("norain", "target"), pattern=r"^norain-\d+x2$",
                      rename=(r"x2$", ""), y_channel=True),
    "gopro": Layout(("blur", "input"), ("sharp", "target")),
    "sots_indoor": Layout(**_HAZE),
    "sots_outdoor": Layout(**_HAZE),
    "its": Layout(**_HAZE),
    "ots": Layout(**_HAZE),
    "lol_v1": Layout(("low",), ("high",)),
    "lol_v2_real": Layout(("Low", "low"), ("Normal", "normal"), rename=(r"^low", "normal")),
    "lol_v2_synthetic": Layout(("Low", "low"), ("Normal", "normal")),
    "snow100k": Layout(("synthetic",), ("gt",)),
    "csd": Layout(("Snow", "snow"), ("Gt", "gt")),
    "uieb": Layout(("raw-890", "raw", "input"), ("reference-890", "reference", "target")),
}


def _first_dir(root: Path, candidates: tuple[str, ...], what: str, layout: str) -> Path:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    raise NotFoundError(f"{root}: no {what} folder for layout {layout!r} (looked for {', '.join(candidates)})")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_temporary(p))


def find_pairs(degraded_dir: Path, clean_dir: Path, layout: Layout, name: str = "") -> list[tuple[Path, Path]]:
    """(degraded, clean) file pairs matched by (renamed) stem, extensions free.

    Raises:
        ValueError: listing the degraded files that have no clean partner.
    """
    clean = {p.stem: p for p in _images_in(clean_dir)}
    pattern = re.compile(layout.pattern)
    pairs, unmatched = [], []
    for path in _images_in(degraded_dir):
        if not pattern.search(path.stem):
            continue
        stem = re.sub(layout.rename[0], layout.rename[1], path.stem) if layout.rename else path.stem
        if stem in clean and clean[stem] != path:
            pairs.append((path, clean[stem]))
        else:
            unmatched.append(path.name)
    if unmatched:
        raise DataError(f"{degraded_dir}: {len(unmatched)} degraded file(s) without a clean partner in "
                        f"{clean_dir}{f' (layout {name!r})' if name else ''}: {shorten_list(unmatched)}")
    if not pairs:
        raise DataError(f"{degraded_dir}: no image pairs found against {clean_dir}")
    return pairs


class PairedImageDataset(Dataset):
    """Pairs of degraded and clean images from two folders, or a benchmark's root folder.

    Args:
        root: a benchmark's folder (with ``layout``), or None with both folders given.
        layout: a name from :data:`LAYOUTS`; default ``"paired"`` (same file names).
        degraded_dir, clean_dir: explicit folders (override the layout's sub-folders).
        crop: random crop side for training; None keeps whole images.
        augment: random flips and 90-degree rotations (identical for both images).
        pad_small: reflect-pad images smaller than the crop instead of refusing them.
        seed: the base seed of crops and augmentation.
    """

    def __init__(self, root: str | os.PathLike | None = None, layout: str = "paired",
                 degraded_dir: str | os.PathLike | None = None, clean_dir: str | os.PathLike | None = None,
                 crop: int | None = None, augment: bool = False, pad_small: bool = True, seed: int = 0) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        self.layout = LAYOUTS[layout]
        if degraded_dir is None or clean_dir is None:
            if root is None:
                raise ConfigError("give a root folder, or both degraded_dir and clean_dir")
            root = Path(root)
            if not root.is_dir():
                raise NotFoundError(f"{root}: no such folder")
            degraded_dir = degraded_dir or _first_dir(root, self.layout.degraded, "degraded", layout)
            clean_dir = clean_dir or _first_dir(root, self.layout.clean, "clean", layout)
        for folder in (degraded_dir, clean_dir):
            if not Path(folder).is_dir():
                raise NotFoundError(f"{folder}: no such folder")
        self.pairs = find_pairs(Path(degraded_dir), Path(clean_dir), self.layout, layout)
        self.crop, self.augment, self.pad_small, self.seed = crop, augment, pad_small, seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = _split_index(item)
        lq_path, gt_path = self.pairs[index]
        lq, gt = load_rgb(lq_path), load_rgb(gt_path)
        if gt.shape != lq.shape:
            if self.layout.crop_clean and all(c >= d for c, d in zip(gt.shape[-2:], lq.shape[-2:])):
                gt = center_crop(gt, *lq.shape[-2:])
            else:
                raise ImageError(f"{lq_path}: size {lq.shape[-1]}x{lq.shape[-2]} differs from its clean "
                                 f"partner {gt_path} ({gt.shape[-1]}x{gt.shape[-2]})")
        g = sample_generator(self.seed, epoch, index)
        if self.crop:
            lq, gt = random_crop([lq, gt], self.crop, g, self.pad_small, str(lq_path))
        if self.augment:
            lq, gt = random_flip_rotate([lq, gt], g)
        return {"lq": lq.contiguous(), "gt": gt.contiguous(), "name": lq_path.stem}


class SyntheticDataset(Dataset):
    """Clean images degraded on the fly.

    Args:
        images: clean image files.
        degradations: a :class:`Compose` (or its config list).
        crop: random crop side; None keeps whole images.
        augment: random flips and 90-degree rotations.
        length: samples per epoch (default: one per image); image ``i % len(images)``.
        fixed: the same degradation every epoch (validation sets).
        seed: base seed.
        pad_small: reflect-pad images smaller than the crop.
    """

    def __init__(self, images: list[Path], degradations: Compose | list[dict[str, Any]], crop: int | None = None,
                 augment: bool = True, length: int | None = None, fixed: bool = False, seed: int = 0,
                 pad_small: bool = True, max_side: int | None = None) -> None:
        if not images:
            raise ConfigError("a synthetic dataset needs at least one clean image")
        self.images = [Path(p) for p in images]
        self.degrade = degradations if isinstance(degradations, Compose) else Compose.from_config(degradations)
        self.crop, self.augment, self.fixed, self.seed, self.pad_small = crop, augment, fixed, seed, pad_small
        self.length = length or len(self.images)
        self.max_side = max_side
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.length

    def _clean(self, i: int) -> torch.Tensor:
        if i not in self._cache:  # few, small photographs: keep them decoded
            x = load_rgb(self.images[i])
            if self.max_side and max(x.shape[-2:]) > self.max_side:
                x = center_crop(x, min(x.shape[-2], self.max_side), min(x.shape[-1], self.max_side))
            self._cache[i] = x
        return self._cache[i]

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = _split_index(item)
        i = index % len(self.images)
        g = sample_generator(self.seed, 0 if self.fixed else epoch, index)
        gt = self._clean(i)
        if self.crop:
            (gt,) = random_crop([gt], self.crop, g, self.pad_small, str(self.images[i]))
        if self.augment:
            (gt,) = random_flip_rotate([gt], g)
        gt = gt.contiguous()
        return {"lq": self.degrade(gt, g).contiguous(), "gt": gt, "name": f"{self.images[i].stem}_{index}"}


def build_dataset(spec: dict[str, Any], seed: int = 0) -> Dataset:
    """A dataset from a config mapping (the ``data.train`` / ``data.val`` sections of a YAML)."""
    from .samples import resolve_image_list

    spec = dict(spec)
    kind = spec.pop("type", "paired")
    if kind == "synthetic":
        images = resolve_image_list(spec.pop("images"))
        return SyntheticDataset(images, spec.pop("degradations"), seed=spec.pop("seed", seed), **spec)
    if kind == "paired":
        return PairedImageDataset(seed=spec.pop("seed", seed), **spec)
    raise ConfigError(f"unknown dataset type {kind!r}; use 'paired' or 'synthetic'")
