"""One dataclass describes a network; named presets are data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError

Family = Literal["paper", "haze", "lol"]
FAMILIES: tuple[str, ...] = ("paper", "haze", "lol")


@dataclass(frozen=True)
class SFHformerConfig:
    """Architecture of one SFHformer network.

    Attributes:
        family: ``"paper"`` (the ECCV 2024 model, frequency dynamic convolution),
            ``"haze"`` (released dehazing / motion-blur checkpoints, simpler Fourier unit)
            or ``"lol"`` (released low-light checkpoints). See ``docs/families.md``.
        widths: channels of the three encoder levels (c0, c1, c2).
        up_widths: channels of the two decoder levels (u1, u0).
        depths: blocks in encoder1, encoder2, bottleneck, decoder2, decoder1.
        num_kernels: K, kernels of the frequency dynamic convolution (paper family only).
        fourier_bn: apply the Fourier unit's BatchNorm; ``False`` reproduces how the ITS
            dehazing checkpoint is evaluated (haze family only).
    """

    family: Family = "paper"
    widths: tuple[int, int, int] = (32, 64, 128)
    up_widths: tuple[int, int] = (64, 32)
    depths: tuple[int, int, int, int, int] = (1, 1, 2, 1, 1)
    num_kernels: int = 1
    fourier_bn: bool = True

    def __post_init__(self) -> None:
        # Accept lists (from JSON / YAML) but store tuples so configs stay hashable.
        for name in ("widths", "up_widths", "depths"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
                raise ConfigError(f"invalid SFHformerConfig: {name} must be a list of integers, got {value!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        if not _is_int(self.num_kernels):
            raise ConfigError(f"invalid SFHformerConfig: num_kernels must be an integer, got {self.num_kernels!r}")
        if not isinstance(self.fourier_bn, bool):
            raise ConfigError(f"invalid SFHformerConfig: fourier_bn must be true or false, got {self.fourier_bn!r}")
        errors = []
        if self.family not in FAMILIES:
            errors.append(f"family must be one of {FAMILIES}, got {self.family!r}")
        if len(self.widths) != 3 or min(self.widths, default=0) < 2:
            errors.append(f"widths must be 3 integers >= 2, got {self.widths}")
        if len(self.up_widths) != 2 or min(self.up_widths, default=0) < 2:
            errors.append(f"up_widths must be 2 integers >= 2, got {self.up_widths}")
        if len(self.depths) != 5 or min(self.depths, default=0) < 0:
            errors.append(f"depths must be 5 integers >= 0, got {self.depths}")
        if self.num_kernels < 1:
            errors.append(f"num_kernels must be >= 1, got {self.num_kernels}")
        if self.family != "paper" and self.num_kernels != 1:
            errors.append(f"num_kernels applies to the paper family only, got {self.num_kernels} for {self.family!r}")
        if self.family != "haze" and not self.fourier_bn:
            errors.append("fourier_bn=False applies to the haze family only")
        if not errors:
            errors += self._width_errors()
        if errors:
            raise ConfigError("invalid SFHformerConfig: " + "; ".join(errors))

    def _width_errors(self) -> list[str]:
        errors = []
        stage_widths = (*self.widths, *self.up_widths)
        # Blocks split d channels in halves and the MCFN splits 2d into 4 chunks of d/2;
        # the low-light channel attention reduces d by 4.
        multiple = 4 if self.family == "lol" else 2
        if any(w % multiple for w in stage_widths):
            errors.append(f"every width must be a multiple of {multiple} for the {self.family} family, "
                          f"got {stage_widths}")
        if self.family == "paper":
            # Fourier units work on 2C = 4d channels, grouped into K kernels.
            bad = [w for w in stage_widths if (4 * w) % self.num_kernels]
            if bad:
                errors.append(f"num_kernels={self.num_kernels} must divide 4*width for widths {bad}")
        if self.family == "lol":
            c0, c1, c2 = self.widths
            if c1 != 2 * c0 or c2 != 2 * c1:
                errors.append(f"the lol family halves then pixel-unshuffles, so widths must double: got {self.widths}")
        return errors

    def replace(self, **changes: Any) -> "SFHformerConfig":
        """A copy with some fields changed (validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown SFHformerConfig field(s): {sorted(unknown)}; "
                             f"known: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SFHformerConfig":
        return cls().replace(**data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_PAPER = SFHformerConfig(family="paper", widths=(32, 64, 128), up_widths=(64, 32))
_HAZE = SFHformerConfig(family="haze", widths=(32, 64, 128), up_widths=(64, 32), depths=(4, 6, 10, 6, 4))
_LOL = SFHformerConfig(family="lol", widths=(24, 48, 96), up_widths=(48, 24))

PRESETS: dict[str, SFHformerConfig] = {
    # The paper's models (models/SFHformer.py); pass num_kernels=4 for the paper's hard-task setting.
    "sfhformer_t": _PAPER.replace(depths=(1, 1, 2, 1, 1)),
    "sfhformer_s": _PAPER.replace(depths=(2, 2, 4, 2, 2)),
    "sfhformer_m": _PAPER.replace(depths=(4, 4, 8, 4, 4)),
    "sfhformer_l": _PAPER.replace(depths=(6, 6, 10, 6, 6)),
    # Released dehazing checkpoints: same keys; ITS is evaluated with the Fourier BN skipped.
    "haze_ots": _HAZE,
    "haze_its": _HAZE.replace(fourier_bn=False),
    # Released GoPro motion-blur checkpoint.
    "motion_blur": _HAZE.replace(widths=(64, 128, 256), up_widths=(128, 64), depths=(6, 6, 12, 6, 6)),
    # Released low-light (LOLv2) checkpoints.
    "lol_s": _LOL.replace(depths=(1, 1, 2, 1, 1)),
    "lol_m": _LOL.replace(depths=(2, 2, 4, 2, 2)),
    "lol_l": _LOL.replace(depths=(4, 4, 8, 4, 4)),
}


def get_preset(name: str) -> SFHformerConfig:
    """The config of a named preset; a clear error lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def preset_name(config: SFHformerConfig) -> str | None:
    """The name of the preset equal to ``config``, if any."""
    return next((name for name, cfg in PRESETS.items() if cfg == config), None)
