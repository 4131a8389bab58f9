"""Max |ours - authors'| on every golden case, plain and fused (``model.fuse()``).

    python benchmarks/golden.py
"""

import copy
import json
from pathlib import Path

import torch

import sfhformer

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
OVERRIDES = {"haze_small_nobn": {"fourier_bn": False}}  # keys cannot tell; the case's note says so

for name, entry in json.loads((GOLDEN / "index.json").read_text()).items():
    model = sfhformer.load(GOLDEN / entry["checkpoint"], **OVERRIDES.get(name, {}))
    io = torch.load(GOLDEN / entry["io"], weights_only=True)
    with torch.no_grad():
        plain = (model(io["input"]) - io["output"]).abs().max().item()
        fused = (copy.deepcopy(model).fuse()(io["input"]) - io["output"]).abs().max().item()
    print(f"{name:<16} plain {plain:.1e}   fused {fused:.1e}")
