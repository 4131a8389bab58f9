"""Restoration latency and peak memory per preset and size, CPU (and GPU when present).

Each case runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own.
Everything runs as ``sfhformer restore`` does: the fused model (``model.fuse()``) through a
``Restorer`` (which keeps freed memory for reuse on a CPU). Latency is the median (with min
and max) of repeated ``Restorer.restore_tensor`` calls on the whole image after one warm-up
call; the tiled case times one full ``Restorer.restore`` of a real photograph upscaled to the
size (reading from memory, tiling with the default pixel budget, blending and quantizing).

    python benchmarks/restore.py --presets sfhformer_t sfhformer_s --sizes 256 512 1024 \
        --tiled 4096 --json benchmarks/results/restore_cpu.json

Weights are random: speed and memory do not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from common import synchronizer, peak_rss_mb, run_isolated, write_results


def run_case(preset: str, size: int, mode: str, device: str, repeats: int, threads: int) -> dict:
    import numpy as np
    import torch

    import sfhformer
    from sfhformer.restore import DEFAULT_MAX_PIXELS, Restorer

    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = sfhformer.create_model(preset).fuse()
    sync = synchronizer(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    if mode == "whole":
        restorer = Restorer(model, device=dev, max_pixels=size * size)
        x = torch.rand(1, 3, size, size, device=dev)
        with torch.inference_mode():
            for i in range(repeats + 1):
                sync()
                t = time.perf_counter()
                restorer.restore_tensor(x)
                sync()
                if i:  # the first pass is warm-up
                    times.append(time.perf_counter() - t)
                if sum(times) > 120:  # enough for a slow case
                    break
    else:
        import skimage.data
        from PIL import Image
        photo = Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.BICUBIC)
        image = np.asarray(photo)
        restorer = Restorer(model, device=dev)
        t = time.perf_counter()
        restorer.restore(image)
        sync()
        times.append(time.perf_counter() - t)
    row = {
        "preset": preset, "size": size, "mode": mode, "device": device, "threads": threads,
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": len(times),
        "peak_rss_mb": peak_rss_mb(),
    }
    if mode == "tiled":
        row["max_pixels"] = DEFAULT_MAX_PIXELS
    if dev.type == "cuda":
        row["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["sfhformer_t", "sfhformer_s", "sfhformer_m", "sfhformer_l"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--tiled", nargs="*", type=int, default=[4096], help="sizes run tiled through Restorer")
    parser.add_argument("--tiled-presets", nargs="+", default=["sfhformer_s"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--case", nargs=4, metavar=("PRESET", "SIZE", "MODE", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        preset, size, mode, device = args.case
        print(json.dumps(run_case(preset, int(size), mode, device, args.repeats, args.threads)))
        return

    import torch
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    cases = [(p, s, "whole", d) for d in devices for p in args.presets for s in args.sizes]
    cases += [(p, s, "tiled", d) for d in devices for p in args.tiled_presets for s in args.tiled]
    rows = []
    print(f"{'preset':<12} {'size':>5} {'mode':<6} {'device':<5} {'median s':>9} {'min':>7} {'max':>7} "
          f"{'peak RSS MB':>11} {'peak CUDA MB':>12}", flush=True)
    for preset, size, mode, device in cases:
        row = run_isolated(__file__, [preset, str(size), mode, device, "--repeats", str(args.repeats),
                                      "--threads", str(args.threads)])
        if isinstance(row, str):
            print(f"{preset:<12} {size:>5} {mode:<6} {device:<5} failed: {row}")
            continue
        rows.append(row)
        cuda = f"{row['peak_cuda_mb']:.0f}" if "peak_cuda_mb" in row else "-"
        print(f"{preset:<12} {size:>5} {mode:<6} {device:<5} {row['median_s']:>9.3f} {row['min_s']:>7.3f} "
              f"{row['max_s']:>7.3f} {row['peak_rss_mb']:>11.0f} {cuda:>12}", flush=True)
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
