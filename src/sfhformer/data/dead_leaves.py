"""Synthetic clean images: "dead leaves" (Lee, Mumford & Huang, 2001), flat-coloured shapes of
power-law sizes, each hidden behind those drawn before it.

Why: the bundled denoiser loses to non-local means on the colour of thin, strongly coloured
structures (docs/bundled-models.md, "Where it loses on rocket"), and the photographs it trains
on hold few of them. Dead leaves images are all sharp edges between unrelated colours, at every
scale; mixed into photographs they have trained denoisers nearly as well as photographs alone
(Achddou, Gousseau & Ladjal, "Synthetic images as a regularity prior for image restoration
neural networks", SSVM 2021). Here part of the shapes are thin rotated bars (struts, wires, the
rim of a cup) and colours are drawn uniformly in RGB, so most are saturated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .degradations import Range, options_dataclass


@dataclass
class DeadLeaves:
    """A generator of (3, size, size) float32 images in [0, 1].

    Args:
        p: the share of a dataset's samples that are dead leaves instead of a photograph crop.
        radius: shape radii in output pixels, drawn with density proportional to r^-3 (the
            scale-invariant law of the model: as many small shapes per area at every scale).
        bars: the share of shapes that are bars: rotated rectangles of half-length r and
            half-width r / aspect (at least half a pixel).
        aspect: the bars' length-to-width ratio range, drawn uniformly.
        supersample: drawn at this many times the size and shrunk by area averaging, so edges
            are anti-aliased as a camera's are.
        max_shapes: shapes drawn at most; pixels no shape covers keep a background colour.
    """

    p: float = 0.25
    radius: Range = (2.0, 64.0)
    bars: float = 0.5
    aspect: Range = (3.0, 15.0)
    supersample: int = 2
    max_shapes: int = 6000

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1 or not 0 <= self.bars <= 1:
            raise ConfigError(f"dead_leaves: p and bars must be in [0, 1], got p={self.p}, bars={self.bars}")
        if not 0 < self.radius[0] <= self.radius[1]:
            raise ConfigError(f"dead_leaves radius must be a range of positive radii, got {list(self.radius)}")
        if not 1 <= self.aspect[0] <= self.aspect[1]:
            raise ConfigError(f"dead_leaves aspect must be a range of ratios >= 1, got {list(self.aspect)}")
        if self.supersample < 1 or self.max_shapes < 1:
            raise ConfigError(f"dead_leaves: supersample and max_shapes must be >= 1, "
                              f"got {self.supersample}, {self.max_shapes}")

    def __call__(self, size: int, g: torch.Generator) -> torch.Tensor:
        s = self.supersample
        n, side = self.max_shapes, size * s
        u = torch.rand(n, 8, generator=g, dtype=torch.float64).numpy()
        lo, hi = self.radius[0] ** -2, self.radius[1] ** -2
        radius = (lo - u[:, 0] * (lo - hi)) ** -0.5 * s  # inverse CDF of the r^-3 density
        cy, cx = u[:, 1] * side, u[:, 2] * side
        bar = u[:, 3] < self.bars
        half_width = np.maximum(radius / (self.aspect[0] + u[:, 4] * (self.aspect[1] - self.aspect[0])), 0.5 * s)
        angle = u[:, 5] * math.pi
        colours = torch.rand(n + 1, 3, generator=g, dtype=torch.float64).numpy().astype(np.float32)

        image = np.empty((side, side, 3), np.float32)
        image[:] = colours[n]  # the background
        covered = np.zeros((side, side), bool)
        left = side * side
        grid = np.arange(side, dtype=np.float64)
        for k in range(n):  # front to back: a shape shows only where none before it does
            r = radius[k]
            y0, y1 = max(int(cy[k] - r), 0), min(int(cy[k] + r) + 2, side)
            x0, x1 = max(int(cx[k] - r), 0), min(int(cx[k] + r) + 2, side)
            dy, dx = grid[y0:y1, None] + 0.5 - cy[k], grid[None, x0:x1] + 0.5 - cx[k]
            if bar[k]:
                c, sn = math.cos(angle[k]), math.sin(angle[k])
                shape = (np.abs(dx * c + dy * sn) <= r) & (np.abs(dy * c - dx * sn) <= half_width[k])
            else:
                shape = dx * dx + dy * dy <= r * r
            new = shape & ~covered[y0:y1, x0:x1]
            image[y0:y1, x0:x1][new] = colours[k]
            covered[y0:y1, x0:x1] |= shape
            left -= int(new.sum())
            if left == 0:
                break
        out = torch.from_numpy(image).permute(2, 0, 1)
        if s > 1:
            out = F.avg_pool2d(out[None], s)[0]
        return out.contiguous()

    @classmethod
    def from_config(cls, options: dict[str, Any]) -> "DeadLeaves":
        return options_dataclass(cls, options, "dead_leaves")
