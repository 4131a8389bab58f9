"""Exporting a model for other runtimes: ONNX (any size, or a fixed one) and TorchScript (fixed).

ONNX: the FFTs need the DFT operator (ONNX opset 17+); only PyTorch's dynamo-based exporter
maps ``rfft2`` / ``irfft2`` onto it (the older TorchScript-based exporter refuses them), so we
export with ``dynamo=True`` at opset 20. The model is exported in its fused inference form.
Without a size the graph takes any height and width from :data:`MIN_SIZE` up: while exporting,
the network pads to a multiple of 4 and treats the spectrum's last column without branching on
the size (they see symbolic sizes). With a fixed size the FFTs become matrix products instead
(:mod:`sfhformer.models.dft`): ONNX Runtime runs those several times faster than its DFT
operator, and runtimes or providers that lack a DFT kernel need none for it.
TorchScript freezes the size it was traced at.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .models import dft as dft_module
from .models import load
from .utils import atomic_path

FORMATS = ("onnx", "torchscript")
DFT_FORMS = ("auto", "operator", "matrix")  # auto: matrix products for a fixed size, else the operator
ONNX_OPSET = 20
MIN_SIZE = 16  # the smallest side a size-free ONNX graph takes (the low-light family needs 16)


def export(weights: str | os.PathLike, output: str | os.PathLike, fmt: str = "onnx",
           size: tuple[int, int] | None = None, preset: str | None = None,
           overrides: dict[str, Any] | None = None, dft: str = "auto") -> Path:
    """Write ``weights`` (a file or bundled name) as ONNX or TorchScript for (1, 3, H, W) inputs:
    ``size`` (H, W) fixes them; without it an ONNX graph takes any size from :data:`MIN_SIZE`
    (TorchScript then traces at 256x256). ``dft`` (ONNX): ``"operator"`` keeps ONNX's DFT
    operator, ``"matrix"`` computes the FFTs as matrix products (needs ``size``), ``"auto"``
    takes matrix products when the size is fixed."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {fmt!r}")
    if dft not in DFT_FORMS:
        raise ConfigError(f"dft must be one of {DFT_FORMS}, got {dft!r}")
    if dft == "matrix" and (size is None or fmt != "onnx"):
        raise ConfigError("--dft matrix is for ONNX with a fixed --size H W: its matrices are built for one size")
    matrices = fmt == "onnx" and size is not None and dft != "operator"
    model = load(weights, preset, **(overrides or {})).fuse()
    example = torch.rand(1, 3, *(size or (64, 80)))  # an example only: any size exports the same graph
    output = Path(output)
    with atomic_path(output, suffix=output.suffix) as tmp, torch.no_grad():
        if fmt == "onnx":
            dims = None
            if size is None:
                h, w = (torch.export.Dim(n, min=MIN_SIZE, max=1 << 16) for n in ("height", "width"))
                dims = {"x": {2: h, 3: w}}
            form = dft_module.matrix_dft() if matrices else contextlib.nullcontext()
            with form, contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes
                torch.onnx.export(model, (example,), str(tmp), dynamo=True, opset_version=ONNX_OPSET,
                                  input_names=["image"], output_names=["restored"], dynamic_shapes=dims)
            if size is None:
                _drop_intermediate_shapes(tmp)
        else:
            torch.jit.trace(model, example if size else torch.rand(1, 3, 256, 256)).save(str(tmp))
    return output


def _drop_intermediate_shapes(path: Path) -> None:
    """The exporter records the inverse FFT's intermediate shapes with the input's width where
    the half spectrum has width // 2 + 1, and ONNX Runtime enforces recorded shapes; without
    them it infers the right ones at run time."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    onnx.save(model, str(path))
