"""Image files of every kind users have, read and written at their native depth."""

import numpy as np
import pytest
from PIL import Image

from sfhformer.io import ImageError, list_images, output_suffix, read_image, write_image

from conftest import photo


@pytest.fixture(scope="module")
def rgb():
    return photo("chelsea")[:120, :160]  # (120, 160, 3) uint8, a real photograph


def rgb16(rgb):
    # 16 bits with content in the low byte too, so truncation to 8 bits would show
    return rgb.astype(np.uint16) * 257 + np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 200


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_8bit_rgb_round_trip(rgb, ext, tmp_path):
    write_image(tmp_path / f"a{ext}", rgb)
    pic = read_image(tmp_path / f"a{ext}")
    assert pic.pixels.dtype == np.uint8 and np.array_equal(pic.pixels, rgb) and pic.alpha is None


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_round_trip(rgb, ext, tmp_path):
    deep = rgb16(rgb)
    write_image(tmp_path / f"a{ext}", deep)
    pic = read_image(tmp_path / f"a{ext}")
    assert pic.pixels.dtype == np.uint16 and np.array_equal(pic.pixels, deep)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgba_round_trip(rgb, ext, tmp_path):
    deep = rgb16(rgb)
    alpha = np.linspace(0, 65535, deep.shape[0] * deep.shape[1]).astype(np.uint16).reshape(deep.shape[:2])
    write_image(tmp_path / f"a{ext}", deep, alpha)
    pic = read_image(tmp_path / f"a{ext}")
    assert np.array_equal(pic.pixels, deep) and np.array_equal(pic.alpha, alpha)


@pytest.mark.parametrize("dtype, ext", [(np.uint8, ".png"), (np.uint16, ".png"), (np.uint16, ".tif")])
def test_grayscale_round_trip(rgb, dtype, ext, tmp_path):
    gray = rgb[..., 1].astype(dtype) * (257 if dtype == np.uint16 else 1)
    write_image(tmp_path / f"g{ext}", gray)
    pic = read_image(tmp_path / f"g{ext}")
    assert pic.grayscale and pic.pixels.dtype == dtype and np.array_equal(pic.pixels[..., 0], gray)


def test_jpeg_exif_orientation_is_applied(rgb, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "r.jpg", quality=95, exif=exif)
    pic = read_image(tmp_path / "r.jpg")
    assert pic.pixels.shape == (160, 120, 3) and pic.format == "JPEG"
    from PIL import ImageOps
    expected = np.array(ImageOps.exif_transpose(Image.open(tmp_path / "r.jpg")))
    assert np.array_equal(pic.pixels, expected)
    # and the content really is the photo turned clockwise
    assert np.abs(pic.pixels.astype(int) - np.rot90(rgb, -1)).mean() < 4


def test_16bit_png_exif_orientation_is_applied(rgb, tmp_path):
    deep = rgb16(rgb)
    write_image(tmp_path / "d.png", deep)
    im = Image.open(tmp_path / "d.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    # re-save with an eXIf chunk via OpenCV-written data is not possible; patch the chunk in
    import struct
    import zlib
    data = (tmp_path / "d.png").read_bytes()
    payload = exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    pos = data.index(b"IDAT") - 4
    (tmp_path / "e.png").write_bytes(data[:pos] + chunk + data[pos:])
    im.close()
    pic = read_image(tmp_path / "e.png")
    assert pic.pixels.dtype == np.uint16 and np.array_equal(pic.pixels, np.rot90(deep, 1))


def test_webp_lossless(rgb, tmp_path):
    Image.fromarray(rgb).save(tmp_path / "w.webp", lossless=True)
    pic = read_image(tmp_path / "w.webp")
    assert pic.format == "WEBP" and np.array_equal(pic.pixels, rgb)
    assert output_suffix(pic.format) == ".png"


def test_rgba_and_gray_alpha(rgb, tmp_path):
    alpha = (np.arange(rgb.shape[1]) * 255 // rgb.shape[1]).astype(np.uint8)[None].repeat(rgb.shape[0], 0)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    pic = read_image(tmp_path / "a.png")
    assert np.array_equal(pic.pixels, rgb) and np.array_equal(pic.alpha, alpha)
    Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(tmp_path / "la.png")
    pic = read_image(tmp_path / "la.png")
    assert pic.grayscale and np.array_equal(pic.pixels[..., 0], rgb[..., 0]) and np.array_equal(pic.alpha, alpha)


def test_palette_images(rgb, tmp_path):
    pal = Image.fromarray(rgb).quantize(64)
    pal.save(tmp_path / "p.png")
    pal.save(tmp_path / "p.gif")
    expected = np.array(pal.convert("RGB"))
    for name in ("p.png", "p.gif"):
        pic = read_image(tmp_path / name)
        assert pic.pixels.shape == rgb.shape and np.array_equal(pic.pixels, expected)
    # a palette with a transparent entry comes back with alpha
    pal.save(tmp_path / "t.png", transparency=0)
    assert read_image(tmp_path / "t.png").alpha is not None


def test_bilevel_image(tmp_path):
    Image.fromarray(np.eye(20, dtype=bool)).save(tmp_path / "b.png")
    pic = read_image(tmp_path / "b.png")
    assert pic.grayscale and set(np.unique(pic.pixels)) == {0, 255}


def test_output_format_follows_lossless_input():
    assert output_suffix("PNG") == ".png" and output_suffix("TIFF") == ".tif"
    assert output_suffix("BMP") == ".bmp" and output_suffix("JPEG") == ".png"


# -- bad inputs: one line naming the file and the problem ------------------------------------

def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "nope.png")
    assert _one_line(e) == f"{tmp_path / 'nope.png'}: no such file"


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"e\.png: empty file"):
        read_image(tmp_path / "e.png")


def test_non_image(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all\n" * 20)
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "notes.png")
    assert "notes.png: not an image file" in _one_line(e)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_truncated(rgb, ext, tmp_path):
    src = tmp_path / f"full{ext}"
    Image.fromarray(rgb).save(src)
    data = src.read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / f"cut{ext}")
    assert f"cut{ext}: truncated or corrupt" in _one_line(e)


def test_truncated_16bit_png(rgb, tmp_path):
    write_image(tmp_path / "d.png", rgb16(rgb))
    data = (tmp_path / "d.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: truncated or corrupt"):
        read_image(tmp_path / "cut.png")


def test_zero_size_png(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    (tmp_path / "z.png").write_bytes(png)
    with pytest.raises(ImageError, match=r"z\.png: zero-size image \(0x5\)"):
        read_image(tmp_path / "z.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_write_refuses_16bit_jpeg(rgb, tmp_path):
    with pytest.raises(ImageError, match="16-bit images can be written as PNG or TIFF only"):
        write_image(tmp_path / "x.jpg", rgb16(rgb))


def test_write_is_atomic(rgb, tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous file intact and no temporary behind."""
    dst = tmp_path / "out.png"
    write_image(dst, rgb)
    before = dst.read_bytes()

    def dying_write(path, data):  # the encoded image is written to a temporary file, then renamed
        with open(path, "wb") as f:
            f.write(data[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr("pathlib.Path.write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        write_image(dst, 255 - rgb)
    assert dst.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_list_images(rgb, tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    paths, errors = list_images([str(tmp_path / "d"), str(tmp_path / "d" / "*.png"), str(tmp_path / "missing.png"),
                                 str(tmp_path / "empty"), str(tmp_path / "*.nothing")])
    assert [p.name for p in paths] == ["a.jpg", "b.png"]  # the glob's b.png is not repeated
    assert len(errors) == 3
    assert "missing.png: no such file" in errors[0] and "no image files" in errors[1] and "matches no file" in errors[2]


def test_unreadable_file(rgb, tmp_path, monkeypatch):
    """An unreadable file (simulated: tests run as root, who can read anything)."""
    import PIL.Image
    write_image(tmp_path / "locked.png", rgb)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(PIL.Image, "open", denied)
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "locked.png")
    assert _one_line(e) == f"{tmp_path / 'locked.png'}: cannot be read (permission denied)"
