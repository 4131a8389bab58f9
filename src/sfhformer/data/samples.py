"""Real photographs that ship inside pip packages (scikit-image, matplotlib): training and
evaluation data that needs no download. The held-out split is fixed here, once."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, NotFoundError

# name -> (package, file inside the package's data folder)
PHOTOGRAPHS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "retina": ("skimage", "retina.jpg"),
    "immunohistochemistry": ("skimage", "ihc.png"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"),
    "motorcycle_right": ("skimage", "motorcycle_right.png"),
    "camera": ("skimage", "camera.png"),
    "coins": ("skimage", "coins.png"),
    "moon": ("skimage", "moon.png"),
    "brick": ("skimage", "brick.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),
}

PIP_NAMES = {"skimage": "scikit-image", "matplotlib": "matplotlib"}

# Never trained on: the bundled models are measured on these.
HELD_OUT: tuple[str, ...] = ("chelsea", "coffee", "rocket", "grace_hopper")


def _data_dir(package: str) -> Path | None:
    try:
        if package == "skimage":
            import skimage
            return Path(skimage.__file__).parent / "data"
        if package == "matplotlib":
            import matplotlib
            return Path(matplotlib.get_data_path()) / "sample_data"
    except ImportError:
        return None
    raise ConfigError(f"unknown package {package!r}")


def photograph_path(name: str) -> Path:
    """The file of a named sample photograph; a clear error when its package is missing."""
    if name not in PHOTOGRAPHS:
        raise ConfigError(f"unknown sample photograph {name!r}; known: {', '.join(PHOTOGRAPHS)}")
    package, file = PHOTOGRAPHS[name]
    folder = _data_dir(package)
    if folder is None or not (folder / file).is_file():
        raise NotFoundError(f"sample photograph {name!r} needs the {PIP_NAMES[package]} package "
                            f"(pip install {PIP_NAMES[package]}, or the sfhformer[samples] extra)")
    return folder / file


def photographs(split: str = "all") -> list[Path]:
    """Paths of the available sample photographs: ``"train"``, ``"held_out"`` or ``"all"``."""
    if split not in ("train", "held_out", "all"):
        raise ConfigError(f"split must be train, held_out or all, got {split!r}")
    names = [n for n in PHOTOGRAPHS if split == "all" or (n in HELD_OUT) == (split == "held_out")]
    out = []
    for name in names:
        try:
            out.append(photograph_path(name))
        except FileNotFoundError:
            continue
    return out


def resolve_image_list(spec: str | os.PathLike | list) -> list[Path]:
    """Image files from a spec: ``"samples:train"`` / ``"samples:held_out"`` / ``"samples:all"``,
    a sample name (``"sample:chelsea"``), ``"debian:train"`` / ``"debian:val"`` /
    ``"debian:held_out"`` (photographs from Debian's desktop-background packages, those
    installed; an error when none is), a folder, a file, or a list of these."""
    from ..io import list_images

    if isinstance(spec, (list, tuple)):
        return [p for item in spec for p in resolve_image_list(item)]
    text = str(spec)
    if text.startswith("samples:"):
        return photographs(text.split(":", 1)[1])
    if text.startswith("sample:"):
        return [photograph_path(text.split(":", 1)[1])]
    if text.startswith("debian:"):
        from .debian import PACKAGES, debian_photographs

        found = debian_photographs(text.split(":", 1)[1])
        if not found:
            raise NotFoundError(f"{text}: none of its photographs is installed; run configs/bundled/install_photos.sh "
                                f"(apt-get install {' '.join(PACKAGES)})")
        return found
    paths, errors = list_images([text])
    if errors:
        raise NotFoundError("; ".join(errors))
    return paths
