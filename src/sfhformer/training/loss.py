"""The training loss."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F


def restoration_loss(pred: torch.Tensor, target: torch.Tensor, fft_weight: float = 0.1,
                     pixel: Literal["l1", "psnr"] = "l1") -> torch.Tensor:
    """A pixel term + fft_weight * L1 of the 2-D FFTs (real and imaginary parts, ``torch.fft.fft2``
    with its default, unnormalised scaling), as the authors train with ``pixel="l1"``.

    ``pixel="psnr"`` is NAFNet's PSNR loss, minus each image's PSNR (``10 log10`` of its mean
    squared error, averaged over the batch): every image weighs by its error in decibels, so an
    image that is already nearly right (low noise, a dark image) still counts as much as a hard one,
    where under L1 the images with the largest errors dominate the gradient.

    Args:
        pred, target: (B, C, H, W) float tensors.
        fft_weight: weight of the FFT term; 0: none.
        pixel: ``"l1"`` or ``"psnr"``.
    Returns:
        A scalar tensor.
    """
    if pixel == "l1":
        loss = F.l1_loss(pred, target)
    elif pixel == "psnr":
        mse = (pred.float() - target.float()).pow(2).mean(dim=tuple(range(1, pred.dim())))
        loss = (10 / math.log(10)) * torch.log(mse + 1e-8).mean()
    else:
        raise ValueError(f"pixel loss: expected 'l1' or 'psnr', got {pixel!r}")
    if fft_weight:
        fp, ft = torch.fft.fft2(pred.float()), torch.fft.fft2(target.float())
        loss = loss + fft_weight * F.l1_loss(torch.view_as_real(fp), torch.view_as_real(ft))
    return loss
