"""Restoration quality on held-out photographs: degraded input, classical methods, our bundled
models, and NAFNet trained with the same data, steps and loss.

    python benchmarks/quality.py --train-peers --json benchmarks/results/quality.json

- Test images: the held-out photographs (``sfhformer.data.HELD_OUT``), never trained on,
  whole; degradations drawn with fixed seeds.
- Denoising: additive Gaussian noise, sigma 15, 25, 50 (the bundled model is blind).
  Classical: scikit-image non-local means and total-variation (Chambolle) denoising, and BM3D
  (PyPI ``bm3d``, the ``bench`` extra; given the true sigma, its factor tuned like the others).
- Every row: the mean over the photographs and the worst one (per-photograph PSNR in the JSON);
  for the denoiser, on how many photographs it beats non-local means and BM3D. ``--debian``
  tests on the held-out Debian desktop photographs instead (``sfhformer.data.debian``, 640 px
  wide; ``configs/bundled/install_photos.sh`` installs them).
- Deblurring: linear motion blur of length 7, 11 and 15 px at a random angle, plus Gaussian
  noise of sigma 1. Classical: Wiener and Richardson-Lucy deconvolution given the true kernel.
- Classical parameters (NLM h, TV weight, BM3D sigma factor, Wiener balance, RL iterations) are chosen per setting
  from a grid by PSNR on a training photograph (astronaut), never on the test images.
- NAFNet (spandrel's architecture; width 16, 1-1-1-1 blocks, 2 middle blocks: about the
  parameter count of sfhformer_t) is trained by ``sfhformer.training`` with our bundled models'
  recipes (configs/bundled/*.yaml, stage by stage as ``RECIPES`` lists): same data, crops,
  steps, loss, optimiser and EMA. ``--same-recipe STAGE`` (e.g. ``denoise_scratch``) trains both
  networks from scratch through that one recipe, when not yet trained, and scores both: the
  like-for-like comparison on today's data where the bundled chain cannot be rerun for the peer.
- The learned models run as ``sfhformer restore`` runs them, with the bundled model's tiling
  (``sfhformer.pretrained.BUNDLED``: the denoiser in tiles of 128 px with 32 px overlap, the
  deblurrer whole), and NAFNet the same way; rows marked "whole image" run each photograph in
  one pass instead, the denoiser's "tiles of 256 px" row in tiles of its last stage's crop
  size (64 px overlap; the best tiling on training photographs, ``benchmarks/tiling.py``), and
  "x8 self-ensemble" averages the 8 flips/rotations (``Restorer(ensemble=True)``,
  ``--ensemble``: 8x the time).
Scores: PSNR/SSIM on RGB uint8, no border crop (``sfhformer.metrics``).
``--classical-from TABLE.json`` copies the classical rows from an earlier table of the same
photographs (deterministic: same seeds and tuned parameters) to score a new version in minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from peers import NAFNET_W16, nafnet  # noqa: E402

from sfhformer.data import HELD_OUT, photograph_path  # noqa: E402
from sfhformer.data.degradations import GaussianNoise, MotionBlur  # noqa: E402
from sfhformer.io import read_image  # noqa: E402
from sfhformer.metrics import psnr, ssim, to_rgb_uint8  # noqa: E402
from sfhformer.pretrained import BUNDLED, VERSIONS  # noqa: E402
from sfhformer.restore import Restorer  # noqa: E402
from sfhformer.training import initial_weights  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TUNING_PHOTO = "astronaut"


def debian_held_out() -> dict[str, np.ndarray]:
    """The held-out Debian desktop photographs that are installed, shrunk to 640 px wide."""
    from sfhformer.data.debian import installed_names, load_debian_photograph

    out = {name: load_debian_photograph(name) for name in installed_names("held_out")}
    if not out:
        raise SystemExit("no Debian held-out photograph is installed: bash configs/bundled/install_photos.sh")
    return out


def load_photo(name: str) -> np.ndarray:
    return to_rgb_uint8(read_image(photograph_path(name)).pixels)


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(img) * 255), 0, 255).astype(np.uint8)


# -- degradations (with the known kernel, for non-blind deconvolution) -------------------------

def held_out_seed(index: int) -> int:
    """The degradation seed of the ``index``-th photograph of a held-out set, as the tables use it."""
    return 1000 + index


def degrade(clean: np.ndarray, task: str, level: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(clean).permute(2, 0, 1).float() / 255
    if task == "denoise":
        y = GaussianNoise(sigma=(level, level))(x, g)
        kernel = None
    else:
        blur = MotionBlur(length=(level, level))
        k = blur.kernel(g)
        from kornia.filters import filter2d
        y = filter2d(x[None], k, border_type="reflect")[0]
        y = GaussianNoise(sigma=(1.0, 1.0))(y, g)
        # kornia's filter2d correlates; as a convolution PSF (scikit-image's view) the kernel is flipped
        kernel = np.ascontiguousarray(k[0].numpy().astype(np.float64)[::-1, ::-1])
    return to_uint8(y.clamp(0, 1).permute(1, 2, 0).numpy()), kernel


# -- classical methods -----------------------------------------------------------------------

def nlm(img: np.ndarray, sigma: float, h: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means
    s = sigma / 255
    return to_uint8(denoise_nl_means(to_float(img), h=h * s, sigma=s, patch_size=5, patch_distance=6,
                                     fast_mode=True, channel_axis=-1))


def bm3d_rgb(img: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    import bm3d  # optional: pip install bm3d (the bench extra)
    return to_uint8(bm3d.bm3d_rgb(to_float(img), factor * sigma / 255))


def tv(img: np.ndarray, sigma: float, weight: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle
    return to_uint8(denoise_tv_chambolle(to_float(img), weight=weight * sigma / 255, channel_axis=-1))


def _deconvolve(img: np.ndarray, kernel: np.ndarray, fn) -> np.ndarray:
    """Per channel, on the image reflect-padded by twice the kernel size (then cropped back):
    deconvolution assumes a periodic or zero world beyond the border and rings there otherwise."""
    pad = 2 * max(kernel.shape)
    x = np.pad(to_float(img), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([fn(x[..., c]) for c in range(3)], axis=-1)[pad:-pad, pad:-pad]
    return to_uint8(np.clip(out, 0, 1))


def wiener(img: np.ndarray, kernel: np.ndarray, balance: float) -> np.ndarray:
    from skimage.restoration import wiener as sk_wiener
    return _deconvolve(img, kernel, lambda c: sk_wiener(c, kernel, balance, clip=True))


def richardson_lucy(img: np.ndarray, kernel: np.ndarray, iterations: float) -> np.ndarray:
    from skimage.restoration import richardson_lucy as sk_rl
    return _deconvolve(img, kernel, lambda c: sk_rl(c, kernel, num_iter=int(iterations), clip=True))


CLASSICAL = {
    "denoise": {"non-local means": (lambda img, lvl, k, p: nlm(img, lvl, p), [0.3, 0.45, 0.6, 0.8, 1.0, 1.2]),
                "total variation": (lambda img, lvl, k, p: tv(img, lvl, p), [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0]),
                "BM3D": (lambda img, lvl, k, p: bm3d_rgb(img, lvl, p), [0.9, 1.0, 1.1])},
    "deblur": {"Wiener (true kernel)": (lambda img, lvl, k, p: wiener(img, k, p), [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]),
               "Richardson-Lucy (true kernel)": (lambda img, lvl, k, p: richardson_lucy(img, k, p),
                                                 [2, 5, 10, 20, 40, 80])},
}
LEVELS = {"denoise": [15, 25, 50], "deblur": [7, 11, 15]}


def tune(task: str, method: str, level: float) -> float:
    """The grid value with the best PSNR on a crop of the tuning photograph."""
    fn, grid = CLASSICAL[task][method]
    clean = load_photo(TUNING_PHOTO)[128:384, 128:384]
    degraded, kernel = degrade(clean, task, level, seed=12345)
    return max(grid, key=lambda p: psnr(fn(degraded, level, kernel, p), clean))


# -- learned models --------------------------------------------------------------------------

# The bundled models' recipes, stage by stage (a later stage starts from the one before).
RECIPES = {"denoise": ["denoise", "denoise_128", "denoise_256"], "deblur": ["deblur", "deblur_128", "deblur_256"]}


def peer_run(stage: str) -> Path:
    return ROOT / "runs" / f"peer_nafnet_{stage}"


def recipe_task(stage: str) -> str:
    """The task of a recipe under configs/bundled: its chain's in ``RECIPES``, else its name's
    first word (``denoise_scratch``: denoise)."""
    task = next((t for t, stages in RECIPES.items() if stage in stages), stage.split("_")[0])
    if task not in RECIPES or not (ROOT / "configs" / "bundled" / f"{stage}.yaml").is_file():
        sys.exit(f"error: configs/bundled/{stage}.yaml: no such recipe of a task ({', '.join(RECIPES)})")
    return task


def finished(last: Path, steps: int) -> bool:
    return last.exists() and torch.load(last, weights_only=True)["step"] >= steps


def train_peer_stage(stage: str, device: str, overrides: list[str] = ()) -> Path:
    """Train NAFNet through one stage of a recipe (``configs/bundled/STAGE.yaml``), from the
    peer's previous stage when the stage is one of a chain in ``RECIPES``, else from scratch;
    skipped when finished. ``overrides`` (KEY=VALUE) come last, as ``sfhformer train`` takes
    them. Returns the stage's last checkpoint."""
    from sfhformer.training import load_config, train
    task = recipe_task(stage)
    index = RECIPES[task].index(stage) if stage in RECIPES[task] else 0
    out = peer_run(stage)
    base = [f"name=peer_nafnet_{stage}", f"out_dir={out}", f"train.device={device}"]
    if index:
        base.append(f"train.init_from={peer_run(RECIPES[task][index - 1]) / 'checkpoints' / 'last.pt'}")
    cfg = load_config(ROOT / "configs" / "bundled" / f"{stage}.yaml", base + list(overrides))
    last = Path(cfg.out_dir) / "checkpoints" / "last.pt"
    if not finished(last, cfg.train.steps):
        torch.manual_seed(cfg.train.seed)
        train(cfg, model=nafnet(**NAFNET_W16))
    return last


def same_recipe(stage: str, device: str) -> dict[str, torch.nn.Module]:
    """SFHformer-t and NAFNet trained from scratch through one recipe (``--same-recipe``), each
    trained first when its run is not finished; their last EMA weights, by row name."""
    from sfhformer.models import load
    from sfhformer.training import load_config, train
    cfg = load_config(ROOT / "configs" / "bundled" / f"{stage}.yaml", [f"train.device={device}"])
    if cfg.train.init_from:
        sys.exit(f"error: --same-recipe {stage}: the recipe starts from {cfg.train.init_from}, which NAFNet cannot")
    ours = Path(cfg.out_dir) / "checkpoints" / "last.pt"
    if not finished(ours, cfg.train.steps):
        train(cfg)
    peer = peer_weights(train_peer_stage(stage, device))
    millions = sum(p.numel() for p in peer.parameters()) / 1e6
    return {f"SFHformer-t ({stage}.yaml)": load(ours.with_suffix(".safetensors")).eval(),
            f"NAFNet-w16 ({millions:.2f} M, {stage}.yaml)": peer}


def train_peer(task: str, device: str) -> None:
    """Train NAFNet through every stage of the task's recipe, skipping finished stages."""
    for stage in RECIPES[task]:
        train_peer_stage(stage, device)


def peer_weights(checkpoint: Path) -> torch.nn.Module:
    """NAFNet with a run's EMA weights (as the bundled SFHformers ship), for evaluation."""
    model = nafnet(**NAFNET_W16)
    model.load_state_dict(initial_weights(checkpoint))
    return model.eval()


def load_peer(task: str) -> torch.nn.Module | None:
    path = peer_run(RECIPES[task][-1]) / "checkpoints" / "last.pt"
    return peer_weights(path) if path.exists() else None


def classical_rows(path: Path, photos: list[str]) -> dict[tuple[str, float, str], dict]:
    """The classical methods' rows of an earlier ``--json`` table, by (task, level, method); it must
    be of the same photographs, in the same order (their seeds follow it)."""
    table = json.loads(path.read_text())
    if table.get("held_out") != photos:
        sys.exit(f"error: {path}: a table of {table.get('held_out')}, not of {photos}")
    methods = {m for task in CLASSICAL.values() for m in task}
    return {(r["task"], r["level"], r["method"]): {**r, "from": str(path)}
            for r in table["rows"] if r["method"] in methods}


def print_row(row: dict, tail: str = "") -> None:
    print(f"{row['task']:<8} {row['level']:>4} {row['method']:<48} {row['psnr']:7.2f} dB  {row['ssim']:.4f}  worst "
          f"{row['worst_psnr']:6.2f} dB ({row['worst_photo']}){tail}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["denoise", "deblur"])
    parser.add_argument("--train-peers", action="store_true", help="train NAFNet first (skipped when its run exists)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the table here")
    parser.add_argument("--train-peer-stage", metavar="STAGE",
                        help="only train NAFNet through this stage of a recipe (e.g. denoise_256), then exit")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --train-peer-stage: override a config field")
    parser.add_argument("--same-recipe", nargs="+", default=[], metavar="STAGE",
                        help="also score SFHformer-t and NAFNet trained from scratch through this recipe "
                             "(configs/bundled/STAGE.yaml; trained first when not yet trained), with the bundled tiling")
    parser.add_argument("--dtypes", nargs="+", default=[], choices=["fp16", "bf16"],
                        help="also run the bundled models under this autocast precision (Restorer(dtype=...))")
    parser.add_argument("--debian", action="store_true",
                        help="test on the held-out Debian desktop photographs (sfhformer.data.debian, shrunk to 640 "
                             "px wide) instead of the pip ones")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-variants", action="store_true",
                        help="no self-ensemble or tiling variant rows (they take most of the time)")
    parser.add_argument("--learned-only", action="store_true",
                        help="only the bundled models as sfhformer restore runs them (and --dtypes): no classical "
                             "methods, peers or tiling variants")
    parser.add_argument("--versions", nargs="+", default=[], metavar="NAME@VERSION",
                        help="also score these earlier bundled versions (e.g. denoise@1), tiled as they ship")
    parser.add_argument("--classical-from", metavar="JSON",
                        help="take the classical rows from this earlier table of the same photographs instead of "
                             "recomputing them (they are deterministic: same photographs, seeds and parameters); "
                             "BM3D on the Debian photographs takes most of an hour")
    args = parser.parse_args()
    if set(args.versions) - set(VERSIONS):
        parser.error(f"--versions: no bundled {sorted(set(args.versions) - set(VERSIONS))}; there are {', '.join(VERSIONS)}")
    torch.set_num_threads(args.threads)
    test_set = debian_held_out() if args.debian else {name: None for name in HELD_OUT}
    if "BM3D" in CLASSICAL["denoise"] and importlib.util.find_spec("bm3d") is None:
        print("note: bm3d is not installed (pip install bm3d): no BM3D rows", file=sys.stderr)
        del CLASSICAL["denoise"]["BM3D"]
    if args.train_peer_stage:
        train_peer_stage(args.train_peer_stage, args.device, args.set)
        return
    reused = classical_rows(Path(args.classical_from), list(test_set)) if args.classical_from else {}

    rows = []
    for task in args.tasks:
        if args.train_peers:
            train_peer(task, args.device)
        tile, overlap = BUNDLED[task].tile, BUNDLED[task].tile_overlap
        ours = "SFHformer-t (bundled)"
        learned = {ours: Restorer.from_pretrained(task, device=args.device)}
        for version in args.versions:
            if version.split("@")[0] == task:
                learned[f"SFHformer-t ({version})"] = Restorer.from_pretrained(version, device=args.device)
        for dtype in args.dtypes:
            learned[f"{ours}, {dtype} autocast"] = Restorer.from_pretrained(task, device=args.device, dtype=dtype)
        if not (args.learned_only or args.no_variants):
            learned[f"{ours}, x8 self-ensemble"] = Restorer.from_pretrained(task, device=args.device, ensemble=True)
        if tile is not None and not (args.learned_only or args.no_variants):
            learned[f"{ours}, whole image"] = Restorer.from_pretrained(task, device=args.device, tile=None)
            learned[f"{ours}, tiles of 256 px"] = Restorer.from_pretrained(task, device=args.device, tile=256,
                                                                          tile_overlap=64)
        for stage in args.same_recipe:
            if recipe_task(stage) == task:
                for name, model in same_recipe(stage, args.device).items():
                    learned[name] = Restorer(model, device=args.device, tile=tile, tile_overlap=overlap)
        peer = None if args.learned_only else load_peer(task)
        if peer is not None:
            name = f"NAFNet-w16 ({sum(p.numel() for p in peer.parameters()) / 1e6:.2f} M, same recipe)"
            learned[name] = Restorer(peer, device=args.device, tile=tile, tile_overlap=overlap)
            if tile is not None:
                learned[f"{name}, whole image"] = Restorer(peer, device=args.device)
        for level in LEVELS[task]:
            classical = {} if args.learned_only else {m: fn for m, fn in CLASSICAL[task].items()
                                                       if (task, level, m) not in reused}
            params = {m: tune(task, m, level) for m in classical}
            scores: dict[str, list[tuple[float, float]]] = {}
            for m in CLASSICAL[task] if not args.learned_only else ():
                if (task, level, m) in reused:
                    row = reused[task, level, m]
                    rows.append(row)
                    scores[m] = [(v, float("nan")) for v in row["per_photo_psnr"].values()]
                    print_row(row, f"  from {args.classical_from}")
            seconds: dict[str, list[float]] = {}
            for i, (name, photo) in enumerate(test_set.items()):
                clean = load_photo(name) if photo is None else photo
                degraded, kernel = degrade(clean, task, level, seed=held_out_seed(i))
                outputs = {"degraded input": degraded}
                for method, (fn, _) in classical.items():
                    outputs[method] = fn(degraded, level, kernel, params[method])
                for label, restorer in learned.items():
                    start = time.perf_counter()
                    outputs[label] = restorer.restore(degraded)
                    seconds.setdefault(label, []).append(time.perf_counter() - start)
                for label, out in outputs.items():
                    scores.setdefault(label, []).append((psnr(out, clean), ssim(out, clean)))
            for label, vals in scores.items():
                if (task, level, label) in reused:
                    continue
                arr = np.array(vals)
                worst = int(arr[:, 0].argmin())
                row = {"task": task, "level": level, "method": label, "psnr": float(arr[:, 0].mean()),
                       "ssim": float(arr[:, 1].mean()), "params": params.get(label),
                       "per_photo_psnr": dict(zip(test_set, arr[:, 0].round(3).tolist())),
                       "worst_photo": list(test_set)[worst], "worst_psnr": float(arr[worst, 0])}
                if label in seconds:
                    row["seconds"] = float(np.sum(seconds[label]))
                rows.append(row)
                print_row(row, f"  {row['seconds']:6.1f} s" if "seconds" in row else "")
            ours_row = scores.get("SFHformer-t (bundled)")
            for label in ("non-local means", "BM3D"):
                if ours_row and label in scores:
                    wins = sum(a[0] > b[0] for a, b in zip(ours_row, scores[label]))
                    margin = min(a[0] - b[0] for a, b in zip(ours_row, scores[label]))
                    print(f"{task:<8} {level:>4} the bundled model beats {label} on {wins} of {len(ours_row)} "
                          f"photographs (smallest margin {margin:+.2f} dB)", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"held_out": list(test_set), "rows": rows,
                                               "weights": {**{f"{t}@{BUNDLED[t].version}": BUNDLED[t].sha256
                                                              for t in args.tasks},
                                                           **{v: VERSIONS[v].sha256 for v in args.versions}},
                                               "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d")},
                                              indent=1))


if __name__ == "__main__":
    main()
