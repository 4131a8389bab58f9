"""Why does the bundled denoiser shift the colour of some photographs? Per-channel mean errors.

    python benchmarks/colour_cast.py --json benchmarks/results/colour_cast.json
    python benchmarks/colour_cast.py --weights denoise@1 --weights denoise@2 --json benchmarks/results/colour_cast_v2.json

Photographs: the darkest and most strongly coloured Debian desktop backgrounds of the
validation and held-out splits (``sfhformer.data.debian``; install them with
``configs/bundled/install_photos.sh``), shrunk to 640 px wide (the size of the case that was
reported), and two held-out pip photographs darkened with gamma 2.5. Each gets Gaussian noise
of sigma 25 (fixed seed), rounded and clipped to 8 bits as a camera would, and is restored with
the bundled tiling (128 px tiles) and whole. The same photograph is also run in gray (its
channel mean, so no colour), brightened (gamma 1/2.2: far from black, so no clipping of the
noise) and both, which separates the candidate causes: colour, darkness (the clipping of
noise at black; the spectrum's DC term, which scales with brightness), and tiling.

Printed per case: the mean error per channel R, G, B on the 0..255 scale (restored minus
clean; a colour cast is a difference between channels), what the clipped noise alone adds to
the input's mean, and PSNR; scikit-image's non-local means for reference. ``--ends`` also
prints, per channel, the mean error where the clean value is at black (0-2) and at white
(253-255), with the share of such pixels: where the noise was clipped hardest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sfhformer.data import photograph_path
from sfhformer.errors import NotFoundError
from sfhformer.io import read_image, rgb_pixels
from sfhformer.pretrained import BUNDLED
from sfhformer.restore import Restorer

TILING = BUNDLED["denoise"]  # the bundled denoiser's tiling, for weights files too

DEBIAN = ["path", "one_stands_out", "butterfly", "after_the_rain", "fresh_flower", "yellow_flower"]
DARKENED = ["coffee", "grace_hopper"]


def photographs() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) float64 in [0, 1], the clean photographs measured."""
    from sfhformer.data.debian import load_debian_photograph

    out = {}
    for name in DEBIAN:
        try:
            out[name] = load_debian_photograph(name) / 255.0
        except NotFoundError as e:
            print(f"note: {e}; skipped", file=sys.stderr)
    for name in DARKENED:
        out[f"{name}, gamma 2.5"] = (rgb_pixels(read_image(photograph_path(name)).pixels) / 255.0) ** 2.5
    return out


def variants(clean: np.ndarray) -> dict[str, np.ndarray]:
    gray = clean.mean(2, keepdims=True).repeat(3, 2)
    return {"as is": clean, "gray": gray, "brightened": clean ** (1 / 2.2), "gray, brightened": gray ** (1 / 2.2)}


def nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means
    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                            channel_axis=-1)


def ends(clean8: np.ndarray, out8: np.ndarray) -> dict[str, list[dict[str, float] | None]]:
    """Per channel, the mean error (0..255) and the share of pixels where the clean value is at
    black (0-2) and at white (253-255); None where a channel has under 1% of such pixels."""
    out = {}
    for end, (lo, hi) in {"0-2": (0, 2), "253-255": (253, 255)}.items():
        per_channel = []
        for c in range(3):
            at = (clean8[..., c] >= lo) & (clean8[..., c] <= hi)
            per_channel.append({"error": round(float((out8[..., c] - clean8[..., c])[at].mean()), 2),
                                "share": round(float(at.mean()), 3)} if at.mean() >= 0.01 else None)
        out[end] = per_channel
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", help="weights to measure (default: denoise); repeatable")
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--tiled-only", action="store_true", help="no whole-image rows")
    parser.add_argument("--ends", action="store_true",
                        help="also the mean error per channel where the clean value is 0-2 and 253-255")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restorers = {}
    for w in args.weights or ["denoise"]:
        restorers[f"{w}, {TILING.tile} px tiles"] = Restorer.from_pretrained(w, device="cpu", tile=TILING.tile,
                                                                            tile_overlap=TILING.tile_overlap)
        if not args.tiled_only:
            restorers[f"{w}, whole"] = Restorer.from_pretrained(w, device="cpu", tile=None)
    rows = []
    for name, photo in photographs().items():
        for variant, clean in variants(photo).items():
            if variant != "as is" and "gamma" in name:
                continue
            clean8 = np.rint(clean * 255)
            rng = np.random.default_rng(0)
            noisy = np.clip(np.rint(clean8 + rng.normal(0, args.sigma, clean8.shape)), 0, 255).astype(np.uint8)
            outputs = {"noisy input": noisy.astype(np.float64), "non-local means": nlm(noisy / 255, args.sigma / 255) * 255}
            outputs.update({label: r.restore(noisy).astype(np.float64) for label, r in restorers.items()})
            for method, out in outputs.items():
                err = np.clip(np.rint(out), 0, 255) - clean8
                row = {"photo": name, "variant": variant, "method": method,
                       "clean_mean_rgb": (clean8.reshape(-1, 3).mean(0) / 255).round(3).tolist(),
                       "mean_error_rgb": err.reshape(-1, 3).mean(0).round(2).tolist(),
                       "psnr": float(10 * np.log10(255 ** 2 / np.mean(err ** 2)))}
                rows.append(row)
                e = row["mean_error_rgb"]
                print(f"{name:<20} {variant:<17} {method:<44} error R {e[0]:+6.1f} G {e[1]:+6.1f} B {e[2]:+6.1f}"
                      f"  {row['psnr']:6.2f} dB", flush=True)
                if args.ends:
                    row["ends"] = ends(clean8, np.clip(np.rint(out), 0, 255))
                    for end, per_channel in row["ends"].items():
                        print(f"{'':<20} {'':<17} {'  where clean is ' + end:<44} " + " ".join(
                            f"{c} {v['error']:+6.1f} ({v['share']:.0%})" if v else f"{c}      -      "
                            for c, v in zip("RGB", per_channel)), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"sigma": args.sigma, "rows": rows, "command": " ".join(sys.argv),
                                               "date": time.strftime("%Y-%m-%d")}, indent=1))


if __name__ == "__main__":
    main()
