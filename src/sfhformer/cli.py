"""The ``sfhformer`` command. Only this module parses arguments."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, ConfigError, NotFoundError, SFHformerError
from .training.config import parse_overrides


def _model_from(spec: str, preset: str | None, overrides: dict[str, Any]):
    """A model from a preset name, a weights file or a bundled model name."""
    from .models import PRESETS, create_model, load

    if spec in PRESETS and not Path(spec).exists():
        return create_model(spec, **overrides)
    try:
        return load(spec, preset, **overrides)
    except NotFoundError as e:
        raise NotFoundError(f"{e}; nor a preset ({', '.join(PRESETS)})") from None


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: exists; pass --overwrite to replace it")


def cmd_info(args: argparse.Namespace) -> None:
    from .models import PRESETS, preset_name
    from .models.complexity import measure

    if args.size < 1:
        raise ConfigError(f"--size must be at least 1, got {args.size}")
    size = (args.size, args.size)
    specs = args.models or list(PRESETS)
    overrides = parse_overrides(args.set)
    rows = []
    for spec in specs:
        model = _model_from(spec, args.preset, overrides)
        c = measure(model, size)
        cfg = model.config
        rows.append({"model": spec, "preset": preset_name(cfg), **cfg.to_dict(), "params": c.params,
                     "macs": c.macs, "conv_macs": c.conv_macs, "fft_macs": c.fft_macs,
                     "mixing_macs": c.mixing_macs, "input": [1, 3, *size]})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'model':<14} {'family':<6} {'widths':<12} {'depths':<11} {'K':>2} {'params':>11} "
          f"{'GMACs':>8} {'conv':>8} {'FFT':>6} {'mixing':>7}   (at 1x3x{size[0]}x{size[1]})")
    for r in rows:
        print(f"{r['model']:<14} {r['family']:<6} {'/'.join(map(str, r['widths'])):<12} "
              f"{'-'.join(map(str, r['depths'])):<11} {r['num_kernels']:>2} {r['params']:>11,} "
              f"{r['macs'] / 1e9:>8.2f} {r['conv_macs'] / 1e9:>8.2f} {r['fft_macs'] / 1e9:>6.2f} "
              f"{r['mixing_macs'] / 1e9:>7.3f}")
    print("MACs: convolutions, plus FFTs counted analytically (1.25*H*W*log2(H*W) per channel for each "
          "rfft2 and irfft2), plus the K-kernel mixing; BatchNorm and activations not counted.")


def cmd_convert(args: argparse.Namespace) -> None:
    from .models import convert, preset_name

    dst = Path(args.output)
    _refuse_existing(dst, args.overwrite)
    model = convert(args.input, dst, args.preset, to_folder=args.to_folder, **parse_overrides(args.set))
    name = preset_name(model.config) or "no preset"
    print(f"wrote {dst} ({name}; {model.config})")


def _restorer(args: argparse.Namespace, **options: Any):
    """The Restorer that ``--weights``, the model, device and tiling options describe, for a
    command that processes a batch and exits (so it lets the allocator keep freed memory on a
    CPU: several times faster, and the process soon exits); its warnings print as notes."""
    import warnings

    from .restore import Restorer

    tiling = {} if args.tile is None else {"tile": args.tile or None}  # --tile 0: whole images
    if args.tile_overlap is not None:
        tiling["tile_overlap"] = args.tile_overlap
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        restorer = Restorer.from_pretrained(args.weights, device=args.device, preset=args.preset,
                                            overrides=parse_overrides(args.set),
                                            **{"max_pixels": args.max_pixels, "ensemble": args.ensemble,
                                               "keep_freed_memory": True, "tile_batch": args.tile_batch,
                                               "dtype": args.dtype or "fp32", **tiling, **options})
    from .distributed import launched_rank

    if launched_rank() == 0:  # torchrun: every process builds the same Restorer; say it once
        for note in notes:
            print(f"note: {note.message}", file=sys.stderr)
    return restorer


def _processes(args: argparse.Namespace):
    """This process's share of the job: torchrun's processes split the inputs (each on the GPU
    of its LOCAL_RANK, or the CPU), a single process takes them all. Sets ``args.device``."""
    from .distributed import Processes

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Processes()
    procs = Processes.start(args.device, option="--device")
    args.device = str(procs.device)
    return procs


def _shard_by_output_name(paths: list[Path], procs) -> list[Path]:
    """This process's inputs: files whose outputs could collide (the same stem) stay in one
    process and in their order, so every process decides collisions as one process would."""
    stems = list(dict.fromkeys(p.stem for p in paths))
    mine = set(stems[procs.rank::procs.world])
    return [p for p in paths if p.stem in mine]


def cmd_restore(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from .io import list_images, output_suffix, read_image, write_image

    if not args.weights:
        raise ConfigError("restore needs --weights (a weights file or a bundled model name)")
    if args.half:
        if args.dtype not in (None, "fp16"):
            raise ConfigError(f"--half is --dtype fp16; it contradicts --dtype {args.dtype}")
        args.dtype = "fp16"
    procs = _processes(args)
    restorer = _restorer(args, progress=procs.main)
    paths, errors = list_images(args.inputs)
    if procs.main:
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
    outdir = Path(args.output)
    originals = {p.resolve() for p in paths}
    mine = _shard_by_output_name(paths, procs)
    written: dict[Path, Path] = {}
    failed = len(errors) if procs.main else 0
    try:
        for path in tqdm(mine, desc="images", unit="img", disable=len(mine) < 2 or not procs.main):
            try:
                picture = read_image(path)
                if picture.frames > 1:
                    tqdm.write(f"note: {path}: {picture.frames} frames or pages: only the first is restored",
                               file=sys.stderr)
                dst = outdir / f"{path.stem}{args.suffix}{output_suffix(picture.format)}"
                if dst.resolve() in originals:  # whatever the flags: never replace an input
                    raise ConfigError(f"{path}: its output {dst} is an input image; refusing to replace it "
                                      f"(choose another -o folder or a --suffix)")
                if dst in written:
                    raise ConfigError(f"{path}: its output {dst} would overwrite that of {written[dst]}")
                _refuse_existing(dst, args.overwrite)
                restored = restorer.restore_picture(picture, str(path))
                write_image(dst, restored.pixels, restored.alpha)
                written[dst] = path
            except SFHformerError as e:  # one bad input must not stop the batch
                failed += 1
                tqdm.write(f"error: {e}", file=sys.stderr)
            except torch.OutOfMemoryError:
                failed += 1
                tqdm.write(f"error: {path}: out of memory; try a smaller --tile or --max-pixels", file=sys.stderr)
    except KeyboardInterrupt:  # every process is interrupted alike: no collective here
        print(f"interrupted: restored {len(written)} of {len(mine)} image(s) into {outdir}"
              + (f" (process {procs.rank} of {procs.world})" if procs.world > 1 else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    counts = procs.gather((len(written), failed))
    done, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if procs.main:
        print(f"restored {done} image(s) into {outdir}" + (f"; {failed} failed" if failed else "")
              + (f" ({procs.world} processes)" if procs.world > 1 else ""))
    procs.stop()
    return EXIT_FAILED if failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training import load_config, train

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:  # every key with its final value; nothing is read or written
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    try:
        summary = train(cfg)
    except KeyboardInterrupt:
        print(f"interrupted; {cfg.out_dir}/checkpoints/last.pt (when written) resumes it: run the same command "
              f"with resume=auto", file=sys.stderr)
        return EXIT_INTERRUPTED
    from .distributed import launched_rank

    if launched_rank() == 0:  # torchrun: the main process reports
        best = f", best val PSNR {summary['best_psnr']:.2f} dB" if math.isfinite(summary["best_psnr"]) else ""
        print(f"done at step {summary['step']}: loss {summary['loss']:.4f}{best}; weights {summary['last']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_folders, evaluate_restorer, format_table, summarize, write_reports
    from .metrics import AUTHORS, Protocol

    failures: list[str] = []  # one line per image that could not be scored; the others are
    if args.task and args.protocol != "authors":
        raise ConfigError("--task chooses the authors' scoring of a task: use it with --protocol authors")
    if args.pred or args.gt:
        if not (args.pred and args.gt) or args.weights or args.data:
            raise ConfigError("score folders with --pred DIR --gt DIR, or a model with --weights W --data DIR")
        task = args.task or "other"
        default_crop, default_y = 0, False
    else:
        if not (args.weights and args.data):
            raise ConfigError("give --weights and --data (or --pred and --gt)")
        from .data import get_layout
        layout = get_layout(args.layout)
        task = args.task or layout.task
        default_crop, default_y = layout.crop_border, layout.y_channel
    if args.protocol == "authors":
        protocol = AUTHORS[task]
        if args.y_channel is not None or args.crop_border is not None:
            raise ConfigError("--protocol authors fixes the channel and the crop; --task chooses among them")
    else:
        protocol = Protocol(y_channel=default_y if args.y_channel is None else args.y_channel,
                            crop_border=default_crop if args.crop_border is None else args.crop_border)
    procs = _processes(args)
    shard = (procs.rank, procs.world)
    if args.pred:
        rows = evaluate_folders(args.pred, args.gt, errors=failures, protocol=protocol, shard=shard)
        order = None
    else:
        from .data import PairedImageDataset

        authors = args.protocol == "authors"
        # the authors' loaders crop to a multiple of 8 before the network; their scripts run whole
        # images, or GoPro's sliding windows
        dataset = PairedImageDataset(args.data, layout=args.layout, split=args.split,
                                     center_multiple=protocol.multiple if authors else None)
        options = {}
        if authors and args.tile is None:
            options = {"tile": None, "max_pixels": 1 << 40}
            if task == "motion_blur":
                options["window"] = (128, 32)
        restorer = _restorer(args, **options)
        rows = evaluate_restorer(restorer, dataset, save_dir=args.save_images, errors=failures, protocol=protocol,
                                 shard=shard, progress=procs.main)
        order = {Path(lq).stem: i for i, (lq, _) in enumerate(dataset.pairs)}
    if procs.world > 1:  # the main process reports for all, in the order one process would
        shares = procs.gather((rows, failures))
        procs.stop()
        if not procs.main:
            return EXIT_FAILED if any(f for _, f in shares) or not any(r for r, _ in shares) else 0
        rows = [r for share, _ in shares for r in share]
        rows.sort(key=lambda r: r["name"] if order is None else order.get(r["name"], 0))
        failures = [line for _, share in shares for line in share]
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    if not rows:
        print(f"no image could be scored; {len(failures)} failed", file=sys.stderr)
        return EXIT_FAILED
    summary = summarize(rows, protocol=args.protocol, task=task if args.protocol == "authors" else None,
                        crop_border=protocol.crop_border, y_channel=protocol.y_channel)
    print(format_table(rows, summary))
    how = (f"the authors' scoring for {task} ({'Y' if protocol.y_channel else 'RGB'}, float values, centre crop to "
           f"a multiple of {protocol.multiple}{', SSIM on pooled images' if protocol.pool_ssim else ''})"
           if args.protocol == "authors" else
           f"{'Y channel (BT.601)' if protocol.y_channel else 'RGB'}, crop border {protocol.crop_border}")
    print(f"{summary['images']} images, {how}" + (f"; {len(failures)} failed" if failures else ""))
    write_reports(rows, summary, args.csv, args.json)
    return EXIT_FAILED if failures else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    results = run_demo(args.output, args.task, args.image, args.device, keep_freed_memory=True)
    print(f"{'task':<9} {'degraded PSNR / SSIM':>22} {'restored PSNR / SSIM':>22}")
    for r in results:
        print(f"{r['task']:<9} {r['degraded_psnr']:>13.2f} dB / {r['degraded_ssim']:.4f} "
              f"{r['restored_psnr']:>13.2f} dB / {r['restored_ssim']:.4f}")
    print(f"wrote {args.output}/<task>_{{clean,degraded,restored,comparison}}.png")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .zoo import MODELS, PAPER_SCORES, format_models

    if args.json:
        print(json.dumps({"models": [{**m.__dict__, "eval": m.eval_command()} for m in MODELS],
                          "paper_scores": PAPER_SCORES}, indent=1))
    else:
        print(format_models())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util
    from urllib.parse import quote

    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise NotFoundError(f"sfhformer serve needs its extra ({', '.join(missing)} missing): "
                            f"pip install 'sfhformer[serve]'")
    import uvicorn

    from .serve.app import create_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        if not args.token:
            raise ConfigError(f"--host {args.host} lets other machines in: give a --token they must send")
        print(f"warning: serving on {args.host}: anyone who can reach this machine and has the token can use it",
              file=sys.stderr)
    app = create_app(args.models, args.device, args.token, args.max_upload_mb, args.keep_minutes, args.queue)
    shown = "localhost" if args.host in ("0.0.0.0", "::") else f"[{args.host}]" if ":" in args.host else args.host
    print(f"sfhformer serve: http://{shown}:{args.port}/" + (f"?token={quote(args.token, safe='')}" if args.token else ""),
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_spectrum(args: argparse.Namespace) -> int:
    from .spectrum import save_spectrum

    profiles = save_spectrum(args.image, args.output, args.clean)
    for name, p in profiles.items():
        print(f"{name:<24} energy above 0.25 cycles/pixel: {p.high_frequency_share():6.1%}   "
              f"peak band: {p.peak():.3f} cycles/pixel")
    print(f"wrote {args.output}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .features import save_features

    arrays = save_features(args.weights, args.image, args.output, args.stage, args.block, args.channels,
                           args.device)
    for name, a in arrays.items():
        print(f"{name:<10} {a.shape[0]} channels of {a.shape[1]}x{a.shape[2]}")
    print(f"wrote {args.output}/features_stage{args.stage}.png and .npz")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    if args.size is not None and min(args.size) < 1:
        raise ConfigError(f"--size must be two sizes of at least 1 pixel, got {args.size[0]} {args.size[1]}")
    dst = Path(args.output)
    _refuse_existing(dst, args.overwrite)
    export(args.weights, dst, args.format, tuple(args.size) if args.size else None, args.preset,
           parse_overrides(args.set), args.dft)
    shape = f"1x3x{args.size[0]}x{args.size[1]}" if args.size else (
        "1x3xHxW, any H, W from 16" if args.format == "onnx" else "1x3x256x256")
    print(f"wrote {dst} ({args.format}, input {shape})")
    return 0


def _parents() -> dict[str, argparse.ArgumentParser]:
    """Options several commands share, each with one help text."""
    def parent() -> argparse.ArgumentParser:
        return argparse.ArgumentParser(add_help=False)

    model = parent()
    model.add_argument("--preset", help="architecture of an authors' checkpoint where its keys cannot tell (haze_its)")
    model.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a model config field, value in YAML (num_kernels=4, fourier_bn=off)")
    weights = parent()
    weights.add_argument("--weights", help="weights file (ours or the authors') or bundled model name "
                                           "(an existing path wins over a name)")
    device = parent()
    device.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    tiling = parent()
    tiling.add_argument("--tile", type=int, help="tile side in pixels (default: a bundled model's own tiling, else "
                                                 "tile only above --max-pixels; 0: whole images up to --max-pixels)")
    tiling.add_argument("--tile-overlap", type=int,
                        help="pixels shared by neighbouring tiles (default: a bundled model's own, else 64)")
    tiling.add_argument("--max-pixels", type=int,
                        help="largest image run in one pass when --tile is not given (default 640*640 = 409600)")
    tiling.add_argument("--ensemble", action="store_true", help="8-way flip/rotate self-ensemble (8x slower)")
    tiling.add_argument("--tile-batch", type=int,
                        help="tiles run together (default: 1 on a CPU; on CUDA as many as --max-pixels holds, "
                             "at most 8; halved on running out of memory)")
    tiling.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None,
                        help="precision (autocast; FFTs stay float32): fp16 on CUDA, bf16 on CUDA or a CPU with "
                             "native bfloat16 (default fp32)")
    overwrite = parent()
    overwrite.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return {"model": model, "weights": weights, "device": device, "tiling": tiling, "overwrite": overwrite}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfhformer", description="SFHformer image restoration.",
        epilog="exit codes: 0 all done, 1 some inputs or the run failed, 2 usage or configuration error, "
               "130 interrupted")
    parser.add_argument("--version", action="version", version=f"sfhformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    shared = _parents()

    def command(name: str, help: str, *parents: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[shared[p] for p in parents])

    p = command("demo", "degrade a bundled photograph, restore it, compare (no files needed)", "device")
    p.add_argument("-o", "--output", default="sfhformer_demo", help="output folder (default sfhformer_demo)")
    p.add_argument("--task", action="append", help="denoise or deblur (default: every bundled model)")
    p.add_argument("--image", help="your own clean photograph instead of the bundled one")
    p.set_defaults(func=cmd_demo)

    p = command("models", "the bundled models and every checkpoint the authors released, with the eval command")
    p.add_argument("--json", action="store_true", help="print JSON (with the paper's scores for every benchmark)")
    p.set_defaults(func=cmd_models)

    p = command("serve", "a local web app to restore and inspect images (pip install 'sfhformer[serve]')", "device")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", help="a folder of weights files to offer besides the bundled models")
    p.add_argument("--token", help="required by every API call (X-Token header); needed for a --host other than local")
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest upload accepted (default 50)")
    p.add_argument("--keep-minutes", type=float, default=30, help="how long finished results are kept (default 30)")
    p.add_argument("--queue", type=int, default=8, help="images that may wait for the worker (default 8)")
    p.set_defaults(func=cmd_serve)

    p = command("spectrum", "Fourier spectra and radial energy profile of an image (and its clean reference)")
    p.add_argument("image")
    p.add_argument("clean", nargs="?", help="clean reference: adds its spectrum and the difference's")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.set_defaults(func=cmd_spectrum)

    p = command("features", "spatial- and frequency-branch feature maps of a stage, with spectra", "device")
    p.add_argument("weights", help="weights file or bundled model name")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--stage", type=int, default=1, help="1 encoder1, 2 encoder2, 3 bottleneck, 4 decoder2, 5 decoder1")
    p.add_argument("--block", type=int, default=-1, help="block within the stage (default: the last)")
    p.add_argument("--channels", type=int, default=8, help="strongest channels shown per branch")
    p.set_defaults(func=cmd_features, device="cpu")

    p = command("export", "export weights to ONNX (any input size) or TorchScript", "model", "overwrite")
    p.add_argument("weights", help="weights file or bundled model name")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="fix the input size (default: ONNX takes any size from 16; TorchScript is traced at 256x256)")
    p.add_argument("--dft", choices=["auto", "operator", "matrix"], default="auto",
                   help="ONNX: FFTs as matrix products (fixed size only: faster in ONNX Runtime, no DFT operator "
                        "for runtimes that lack one) or as ONNX's DFT operator; auto: matrix products with --size")
    p.set_defaults(func=cmd_export)

    p = command("info", "parameters and MACs of presets or weights files", "model")
    p.add_argument("models", nargs="*", help="preset names or weights files (default: every preset)")
    p.add_argument("--size", type=int, default=256, help="square input size for MACs (default 256)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)

    p = command("convert", "convert an authors' checkpoint to our safetensors format", "model", "overwrite")
    p.add_argument("input", help="checkpoint (.pth of the authors, or ours)")
    p.add_argument("output", help="output .safetensors file (a folder with --to-folder)")
    p.add_argument("--to-folder", action="store_true",
                   help="write a folder in the Hugging Face layout: model.safetensors, config.json, README.md card")
    p.set_defaults(func=cmd_convert)

    p = command("restore", "restore image files", "weights", "model", "device", "tiling", "overwrite")
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--half", action="store_true", help="the same as --dtype fp16")
    p.add_argument("--suffix", default="", help="added to output file names, e.g. _restored")
    p.set_defaults(func=cmd_restore)

    p = command("train", "train from a YAML config (torchrun for many processes)")
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="e.g. train.steps=1000 train.lr=5e-4 (values in YAML)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved configuration as JSON and exit, touching no data")
    p.set_defaults(func=cmd_train)

    p = command("eval", "PSNR/SSIM of a model on paired data, or of restored folders",
                "weights", "model", "device", "tiling")
    p.add_argument("--data", help="benchmark folder (see --layout)")
    p.add_argument("--layout", default="paired", help="folder layout of --data (default: input/ and target/)")
    p.add_argument("--pred", help="folder of restored images to score (any method)")
    p.add_argument("--gt", help="folder of ground-truth images, matched to --pred by file stem")
    y = p.add_mutually_exclusive_group()
    y.add_argument("--y-channel", dest="y_channel", action="store_true", default=None,
                   help="score the BT.601 luma (default: per layout; deraining uses Y)")
    y.add_argument("--rgb", dest="y_channel", action="store_false", help="score RGB")
    p.add_argument("--crop-border", type=int, default=None, help="pixels cut from each side before scoring")
    p.add_argument("--protocol", choices=["basicsr", "authors"], default="basicsr",
                   help="basicsr (default): uint8, per-layout Y/crop; authors: as the authors' scripts score "
                        "the task (float values, centre crop to a multiple of 8, Y for rain, pooled SSIM for haze)")
    p.add_argument("--task", choices=["haze", "rain", "raindrop", "lowlight", "underwater", "motion_blur", "other"],
                   help="with --protocol authors: the task whose scoring to use (default: the layout's)")
    p.add_argument("--split", help="keep the images a split names (lsui_test, uieb_test, ... or a file of names)")
    p.add_argument("--csv", help="per-image CSV")
    p.add_argument("--json", help="summary JSON (with per-image rows)")
    p.add_argument("--save-images", metavar="DIR", help="keep the restored images")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code: 0 all done, 1 some inputs or the run failed,
    2 usage or configuration error, 130 interrupted. Errors a user can cause print one line;
    anything else is a bug in this package and keeps its traceback."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train" and extra and not any(e.startswith("-") for e in extra):
        args.overrides += extra  # overrides after an option: train CONFIG --dry-run key=value
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except SFHformerError as e:
        print(f"sfhformer {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"sfhformer {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (sfhformer models | head): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        traceback.print_exc()
        print(f"sfhformer {args.command}: internal error in sfhformer {__version__}, not a problem with your "
              f"input; please report it with the traceback above", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
