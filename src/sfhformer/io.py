"""Image files in and out, at their native bit depth, and the one conversion between pixel
arrays and the tensors the network takes.

Pillow identifies every file (clear errors, EXIF orientation, palette and grayscale modes);
OpenCV decodes and encodes what Pillow cannot keep at full depth (16-bit colour PNG and
TIFF). Pixels travel as numpy arrays:

- ``pixels``: (H, W, C) with C = 1 (grayscale) or 3 (RGB), uint8 or uint16, or float32 in
  [0, 1] (float TIFF);
- ``alpha``: (H, W) of the same dtype, or None; carried through restoration untouched.

Tensors are (C, H, W) float32 in [0, 1] (:func:`to_tensor`, :func:`from_tensor`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError

# Extensions read as images when a folder is given.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".ppm", ".pgm")
# Formats written as they came (lossless); everything else is written as PNG.
LOSSLESS_OUTPUTS = {"PNG": ".png", "TIFF": ".tif", "BMP": ".bmp"}


@dataclass
class Picture:
    """A decoded image file."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    frames: int = 1  # an animated image's frame count; only the first is decoded

    @property
    def grayscale(self) -> bool:
        return self.pixels.shape[2] == 1


def max_value(dtype: np.dtype) -> float:
    """The value of white: 255 for uint8, 65535 for uint16, 1.0 for floats."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def to_tensor(pixels: np.ndarray):
    """(H, W, C) uint8, uint16 or float (in [0, 1]) pixels -> (C, H, W) float32 tensor in [0, 1]."""
    import torch

    scaled = np.ascontiguousarray(pixels, dtype=np.float32) / np.float32(max_value(pixels.dtype))
    return torch.from_numpy(scaled).permute(2, 0, 1)


def from_tensor(x, dtype: np.dtype = np.uint8) -> np.ndarray:
    """(C, H, W) float tensor in [0, 1] -> (H, W, C) array of ``dtype``: integers rounded (not
    truncated) and clamped to their range; floats as they are."""
    import torch

    arr = x.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    scale = max_value(np.dtype(dtype))
    if not np.issubdtype(np.dtype(dtype), np.integer):
        return arr.astype(dtype)
    return np.clip(np.rint(arr * scale), 0, scale).astype(dtype)


def rgb_pixels(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) pixels -> (H, W, 3): grayscale repeated on three channels."""
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


# EXIF orientation -> numpy transform, as PIL.ImageOps.exif_transpose does it.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _is_deep_colour(im) -> bool:
    """16-bit RGB(A) PNG/TIFF, which Pillow would silently reduce to 8 bits."""
    if im.mode not in ("RGB", "RGBA") or not im.tile:
        return False
    rawmode = im.tile[0].args[0] if isinstance(im.tile[0].args, tuple) else im.tile[0].args
    return isinstance(rawmode, str) and "16" in rawmode


def read_image(path: str | os.PathLike) -> Picture:
    """Decode an image file: 8/16-bit PNG and TIFF, float TIFF, JPEG (EXIF orientation applied),
    WebP, BMP, GIF (first frame; ``frames`` says how many there are), PPM/PGM; grayscale, RGB,
    RGBA, grayscale + alpha, palette.

    Raises:
        ImageError: missing, empty, truncated, non-image or zero-size files.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            fmt = im.format or "unknown"
            if im.width == 0 or im.height == 0:
                raise ImageError(f"{path}: zero-size image ({im.width}x{im.height})")
            if fmt == "TIFF" and im.mode == "F":
                return Picture(*_read_float_tiff(path), "TIFF")
            frames = getattr(im, "n_frames", 1)
            deep = _is_deep_colour(im)  # before getexif(), which may load the image and drop its tiles
            orientation = im.getexif().get(0x0112, 1)
            if deep:
                pixels, alpha = _read_deep_colour(path)
                if orientation in _ORIENT:
                    pixels = np.ascontiguousarray(_ORIENT[orientation](pixels))
                    alpha = None if alpha is None else np.ascontiguousarray(_ORIENT[orientation](alpha))
                return Picture(pixels, alpha, fmt)
            im.load()
            im = ImageOps.exif_transpose(im)
            pixels, alpha = pixels_from_pil(im, path)
            return Picture(pixels, alpha, fmt, frames)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: refused: {e}") from None
    except UnidentifiedImageError:
        if _is_tiff(path):  # Pillow reads no colour float TIFF; OpenCV does
            return Picture(*_read_float_tiff(path), "TIFF")
        size = _png_header_size(path)
        if size is not None and 0 in size:
            raise ImageError(f"{path}: zero-size image ({size[0]}x{size[1]})") from None
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except PermissionError:
        raise ImageError(f"{path}: cannot be read (permission denied)") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:  # what decoders raise
        raise ImageError(f"{path}: truncated or corrupt image ({e})") from None


def _png_header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR, read directly: Pillow refuses zero-size PNGs unnamed."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*")


def _read_float_tiff(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A floating-point TIFF as float32 (H, W, 1|3) and alpha, values as stored (restoration
    takes them in [0, 1])."""
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or not np.issubdtype(data.dtype, np.floating):
        raise ImageError(f"{path}: a TIFF that neither Pillow nor OpenCV can decode as an image")
    data = data.astype(np.float32)
    if data.ndim == 2:
        return data[..., None], None
    rgb = np.ascontiguousarray(data[..., 2::-1])
    return rgb, (np.ascontiguousarray(data[..., 3]) if data.shape[2] == 4 else None)


def _read_deep_colour(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageError(f"{path}: truncated or corrupt image (OpenCV could not decode it)")
    if data.ndim == 2:
        return data[..., None], None
    rgb = np.ascontiguousarray(data[..., 2::-1])
    return rgb, (np.ascontiguousarray(data[..., 3]) if data.shape[2] == 4 else None)


def pixels_from_pil(im, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A PIL image's (pixels, alpha) in this module's layout; ``path`` names it in errors."""
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
        mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.array(im).astype(np.uint16)[..., None], None
    if mode == "I":
        arr = np.array(im)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError(f"{path}: 32-bit integer image with values outside 0..65535 is not supported")
        return arr.astype(np.uint16)[..., None], None
    if mode == "F":
        return np.array(im, dtype=np.float32)[..., None], None
    if mode == "L":
        return np.array(im)[..., None], None
    if mode == "LA":
        arr = np.array(im)
        return np.ascontiguousarray(arr[..., :1]), np.ascontiguousarray(arr[..., 1])
    if mode == "RGBA":
        arr = np.array(im)
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    if mode != "RGB":
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, ...
    return np.array(im), None


def output_suffix(input_format: str) -> str:
    """The extension to write a restored image with: the input's where lossless, else PNG."""
    return LOSSLESS_OUTPUTS.get(input_format, ".png")


def write_image(path: str | os.PathLike, pixels: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    """Encode ``pixels`` ((H, W, 1|3) or (H, W); uint8, uint16, or float32 for TIFF) and
    ``alpha`` to ``path``, atomically: a temporary file beside it is renamed into place once
    complete. The format follows the extension (.png, .tif/.tiff, .bmp, .jpg, .webp); 16 bits
    need PNG or TIFF, floats TIFF. 8-bit grayscale + alpha stays grayscale + alpha (16-bit and
    float become RGBA: neither encoder writes those as grayscale + alpha).

    Raises:
        ImageError: pixels that cannot be encoded in that format.
        OutputError: the file cannot be written (permissions, disk full).
    """
    from .utils import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    tiff = suffix in (".tif", ".tiff")
    if pixels.dtype not in (np.uint8, np.uint16, np.float32) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ImageError(f"{path}: cannot write pixels of shape {pixels.shape} and dtype {pixels.dtype}")
    if pixels.dtype == np.uint16 and suffix not in (".png", ".tif", ".tiff"):
        raise ImageError(f"{path}: 16-bit images can be written as PNG or TIFF only")
    if pixels.dtype == np.float32 and not tiff:
        raise ImageError(f"{path}: floating-point images can be written as TIFF only")
    data = _encode(pixels, alpha, suffix, path)
    with atomic_path(path, suffix=suffix) as tmp:
        tmp.write_bytes(data)
    return path


def _encode(pixels: np.ndarray, alpha: np.ndarray | None, suffix: str, path: Path) -> bytes:
    """The encoded file's bytes (encoding in memory: a failure to write is then an OSError)."""
    import cv2

    if alpha is not None and pixels.shape[2] == 1 and pixels.dtype == np.uint8 and suffix in (".png", ".tif", ".tiff"):
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.dstack([pixels[..., 0], alpha.astype(np.uint8)]), "LA").save(
            buffer, format="PNG" if suffix == ".png" else "TIFF")
        return buffer.getvalue()
    data = pixels[..., ::-1] if pixels.shape[2] == 3 else pixels  # OpenCV wants BGR
    if alpha is not None:
        colour = data if data.shape[2] == 3 else np.repeat(data, 3, axis=2)
        data = np.concatenate([colour, alpha[..., None].astype(pixels.dtype)], axis=2)
    data = np.ascontiguousarray(data[..., 0] if data.shape[2] == 1 else data)
    try:
        ok, encoded = cv2.imencode(suffix, data)
    except cv2.error:
        ok = False
    if not ok:
        raise ImageError(f"{path}: could not encode the image as {suffix or 'an unknown format'}")
    return encoded.tobytes()


def is_temporary(path: Path) -> bool:
    """A half-written output that an interrupted process left (:func:`~sfhformer.utils.atomic_path`)."""
    return path.name.startswith(".") and ".tmp-" in path.name


def list_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders (their image files, sorted) and glob patterns.

    Returns the image paths, in order and without repeats, and one error line for each input
    that names nothing.
    """
    import glob

    found: list[Path] = []
    errors: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                            and not is_temporary(p))
            if not images:
                errors.append(f"{path}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            found += images
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file() and not is_temporary(Path(p)))
            if not matches:
                errors.append(f"{item}: pattern matches no file")
            found += matches
        else:
            errors.append(f"{path}: no such file or folder")
    seen: set[Path] = set()
    unique = [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]
    return unique, errors
