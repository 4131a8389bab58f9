"""``sfhformer demo``: degrade a photograph, restore it with each bundled model, show the result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.degradations import Compose
from .errors import ConfigError, NotFoundError
from .io import from_tensor, read_image, to_tensor, write_image
from .metrics import psnr, ssim, to_rgb_uint8
from .pretrained import BUNDLED, available
from .restore import Restorer

DEMO_PHOTO = "grace_hopper"  # a real photograph shipped with matplotlib, never trained on


def side_by_side(images: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """(H, W, 3) uint8 images in a row, each with a caption strip above it."""
    from PIL import Image, ImageDraw

    h, w = images[0].shape[:2]
    strip, gap = 24, 8
    canvas = Image.new("RGB", (len(images) * w + (len(images) - 1) * gap, h + strip), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (img, label) in enumerate(zip(images, labels)):
        x = i * (w + gap)
        canvas.paste(Image.fromarray(img), (x, strip))
        draw.text((x + 4, 5), label, fill="black")
    return np.asarray(canvas)


def run_demo(out_dir: str | os.PathLike = "sfhformer_demo", tasks: list[str] | None = None,
             image: str | os.PathLike | None = None, device: str = "auto", seed: int = 0,
             max_side: int = 512, keep_freed_memory: bool = False) -> list[dict[str, Any]]:
    """For each task: degrade the clean photograph, restore it, write the clean, degraded,
    restored and side-by-side images to ``out_dir``; return PSNR/SSIM of degraded and restored.
    ``keep_freed_memory``: as :class:`~sfhformer.restore.Restorer` takes it (the CLI turns it on)."""
    from .data.samples import photograph_path

    tasks = tasks or list(available())
    unknown = [t for t in tasks if t not in BUNDLED]
    if unknown:
        raise ConfigError(f"unknown demo task(s) {unknown}; bundled: {', '.join(BUNDLED)}")
    if not tasks:
        raise NotFoundError("no bundled weights in this installation")
    path = Path(image) if image is not None else photograph_path(DEMO_PHOTO)
    pic = read_image(path)
    clean = to_rgb_uint8(pic.pixels)
    h, w = clean.shape[:2]
    if max(h, w) > max_side:  # keep the demo quick on a CPU: the centre of large photographs
        top, left = max((h - max_side) // 2, 0), max((w - max_side) // 2, 0)
        clean = clean[top:top + max_side, left:left + max_side]
    out = Path(out_dir)
    x = to_tensor(clean)
    results = []
    for task in tasks:
        spec = BUNDLED[task]
        degraded_t = Compose.from_config([dict(d) for d in spec.demo])(x, torch.Generator().manual_seed(seed))
        degraded = from_tensor(degraded_t, np.uint8)
        restored = Restorer.from_pretrained(task, device=device, keep_freed_memory=keep_freed_memory).restore(degraded)
        row = {"task": task, "degraded_psnr": psnr(degraded, clean), "degraded_ssim": ssim(degraded, clean),
               "restored_psnr": psnr(restored, clean), "restored_ssim": ssim(restored, clean)}
        results.append(row)
        for name, img in (("clean", clean), ("degraded", degraded), ("restored", restored)):
            write_image(out / f"{task}_{name}.png", img)
        write_image(out / f"{task}_comparison.png", side_by_side(
            [degraded, restored, clean],
            [f"degraded  {row['degraded_psnr']:.2f} dB / {row['degraded_ssim']:.3f}",
             f"restored ({task})  {row['restored_psnr']:.2f} dB / {row['restored_ssim']:.3f}", "clean"]))
    return results
