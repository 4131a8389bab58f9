"""Where a bundled model loses to the classical method: its squared error split into luma and
chroma, by how sharp the clean photograph is there, and whether it changes too much.

    python benchmarks/where_it_loses.py denoise --photos rocket chelsea --levels 15
    python benchmarks/where_it_loses.py deblur --task deblur --photos coffee chelsea --levels 7

A diagnosis of held-out photographs (the pip ones of ``sfhformer.data.HELD_OUT``, degraded as
``benchmarks/quality.py`` degrades them, with its seeds and its tuned non-local means, or for
``--task deblur`` its motion blur and Wiener deconvolution given the true kernel), never used
to choose anything. Per method, the mean squared error (0..255 scale, summed over RGB)
of the luma part (the mean of R, G, B, counted three times) and the chroma part (the rest), in
four bins of the clean luma's gradient magnitude (Sobel): the flattest half of the pixels, the
next 30 %, the next 15 % and the sharpest 5 % (the degraded input too). Then the PSNR when a
share ``a`` of what the model changed is undone (``out + a * (degraded - out)``): if it rises,
the model changes too much (a denoiser smooths away detail as if it were noise, a deblurrer
sharpens too hard), and the error's mean per channel and the mean square of its blur (a
Gaussian of 8 px): a shift of tone or colour rather than of detail. ``--save FILE.jpg`` writes, for the first weights and the first
photograph and level, the 96 px window where its chroma error exceeds non-local means' most,
three times enlarged: clean | ours | the classical method | our chroma error | theirs (x8).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))

import quality  # noqa: E402

from sfhformer.data import HELD_OUT  # noqa: E402
from sfhformer.metrics import psnr  # noqa: E402
from sfhformer.pretrained import BUNDLED  # noqa: E402
from sfhformer.restore import Restorer  # noqa: E402

BINS = [0, 0.5, 0.8, 0.95, 1.0]  # quantiles of the gradient magnitude


def split_errors(out: np.ndarray, clean: np.ndarray, grad: np.ndarray, edges: np.ndarray) -> list[tuple[float, float]]:
    """(luma, chroma) mean squared error per gradient bin."""
    e = out.astype(np.float64) - clean
    luma = e.mean(2, keepdims=True)
    chroma = ((e - luma) ** 2).sum(2)
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        at = (grad >= lo) & (grad <= hi)
        parts.append((float(3 * np.mean(luma[..., 0][at] ** 2)), float(np.mean(chroma[at]))))
    return parts


def chroma_error(out: np.ndarray, clean: np.ndarray) -> np.ndarray:
    e = out.astype(np.float64) - clean
    return np.sqrt(((e - e.mean(2, keepdims=True)) ** 2).sum(2))


def save_window(path: Path, clean: np.ndarray, ours: np.ndarray, nlm: np.ndarray, size: int = 96) -> None:
    """``nlm``: the classical method's output."""
    from sfhformer.io import write_image

    excess = chroma_error(ours, clean) ** 2 - chroma_error(nlm, clean) ** 2
    h, w = excess.shape
    _, y, x = max((excess[y:y + size, x:x + size].sum(), y, x)
                  for y in range(0, h - size + 1, 16) for x in range(0, w - size + 1, 16))
    tiles = [a[y:y + size, x:x + size] for a in (clean, ours, nlm)]
    tiles += [np.clip(chroma_error(a, clean)[y:y + size, x:x + size, None] * 8, 0, 255).astype(np.uint8).repeat(3, 2)
              for a in (ours, nlm)]
    write_image(path, np.concatenate(tiles, 1).repeat(3, 0).repeat(3, 1))
    print(f"wrote {path}: the window at x {x}, y {y}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="bundled names (denoise, denoise@2) or weights files")
    parser.add_argument("--task", choices=["denoise", "deblur"], default="denoise",
                        help="the degradation, classical method and tiling (the bundled model's) to use")
    parser.add_argument("--photos", nargs="+", default=list(HELD_OUT), choices=list(HELD_OUT))
    parser.add_argument("--levels", nargs="+", type=float, default=[15])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", metavar="FILE", help="write the window where the model loses most on chroma")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tiling = BUNDLED[args.task]
    classical = "non-local means" if args.task == "denoise" else "Wiener (true kernel)"
    restore_classical = quality.CLASSICAL[args.task][classical][0]
    restorers = {w: Restorer.from_pretrained(w, device="cpu", tile=tiling.tile, tile_overlap=tiling.tile_overlap)
                 for w in args.weights}
    names = list(HELD_OUT)
    print("MSE luma / chroma by gradient bin: flattest 50% | next 30% | next 15% | sharpest 5%")
    for name in args.photos:
        clean8 = quality.load_photo(name)
        clean = clean8.astype(np.float64)
        lum = clean.mean(2)
        grad = np.hypot(ndimage.sobel(lum, 0), ndimage.sobel(lum, 1))
        edges = np.quantile(grad, BINS)
        for level in args.levels:
            noisy, kernel = quality.degrade(clean8, args.task, level, seed=quality.held_out_seed(names.index(name)))
            outs = {"degraded input": noisy,
                    classical: restore_classical(noisy, level, kernel, quality.tune(args.task, classical, level))}
            outs.update({w: r.restore(noisy) for w, r in restorers.items()})
            for method, out in outs.items():
                parts = " | ".join(f"{lu:6.1f} / {ch:6.1f}" for lu, ch in split_errors(out, clean, grad, edges))
                print(f"{name:<13} {level:>4g} {method[-40:]:<40} {psnr(out, clean8):6.2f} dB  {parts}", flush=True)
                error = out.astype(np.float64) - clean
                low = ndimage.gaussian_filter(error, (8, 8, 0))  # the error's slow part: tone, not detail
                print(f"{'':<13} {'':>4} {'  mean error R / G / B; MSE of its blur (8 px)':<40} "
                      + " / ".join(f"{m:+.2f}" for m in error.mean((0, 1))) + f"; {np.mean(low ** 2):.1f}", flush=True)
                if args.save and method == args.weights[0] and name == args.photos[0] and level == args.levels[0]:
                    save_window(Path(args.save), clean8, out, outs[classical])
                if method in restorers:
                    # unrounded: the share undone is a diagnosis, not an image anyone saves
                    back = [psnr((out + a * (noisy.astype(np.float64) - out)) / 255, clean8, quantize=False)
                            for a in (0.05, 0.1, 0.2)]
                    print(f"{'':<13} {'':>4} {'  undoing 5 / 10 / 20 % of what it changed':<40} "
                          + " / ".join(f"{p:.2f}" for p in back) + " dB", flush=True)


if __name__ == "__main__":
    main()
