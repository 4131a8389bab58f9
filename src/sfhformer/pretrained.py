"""Weights that ship inside the package, by name (no hub is reached at run time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import NotFoundError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BundledWeights:
    """A trained model shipped in ``sfhformer/weights``; ``recipe`` retrains it.

    ``demo`` is the degradation (a :class:`~sfhformer.data.Compose` config) that ``sfhformer
    demo`` applies to a clean photograph before restoring it. ``tile`` / ``tile_overlap`` are
    the inference tiling :class:`~sfhformer.restore.Restorer` uses by default for this model:
    a network trained only on small crops sees spectra unlike those of whole photographs
    (with the orthonormal FFT, low-frequency coefficients grow with the image side), and
    restores tiles of its training size better than the whole image (``benchmarks/quality.py``
    measures both). ``None``: whole images up to the pixel budget.

    ``version`` counts retrainings (``NAME@VERSION`` names one, :data:`VERSIONS`) and
    ``sha256`` is the file's digest, so that a result can name the exact weights behind it
    (``sfhformer models`` prints both; a test checks every file against it).
    """

    file: str
    description: str
    recipe: str
    demo: tuple[dict, ...]
    tile: int | None = None
    tile_overlap: int = 32
    version: int = 1
    sha256: str = ""


_DENOISE_DEMO = ({"type": "gaussian_noise", "sigma": [25, 25]},)

BUNDLED: dict[str, BundledWeights] = {
    "denoise": BundledWeights(
        "denoise_v2.safetensors", "sfhformer_t, blind Gaussian denoising (sigma 5-50)",
        "configs/bundled/denoise_v2.yaml", _DENOISE_DEMO, tile=128, version=2,
        sha256="02dae33ab668c552247c1a68e145b6412e0d4d71c9ffcd0fc9a8d0f276bc17d9"),
    "deblur": BundledWeights(
        "deblur.safetensors", "sfhformer_t (K=4), motion deblurring (linear kernels of 5-17 px)",
        "configs/bundled/deblur_256.yaml",
        ({"type": "motion_blur", "length": [11, 11]}, {"type": "gaussian_noise", "sigma": [1, 1]}),
        sha256="6adc1ea2eb413173d21629782f16886418be55da4e7b59e644cf8ddcc95f2370"),
}

# Earlier versions, kept bit for bit so that published results can be reproduced.
EARLIER: dict[str, tuple[BundledWeights, ...]] = {
    "denoise": (BundledWeights(
        "denoise.safetensors", "sfhformer_t, blind Gaussian denoising (sigma 15-50); casts colour on dark "
        "or strongly coloured photographs (docs/bundled-models.md)",
        "configs/bundled/denoise_256.yaml", _DENOISE_DEMO, tile=128, version=1,
        sha256="de521e7cc8e9cec0c40da420ca51b432bbd0760d878adadf2eda0df029ba18e2"),),
}

# Every version by ``NAME@VERSION``; the plain name is the latest.
VERSIONS: dict[str, BundledWeights] = {
    f"{name}@{w.version}": w
    for name, w in [*BUNDLED.items(), *((name, w) for name, ws in EARLIER.items() for w in ws)]}


def available() -> dict[str, BundledWeights]:
    """The bundled models whose files are present in this installation."""
    return {name: w for name, w in BUNDLED.items() if (WEIGHTS_DIR / w.file).is_file()}


def bundled_model(weights: str | os.PathLike) -> BundledWeights | None:
    """The bundled model that ``weights`` names, or None for anything else. One rule
    everywhere: a path that exists (file or folder) wins over a bundled name."""
    if Path(weights).exists():
        return None
    return BUNDLED.get(str(weights)) or VERSIONS.get(str(weights))


def resolve_weights(weights: str | os.PathLike) -> Path:
    """The path of a weights argument: an existing path as it is, a bundled model's name as
    its file inside the package.

    Raises:
        NotFoundError: neither an existing path nor a bundled name (the message lists them).
    """
    bundled = bundled_model(weights)
    if bundled is None and Path(weights).exists():
        return Path(weights)
    if bundled is not None:
        path = WEIGHTS_DIR / bundled.file
        if path.is_file():
            return path
        raise NotFoundError(f"{path}: bundled weights {str(weights)!r} are missing from this installation")
    names = ", ".join(available()) or "none in this installation"
    raise NotFoundError(f"{weights}: no such weights file, nor a bundled model name (bundled: {names})")
