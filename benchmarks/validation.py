"""A denoiser against non-local means per photograph of the Debian validation split: the check
that chose ``denoise@2``'s noise range without looking at a held-out photograph.

    python benchmarks/validation.py denoise@2 --levels 15
    python benchmarks/validation.py runs/bundled_denoise_v2/checkpoints/best.safetensors --levels 15 25 50

Photographs: ``debian:val`` (``sfhformer.data.debian``; ``configs/bundled/install_photos.sh``),
640 px wide, whole. Noise and non-local means as ``benchmarks/quality.py`` draws and tunes them
(other seeds); the weights run in tiles of 128 px with 32 px overlap, the bundled denoiser's
tiling. Printed: the PSNR margin over non-local means per photograph and the smallest one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from quality import degrade, nlm, tune  # noqa: E402

from sfhformer.data.debian import installed_names, load_debian_photograph  # noqa: E402
from sfhformer.metrics import psnr  # noqa: E402
from sfhformer.restore import Restorer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="a bundled NAME@VERSION or a weights file")
    parser.add_argument("--levels", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = installed_names("val")
    if not names:
        raise SystemExit("no Debian validation photograph is installed: bash configs/bundled/install_photos.sh")
    restorer = Restorer.from_pretrained(args.weights, device="cpu", tile=128, tile_overlap=32)
    for level in args.levels:
        h = tune("denoise", "non-local means", level)
        margins = []
        for i, name in enumerate(names):
            clean = load_debian_photograph(name)
            degraded, _ = degrade(clean, "denoise", level, seed=7000 + i)
            margins.append(psnr(restorer.restore(degraded), clean) - psnr(nlm(degraded, level, h), clean))
        listed = " ".join(f"{n} {m:+.2f}" for n, m in zip(names, margins))
        print(f"sigma {level:g}: {listed}; smallest {min(margins):+.2f} dB", flush=True)


if __name__ == "__main__":
    main()
