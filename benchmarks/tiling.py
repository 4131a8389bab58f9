"""Inference tilings of the bundled models scored on training or validation photographs (never
the held-out ones).

    python benchmarks/tiling.py --json benchmarks/results/tiling.json
    python benchmarks/tiling.py --tasks denoise --weights denoise@2 --debian-val --json benchmarks/results/tiling_denoise_v2.json

The Fourier branch sees the whole input, so a network trained on small crops may restore tiles
near its crop size better than a whole photograph (``sfhformer.pretrained.BundledWeights``).
This table scores, per task and level, whole-image restoration against tiles of several
sizes and overlaps, on colour training photographs (cut to ``--side``) degraded as
``benchmarks/quality.py`` degrades (same functions, other seeds), and names the tiling with
the best mean PSNR over the levels (rows with ``tiling: null`` score the degraded input).

``--debian-val`` scores the validation split of the Debian photographs instead (whole, 640 px
wide; ``sfhformer.data.debian``): never trained on, never reported as a result, so a fair
place to choose a tiling (the validation loss picked ``denoise@2``'s checkpoint there too).

Read the default table with care: its photographs were trained on, so they are no clean validation set.
On them the denoiser scores whole images level with tiles of 128 px and prefers tiles of
256 px; on the held-out photographs (``quality.py``) whole images are about 1 dB worse and
tiles of 256 px lose to tiles of 128 px at sigma 15 and 25. The shipped tilings are not
chosen by this table (README, Bundled models).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from quality import LEVELS, degrade, load_photo  # noqa: E402

from sfhformer.metrics import psnr  # noqa: E402
from sfhformer.restore import Restorer  # noqa: E402

# Colour training photographs, cut to at most 512 px a side (the held-out ones are 300-640 px).
PHOTOS = ("astronaut", "motorcycle_left", "immunohistochemistry")
TILINGS = [(None, 0), (96, 32), (128, 32), (128, 64), (192, 32), (192, 64), (256, 32), (256, 64)]


def label(tile: int | None, overlap: int) -> str:
    return "whole image" if tile is None else f"tiles {tile}, overlap {overlap}"


def mean_psnr(rows: list[dict], task: str) -> dict[str, float]:
    """Each tiling's PSNR averaged over the task's levels (the degraded-input rows left out)."""
    names = dict.fromkeys(r["tiling"] for r in rows if r["task"] == task and r["tiling"] is not None)
    return {n: float(np.mean([r["psnr"] for r in rows if r["task"] == task and r["tiling"] == n])) for n in names}


def best(rows: list[dict], task: str) -> tuple[str, float]:
    """The tiling with the best PSNR averaged over the task's levels, and that mean."""
    means = mean_psnr(rows, task)
    name = max(means, key=means.get)
    return name, means[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["denoise", "deblur"])
    parser.add_argument("--side", type=int, default=512, help="cut each photograph to at most this side")
    parser.add_argument("--tilings", nargs="+", default=[f"{t or 0}:{o}" for t, o in TILINGS],
                        metavar="TILE:OVERLAP", help="0 for the whole image")
    parser.add_argument("--weights", help="score these weights (a bundled NAME@VERSION or a file) for every task, "
                                          "instead of each task's latest bundled model")
    parser.add_argument("--debian-val", action="store_true",
                        help="the Debian validation photographs (640 px wide, whole) instead of training photographs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tilings = [(int(t) or None, int(o)) for t, o in (spec.split(":") for spec in args.tilings)]
    if args.debian_val:
        from sfhformer.data.debian import installed_names, load_debian_photograph

        names = installed_names("val")
        if not names:
            raise SystemExit("no Debian validation photograph is installed: bash configs/bundled/install_photos.sh")
        photos = [load_debian_photograph(name) for name in names]
    else:
        names = list(PHOTOS)
        photos = [load_photo(name)[:args.side, :args.side] for name in PHOTOS]
    rows = []
    for task in args.tasks:
        restorers = {label(t, o): Restorer.from_pretrained(args.weights or task, device="cpu", tile=t, tile_overlap=o)
                     for t, o in tilings}
        for level in LEVELS[task]:
            degraded = [degrade(clean, task, level, seed=5000 + i)[0] for i, clean in enumerate(photos)]
            score = float(np.mean([psnr(d, c) for d, c in zip(degraded, photos)]))
            rows.append({"task": task, "level": level, "tiling": None, "psnr": score})  # the input, for scale
            print(f"{task:<8} {level:>4} {'degraded input':<24} {score:7.2f} dB", flush=True)
            for name, restorer in restorers.items():
                score = float(np.mean([psnr(restorer.restore(d), c) for d, c in zip(degraded, photos)]))
                rows.append({"task": task, "level": level, "tiling": name, "psnr": score})
                print(f"{task:<8} {level:>4} {name:<24} {score:7.2f} dB", flush=True)
        for name, mean in mean_psnr(rows, task).items():
            print(f"{task:<8} mean {name:<24} {mean:7.2f} dB", flush=True)
        print(f"{task:<8} best {'%s (%.2f dB)' % best(rows, task)}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"photos": names, "weights": args.weights, "side": None if args.debian_val else args.side, "rows": rows,
                                               "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d")},
                                              indent=1))


if __name__ == "__main__":
    main()
