"""Synthetic degradations of clean images, composable and seeded.

Every degradation maps a clean (3, H, W) float image in [0, 1] and a ``torch.Generator`` to
a degraded image; all randomness comes from that generator, so a sample is reproducible from
its seed. Blur kernels and filters are kornia's; JPEG is OpenCV's codec. Ranges are
``(low, high)`` and drawn uniformly per sample; noise levels are on the 0..255 scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

Range = tuple[float, float]


def uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


@dataclass
class GaussianNoise:
    """Additive white Gaussian noise of standard deviation ``sigma`` (0..255 scale)."""

    sigma: Range = (15.0, 50.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return x + torch.randn(x.shape, generator=g) * (uniform(g, *self.sigma) / 255.0)


@dataclass
class PoissonNoise:
    """Shot noise: photon counts with ``peak`` photons at white."""

    peak: Range = (10.0, 200.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        peak = uniform(g, *self.peak)
        return torch.poisson(x.clamp(0, 1) * peak, generator=g) / peak


@dataclass
class GaussianBlur:
    """Isotropic Gaussian blur (kornia), ``sigma`` in pixels."""

    sigma: Range = (0.5, 3.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        from kornia.filters import gaussian_blur2d

        s = uniform(g, *self.sigma)
        k = _odd(2 * math.ceil(3 * s) + 1)
        return gaussian_blur2d(x[None], (k, k), (s, s), border_type="reflect")[0]


@dataclass
class MotionBlur:
    """Linear motion blur along a random direction (kornia's motion kernel)."""

    length: Range = (5.0, 21.0)
    angle: Range = (0.0, 180.0)
    direction: Range = (-1.0, 1.0)

    def kernel(self, g: torch.Generator) -> torch.Tensor:
        from kornia.filters import get_motion_kernel2d

        return get_motion_kernel2d(_odd(uniform(g, *self.length)), uniform(g, *self.angle),
                                   uniform(g, *self.direction))

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        from kornia.filters import filter2d

        return filter2d(x[None], self.kernel(g), border_type="reflect")[0]


@dataclass
class JPEG:
    """JPEG compression at a random ``quality`` (OpenCV's libjpeg)."""

    quality: Range = (10.0, 60.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        import cv2

        q = int(round(uniform(g, *self.quality)))
        img = np.rint(x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)[..., ::-1]
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).float() / 255.0


def _smooth_field(h: int, w: int, g: torch.Generator, cells: int = 4) -> torch.Tensor:
    """A smooth random field in [0, 1] of size (h, w): coarse noise, bilinearly upsampled."""
    coarse = torch.rand(1, 1, cells, cells, generator=g)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0, 0]
    field = field - field.min()
    return field / field.max().clamp_min(1e-6)


@dataclass
class Haze:
    """Atmospheric scattering: I = J t + A (1 - t), t = exp(-beta d), with a random smooth depth
    map d in [0, 1] that grows towards the top of the image (far scenery)."""

    beta: Range = (0.6, 2.0)
    airlight: Range = (0.7, 1.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _, h, w = x.shape
        rows = torch.linspace(1.0, 0.0, h)[:, None].expand(h, w)
        depth = 0.6 * rows + 0.4 * _smooth_field(h, w, g)
        t = torch.exp(-uniform(g, *self.beta) * depth)
        a = uniform(g, *self.airlight)
        return x * t + a * (1 - t)


@dataclass
class LowLight:
    """Under-exposure: I = scale * J^gamma, plus Gaussian read noise (0..255 scale)."""

    gamma: Range = (1.5, 3.0)
    scale: Range = (0.1, 0.5)
    noise: Range = (0.0, 8.0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        dark = uniform(g, *self.scale) * x.clamp(0, 1) ** uniform(g, *self.gamma)
        return dark + torch.randn(x.shape, generator=g) * (uniform(g, *self.noise) / 255.0)


@dataclass
class RainStreaks:
    """Rain: sparse drops smeared into streaks by a motion kernel (kornia), screen-blended."""

    density: Range = (0.002, 0.01)
    length: Range = (11.0, 31.0)
    angle: Range = (-25.0, 25.0)  # degrees from vertical
    intensity: Range = (0.5, 0.9)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        from kornia.filters import filter2d, get_motion_kernel2d

        _, h, w = x.shape
        drops = (torch.rand(1, 1, h, w, generator=g) < uniform(g, *self.density)).float()
        kernel = get_motion_kernel2d(_odd(uniform(g, *self.length)), 90.0 + uniform(g, *self.angle), 0.0)
        streaks = filter2d(drops, kernel, border_type="constant")[0]
        streaks = (streaks / streaks.max().clamp_min(1e-6)) * uniform(g, *self.intensity)
        return 1 - (1 - x) * (1 - streaks)


@dataclass
class Photometric:
    """A random change of a *clean* photograph's exposure and colour, so that a model sees dark
    and strongly coloured scenes the photographs alone rarely hold (applied before the
    degradations; the changed image is the target). Each part applies with probability ``p``:
    a gamma drawn log-uniformly from ``gamma`` (above 1 darkens), a brightness factor, per
    channel gains (colour balance), optionally per channel black levels (``black_levels``: a
    channel's values below a level drawn from this range become 0 and the rest are stretched
    back to [0, 1], the saturated colours of flowers and neon where a channel sits at exactly
    black), likewise per channel white levels (``white_levels``: values above a level drawn from
    this range become 1, a channel blown out to white), both off by default so that recipes
    without them draw the same numbers as before, optionally a saturation factor (``saturation``:
    each pixel's distance from its grey, the mean of its channels, is multiplied by a factor
    drawn from this range, so that sharp colour edges, such as thin coloured structures against
    sky, are common rather than rare; off by default for the same reason), and a random order of
    the three channels."""

    gamma: Range = (0.7, 3.0)
    brightness: Range = (0.5, 1.1)
    channel_gains: Range = (0.6, 1.3)
    black_levels: Range | None = None
    white_levels: Range | None = None
    saturation: Range | None = None
    permute_channels: bool = True
    p: float = 0.5

    def __post_init__(self) -> None:
        if self.black_levels is not None and not 0 <= self.black_levels[0] <= self.black_levels[1] < 1:
            raise ConfigError(f"photometric black_levels must be a range within [0, 1), got {list(self.black_levels)}")
        if self.white_levels is not None and not 0 < self.white_levels[0] <= self.white_levels[1] <= 1:
            raise ConfigError(f"photometric white_levels must be a range within (0, 1], got {list(self.white_levels)}")
        if self.saturation is not None and not 0 <= self.saturation[0] <= self.saturation[1]:
            raise ConfigError(f"photometric saturation must be a range of factors >= 0, got {list(self.saturation)}")

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        def happens() -> bool:
            return float(torch.rand((), generator=g)) < self.p

        if happens():
            x = x.clamp(0, 1) ** math.exp(uniform(g, math.log(self.gamma[0]), math.log(self.gamma[1])))
        if happens():
            x = x * uniform(g, *self.brightness)
        if happens():
            x = x * torch.tensor([uniform(g, *self.channel_gains) for _ in range(3)]).view(3, 1, 1)
        if self.black_levels is not None and happens():
            level = torch.tensor([uniform(g, *self.black_levels) for _ in range(3)]).view(3, 1, 1)
            x = (x - level) / (1 - level)
        if self.white_levels is not None and happens():
            x = x / torch.tensor([uniform(g, *self.white_levels) for _ in range(3)]).view(3, 1, 1)
        if self.saturation is not None and happens():
            grey = x.mean(0, keepdim=True)
            x = grey + uniform(g, *self.saturation) * (x - grey)
        if self.permute_channels and happens():
            x = x[torch.randperm(3, generator=g)]
        return x.clamp(0, 1)

    @classmethod
    def from_config(cls, options: dict[str, Any]) -> "Photometric":
        return options_dataclass(cls, options, "photometric")


def options_dataclass(cls: type, options: dict[str, Any], what: str) -> Any:
    """``cls(**options)`` from a config mapping (YAML lists become the tuples of ranges), refusing
    options ``cls`` has no field for, with the config key ``what`` named."""
    known = {f.name for f in fields(cls)}
    if set(options) - known:
        raise ConfigError(f"{what} has no option(s) {sorted(set(options) - known)}; it takes {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


DEGRADATIONS: dict[str, type] = {
    "gaussian_noise": GaussianNoise, "poisson_noise": PoissonNoise, "gaussian_blur": GaussianBlur,
    "motion_blur": MotionBlur, "jpeg": JPEG, "haze": Haze, "low_light": LowLight, "rain": RainStreaks,
}


class Compose:
    """Apply degradations in order, each with probability ``p``; clamp the result to [0, 1]."""

    def __init__(self, steps: list[tuple[Any, float]]) -> None:
        self.steps = steps

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for degrade, p in self.steps:
            if p >= 1 or float(torch.rand((), generator=g)) < p:
                x = degrade(x, g)
        return x.clamp(0, 1)

    @classmethod
    def from_config(cls, items: list[dict[str, Any]]) -> "Compose":
        """From ``[{"type": "gaussian_noise", "sigma": [15, 50], "p": 1.0}, ...]``."""
        steps = []
        for item in items:
            item = dict(item)
            kind = item.pop("type", None)
            if kind not in DEGRADATIONS:
                raise ConfigError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATIONS)}")
            p = float(item.pop("p", 1.0))
            known = {f.name for f in fields(DEGRADATIONS[kind])}
            if set(item) - known:
                raise ConfigError(f"degradation {kind!r} has no option(s) {sorted(set(item) - known)}; "
                                  f"it takes {sorted(known)} and p")
            steps.append((DEGRADATIONS[kind](**{k: tuple(v) if isinstance(v, list) else v
                                                 for k, v in item.items()}), p))
        return cls(steps)
