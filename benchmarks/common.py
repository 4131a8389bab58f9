"""Helpers shared by the benchmarks: each case in its own process, so its peak memory is its own."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(script: str, case_args: list[str]) -> dict | str:
    """Run ``script --case ...`` in a new Python process; its last stdout line is a JSON row.
    Returns the row, or the last line of stderr when the case failed."""
    done = subprocess.run([sys.executable, script, "--case", *case_args], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_results(path: str, rows: list[dict]) -> None:
    import torch
    meta = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "command": " ".join(sys.argv)}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)


def count_macs(model, size: int) -> int:
    """Multiply-accumulates of one (1, 3, size, size) forward pass: ours by
    ``sfhformer.models.complexity`` (convolutions, FFTs counted analytically, kernel mixing);
    other networks by PyTorch's FlopCounterMode (convolutions and matrix products, /2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sfhformer import SFHformer
    from sfhformer.models.complexity import measure
    if isinstance(model, SFHformer):
        return measure(model, (size, size)).macs
    param = next(model.parameters())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, size, size, dtype=param.dtype, device=param.device))
    return counter.get_total_flops() // 2


def synchronizer(device):
    """A function that waits for the device's queued work (CUDA), so that wall-clock timings
    cover it; a no-op on the CPU."""
    import torch
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
