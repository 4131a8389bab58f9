"""Exporting a model for other runtimes: ONNX and TorchScript, at a fixed input size.

ONNX: the FFTs need the DFT operator (ONNX opset 17+); only PyTorch's dynamo-based exporter
maps ``rfft2`` / ``irfft2`` onto it (the older TorchScript-based exporter refuses them), so we
export with ``dynamo=True`` at opset 20. The model is exported in its fused inference form.
Sizes are fixed: the network pads to a multiple of 4 with shape-dependent logic that the
exported graph freezes; export once per input size.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .models import load
from .utils import atomic_path

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 20


def export(weights: str | os.PathLike, output: str | os.PathLike, fmt: str = "onnx",
           size: tuple[int, int] = (256, 256), preset: str | None = None,
           overrides: dict[str, Any] | None = None) -> Path:
    """Write ``weights`` (a file or bundled name) as ONNX or TorchScript for (1, 3, *size) inputs."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {fmt!r}")
    model = load(weights, preset, **(overrides or {})).fuse()
    example = torch.rand(1, 3, *size)
    output = Path(output)
    with atomic_path(output, suffix=output.suffix) as tmp, torch.no_grad():
        if fmt == "onnx":
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes
                torch.onnx.export(model, (example,), str(tmp), dynamo=True, opset_version=ONNX_OPSET,
                                  input_names=["image"], output_names=["restored"])
        else:
            torch.jit.trace(model, example).save(str(tmp))
    return output
