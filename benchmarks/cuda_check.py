"""The CUDA inference path of the bundled models against the CPU, on held-out photographs.

    python benchmarks/cuda_check.py [--weights denoise deblur] [--compile-size 256]

For each model: the held-out photographs, degraded as ``benchmarks/quality.py`` degrades them
(denoise: sigma 25; deblur: length 11 + sigma 1), restored as ``sfhformer restore`` restores
them (fused model, the bundled tiling) on the CPU in float32 (the reference) and on CUDA in
float32 (TF32 convolutions, PyTorch's default), in float32 with TF32 off, and with
``half=True`` (float16 autocast; the FFTs stay float32). Printed per variant: the largest
difference from the CPU output per photograph (0-255 scale, before rounding), PSNR against
the clean photographs, and seconds per photograph.
Then ``torch.compile`` of the first model, fused, on CUDA against eager CUDA, on one crop.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import synchronizer  # noqa: E402
from quality import degrade, held_out_seed, load_photo  # noqa: E402

from sfhformer.data import HELD_OUT  # noqa: E402
from sfhformer.metrics import psnr  # noqa: E402
from sfhformer.restore import Restorer  # noqa: E402

LEVEL = {"denoise": 25, "deblur": 11}


def restore_all(restorer: Restorer, images: list[np.ndarray]) -> tuple[list[torch.Tensor], float]:
    """Float outputs (H, W, 3) in [0, 255] and seconds per image (after one warm-up image)."""
    outs, times = [], []
    sync = synchronizer(restorer.device)
    for i, img in enumerate([images[0]] + images):
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(restorer.device)
        sync()
        t = time.perf_counter()
        y = restorer.restore_tensor(x)
        sync()
        if i:
            times.append(time.perf_counter() - t)
            outs.append(y[0].permute(1, 2, 0).cpu() * 255)
    return outs, sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", default=["denoise", "deblur"])
    parser.add_argument("--device", default="cuda", help="the device checked against the CPU")
    parser.add_argument("--compile-size", type=int, default=256, help="crop side for the compile check (0: skip)")
    args = parser.parse_args()
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("cuda_check.py: no CUDA device")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if dev.startswith('cuda') else dev}")
    for weights in args.weights:
        task = weights if weights in LEVEL else "denoise"
        clean = [load_photo(n) for n in HELD_OUT]
        degraded = [degrade(c, task, LEVEL[task], seed=held_out_seed(i))[0] for i, c in enumerate(clean)]
        ref, cpu_s = restore_all(Restorer.from_pretrained(weights, device="cpu"), degraded)
        rows = {"cpu float32": (ref, cpu_s)}
        for label, half, tf32 in ((f"{dev} float32", False, True), (f"{dev} float32, no TF32", False, False),
                                  (f"{dev} float16 autocast", True, True)):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            rows[label] = restore_all(Restorer.from_pretrained(weights, device=dev, half=half), degraded)
        torch.backends.cudnn.allow_tf32 = True
        for label, (outs, seconds) in rows.items():
            diffs = " ".join(f"{float((o - r).abs().max()):6.3f}" for o, r in zip(outs, ref))
            score = np.mean([psnr(o.round().clamp(0, 255).to(torch.uint8).numpy(), c) for o, c in zip(outs, clean)])
            print(f"{weights:<8} {label:<24} max |diff| vs cpu per photo (/255) {diffs}  PSNR {score:6.2f} dB  "
                  f"{seconds * 1000:8.1f} ms/photo", flush=True)
        if args.compile_size and weights == args.weights[0]:  # one model: compiling takes a while
            model = Restorer.from_pretrained(weights, device=dev).model
            n = args.compile_size
            x = torch.from_numpy(degraded[0][:n, :n]).permute(2, 0, 1)[None].float().div(255).to(dev)
            sync = synchronizer(dev)
            t = time.perf_counter()
            compiled = torch.compile(model)
            with torch.inference_mode():
                out = compiled(x)
                sync()
                took = time.perf_counter() - t
                diff = float((out - model(x)).abs().max())
                times = []
                for fn in (model, compiled):
                    sync()
                    t = time.perf_counter()
                    for _ in range(20):
                        fn(x)
                    sync()
                    times.append((time.perf_counter() - t) / 20)
            print(f"{weights:<8} torch.compile {n}x{n}: max |diff| vs eager {diff:.2e} (0-1 scale), first call "
                  f"{took:.1f} s, then {times[1] * 1000:.2f} ms vs eager {times[0] * 1000:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
