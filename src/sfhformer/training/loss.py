"""The training loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def restoration_loss(pred: torch.Tensor, target: torch.Tensor, fft_weight: float = 0.1) -> torch.Tensor:
    """L1(pred, target) + fft_weight * L1 of their 2-D FFTs (real and imaginary parts), as the
    authors train (``torch.fft.fft2`` with its default, unnormalised scaling).

    Args:
        pred, target: (B, C, H, W) float tensors.
    Returns:
        A scalar tensor.
    """
    loss = F.l1_loss(pred, target)
    if fft_weight:
        fp, ft = torch.fft.fft2(pred.float()), torch.fft.fft2(target.float())
        loss = loss + fft_weight * F.l1_loss(torch.view_as_real(fp), torch.view_as_real(ft))
    return loss
