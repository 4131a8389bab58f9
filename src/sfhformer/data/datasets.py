"""Paired datasets (degraded / clean folders, the standard benchmarks' layouts) and synthetic
ones (clean photographs degraded on the fly).

Randomness (crops, flips, rotations, degradations) is drawn from a generator seeded by
``(seed, epoch, index)``: a sample is the same whatever the worker, process or resume point,
which is what makes resumed and multi-process training reproduce a single uninterrupted run.
Samples are dicts: ``lq`` (degraded) and ``gt`` (clean), (3, H, W) float32 in [0, 1], and
``name``. Indices may be ``int`` or ``(index, epoch)`` (see ``train.EpochBatchSampler``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError, ImageError, NotFoundError
from ..io import read_image, rgb_pixels, to_tensor
from ..utils import pad_bottom_right
from .layouts import find_pairs, get_layout, layout_folders
from .dead_leaves import DeadLeaves
from .degradations import Compose, Photometric


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


def resize_to_cover(tensors: list[torch.Tensor], size: int) -> list[torch.Tensor]:
    """Each (C, H, W) tensor resized up (bilinear, aspect kept) so its short side is at least
    ``size``; larger ones unchanged. The authors' loaders do this to images below their crop
    (with width and height swapped, a slip this keeps out)."""
    h, w = tensors[0].shape[-2:]
    if min(h, w) >= size:
        return tensors
    scale = size / min(h, w)
    shape = (max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale)))
    return [F.interpolate(t[None], size=shape, mode="bilinear", align_corners=False)[0].clamp(0, 1) for t in tensors]


def random_flip_rotate(tensors: list[torch.Tensor], g: torch.Generator) -> list[torch.Tensor]:
    """The same random horizontal flip and 90-degree rotation of each tensor."""
    k, flip = int(torch.randint(0, 4, (), generator=g)), bool(torch.randint(0, 2, (), generator=g))
    out = [torch.rot90(t, k, dims=(-2, -1)) for t in tensors]
    return [t.flip(-1) for t in out] if flip else out


def _split_index(item: int | tuple[int, int]) -> tuple[int, int]:
    return (int(item[0]), int(item[1])) if isinstance(item, (tuple, list)) else (int(item), 0)


class PairedImageDataset(Dataset):
    """Pairs of degraded and clean images from two folders, or a benchmark's root folder.

    Args:
        root: a benchmark's folder (with ``layout``), or None with both folders given.
        layout: a name from :data:`~sfhformer.data.LAYOUTS`; default ``"paired"`` (same names).
        degraded_dir, clean_dir: explicit folders (override the layout's sub-folders).
        crop: random crop side for training; None keeps whole images.
        augment: random flips and 90-degree rotations (identical for both images).
        pad_small: reflect-pad images smaller than the crop instead of refusing them.
        resize_small: resize images smaller than the crop up (bilinear, aspect kept) so their
            short side is the crop, as the authors' loaders do; takes precedence over padding.
        center_multiple: centre-crop both images to a multiple of this (the authors' test
            loaders use 8), before anything else.
        split: keep only the degraded files a split names (a shipped split such as
            ``"lsui_test"``, or a text file of names).
        seed: the base seed of crops and augmentation.
    """

    def __init__(self, root: str | os.PathLike | None = None, layout: str = "paired",
                 degraded_dir: str | os.PathLike | None = None, clean_dir: str | os.PathLike | None = None,
                 crop: int | None = None, augment: bool = False, pad_small: bool = True, seed: int = 0,
                 resize_small: bool = False, center_multiple: int | None = None,
                 split: str | os.PathLike | None = None) -> None:
        self.layout = get_layout(layout)
        if degraded_dir is None or clean_dir is None:
            if root is None:
                raise ConfigError("give a root folder, or both degraded_dir and clean_dir")
            found = layout_folders(Path(root), self.layout, layout)
            degraded_dir, clean_dir = degraded_dir or found[0], clean_dir or found[1]
        for folder in (degraded_dir, clean_dir):
            if not Path(folder).is_dir():
                raise NotFoundError(f"{folder}: no such folder")
        self.pairs = find_pairs(Path(degraded_dir), Path(clean_dir), self.layout, layout, split)
        self.crop, self.augment, self.pad_small, self.seed = crop, augment, pad_small, seed
        self.resize_small, self.center_multiple = resize_small, center_multiple

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair's (degraded, clean) tensors, whole, checked to match in size."""
        lq_path, gt_path = self.pairs[index]
        if self.layout.side_by_side:  # one file: degraded | clean
            both = load_rgb(lq_path)
            half = both.shape[-1] // 2
            lq, gt = both[..., :half], both[..., half:2 * half]
        else:
            lq, gt = load_rgb(lq_path), load_rgb(gt_path)
        if gt.shape != lq.shape:
            if self.layout.crop_clean and all(c >= d for c, d in zip(gt.shape[-2:], lq.shape[-2:])):
                gt = center_crop(gt, *lq.shape[-2:])
            else:
                raise ImageError(f"{lq_path}: size {lq.shape[-1]}x{lq.shape[-2]} differs from its clean "
                                 f"partner {gt_path} ({gt.shape[-1]}x{gt.shape[-2]})")
        if self.center_multiple:
            m = self.center_multiple
            lq, gt = (center_crop(t, t.shape[-2] - t.shape[-2] % m, t.shape[-1] - t.shape[-1] % m) for t in (lq, gt))
        return lq, gt

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = _split_index(item)
        lq, gt = self.load_pair(index)
        lq_path = self.pairs[index][0]
        g = sample_generator(self.seed, epoch, index)
        if self.crop:
            if self.resize_small:
                lq, gt = resize_to_cover([lq, gt], self.crop)
            lq, gt = random_crop([lq, gt], self.crop, g, self.pad_small, str(lq_path))
        if self.augment:
            lq, gt = random_flip_rotate([lq, gt], g)
        return {"lq": lq.contiguous(), "gt": gt.contiguous(), "name": lq_path.stem}


def chroma_subsampled(path: str | os.PathLike) -> bool:
    """Whether an image file is a JPEG whose colour (chroma) is stored at lower resolution than
    its brightness (4:2:0, 4:2:2 or 4:1:1 subsampling); only the header is read."""
    from PIL import Image, JpegImagePlugin

    with Image.open(path) as im:
        return im.format == "JPEG" and JpegImagePlugin.get_sampling(im) > 0


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
        max_side: centre-crop larger images to this side (validation sets).
        downscale_to: shrink images whose longer side exceeds this (area averaging), once when
            loaded: large photographs (desktop backgrounds of 2560 px and more) carry their own
            noise and JPEG artefacts, which shrinking averages away. A list of sides: each sample
            uses one of them, drawn uniformly (photographs at several scales: the smaller, the
            denser their detail per pixel).
        photometric: options of :class:`~sfhformer.data.degradations.Photometric` (exposure
            and colour changes of the clean image, the target); None: none.
        dead_leaves: options of :class:`~sfhformer.data.dead_leaves.DeadLeaves`: that share
            (``p``) of the samples is a synthetic image of the crop's size instead of a
            photograph crop (then flipped, photometric-changed and degraded as one); None: none.
        full_res_chroma: shrink a JPEG that stores its colour at half resolution (4:2:0 or
            4:2:2 chroma subsampling) at least 2x, whatever ``downscale_to`` asks, so that
            its colour is as sharp as its brightness: a clean target with upsampled chroma
            teaches a denoiser to blur colour edges (docs/bundled-models.md, version 5).
    """

    def __init__(self, images: list[Path], degradations: Compose | list[dict[str, Any]], crop: int | None = None,
                 augment: bool = True, length: int | None = None, fixed: bool = False, seed: int = 0,
                 pad_small: bool = True, max_side: int | None = None,
                 downscale_to: int | Sequence[int] | None = None, photometric: dict[str, Any] | None = None,
                 dead_leaves: dict[str, Any] | None = None, full_res_chroma: bool = False) -> None:
        if not images:
            raise ConfigError("a synthetic dataset needs at least one clean image")
        self.full_res_chroma = full_res_chroma
        self.images = [Path(p) for p in images]
        self.degrade = degradations if isinstance(degradations, Compose) else Compose.from_config(degradations)
        self.crop, self.augment, self.fixed, self.seed, self.pad_small = crop, augment, fixed, seed, pad_small
        self.length = length or len(self.images)
        sides = list(downscale_to) if isinstance(downscale_to, (list, tuple)) else [downscale_to]
        if not sides or any(s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1) for s in sides):
            raise ConfigError(f"downscale_to: expected a side in pixels or a list of them, got {downscale_to!r}")
        self.max_side, self.downscale_to = max_side, sides
        self.photometric = None if photometric is None else Photometric.from_config(photometric)
        self.dead_leaves = None if dead_leaves is None else DeadLeaves.from_config(dead_leaves)
        if self.dead_leaves is not None and not crop:
            raise ConfigError("dead_leaves needs a crop size: the synthetic images are drawn at the crop's size")
        self._cache: dict[tuple[int, int | None], torch.Tensor] = {}

    def __len__(self) -> int:
        return self.length

    def _clean(self, i: int, side: int | None) -> torch.Tensor:
        if (i, side) not in self._cache:  # few, small photographs: keep them decoded
            x = load_rgb(self.images[i])
            shrink_to = side
            if self.full_res_chroma and chroma_subsampled(self.images[i]):
                shrink_to = min(side or math.inf, max(x.shape[-2:]) // 2)
            if shrink_to and max(x.shape[-2:]) > shrink_to:
                scale = shrink_to / max(x.shape[-2:])
                size = [max(1, round(n * scale)) for n in x.shape[-2:]]
                x = F.interpolate(x[None], size=size, mode="area")[0].clamp(0, 1)
            if self.max_side and max(x.shape[-2:]) > self.max_side:
                x = center_crop(x, min(x.shape[-2], self.max_side), min(x.shape[-1], self.max_side))
            self._cache[i, side] = x
        return self._cache[i, side]

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = _split_index(item)
        i = index % len(self.images)
        g = sample_generator(self.seed, 0 if self.fixed else epoch, index)
        # one side: no draw, so the samples of single-scale recipes stay as they were
        side = self.downscale_to[0] if len(self.downscale_to) == 1 else \
            self.downscale_to[int(torch.randint(len(self.downscale_to), (), generator=g))]
        name = f"{self.images[i].stem}_{index}"
        # drawn only when asked for, so that recipes without dead leaves draw the same numbers
        if self.dead_leaves is not None and float(torch.rand((), generator=g)) < self.dead_leaves.p:
            gt, name = self.dead_leaves(self.crop, g), f"dead_leaves_{index}"
        else:
            gt = self._clean(i, side)
            if self.crop:
                (gt,) = random_crop([gt], self.crop, g, self.pad_small, str(self.images[i]))
        if self.augment:
            (gt,) = random_flip_rotate([gt], g)
        if self.photometric is not None:
            gt = self.photometric(gt, g)
        gt = gt.contiguous()
        return {"lq": self.degrade(gt, g).contiguous(), "gt": gt, "name": name}


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
