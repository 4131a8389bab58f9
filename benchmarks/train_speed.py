"""Training speed on a CPU: glibc's default allocator against freed memory kept for reuse
(``train.keep_freed_memory``, which ``sfhformer train`` turns on for CPUs by default).

    python benchmarks/train_speed.py configs/bundled/denoise_v7_long.yaml --steps 30 --rounds 2 \
        --json benchmarks/results/train_speed_cpu.json

Each run is a whole ``sfhformer train RECIPE`` in its own process (start-up, data loading and
its worker process included), validation and intermediate checkpoints off, the recipe's seed,
so both settings compute the same losses (checked). The settings alternate run by run, so a
drift in the machine's speed falls on both. Per run: the wall time, the median seconds per step
from ``log.jsonl`` (every 5 steps, after the first ``--skip``), and the main process's peak
resident memory. Run it alone on the machine. The bundled recipes need the Debian photographs
(``bash configs/bundled/install_photos.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import peak_rss_mb, run_isolated, write_results  # noqa: E402

SETTINGS = {"default": "false", "kept": "true"}


def run_case(setting: str, out_dir: str, recipe: str, steps: int) -> dict:
    """One ``sfhformer train`` in this process (a fresh one: ``run_isolated``); its logged steps."""
    from sfhformer.cli import main
    rc = main(["train", recipe, f"train.steps={steps}", f"out_dir={out_dir}", "resume=false", "val.every=1000000",
               "checkpoint.every=1000000", "log.every=5", f"train.keep_freed_memory={SETTINGS[setting]}"])
    if rc != 0:
        sys.exit(rc)  # the command's one-line error is the last line of stderr
    rows = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    return {"setting": setting, "rows": [r for r in rows if "loss" in r], "peak_rss_mb": peak_rss_mb()}


def run_once(recipe: str, setting: str, steps: int, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    row = run_isolated(__file__, [setting, str(out_dir), recipe, "--steps", str(steps)])
    if isinstance(row, str):
        raise SystemExit(f"{recipe}: the {setting} run failed: {row}")
    return row | {"wall_s": time.perf_counter() - t0}


def seconds_per_step(rows: list[dict], skip: int) -> float:
    later = [r for r in rows if r["step"] >= skip]
    return statistics.median((b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in zip(later, later[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--skip", type=int, default=5, help="steps left out of the per-step time (warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting, alternating")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs (default: unset)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--case", nargs=2, metavar=("SETTING", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(*args.case, args.recipe, args.steps)))
        return
    if args.steps < args.skip + 10:
        parser.error(f"--steps must be at least --skip + 10 ({args.skip + 10}), got {args.steps}")

    for name in [k for k in os.environ if k.startswith("MALLOC_")]:
        del os.environ[name]  # the runs inherit this environment: the setting alone decides
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for setting in SETTINGS:
                r = run_once(args.recipe, setting, args.steps, Path(tmp) / f"{setting}{i}")
                r["s_per_step"] = seconds_per_step(r["rows"], args.skip)
                print(f"round {i + 1} {setting:>7}: wall {r['wall_s']:.1f} s, {r['s_per_step']:.3f} s/step, "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
                results.append(r)
    losses = {s: [[x["loss"] for x in r["rows"]] for r in results if r["setting"] == s] for s in SETTINGS}
    same_losses = all(run == losses["default"][0] for runs in losses.values() for run in runs)
    summary = {s: {"wall_s": statistics.median(r["wall_s"] for r in results if r["setting"] == s),
                   "s_per_step": statistics.median(r["s_per_step"] for r in results if r["setting"] == s),
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in results if r["setting"] == s)} for s in SETTINGS}
    wall_ratio = summary["default"]["wall_s"] / summary["kept"]["wall_s"]
    step_ratio = summary["default"]["s_per_step"] / summary["kept"]["s_per_step"]
    print(f"kept freed memory: {wall_ratio:.2f}x the default's speed for the whole run, {step_ratio:.2f}x per step "
          f"(medians of {args.rounds}); peak RSS {summary['default']['peak_rss_mb']:.0f} -> "
          f"{summary['kept']['peak_rss_mb']:.0f} MB; same losses: {same_losses}")
    if args.json:
        rows = [{k: v for k, v in r.items() if k != "rows"} | {"steps": args.steps} for r in results]
        rows.append({"summary": summary, "wall_ratio": wall_ratio, "step_ratio": step_ratio,
                     "same_losses": same_losses})
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
