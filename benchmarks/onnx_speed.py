"""PyTorch against ONNX Runtime on the same exported network, and where ONNX Runtime spends its time.

    python benchmarks/onnx_speed.py --preset sfhformer_s --size 512 --threads 2 --repeats 5 \
        --json benchmarks/results/onnx_cpu.json

Both run the fused model on one (1, 3, size, size) input in this one process, with the same
number of threads; PyTorch with freed memory kept for reuse (as `sfhformer restore` runs),
ONNX Runtime with its own arena allocator and all graph optimisations. The ONNX graph is the
size-free export (`sfhformer export` without `--size`). ONNX Runtime's profiler then gives the
time per operator type over one more run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> dict:
    import onnxruntime as ort

    import sfhformer
    from sfhformer.export import export
    from sfhformer.utils import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sfhformer_s")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        weights = sfhformer.save(sfhformer.create_model(args.preset), Path(tmp) / "w.safetensors")
        onnx_path = export(weights, Path(tmp) / "m.onnx")
        model = sfhformer.load(weights).fuse()
        x = torch.rand(1, 3, args.size, args.size)
        with torch.inference_mode():
            torch_times = timed(lambda: model(x), args.repeats)
            reference = model(x).numpy()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        ort_times = timed(lambda: session.run(None, feed), args.repeats)
        difference = float(np.abs(session.run(None, feed)[0] - reference).max())
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "profile")
        profiled = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        profiled.run(None, feed)
        profiled.run(None, feed)
        trace = json.loads(Path(profiled.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    runs = [e for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    for e in runs:
        by_op[e["args"].get("op_name", "?")] += e["dur"] / 1e6 / 2  # two profiled runs
    total = sum(by_op.values())
    t, o = statistics.median(torch_times), statistics.median(ort_times)
    result = {"preset": args.preset, "size": args.size, "threads": args.threads, "torch_s": t, "onnxruntime_s": o,
              "ratio": o / t, "max_difference": difference, "onnxruntime_version": ort.__version__,
              "ops_s": dict(sorted(by_op.items(), key=lambda kv: -kv[1]))}
    print(f"{args.preset} at {args.size}x{args.size}, {args.threads} threads: PyTorch (fused) {t:.3f} s, "
          f"ONNX Runtime {o:.3f} s: {o / t:.2f}x PyTorch's time (outputs within {difference:.1e})")
    print(f"ONNX Runtime's time by operator ({total:.3f} s in kernels):")
    for op, seconds in list(result["ops_s"].items())[:8]:
        print(f"  {op:<22} {seconds:7.3f} s  {seconds / total:6.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
