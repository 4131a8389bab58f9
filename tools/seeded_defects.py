"""Apply each seeded defect alone to src/sfhformer, run the tests meant to catch it, restore the
source, and report whether they failed (they must). A test that cannot fail is a defect.

    python tools/seeded_defects.py            # every defect; about a minute
    python tools/seeded_defects.py gray flat  # those whose name contains a word given

Run it on a clean working tree and not beside another test run: it edits the source in place
(and always puts it back).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "sfhformer"

# name: ([(file, text, replacement), ...], pytest arguments)
DEFECTS: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "rng-not-restored-on-resume": (
        [("training/state.py", "set_rng_state(self._pending_rng)", "pass")],
        ["tests/test_training.py", "-k", "global_rng"]),
    "rng-consumed-after-restore (the original bug)": (
        [("training/loop.py", "        state.restore_rng()  # last", "        pass  # last"),
         ("training/loop.py", "        batches = iter(build_loader(dataset, tc, procs, state.step))",
          "        state.restore_rng()\n        batches = iter(build_loader(dataset, tc, procs, state.step))"),
         ("training/loop.py", ", generator=torch.Generator().manual_seed(tc.seed))", ")")],
        ["tests/test_training.py", "-k", "global_rng"]),
    "fft-loss-weight-ignored": (
        [("training/loop.py", "restoration_loss(pred.float(), gt, tc.fft_loss_weight, tc.loss)",
          "restoration_loss(pred.float(), gt, 0.1, tc.loss)")],
        ["tests/test_training.py", "-k", "fft_loss_weight"]),
    "pixel-loss-ignored": (
        [("training/loop.py", "restoration_loss(pred.float(), gt, tc.fft_loss_weight, tc.loss)",
          "restoration_loss(pred.float(), gt, tc.fft_loss_weight)")],
        ["tests/test_training.py", "-k", "fft_loss_weight"]),
    "batchnorm-fold-without-eps": (
        [("models/blocks.py", "torch.sqrt(bn.running_var + bn.eps) if bn.affine", "torch.sqrt(bn.running_var) if bn.affine")],
        ["tests/test_model.py", "-k", "zero_variance"]),
    "sampler-same-order-every-epoch": (
        [("training/distributed.py", "manual_seed(self.seed + epoch)", "manual_seed(self.seed)")],
        ["tests/test_training.py", "-k", "visits_every"]),
    "16-bit-truncated-for-metrics": (
        [("metrics.py", "np.rint(arr / 257.0)", "np.floor(arr / 257.0)")],
        ["tests/test_metrics.py", "-k", "sixteen"]),
    "grayscale-takes-channel-0": (
        [("restore.py", "y = y.mean(dim=0, keepdim=True)", "y = y[:1]")],
        ["tests/test_restore.py", "-k", "grayscale_goes"]),
    "flat-blend-window": (
        [("restore.py", "win = (wy[:, None] * wx[None, :]).to(x)", "win = torch.ones(len(wy), len(wx)).to(x)")],
        ["tests/test_restore.py", "-k", "smoothly"]),
    "restorer-changes-the-allocator": (
        [("restore.py", "keep_freed_memory: bool = False,", "keep_freed_memory: bool = True,")],
        ["tests/test_utils.py", "-k", "leaves_the_allocator_alone"]),
    "non-finite-loss-unwatched": (
        [("training/loop.py", "health.watch(loss, state.step + 1)", "pass")],
        ["tests/test_training.py", "-k", "diverging"]),
    "checkpoint-written-without-finiteness-check": (
        [("training/loop.py", "check_state(state, procs, log.last_good)", "pass")],
        ["tests/test_reliability.py", "-k", "diverged_run"]),
    "resume-ignores-changed-schedule": (
        [("training/loop.py", "        if changed:\n", "        if False:\n")],
        ["tests/test_reliability.py", "-k", "resume_applies or keeps_decaying"]),
    "resume-accepts-another-experiment": (
        [("training/loop.py", "        if value(saved, key) != value(now, key):\n            raise", "        if False:\n            raise")],
        ["tests/test_reliability.py", "-k", "different_experiment"]),
    "restore-writes-over-its-inputs": (
        [("cli.py", "if dst.resolve() in originals:", "if False:")],
        ["tests/test_reliability.py", "-k", "over_its_inputs"]),
    "nonfinite-output-returned": (
        [("restore.py", "if not torch.isfinite(y).all():", "if False:")],
        ["tests/test_reliability.py", "-k", "nonfinite_output"]),
    "absurd-tiling-plan-accepted": (
        [("restore.py", "if tiles > MAX_TILES:", "if False:")],
        ["tests/test_reliability.py", "-k", "tiling_plans"]),
    "float-input-range-unchecked": (
        [("restore.py", "if lo < -tolerance or hi > 1 + tolerance:", "if False:")],
        ["tests/test_reliability.py", "-k", "api_inputs"]),
}


def run(name: str, edits: list[tuple[str, str, str]], args: list[str]) -> bool:
    """True when the tests fail with the defect applied."""
    originals = {}
    try:
        for file, old, new in edits:
            path = SRC / file
            current = path.read_text()
            originals.setdefault(path, current)
            if old not in current:
                raise SystemExit(f"{name}: {file} no longer contains {old!r}; update this script")
            path.write_text(current.replace(old, new, 1))
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args],
                              cwd=ROOT, capture_output=True, text=True)
        caught = done.returncode == 1  # tests ran and failed; 2-5 mean errors, no tests collected, ...
        last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{'caught' if caught else 'MISSED'}  {name}: {last}" + ("" if caught else f" (exit {done.returncode})"))
        return caught
    finally:
        for path, text in originals.items():
            path.write_text(text)


def main(words: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the source is put back
    chosen = {k: v for k, v in DEFECTS.items() if not words or any(w in k for w in words)}
    missed = [name for name, (edits, args) in chosen.items() if not run(name, edits, args)]
    print(f"{len(chosen) - len(missed)} of {len(chosen)} seeded defects caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
