"""Learning-rate schedules: cosine or constant, changing every step or once per epoch (as the
authors step ``CosineAnnealingLR`` at the end of each epoch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class LRSchedule:
    """The factor of the base learning rate after ``t`` optimiser steps of this schedule.

    A callable object, so that ``LambdaLR`` saves its fields in checkpoints and a resumed run
    gets the same schedule back.

    Attributes:
        kind: ``"cosine"`` (to ``min_factor`` at ``total``) or ``"constant"``.
        total: the steps this schedule spans.
        min_factor: the floor, ``min_lr / lr``.
        steps_per_epoch: > 0 changes the factor once per epoch of that many steps, over the
            epochs the schedule spans; 0 changes it every step.
        offset: the run's step at which this schedule began (a resumed run that changed it),
            so that epochs are counted from the run's start.
    """

    kind: str = "cosine"
    total: int = 1
    min_factor: float = 0.0
    steps_per_epoch: int = 0
    offset: int = 0

    def __call__(self, t: int) -> float:
        if self.kind == "constant":
            return 1.0
        done, span = t, self.total
        if self.steps_per_epoch:
            first = self.offset // self.steps_per_epoch
            done = (self.offset + t) // self.steps_per_epoch - first
            span = max((self.offset + self.total) // self.steps_per_epoch - first, 1)
        progress = min(done, span) / max(span, 1)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, lr: float, min_lr: float, total: int,
                   steps_per_epoch: int = 0, offset: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that starts the optimiser at ``lr`` and follows :class:`LRSchedule`; step it
    after every optimiser step."""
    for group in optimizer.param_groups:
        group.update(lr=lr, initial_lr=lr)
    schedule = LRSchedule(kind, total, min_lr / lr if lr > 0 else 0.0, steps_per_epoch, offset)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
