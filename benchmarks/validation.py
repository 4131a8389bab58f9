"""A denoiser against non-local means per photograph of the Debian validation split: the check
that chose ``denoise@2``'s noise range and ``denoise@3``'s checkpoint without looking at a
held-out photograph.

    python benchmarks/validation.py denoise@2 --levels 15
    python benchmarks/validation.py runs/bundled_denoise_v2/checkpoints/best.safetensors --levels 15 25 50
    python benchmarks/validation.py denoise@2 --levels 15 --errors --width 480 640 1024
    python benchmarks/validation.py denoise@2 denoise@3 --recipe configs/bundled/denoise_v3.yaml

Photographs: ``debian:val`` (``sfhformer.data.debian``; ``configs/bundled/install_photos.sh``),
640 px wide (``--width``), whole. Noise and non-local means as ``benchmarks/quality.py`` draws
and tunes them (other seeds); the weights run in the bundled denoiser's tiling (128 px tiles,
32 px overlap). Printed: the PSNR margin over non-local means per photograph and the smallest
one. ``--errors`` splits each method's squared error per pixel into luma (the mean of R, G, B)
and chroma (what remains), each a mean over pixels in levels² of 255, to show where a margin is
lost. ``--split held_out --photos NAME ...`` runs the same on photographs the README reports:
for diagnosis only, never to choose weights, tiling or a recipe. ``--recipe CONFIG`` instead
prints the PSNR that the recipe's training run validates with (its ``data.val`` and ``val``
sections), for each weights given: a run's checkpoints against the weights it started from;
``--set KEY=VALUE`` changes the recipe first (another noise, say).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from quality import degrade, nlm, tune  # noqa: E402

from sfhformer.data.debian import installed_names, load_debian_photograph  # noqa: E402
from sfhformer.metrics import psnr  # noqa: E402
from sfhformer.pretrained import BUNDLED  # noqa: E402
from sfhformer.restore import Restorer  # noqa: E402


def error_split(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(luma, chroma) squared error per pixel of two (H, W, 3) uint8 images, means over pixels;
    they add up to the squared error summed over the three channels."""
    e = out.astype(np.float64) - clean.astype(np.float64)
    luma = e.mean(axis=2, keepdims=True)
    return float((luma ** 2).mean() * 3), float(((e - luma) ** 2).sum(axis=2).mean())


def recipe_validation(config: str, weights: list[str], overrides: list[str] | None = None) -> None:
    """Each weights' validation PSNR as the training run of ``config`` (with ``key=value``
    overrides, e.g. of ``data.val.degradations``) computes it."""
    import sfhformer
    from sfhformer.training import load_config
    from sfhformer.training.loop import make_dataset, validate

    cfg = load_config(config, overrides)
    if cfg.data.val is None:
        raise SystemExit(f"{config}: no data.val section")
    data = make_dataset(cfg.data.val, cfg.train.seed, validation=True)
    for w in weights:
        result = validate(sfhformer.load(w).eval(), data, torch.device("cpu"), max_images=cfg.val.max_images,
                          tile=cfg.val.tile, tile_overlap=cfg.val.tile_overlap)
        print(f"{w}: {result['psnr']:.3f} dB (input {result['input_psnr']:.3f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", help="a bundled NAME@VERSION or a weights file (several: --recipe)")
    parser.add_argument("--levels", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--split", default="val", choices=["val", "held_out"])
    parser.add_argument("--photos", nargs="+", help="only these photographs of the split")
    parser.add_argument("--width", type=int, nargs="+", default=[640], help="shrink the photographs to these widths")
    parser.add_argument("--errors", action="store_true", help="also the luma and chroma squared error of both")
    parser.add_argument("--recipe", help="score on this training config's validation set instead")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --recipe: change the recipe first, e.g. its data.val.degradations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.recipe:
        return recipe_validation(args.recipe, args.weights, args.set)
    if args.set:
        parser.error("--set changes a --recipe")
    if len(args.weights) > 1:
        parser.error("one weights argument, or several with --recipe")
    names = installed_names(args.split)
    if not names:
        raise SystemExit(f"no Debian photograph of split {args.split} is installed: bash configs/bundled/install_photos.sh")
    if args.photos and set(args.photos) - set(names):
        parser.error(f"--photos: not installed photographs of split {args.split}: "
                     f"{sorted(set(args.photos) - set(names))}; there are {', '.join(names)}")
    # each photograph's noise seed is its place in the whole split, whichever --photos are chosen
    seeds = {name: 7000 + i for i, name in enumerate(names)}
    if args.photos:
        names = [n for n in names if n in args.photos]
    tiling = BUNDLED["denoise"]
    restorer = Restorer.from_pretrained(args.weights[0], device="cpu", tile=tiling.tile, tile_overlap=tiling.tile_overlap)
    for width in args.width:
        for level in args.levels:
            h = tune("denoise", "non-local means", level)
            margins = []
            for name in names:
                clean = load_debian_photograph(name, width=width)
                degraded, _ = degrade(clean, "denoise", level, seed=seeds[name])
                ours, classical = restorer.restore(degraded), nlm(degraded, level, h)
                margins.append(psnr(ours, clean) - psnr(classical, clean))
                if args.errors:
                    (lo, co), (ln, cn) = error_split(ours, clean), error_split(classical, clean)
                    print(f"  {name} {width} px sigma {level:g}: {margins[-1]:+.2f} dB; luma {lo:.1f} (NLM {ln:.1f}), "
                          f"chroma {co:.1f} (NLM {cn:.1f})", flush=True)
            listed = " ".join(f"{n} {m:+.2f}" for n, m in zip(names, margins))
            print(f"{width} px, sigma {level:g}: {listed}; smallest {min(margins):+.2f} dB", flush=True)


if __name__ == "__main__":
    main()
