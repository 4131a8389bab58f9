"""How the benchmarks of image restoration store their pairs, and finding the pairs by rule.

Each :class:`Layout` names the folders of degraded and clean images under a dataset's root and
the rule that maps a degraded file's name (its path relative to the degraded folder, without the
extension) to its clean partner's. The rules follow the datasets as their authors distribute
them; Restormer's and BasicSR's re-packaged test sets (``input/`` + ``target/`` with the same
names) are the ``paired`` layout. ``docs/datasets.md`` lists the sources.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, DataError, NotFoundError
from ..io import IMAGE_EXTENSIONS, is_temporary
from ..utils import shorten_list


@dataclass(frozen=True)
class Layout:
    """How a benchmark stores its pairs under a root folder.

    Attributes:
        degraded, clean: candidate sub-folders (the first that exists is used; "." = root).
        pattern: regex the degraded names must contain a match of to take part.
        rename: (regex, replacement) turning a degraded name into its clean partner's; when no
            clean file has the result, the same name is tried (re-packaged copies keep it).
        recursive: images lie in sub-folders (per scene); names are relative paths.
        side_by_side: each file holds degraded (left half) and clean (right half).
        by_order: no name rule: the sorted lists pair by position.
        crop_clean: centre-crop clean images to their degraded partner's size (SOTS indoor).
        task: the authors' scoring for it (a key of :data:`sfhformer.metrics.AUTHORS`).
        y_channel, crop_border: BasicSR's scoring (``sfhformer eval`` defaults).
    """

    degraded: tuple[str, ...]
    clean: tuple[str, ...]
    pattern: str = r""
    rename: tuple[str, str] | None = None
    recursive: bool = False
    side_by_side: bool = False
    by_order: bool = False
    crop_clean: bool = False
    task: str = "other"
    y_channel: bool = False
    crop_border: int = 0


_RAIN = dict(task="rain", y_channel=True)
_HAZE = dict(degraded=("hazy",), clean=("gt", "GT", "clear", "tgt"), rename=(r"_.*$", ""), crop_clean=True,
             task="haze")
_NTIRE_HAZE = dict(rename=(r"_hazy$", "_GT"), pattern=r"_hazy$", task="haze")
_PAIRED = dict(degraded=("input", "lq", "degraded"), clean=("target", "gt", "clean"))

LAYOUTS: dict[str, Layout] = {
    # input/ and target/ with the same names (Restormer's and BasicSR's prepared test sets)
    "paired": Layout(**_PAIRED),
    # deraining
    "rain100": Layout(("rainy", "input", "."), ("norain", "target", "."), pattern=r"^rain-\d+$",
                      rename=(r"^rain-", "norain-"), **_RAIN),
    "rain200": Layout(("rain/X2", "rain", "input"), ("norain", "target"), pattern=r"^norain-\d+x2$",
                      rename=(r"x2$", ""), **_RAIN),
    "did": Layout(("input", "Source"), ("target", "Target"), **_RAIN),  # Test1200 as re-packaged
    "did_original": Layout((".",), (".",), side_by_side=True, **_RAIN),  # DID-MDN-test: rainy | clean
    "ddn": Layout(("rainy_image", "input"), ("ground_truth", "target"), rename=(r"^(\d+)_\d+$", r"\1"), **_RAIN),
    "spa": Layout(("rain", "input"), ("gt", "target"), rename=(r"^(\d+)$", r"\1gt"), **_RAIN),
    "raindrop": Layout(("data", "input"), ("gt", "target"), rename=(r"_rain$", "_clean"), task="raindrop",
                       y_channel=True),
    # dehazing
    "sots_indoor": Layout(**_HAZE),
    "sots_outdoor": Layout(**_HAZE),
    "its": Layout(**_HAZE),
    "ots": Layout(**_HAZE),
    "o_haze": Layout(("hazy", "test_hazy", "input"), ("GT", "test_gt", "target"), **_NTIRE_HAZE),
    "nh_haze": Layout(("hazy", "."), ("GT", "."), **_NTIRE_HAZE),
    "dense_haze": Layout(("hazy",), ("GT",), **_NTIRE_HAZE),
    # desnowing
    "snow100k": Layout(("synthetic", "Snow"), ("gt", "Gt")),
    "csd": Layout(("Snow", "snow"), ("Gt", "gt")),
    "srrs": Layout(("Snow", "snow", "input"), ("Gt", "gt", "target")),
    # blur
    "gopro": Layout(("blur", "input", "input_crops"), ("sharp", "target", "target_crops"), task="motion_blur"),
    "hide": Layout(("test", "input"), ("GT", "target"), recursive=True, rename=(r"^.*/", ""), task="motion_blur"),
    "realblur": Layout((".",), (".",), recursive=True, pattern=r"(^|/)blur/blur_\d+$",
                       rename=(r"blur/blur_(\d+)$", r"gt/gt_\1"), task="motion_blur"),
    "dpdd": Layout(("test_c/source", "inputC", "source"), ("test_c/target", "target"), by_order=True),
    # low light, retouching, underwater
    "lol_v1": Layout(("low",), ("high",), task="lowlight"),
    "lol_v2_real": Layout(("Low", "low"), ("Normal", "normal"), rename=(r"^low", "normal"), task="lowlight"),
    "lol_v2_synthetic": Layout(("Low", "low"), ("Normal", "normal"), task="lowlight"),
    "fivek": Layout(("input/JPG/480p", "input"), ("expertC/JPG/480p", "expertC", "target"), task="lowlight"),
    "lsui": Layout(("input", "hazy"), ("GT", "gt", "target"), task="underwater"),
    "uieb": Layout(("raw-890", "raw", "input"), ("reference-890", "reference", "target"), task="underwater"),
    # real noise
    "sidd": Layout(("Data", "."), ("Data", "."), recursive=True, pattern=r"NOISY_", rename=(r"NOISY_", "GT_")),
}

# The authors' file lists (deng-ai-lab/SFHformer, dataset_spilt/), shipped in the package.
SPLITS = {"lsui_train": "lsui_train.txt", "lsui_test": "lsui_test.txt", "uieb_train": "uieb_train.txt",
          "uieb_test": "uieb_test.txt"}


def split_names(split: str | os.PathLike) -> set[str]:
    """The file names a split keeps: a shipped split (:data:`SPLITS`) or a text file of names,
    one a line (``#`` comments; extensions optional)."""
    if str(split) in SPLITS:
        text = resources.files("sfhformer.data").joinpath("splits", SPLITS[str(split)]).read_text()
    else:
        path = Path(split)
        if not path.is_file():
            raise NotFoundError(f"{path}: no such split file, nor a shipped split ({', '.join(SPLITS)})")
        text = path.read_text()
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def layout_folders(root: Path, layout: Layout, name: str) -> tuple[Path, Path]:
    """The degraded and clean folders of a dataset's root."""
    if not root.is_dir():
        raise NotFoundError(f"{root}: no such folder")
    return _first_dir(root, layout.degraded, "degraded", name), _first_dir(root, layout.clean, "clean", name)


def _first_dir(root: Path, candidates: tuple[str, ...], what: str, layout: str) -> Path:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    raise NotFoundError(f"{root}: no {what} folder for layout {layout!r} (looked for {', '.join(candidates)})")


def images_in(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """{name: path} of the image files in a folder, the name being the path relative to it
    without the extension, sorted."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    paths = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_temporary(p))
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in paths}


def find_pairs(degraded_dir: Path, clean_dir: Path, layout: Layout, name: str = "",
               split: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """(degraded, clean) file pairs by the layout's rule (names free of extensions); ``split``
    keeps the degraded files it names.

    Raises:
        DataError: degraded files without a clean partner (listed), or no pair at all.
    """
    degraded = {k: p for k, p in images_in(degraded_dir, layout.recursive).items() if re.search(layout.pattern, k)}
    if split is not None:
        keep = split_names(split)
        degraded = {k: p for k, p in degraded.items() if p.name in keep or k in keep}
    where = f" (layout {name!r})" if name else ""
    if layout.side_by_side:
        pairs = [(p, p) for p in degraded.values()]
    elif layout.by_order:
        clean = list(images_in(clean_dir, layout.recursive).values())
        if len(clean) != len(degraded):
            raise DataError(f"{degraded_dir}: {len(degraded)} degraded and {len(clean)} clean images in "
                            f"{clean_dir}{where}: they pair by order, so the counts must match")
        pairs = list(zip(degraded.values(), clean))
    else:
        clean = images_in(clean_dir, layout.recursive)
        pairs, unmatched = [], []
        for key, path in degraded.items():
            names = ([re.sub(layout.rename[0], layout.rename[1], key)] if layout.rename else []) + [key]
            partner = next((clean[n] for n in names if n in clean and clean[n] != path), None)
            if partner is None:
                unmatched.append(path.name)
            else:
                pairs.append((path, partner))
        if unmatched:
            raise DataError(f"{degraded_dir}: {len(unmatched)} degraded file(s) without a clean partner in "
                            f"{clean_dir}{where}: {shorten_list(unmatched)}")
    if not pairs:
        raise DataError(f"{degraded_dir}: no image pairs found against {clean_dir}{where}")
    return pairs


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ConfigError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]
