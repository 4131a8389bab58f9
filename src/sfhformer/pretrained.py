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
_DEBLUR_DEMO = ({"type": "motion_blur", "length": [11, 11]}, {"type": "gaussian_noise", "sigma": [1, 1]})

BUNDLED: dict[str, BundledWeights] = {
    "denoise": BundledWeights(
        "denoise_v7.safetensors", "sfhformer_t, blind denoising: Gaussian (sigma 5-50) and Poisson-Gaussian noise; "
        "trained with black and white levels (colour kept near black), on photographs with full-resolution colour, "
        "for 2,750 and 2,500 more steps",
        "configs/bundled/denoise_v7_long.yaml", _DENOISE_DEMO, tile=128, version=7,
        sha256="0660374fbd204cf50a30df2ce38229f52307d82226d333e88e9c0bed1128627d"),
    "deblur": BundledWeights(
        "deblur_v2.safetensors", "sfhformer_t (K=4), motion deblurring (linear kernels of 5-17 px)",
        "configs/bundled/deblur_v2.yaml", _DEBLUR_DEMO, version=2,
        sha256="f35416bfa95af812088da5d6d9097c2896237c36acbb3bf481f5569d6025fea1"),
}

# Earlier versions, so that published results can be reproduced. Stored as float16 copies of
# the float32 files they were (whose digests are in each file's metadata, ``float32_sha256``) to
# keep the package small: on the held-out photographs their PSNRs are the float32 files' within
# 0.01 dB (benchmarks/results/quality_denoise_v3.json against quality_denoise_v2.json,
# quality_denoise_v4.json against quality_denoise_v3.json, quality_denoise_v5.json against
# quality_denoise_v4.json, quality_denoise_v6.json against quality_denoise_v5.json,
# quality_denoise_v7.json against quality_denoise_v6.json,
# quality_deblur_v2.json against quality_worst.json).
EARLIER: dict[str, tuple[BundledWeights, ...]] = {
    "denoise": (BundledWeights(
        "denoise_v6.safetensors", "sfhformer_t, blind denoising: Gaussian (sigma 5-50) and Poisson-Gaussian noise; "
        "trained with black and white levels, on photographs with full-resolution colour, for 2,750 more steps; "
        "float16 copy", "configs/bundled/denoise_v6_long.yaml", _DENOISE_DEMO, tile=128, version=6,
        sha256="be35baa00b1295cf38f7aae1e82da4fbedf1d035b41fa86b67769b87b966e647"), BundledWeights(
        "denoise_v5.safetensors", "sfhformer_t, blind denoising: Gaussian (sigma 5-50) and Poisson-Gaussian noise; "
        "trained with black and white levels, on photographs with full-resolution colour; float16 copy",
        "configs/bundled/denoise_v5.yaml", _DENOISE_DEMO, tile=128, version=5,
        sha256="84d11d6aa2d43ef45a642674ca8d267609291abb37efc4027409ce7311bd22e4"), BundledWeights(
        "denoise_v4.safetensors", "sfhformer_t, blind denoising: Gaussian (sigma 5-50) and Poisson-Gaussian noise; "
        "trained with black and white levels; float16 copy", "configs/bundled/denoise_v4.yaml", _DENOISE_DEMO,
        tile=128, version=4, sha256="d8d8e8830618e757e1741c937a58e932ef06add1fc2be1f89364f10e5aed9663"), BundledWeights(
        "denoise_v3.safetensors", "sfhformer_t, blind denoising: Gaussian (sigma 5-50) and Poisson-Gaussian noise; "
        "float16 copy", "configs/bundled/denoise_v3_mixed.yaml", _DENOISE_DEMO, tile=128, version=3,
        sha256="fbaa8441e92a48255b8354c96911dc2087eebf73b0ca33e2d18014defcad3c17"), BundledWeights(
        "denoise_v2.safetensors", "sfhformer_t, blind Gaussian denoising (sigma 5-50); float16 copy",
        "configs/bundled/denoise_v2.yaml", _DENOISE_DEMO, tile=128, version=2,
        sha256="461370468e6a7f5b270fdb957b304b22a20d54d8d414d79fd45c96562ef2256d"), BundledWeights(
        "denoise.safetensors", "sfhformer_t, blind Gaussian denoising (sigma 15-50); casts colour on dark "
        "or strongly coloured photographs (docs/bundled-models.md); float16 copy",
        "configs/bundled/denoise_256.yaml", _DENOISE_DEMO, tile=128, version=1,
        sha256="34b15127d4c4923951158c031ce2238062e7fae0bd801a1935b8219e57f7d61a"),),
    "deblur": (BundledWeights(
        "deblur.safetensors", "sfhformer_t (K=4), motion deblurring (linear kernels of 5-17 px); float16 copy",
        "configs/bundled/deblur_256.yaml", _DEBLUR_DEMO, version=1,
        sha256="6dcea285046b10decd2add24982443738e9d58aaa8529f2433713d5767fb8c7d"),),
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
