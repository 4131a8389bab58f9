"""Where inference time goes: wall time per module kind inside the fused network.

    python benchmarks/breakdown.py --preset sfhformer_s --size 512

Forward hooks time every Fourier unit, the rest of each mixer, each FFN, and everything
outside the blocks (embedding, down/upsampling, skip fusion, head), over repeated runs after
a warm-up, with freed memory kept for reuse as ``Restorer`` runs on a CPU. Random weights.
Then the steps inside the Fourier units, each run alone on every unit's own input (summed
over the units; each step's input computed beforehand, untimed).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch

import sfhformer
from sfhformer.models.blocks import (Block, FourierUnit, GlobalBranch, drop_non_hermitian_, from_frequency,
                                     to_frequency)
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
    fourier_steps(model, x, args.repeats, parts["fourier unit"])


def fourier_steps(model: torch.nn.Module, x: torch.Tensor, repeats: int, total: float) -> None:
    """Time each step of every Fourier unit alone, on the input it gets inside the network."""
    inputs: dict[FourierUnit, torch.Tensor] = {}
    units = [m for m in model.modules() if isinstance(m, FourierUnit)]
    handles = [u.register_forward_pre_hook(lambda m, i: inputs.__setitem__(m, i[0])) for u in units]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    steps: dict[str, float] = defaultdict(float)

    def step(name: str, fn, *args):
        fn(*args)  # warm-up
        t = time.perf_counter()
        for _ in range(repeats):
            out = fn(*args)
        steps[name] += (time.perf_counter() - t) / repeats
        return out

    with torch.inference_mode():
        for unit, u in inputs.items():
            size = u.shape[-2:]
            spectrum = step("rfft2", lambda: torch.fft.rfft2(u, norm="ortho"))
            step("rfft2 + re/im interleave (to_frequency)", to_frequency, u)
            f = to_frequency(u)
            if unit.norm is not None:
                f = step("spectral BatchNorm", unit.norm, f)
            if unit.pos_enc is not None:
                f = step("positional encoding (dwconv3x3 + add)", lambda: f + unit.pos_enc(f))
            g = step("spectral 1x1 conv", unit.spectral_conv, f)
            if unit.mix_logits is not None:
                step("K-kernel mixing (logits, softmax, weighted sum)", lambda: unit.spectral_mix(f))
            g = step("GELU", torch.nn.functional.gelu, g)
            step("drop non-Hermitian part", lambda: drop_non_hermitian_(g, size[-1]))
            step("re/im to complex + irfft2 (from_frequency)", from_frequency, g, size)
            step("irfft2", lambda: torch.fft.irfft2(spectrum, s=size, norm="ortho"))
    print(f"inside the Fourier units ({total:.3f} s in the network), each step alone:")
    for name, sec in steps.items():
        print(f"  {name:<58} {sec:7.3f} s")


if __name__ == "__main__":
    main()
