"""PyTorch against ONNX Runtime on the same exported network, and where ONNX Runtime spends its time.

    python benchmarks/onnx_speed.py --preset sfhformer_s --size 512 --threads 2 --repeats 5 \
        --json benchmarks/results/onnx_cpu.json
    python benchmarks/onnx_speed.py --round-trip 64 --size 512   # the FFTs alone

Both run the fused model (random weights, every block active) on one (1, 3, size, size) input in this one process, with the same
number of threads; PyTorch with freed memory kept for reuse (as `sfhformer restore` runs),
ONNX Runtime with its own arena allocator and all graph optimisations. Two ONNX graphs: the
size-free export (`sfhformer export` without `--size`: ONNX's DFT operator) and the fixed-size
one (`--size S S`: the FFTs as matrix products). ONNX Runtime's profiler then gives each
graph's time per operator type over two more runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
    parser.add_argument("--round-trip", type=int, metavar="CHANNELS",
                        help="time only one spectrum round trip (rfft2, irfft2) of (1, CHANNELS, size, size)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    if args.round_trip:
        return round_trip(ort, args)
    graphs = {"any size, DFT operator": None, "fixed size, matrix products": (args.size, args.size)}
    x = torch.rand(1, 3, args.size, args.size)
    feed = {"image": x.numpy()}
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    result = {"preset": args.preset, "size": args.size, "threads": args.threads,
              "onnxruntime_version": ort.__version__, "graphs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        network = sfhformer.create_model(args.preset)
        with torch.no_grad():  # beta and gamma start at zero: without this every block is the identity
            for name, p in network.named_parameters():
                if name.endswith(("beta", "gamma")):
                    p.normal_(std=0.3)
        weights = sfhformer.save(network, Path(tmp) / "w.safetensors")
        model = sfhformer.load(weights).fuse()
        with torch.inference_mode():
            t = statistics.median(timed(lambda: model(x), args.repeats))
            reference = model(x).numpy()
        result["torch_s"] = t
        print(f"{args.preset} at {args.size}x{args.size}, {args.threads} threads: PyTorch (fused) {t:.3f} s")
        for name, size in graphs.items():
            onnx_path = export(weights, Path(tmp) / f"{len(result['graphs'])}.onnx", size=size)
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            o = statistics.median(timed(lambda: session.run(None, feed), args.repeats))
            difference = float(np.abs(session.run(None, feed)[0] - reference).max())
            by_op = profile(ort, onnx_path, args.threads, feed, Path(tmp) / "profile")
            result["graphs"][name] = {"onnxruntime_s": o, "ratio": o / t, "max_difference": difference, "ops_s": by_op}
            total = sum(by_op.values())
            print(f"ONNX Runtime, {name}: {o:.3f} s, {o / t:.2f}x PyTorch's time (outputs within {difference:.1e});"
                  f" by operator ({total:.3f} s in kernels):")
            for op, seconds in list(by_op.items())[:6]:
                print(f"  {op:<22} {seconds:7.3f} s  {seconds / total:6.1%}")
            result["graphs"][name]["openvino"] = openvino_speed(onnx_path, feed, reference, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


class RoundTrip(torch.nn.Module):
    """What a Fourier unit does around its spectral mixing: (B, C, H, W) -> spectrum -> back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from sfhformer.models.blocks import from_frequency, to_frequency

        return from_frequency(to_frequency(x) * 1.5, x.shape[-2:])


def round_trip(ort, args) -> dict:
    from sfhformer.models import dft

    x = torch.rand(1, args.round_trip, args.size, args.size)
    with torch.inference_mode():
        result = {"shape": list(x.shape), "threads": args.threads,
                  "torch_s": statistics.median(timed(lambda: RoundTrip()(x), args.repeats))}
        reference = RoundTrip()(x).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        for name, form in [("DFT operator", contextlib.nullcontext()), ("matrix products", dft.matrix_dft())]:
            path = str(Path(tmp) / "r.onnx")
            with form, contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                torch.onnx.export(RoundTrip(), (x,), path, dynamo=True, opset_version=20, input_names=["x"])
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            result[name] = statistics.median(timed(lambda: session.run(None, {"x": x.numpy()}), args.repeats))
            difference = float(np.abs(session.run(None, {"x": x.numpy()})[0] - reference).max())
            print(f"round trip of {tuple(x.shape)}: ONNX Runtime, {name}: {result[name]:.3f} s "
                  f"(outputs within {difference:.1e})")
    print(f"PyTorch (pocketfft): {result['torch_s']:.3f} s")
    return result


def openvino_speed(onnx_path: Path, feed: dict, reference: np.ndarray, args) -> dict | str | None:
    """OpenVINO (CPU) on the same ONNX file, when installed: seconds and difference, or why not."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    try:
        compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU",
                                      {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        o = statistics.median(timed(lambda: request.infer(feed), args.repeats))
    except Exception as e:  # its ONNX frontend or CPU plugin refuses some graphs: report why, as measured
        reason = " ".join(str(e).split())[-200:]
        print(f"  OpenVINO {ov.__version__} cannot run this graph: ...{reason}")
        return reason
    difference = float(np.abs(list(request.infer(feed).values())[0] - reference).max())
    print(f"  OpenVINO {ov.__version__} on the same file: {o:.3f} s (outputs within {difference:.1e})")
    return {"seconds": o, "max_difference": difference, "version": ov.__version__}


def profile(ort, onnx_path: Path, threads: int, feed: dict, prefix: Path) -> dict[str, float]:
    """Seconds per operator type in one run (the mean of two), largest first."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling, options.profile_file_prefix = True, str(prefix)
    profiled = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    profiled.run(None, feed)
    profiled.run(None, feed)
    trace = json.loads(Path(profiled.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    for e in trace:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"].get("op_name", "?")] += e["dur"] / 1e6 / 2
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    main()
