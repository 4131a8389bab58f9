"""Where inference time goes: wall time per module kind inside the fused network.

    python benchmarks/breakdown.py --preset sfhformer_s --size 512

Forward hooks time every Fourier unit, the rest of each mixer, each FFN, and everything
outside the blocks (embedding, down/upsampling, skip fusion, head), over repeated runs after
a warm-up, with freed memory kept for reuse as ``Restorer`` runs on a CPU. Random weights.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch

import sfhformer
from sfhformer.models.blocks import Block, FourierUnit, GlobalBranch
from sfhformer.utils import keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sfhformer_s")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    model = sfhformer.create_model(args.preset).fuse()
    totals: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}

    def timed(kind: str, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(lambda m, i: started.__setitem__(id(m), time.perf_counter()))
        module.register_forward_hook(lambda m, i, o: totals.__setitem__(
            kind, totals[kind] + time.perf_counter() - started[id(m)]))

    for m in model.modules():
        if isinstance(m, FourierUnit):
            timed("fourier unit", m)
        elif isinstance(m, GlobalBranch):
            timed("global branch", m)
        elif isinstance(m, Block):
            timed("mixer", m.mixer)
            timed("ffn", m.ffn)
            timed("block", m)
    x = torch.rand(1, 3, args.size, args.size)
    with torch.inference_mode():
        model(x)
        totals.clear()
        t = time.perf_counter()
        for _ in range(args.repeats):
            model(x)
        whole = (time.perf_counter() - t) / args.repeats
    parts = {k: v / args.repeats for k, v in totals.items()}
    rows = {
        "Fourier units (FFTs, spectral BN/conv/GELU)": parts["fourier unit"],
        "rest of the global branches (1x1 convs, GELU)": parts["global branch"] - parts["fourier unit"],
        "rest of the mixers (local branch, attention, 1x1 convs)": parts["mixer"] - parts["global branch"],
        "FFNs": parts["ffn"],
        "residual additions": parts["block"] - parts["mixer"] - parts["ffn"],
        "outside the blocks": whole - parts["block"],
    }
    print(f"{args.preset} at {args.size}x{args.size}, fused, {args.threads} threads: {whole:.3f} s per image")
    for name, sec in rows.items():
        print(f"  {name:<58} {sec:7.3f} s  {100 * sec / whole:5.1f}%")


if __name__ == "__main__":
    main()
