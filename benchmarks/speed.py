"""Inference and training speed: our presets, plain and fused, against peer architectures.

    python benchmarks/speed.py --sizes 256 512 --json benchmarks/results/speed_cpu.json

Inference (batch 1, eval mode, ``torch.inference_mode``): each preset through the plain code
path (the baseline: the network as the authors compute it) and in its fused inference form
(``model.fuse()``: BatchNorm and layer scales folded into the 1x1 convolutions, no K=1
softmax), against NAFNet width 32 (spandrel's architecture, the SIDD/GoPro width-32
configuration), NAFNet width 16 (the bundled models' peer in ``benchmarks/quality.py``) and
Restormer (spandrel-extra-arches, its default configuration) at the same size. Every inference
case runs twice: with glibc's default allocator, and with freed memory kept for reuse
(``sfhformer.utils.keep_freed_memory``, which ``Restorer`` turns on for CPUs): at large sizes
the default allocator's page faults take most of every model's time. Latency is the median of
repeated runs after one warm-up run (min and max too); peak memory is the process's peak RSS
(or CUDA allocation). Training: one step (forward, backward, AdamW) on a batch of 4 crops of
128x128 (``--train-batch``, ``--train-size``) with our loss, our presets plain and with
activation checkpointing, the peers plain, under the first allocator listed. With ``--amp``
(for CUDA), the fused model, the peers and our training step also run under bfloat16 autocast
(variants ending in ``_bf16``; our Fourier units keep their FFTs in float32). With
``--compile``, the fused model and the peers also run through ``torch.compile`` (inductor,
weights frozen into the graph; variants ending in ``compiled``; the compilation is the untimed
warm-up run). Every case runs in its own process. Weights are random.

    python benchmarks/speed.py --device cuda --amp --allocators default --presets sfhformer_s

The bundled models' training step against their NAFNet peer, as the same-recipe runs take it
(``configs/bundled/denoise_scratch.yaml``: 8 crops of 64 px), one thread:

    python benchmarks/speed.py --presets sfhformer_t --peers nafnet_w16 --sizes 64 --allocators default \
        --train-size 64 --train-batch 8 --threads 1 --json benchmarks/results/train_step_peer.json

Restoring whole images through ``Restorer`` (mode ``restore``): with ``--tile-batches`` each
preset restores one size x size image in tiles of ``--restore-tile`` px (overlap 32) run that
many at a time, under each of ``--dtypes`` (autocast; fp32 plain), fused model, freed memory
kept (as ``sfhformer restore`` runs):

    python benchmarks/speed.py --presets sfhformer_t --sizes 1024 --tile-batches 1 4 8 --dtypes fp32 bf16 \
        --json benchmarks/results/restore_batches_cpu.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from common import synchronizer, count_macs, peak_rss_mb, run_isolated, write_results
from peers import NAFNET_W16

# name -> (builder in peers.py, its arguments)
PEERS = {"nafnet_w32": ("nafnet", dict(width=32, middle=12, enc=(2, 2, 4, 8), dec=(2, 2, 2, 2))),
         "nafnet_w16": ("nafnet", NAFNET_W16),
         "restormer": ("restormer", {})}


def build(name: str, variant: str):
    import sfhformer
    variant = variant.removesuffix("_bf16").removesuffix("_compiled")
    if name in PEERS:
        import peers
        builder, kwargs = PEERS[name]
        return getattr(peers, builder)(**kwargs)
    model = sfhformer.create_model(name)
    if variant == "checkpointed":
        model.set_grad_checkpointing(True)
    return model


def run_case(name: str, variant: str, size: int, mode: str, device: str, repeats: int, threads: int,
             allocator: str = "default", train_batch: int = 4) -> dict:
    import torch

    from sfhformer.utils import keep_freed_memory
    if allocator == "reuse" and not keep_freed_memory():
        raise RuntimeError("keeping freed memory needs glibc")

    from sfhformer.models.complexity import count_params
    from sfhformer.training import restoration_loss

    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = build(name, variant).to(dev)
    sync = synchronizer(dev)
    times = []
    if mode == "restore":  # variant: t<tile>_b<batch>_<dtype>
        from sfhformer.restore import Restorer
        tile, batch, dtype = variant.split("_")
        model.eval().fuse()
        restorer = Restorer(model, dev, tile=int(tile[1:]), tile_overlap=32, tile_batch=int(batch[1:]), dtype=dtype,
                            keep_freed_memory=allocator == "reuse")
        x = torch.rand(1, 3, size, size, device=dev)
        step = lambda: restorer.restore_tensor(x)  # noqa: E731
        context = torch.inference_mode
    elif mode == "infer":
        model.eval()
        if variant.startswith("fused"):
            model.fuse()
        x = torch.rand(1, 3, size, size, device=dev)
        net = model
        if variant.endswith("compiled"):
            import torch._inductor.config
            torch._inductor.config.freezing = True  # weights become constants: folded, laid out for the CPU
            net = torch.compile(model)
        step = lambda: net(x)  # noqa: E731
        context = torch.inference_mode
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x, y = (torch.rand(train_batch, 3, size, size, device=dev) for _ in range(2))

        def step():
            opt.zero_grad(set_to_none=True)
            restoration_loss(model(x), y).backward()
            opt.step()
        context = torch.enable_grad
    if variant.endswith("bf16"):
        run = step
        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                return run()
    with context():
        for i in range(repeats + 1):
            sync()
            t = time.perf_counter()
            step()
            sync()
            if i:
                times.append(time.perf_counter() - t)
            else:
                first = time.perf_counter() - t  # the warm-up: with torch.compile, the compilation
            if sum(times) > 90:
                break
    row = {"model": name, "variant": variant, "mode": mode, "size": size, "device": device, "allocator": allocator,
           "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": len(times),
           "first_s": first,
           "params": count_params(model), "peak_rss_mb": peak_rss_mb()}
    if mode == "train":
        row["batch"] = train_batch
    if dev.type == "cuda":
        row["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if mode == "infer":  # counted after the peak memory was read
        row["gmacs"] = count_macs(model, size) / 1e9
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["sfhformer_t", "sfhformer_s"])
    parser.add_argument("--peers", nargs="*", default=list(PEERS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--train-size", type=int, default=128, help="crop side of the training cases (0: none)")
    parser.add_argument("--train-batch", type=int, default=4, help="crops per training step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--allocators", nargs="+", choices=["default", "reuse"], default=["default", "reuse"],
                        help="inference cases run under each (training cases under the first)")
    parser.add_argument("--amp", action="store_true", help="also time bfloat16 autocast (fused model, peers, training)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (fused model, peers)")
    parser.add_argument("--runtimes", nargs="+", choices=["torch", "onnxruntime"],
                        help="PyTorch against ONNX Runtime on the same network (benchmarks/onnx_speed.py) instead")
    parser.add_argument("--tile-batches", nargs="+", type=int,
                        help="instead: restore through Restorer in tiles, this many at a time (see above)")
    parser.add_argument("--restore-tile", type=int, default=256)
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--json")
    parser.add_argument("--case", nargs=6, metavar=("MODEL", "VARIANT", "SIZE", "MODE", "DEVICE", "ALLOCATOR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runtimes:  # one comparison per preset and size, each in this process
        import json

        from onnx_speed import main as onnx_speed
        rows = [onnx_speed(["--preset", p, "--size", str(size), "--threads", str(args.threads),
                            "--repeats", str(args.repeats)]) for p in args.presets for size in args.sizes]
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows}, f, indent=1)
        return
    if args.case:
        import json
        name, variant, size, mode, device, allocator = args.case
        print(json.dumps(run_case(name, variant, int(size), mode, device, args.repeats, args.threads, allocator,
                                  args.train_batch)))
        return

    cases = []
    if args.tile_batches:
        cases = [(p, f"t{args.restore_tile}_b{b}_{d}", size, "restore", args.allocators[-1])
                 for size in args.sizes for p in args.presets for d in args.dtypes for b in args.tile_batches]
        args.peers, args.train_size = [], 0
    for size in args.sizes if not args.tile_batches else []:
        for alloc in args.allocators:
            for p in args.presets:
                cases += [(p, "plain", size, "infer", alloc), (p, "fused", size, "infer", alloc)]
                cases += [(p, "fused_bf16", size, "infer", alloc)] if args.amp else []
                cases += [(p, "fused_compiled", size, "infer", alloc)] if args.compile else []
            cases += [(peer, v, size, "infer", alloc) for peer in args.peers
                      for v in ["-"] + ["bf16"] * args.amp + ["compiled"] * args.compile]
    train_alloc = args.allocators[0]
    for p in args.presets if args.train_size else []:
        cases += [(p, "plain", args.train_size, "train", train_alloc),
                  (p, "checkpointed", args.train_size, "train", train_alloc)]
        cases += [(p, "plain_bf16", args.train_size, "train", train_alloc)] if args.amp else []
    cases += [(peer, v, args.train_size, "train", train_alloc) for peer in args.peers if args.train_size
              for v in ["-"] + ["bf16"] * args.amp]
    rows = []
    print(f"{'model':<12} {'variant':<14} {'mode':<5} {'alloc':<7} {'size':>5} {'median s':>9} {'min':>7} {'max':>7} "
          f"{'params':>10} {'GMAC':>7} {'peak MB':>8}", flush=True)
    for name, variant, size, mode, alloc in cases:
        row = run_isolated(__file__, [name, variant, str(size), mode, args.device, alloc,
                                      "--repeats", str(args.repeats), "--threads", str(args.threads),
                                      "--train-batch", str(args.train_batch)])
        if isinstance(row, str):
            print(f"{name:<12} {variant:<14} {mode:<5} {alloc:<7} {size:>5} failed: {row}", flush=True)
            continue
        rows.append(row)
        peak = row.get("peak_cuda_mb", row["peak_rss_mb"])
        gmacs = f"{row['gmacs']:>7.1f}" if "gmacs" in row else f"{'':>7}"
        print(f"{name:<12} {variant:<14} {mode:<5} {alloc:<7} {size:>5} {row['median_s']:>9.3f} {row['min_s']:>7.3f} "
              f"{row['max_s']:>7.3f} {row['params']:>10,} {gmacs} {peak:>8.0f}", flush=True)
    # ratios against the plain path and against the peer
    by = {(r["model"], r["variant"], r["mode"], r["size"], r["allocator"]): r for r in rows}
    print("\nratios (median latency):")
    for size in args.sizes:
        for p in args.presets:
            base = by.get((p, "plain", "infer", size, "default"))
            # (our variant, what it is compared with, the peers' matching variant, what it is)
            for ours, against, peer_variant, what in (("fused", "plain", "-", "fused"),
                                                      ("fused_bf16", "fused", "bf16", "bf16 autocast"),
                                                      ("fused_compiled", "fused", "compiled", "torch.compile")):
                for alloc in args.allocators:
                    ref, row = by.get((p, against, "infer", size, alloc)), by.get((p, ours, "infer", size, alloc))
                    if not (ref and row):
                        continue
                    line = (f"  {p} {size}² ({alloc} allocator): {what} runs {ref['median_s'] / row['median_s']:.2f}x "
                            f"as fast as {against} fp32 eager")
                    if ours == "fused" and alloc != "default" and base:
                        line += f" ({base['median_s'] / row['median_s']:.2f}x the default-allocator plain path)"
                    for peer in args.peers:
                        other = by.get((peer, peer_variant, "infer", size, alloc))
                        if other:
                            line += (f"; takes {row['median_s'] / other['median_s']:.2f}x {peer}'s "
                                     f"{'' if peer_variant == '-' else what + ' '}time")
                    print(line)
    for size in args.sizes:
        for p in args.presets:
            for d in args.dtypes if args.tile_batches else []:
                first = by.get((p, f"t{args.restore_tile}_b{args.tile_batches[0]}_{d}", "restore", size,
                                args.allocators[-1]))
                fp32 = by.get((p, f"t{args.restore_tile}_b{args.tile_batches[0]}_fp32", "restore", size,
                               args.allocators[-1]))
                for b in args.tile_batches[1:]:
                    row = by.get((p, f"t{args.restore_tile}_b{b}_{d}", "restore", size, args.allocators[-1]))
                    if first and row:
                        print(f"  {p} restore {size}² in {args.restore_tile} px tiles, {d}: {b} at a time runs "
                              f"{first['median_s'] / row['median_s']:.2f}x as fast as {args.tile_batches[0]}")
                if d != "fp32" and first and fp32:
                    print(f"  {p} restore {size}², {args.tile_batches[0]} tile(s) at a time: {d} autocast runs "
                          f"{fp32['median_s'] / first['median_s']:.2f}x as fast as fp32")
    for p in args.presets:
        plain = by.get((p, "plain", "train", args.train_size, train_alloc))
        ck = by.get((p, "checkpointed", "train", args.train_size, train_alloc))
        if plain and ck:
            print(f"  {p} training step: checkpointing uses {ck['peak_rss_mb'] / plain['peak_rss_mb']:.2f}x the peak "
                  f"memory at {ck['median_s'] / plain['median_s']:.2f}x the time")
        for peer in args.peers if plain else []:
            other = by.get((peer, "-", "train", args.train_size, train_alloc))
            if other:
                print(f"  {p} training step ({args.train_batch} x {args.train_size}² crops): takes "
                      f"{plain['median_s'] / other['median_s']:.2f}x {peer}'s time")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
