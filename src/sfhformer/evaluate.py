"""Scoring restorations against ground truth, as papers report them (see :mod:`sfhformer.metrics`).

Two ways in: run a model over a paired dataset, or score a folder of images already restored
(by us or any other method) against a folder of ground truth, matched by file stem.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, ImageError, NotFoundError
from .io import IMAGE_EXTENSIONS, is_temporary, read_image, rgb_pixels, write_image
from .metrics import Protocol, score, to_uint8_array
from .utils import atomic_path, shorten_list


def evaluate_restorer(restorer, dataset, crop_border: int = 0, y_channel: bool = False,
                      save_dir: str | os.PathLike | None = None, progress: bool = True,
                      errors: list[str] | None = None, protocol: Protocol | None = None,
                      shard: tuple[int, int] = (0, 1)) -> list[dict[str, Any]]:
    """Per-image PSNR/SSIM of a :class:`~sfhformer.restore.Restorer` over a paired dataset (whole
    images), and of the degraded inputs for reference. ``save_dir`` keeps the outputs as PNG.
    ``shard`` (rank, processes): score only images rank, rank + processes, ... (torchrun).
    ``protocol`` overrides the BasicSR scoring that ``crop_border`` and ``y_channel`` describe.
    With ``errors`` (a list), an image that cannot be read or scored is skipped and its one-line
    error appended there; without, the error is raised."""
    p = protocol or Protocol(crop_border=crop_border, y_channel=y_channel)
    from tqdm.auto import tqdm

    rows = []
    rank, processes = shard
    for i in tqdm(range(rank, len(dataset), processes), desc="eval", unit="img", disable=not progress):
        try:
            sample = dataset[i]
            pred = restorer.restore_tensor(sample["lq"][None])
            name = str(dataset.pairs[i][0]) if hasattr(dataset, "pairs") else sample["name"]
            values = score(pred, sample["gt"], name=name, protocol=p)
            inputs = score(sample["lq"], sample["gt"], name=name, protocol=p)
            if save_dir is not None:
                write_image(Path(save_dir) / f"{sample['name']}.png", to_uint8_array(pred))
        except ImageError as e:
            if errors is None:
                raise
            errors.append(str(e))
            continue
        rows.append({"name": sample["name"], "psnr": values[0], "ssim": values[1],
                     "input_psnr": inputs[0], "input_ssim": inputs[1]})
    return rows


def match_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) pairs by file stem, extensions free.

    Raises:
        ValueError: a ground-truth image has no prediction (lists them), or nothing matches.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for folder in (pred_dir, gt_dir):
        if not folder.is_dir():
            raise NotFoundError(f"{folder}: no such folder")

    def images(folder: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(folder.iterdir())
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not is_temporary(p)}

    preds, gts = images(pred_dir), images(gt_dir)
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise DataError(f"{pred_dir}: no prediction for {len(missing)} ground-truth image(s) of {gt_dir}: "
                        f"{shorten_list(missing)}")
    if not gts:
        raise DataError(f"{gt_dir}: holds no images")
    return [(preds[k], gts[k]) for k in sorted(gts)]


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, crop_border: int = 0,
                     y_channel: bool = False, errors: list[str] | None = None,
                     protocol: Protocol | None = None, shard: tuple[int, int] = (0, 1)) -> list[dict[str, Any]]:
    """Per-image PSNR/SSIM of a folder of restored images against a folder of ground truth,
    each read at its full precision (16-bit PNG, float TIFF: quantized only if the protocol
    says so). ``protocol`` overrides the BasicSR scoring that ``crop_border`` and ``y_channel``
    describe. With ``errors`` (a list), a pair that cannot be read or scored is skipped and its
    one-line error appended there; without, the error is raised. ``shard`` as in
    :func:`evaluate_restorer`."""
    p = protocol or Protocol(crop_border=crop_border, y_channel=y_channel)
    rows = []
    rank, processes = shard
    for pred_path, gt_path in match_folders(pred_dir, gt_dir)[rank::processes]:
        try:
            rows.append(_score_files(pred_path, gt_path, p))
        except ImageError as e:
            if errors is None:
                raise
            errors.append(str(e))
    return rows


def _score_files(pred_path: Path, gt_path: Path, protocol: Protocol) -> dict[str, Any]:
    a, b = rgb_pixels(read_image(pred_path).pixels), rgb_pixels(read_image(gt_path).pixels)
    if a.shape != b.shape:
        raise ImageError(f"{pred_path}: size {a.shape[1]}x{a.shape[0]} differs from {gt_path} "
                         f"({b.shape[1]}x{b.shape[0]})")
    values = score(a, b, name=str(pred_path), protocol=protocol)
    return {"name": gt_path.stem, "psnr": values[0], "ssim": values[1]}


def summarize(rows: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """Means of every numeric column, the image count, and the settings used."""
    keys = [k for k in rows[0] if k != "name"]
    return {"images": len(rows), **{f"mean_{k}": float(np.mean([r[k] for r in rows])) for k in keys}, **settings}


def write_reports(rows: list[dict[str, Any]], summary: dict[str, Any], csv_path: str | os.PathLike | None = None,
                  json_path: str | os.PathLike | None = None) -> None:
    """Per-image CSV and summary JSON (with the rows), each written atomically."""
    for path, write in ((csv_path, _write_csv), (json_path, _write_json)):
        if path:
            with atomic_path(path) as tmp:
                write(Path(tmp), rows, summary)


def _write_csv(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_json(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Valid JSON: a PSNR of identical images (infinite) is written as null."""
    report = _finite_or_null({"summary": summary, "images": rows})
    identical = [r["name"] for r in rows if any(_infinite(v) for v in r.values())]
    if identical:
        report["summary"]["identical_images"] = identical
    path.write_text(json.dumps(report, indent=1, allow_nan=False))


def _infinite(value: Any) -> bool:
    return isinstance(value, float) and not np.isfinite(value)


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return None if _infinite(value) else value


def format_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    keys = [k for k in rows[0] if k != "name"]
    width = max(12, *(len(r["name"]) for r in rows))
    lines = [f"{'image':<{width}} " + " ".join(f"{k:>11}" for k in keys)]
    lines += [f"{r['name']:<{width}} " + " ".join(_cell(r[k]) for k in keys) for r in rows]
    lines.append(f"{'mean':<{width}} " + " ".join(_cell(summary['mean_' + k], "inf") for k in keys))
    return "\n".join(lines)


def _cell(value: float, infinite: str = "identical") -> str:
    """A table cell; an infinite PSNR means the images are identical."""
    return f"{infinite:>11}" if _infinite(value) else f"{value:>11.4f}"
