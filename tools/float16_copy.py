"""Retire a bundled weights file to a float16 copy, as earlier versions are kept in the package.

    python tools/float16_copy.py src/sfhformer/weights/denoise_v3.safetensors

Writes the copy in place of the file (or to ``--out``): every floating-point tensor in float16,
integer tensors (BatchNorm's batch counters) as they were, the metadata kept, plus
``float32_sha256`` (the SHA-256 of the float32 file, so a published digest still names the
weights) and ``stored_as: float16``. The model still computes in float32 (``sfhformer.load``
casts back). Prints the copy's own SHA-256 for ``sfhformer.pretrained.EARLIER`` and the largest
change of any value, and refuses a tensor that float16 cannot hold (over 65504) or a file that
is already a copy. The header's keys are sorted, so the same file always gives the same copy,
byte for byte (safetensors alone writes its metadata in an order that changes from run to run).
The write is atomic: an interrupted run leaves the file as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sfhformer.utils import atomic_path  # noqa: E402

FLOAT16_MAX = torch.finfo(torch.float16).max


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sorted_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header with its keys sorted: safetensors writes the
    metadata in a hash map's order, which changes from run to run, and so would the digest."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.dumps(json.loads(data[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the tensors that follow stay 8-byte aligned
    path.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + n:])


def float16_copy(src: Path, dest: Path) -> tuple[str, float]:
    """Write ``dest``, the float16 copy of the float32 weights file ``src``; return its SHA-256 and
    the largest absolute change of any value (float16 rounding).

    Raises:
        ValueError: ``src`` is already a float16 copy, or holds a value float16 cannot hold.
    """
    with safe_open(src, "pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("stored_as") == "float16" or "float32_sha256" in meta:
        raise ValueError(f"{src}: already a float16 copy (of {meta.get('float32_sha256', '?')[:12]}...)")
    out, worst = {}, 0.0
    for k, t in tensors.items():
        if t.is_floating_point():
            if t.abs().max() > FLOAT16_MAX:
                raise ValueError(f"{src}: {k} holds {t.abs().max().item():.3g}, beyond float16's {FLOAT16_MAX:.0f}")
            half = t.to(torch.float16)
            worst = max(worst, (half.float() - t.float()).abs().max().item() if t.numel() else 0.0)
            out[k] = half.contiguous()
        else:
            out[k] = t.contiguous()
    meta.update(float32_sha256=sha256(src), stored_as="float16")
    with atomic_path(dest, ".safetensors") as tmp:
        save_file(out, str(tmp), metadata=meta)
        sorted_header(tmp)
    return sha256(dest), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="a float32 .safetensors file (replaced unless --out)")
    parser.add_argument("--out", type=Path, help="write the copy here instead")
    args = parser.parse_args()
    try:
        digest, worst = float16_copy(args.weights, args.out or args.weights)
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"{args.out or args.weights}: float16 copy, sha256 {digest}; largest change of a value {worst:.2g}")


if __name__ == "__main__":
    main()
