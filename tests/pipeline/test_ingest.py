"""Ingest: every accepted format, orientation, colour mode and kind of bad input.

All images are generated here with Pillow / pillow-heif; the one real photo comes from the
LFW fixture. Corner markers in three distinct colours make every one of the eight EXIF
orientations distinguishable from the others.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pillow_heif
import pytest
from PIL import Image, ImageFile

from faceledger.config import ImageLimits
from faceledger.errors import ImageError, ImageTooLargeError
from faceledger.pipeline import ingest
from faceledger.pipeline.ingest import BACKGROUND, decode_image, load_image

pillow_heif.register_heif_opener()  # only to *write* HEIF test files; ingest registers its own reader

U8 = npt.NDArray[np.uint8]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
GREY = np.array(BACKGROUND, dtype=np.int32)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> U8:
    """A smooth RGB image that lossy codecs reproduce closely."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    rgb = np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), 255 - (x + y) / 2]
    )
    return np.ascontiguousarray(np.moveaxis(rgb, 0, -1).round().astype(np.uint8))


def marked(width: int = 64, height: int = 48) -> U8:
    """Upright reference: red top-left, green top-right, blue bottom-left, grey elsewhere."""
    pixels = np.full((height, width, 3), 90, dtype=np.uint8)
    pixels[:16, :16] = RED
    pixels[:16, -16:] = GREEN
    pixels[-16:, :16] = BLUE
    return pixels


def as_stored(upright: U8, orientation: int) -> U8:
    """Pixels as a camera stores them for an EXIF orientation, written from the EXIF definition.

    The value says where the stored row 0 and column 0 are when the photo is viewed upright
    (1: top/left, 2: top/right, 3: bottom/right, 4: bottom/left, 5: left/top, 6: right/top,
    7: right/bottom, 8: left/bottom); ``stored[r, c]`` is the upright pixel found there.
    """
    u = upright
    stored = {
        1: u,
        2: u[:, ::-1],
        3: u[::-1, ::-1],
        4: u[::-1, :],
        5: u.transpose(1, 0, 2),
        6: u[:, ::-1].transpose(1, 0, 2),
        7: u[::-1, ::-1].transpose(1, 0, 2),
        8: u[::-1, :].transpose(1, 0, 2),
    }[orientation]
    return np.ascontiguousarray(stored)


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def assert_corners(pixels: U8, tolerance: int = 12) -> None:
    h, w = pixels.shape[:2]
    for (y, x), colour in (
        ((8, 8), RED),
        ((8, w - 8), GREEN),
        ((h - 8, 8), BLUE),
        ((h - 8, w - 8), (90,) * 3),
    ):
        got = pixels[y, x].astype(int)
        assert np.abs(got - np.array(colour)).max() <= tolerance, (
            f"pixel ({y},{x}) is {got}, expected {colour}"
        )


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(width: int, height: int, *, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for what Pillow cannot write (48-bit RGB, lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def decode(data: bytes, **limits: int) -> U8:
    return decode_image(data, source="probe", limits=ImageLimits(**limits)).pixels


# --- formats ---------------------------------------------------------------------------

FORMATS = [
    ("JPEG", {"quality": 95}, "JPEG", 4.0),
    ("PNG", {}, "PNG", 0.0),
    ("WEBP", {"lossless": True}, "WEBP", 0.0),
    ("WEBP", {"quality": 90}, "WEBP", 6.0),
    ("HEIF", {"quality": 95}, "HEIF", 6.0),
    ("BMP", {}, "BMP", 0.0),
    ("TIFF", {}, "TIFF", 0.0),
    ("TIFF", {"compression": "tiff_lzw"}, "TIFF", 0.0),
]


@pytest.mark.parametrize(("fmt", "options", "name", "max_mean_error"), FORMATS)
def test_each_accepted_format_round_trips(
    fmt: str, options: dict[str, Any], name: str, max_mean_error: float
) -> None:
    original = gradient()
    data = encode(Image.fromarray(original), fmt, **options)
    decoded = decode_image(data, source=f"upload.{fmt.lower()}")
    pixels = decoded.pixels
    assert pixels.shape == (48, 64, 3)
    assert pixels.dtype == np.uint8
    assert pixels.flags.c_contiguous
    assert not pixels.flags.writeable
    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.format == name
    assert decoded.source == f"upload.{fmt.lower()}"
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
    assert decoded.original_mode == "RGB"
    assert decoded.exif_orientation == 1
    error = np.abs(pixels.astype(np.int32) - original.astype(np.int32)).mean()
    assert error <= max_mean_error


def test_mpo_from_a_camera_is_read_as_its_primary_jpeg() -> None:
    primary, preview = Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)
    data = encode(primary, "MPO", save_all=True, append_images=[preview])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = decode_image(data, source="camera.jpg")
    assert decoded.format == "JPEG"
    assert np.abs(decoded.pixels[16, 16].astype(int) - RED).max() <= 4


@pytest.mark.parametrize("fmt", ["TIFF", "HEIF"])
def test_multi_image_files_yield_the_first_or_primary_image(fmt: str) -> None:
    first, second = Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)
    data = encode(first, fmt, save_all=True, append_images=[second])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    pixels = decode(data)
    assert np.abs(pixels[16, 16].astype(int) - RED).max() <= 4


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "PNG"), ("WEBP", "WEBP")])
def test_animated_images_are_refused(fmt: str, name: str) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(
        ImageError, match=rf"^clip\.{fmt.lower()}: animated {name} \(3 frames\) is not accepted"
    ):
        decode_image(data, source=f"clip.{fmt.lower()}")


# --- orientation -----------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_in_jpeg(orientation: int) -> None:
    upright = marked()
    stored = Image.fromarray(as_stored(upright, orientation))
    data = encode(stored, "JPEG", quality=95, exif=exif_with_orientation(orientation))
    decoded = decode_image(data, source="phone.jpg")
    assert decoded.pixels.shape == upright.shape
    assert decoded.exif_orientation == orientation
    assert decoded.pixels.flags.c_contiguous
    assert_corners(decoded.pixels)


@pytest.mark.parametrize("orientation", [2, 5, 6, 7])
@pytest.mark.parametrize(("fmt", "options"), [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})])
def test_exif_orientation_in_other_formats(fmt: str, options: dict[str, Any], orientation: int) -> None:
    upright = marked()
    stored = Image.fromarray(as_stored(upright, orientation))
    data = encode(stored, fmt, exif=exif_with_orientation(orientation), **options)
    decoded = decode_image(data, source="scan")
    assert decoded.exif_orientation == orientation
    np.testing.assert_array_equal(decoded.pixels, upright)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_heif_orientation_from_a_phone_is_applied_once(orientation: int) -> None:
    upright = marked()
    stored = Image.fromarray(as_stored(upright, orientation))
    stored.info["exif"] = exif_with_orientation(orientation).tobytes()  # pillow-heif writes irot/imir
    data = encode(stored, "HEIF", quality=95)
    decoded = decode_image(data, source="IMG_0001.HEIC")
    assert decoded.format == "HEIF"
    assert decoded.exif_orientation == orientation
    assert decoded.pixels.shape == upright.shape
    assert_corners(decoded.pixels)


@pytest.mark.parametrize("value", [0, 9, 300])
def test_out_of_range_orientation_is_ignored(value: int) -> None:
    upright = marked()
    data = encode(Image.fromarray(upright), "PNG", exif=exif_with_orientation(value))
    decoded = decode_image(data, source="odd.png")
    assert decoded.exif_orientation == 1
    np.testing.assert_array_equal(decoded.pixels, upright)


# --- colour modes ----------------------------------------------------------------------


def test_greyscale_and_bilevel_become_equal_channels() -> None:
    grey = np.arange(32 * 32, dtype=np.uint32).reshape(32, 32).astype(np.uint8)
    pixels = decode(encode(Image.fromarray(grey, "L"), "PNG"))
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], grey)
    bits = Image.fromarray((np.indices((32, 32)).sum(axis=0) % 2).astype(bool))
    pixels = decode(encode(bits, "TIFF"))
    assert set(np.unique(pixels).tolist()) == {0, 255}
    assert pixels[0, 1].tolist() == [255, 255, 255]
    assert pixels[0, 0].tolist() == [0, 0, 0]


def palette_image() -> Image.Image:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([*RED, *GREEN, *BLUE] + [0, 0, 0] * 253)
    image.paste(1, (0, 0, 16, 32))
    image.paste(2, (16, 0, 32, 16))
    return image


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_palette_image_uses_its_palette(fmt: str) -> None:
    pixels = decode(encode(palette_image(), fmt))
    assert pixels[0, 0].tolist() == list(GREEN)
    assert pixels[0, 20].tolist() == list(BLUE)
    assert pixels[20, 20].tolist() == list(RED)


def test_palette_transparency_is_composited_over_grey() -> None:
    pixels = decode(encode(palette_image(), "PNG", transparency=0))  # index 0 (red) is transparent
    assert pixels[20, 20].tolist() == list(BACKGROUND)
    assert pixels[0, 0].tolist() == list(GREEN)


def blend(colour: tuple[int, ...], alpha: int) -> npt.NDArray[np.int32]:
    return (np.array(colour, dtype=np.int32) * alpha + GREY * (255 - alpha) + 127) // 255


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})])
def test_rgba_is_composited_over_neutral_grey(fmt: str, options: dict[str, Any]) -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)  # fully transparent black: the usual hidden colour
    rgba[:, 16:] = (200, 40, 10, 255)
    rgba[16:, :16] = (200, 40, 10, 128)
    pixels = decode(encode(Image.fromarray(rgba, "RGBA"), fmt, **options)).astype(np.int32)
    assert pixels[0, 0].tolist() == list(BACKGROUND)
    red, green, blue = pixels[0, 0].tolist()
    assert red == green == blue, "the background must be neutral"
    assert 100 <= red <= 160, "the hidden colour (black) must not show through"
    assert pixels[0, 20].tolist() == [200, 40, 10]
    assert np.abs(pixels[20, 4] - blend((200, 40, 10), 128)).max() <= 1


def test_grey_alpha_and_palette_alpha_are_composited() -> None:
    la = np.zeros((32, 32, 2), dtype=np.uint8)
    la[:, 16:] = (30, 255)
    la[16:, :16] = (30, 64)
    pixels = decode(encode(Image.fromarray(la, "LA"), "PNG")).astype(np.int32)
    assert pixels[0, 0].tolist() == list(BACKGROUND)
    assert pixels[0, 20].tolist() == [30, 30, 30]
    assert np.abs(pixels[20, 4] - blend((30, 30, 30), 64)).max() <= 1

    pa = palette_image().convert("PA")
    pa.putalpha(Image.fromarray(np.where(np.arange(32)[None, :] < 16, 0, 255).repeat(32, 0).astype(np.uint8)))
    decoded = decode_image(encode(pa, "TIFF"), source="pa.tif")
    assert decoded.original_mode == "PA"
    assert decoded.pixels[0, 0].tolist() == list(BACKGROUND)
    assert decoded.pixels[0, 20].tolist() == list(BLUE)


def test_premultiplied_grey_alpha_is_composited() -> None:
    # No writer makes "La" (TIFF associated alpha) on demand, so the conversion is checked directly.
    grey = Image.new("L", (16, 16), 50)  # premultiplied: 100 at alpha 128 stores ~50
    image = Image.merge("La", (grey, Image.new("L", (16, 16), 128)))
    rgb = np.asarray(ingest._to_rgb(image, "TIFF", "la.tif")).astype(np.int32)
    expected = 50 + (GREY * 127 + 127) // 255
    assert np.abs(rgb[0, 0] - expected).max() <= 2


def test_colour_key_transparency_in_rgb_and_grey_png() -> None:
    rgb = np.full((16, 16, 3), 7, dtype=np.uint8)
    rgb[:, 8:] = (1, 2, 3)
    pixels = decode(encode(Image.fromarray(rgb), "PNG", transparency=(1, 2, 3)))
    assert pixels[0, 12].tolist() == list(BACKGROUND)
    assert pixels[0, 0].tolist() == [7, 7, 7]
    grey = np.full((16, 16), 7, dtype=np.uint8)
    grey[:, 8:] = 9
    pixels = decode(encode(Image.fromarray(grey, "L"), "PNG", transparency=9))
    assert pixels[0, 12].tolist() == list(BACKGROUND)
    assert pixels[0, 0].tolist() == [7, 7, 7]


CMYK_CASES = [((0, 255, 255, 0), RED), ((0, 0, 0, 255), (0, 0, 0)), ((0, 0, 0, 0), (255, 255, 255))]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted_to_rgb(fmt: str) -> None:
    image = Image.new("CMYK", (48, 16))
    for i, (cmyk, _) in enumerate(CMYK_CASES):
        image.paste(cmyk, (16 * i, 0, 16 * i + 16, 16))
    data = encode(image, fmt, **({"quality": 98} if fmt == "JPEG" else {}))
    if fmt == "JPEG":  # Adobe APP14 marker: the inverted-CMYK convention of Photoshop files
        assert "adobe" in Image.open(io.BytesIO(data)).info
    decoded = decode_image(data, source=f"press.{fmt.lower()}")
    assert decoded.original_mode == "CMYK"
    for i, (_, rgb) in enumerate(CMYK_CASES):
        assert np.abs(decoded.pixels[8, 16 * i + 8].astype(int) - rgb).max() <= 3


SIXTEEN_BIT = np.array([0, 257, 1000, 32768, 40000, 65535], dtype=np.uint16)
EIGHT_BIT = [0, 1, 4, 128, 156, 255]  # round(v * 255 / 65535); clipping would give 255 from 1000 on


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B")])
def test_sixteen_bit_grey_is_scaled_not_clipped(fmt: str, mode: str) -> None:
    row = np.repeat(SIXTEEN_BIT, 4)[None, :].repeat(16, axis=0)
    image = Image.fromarray(row)
    if mode == "I;16B":
        image = Image.frombytes("I;16B", image.size, row.astype(">u2").tobytes())
    decoded = decode_image(encode(image, fmt), source="scan.tif")
    assert decoded.original_mode == mode
    assert decoded.pixels[0, ::4, 0].tolist() == EIGHT_BIT
    assert (decoded.pixels[..., 0] == decoded.pixels[..., 2]).all()


def test_forty_eight_bit_rgb_png_is_scaled() -> None:
    values = np.zeros((16, 16, 3), dtype=np.uint16)
    values[...] = (65535, 32896, 257)
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(16))
    pixels = decode(png_bytes(16, 16, bit_depth=16, colour_type=2, rows=rows))
    assert pixels[5, 5].tolist() == [255, 128, 1]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([0, 100, 255], dtype=np.int32), [0, 100, 255]),  # fits 8 bits: kept
        (np.array([0, 32768, 65535], dtype=np.int32), [0, 128, 255]),  # fits 16 bits: scaled
        (np.array([-100, 0, 155], dtype=np.int32), [0, 100, 255]),  # anything else: stretched
        (np.array([0.0, 0.5, 1.0], dtype=np.float32), [0, 128, 255]),  # unit floats
    ],
)
def test_int32_and_float_tiff_are_mapped_by_range(values: npt.NDArray[Any], expected: list[int]) -> None:
    image = Image.fromarray(np.repeat(values, 8)[None, :].repeat(16, axis=0))
    assert image.mode in ("I", "F")
    pixels = decode(encode(image, "TIFF"))
    assert pixels[0, ::8, 1].tolist() == expected


def test_unsupported_colour_mode_is_named() -> None:
    data = encode(Image.new("LAB", (16, 16), (50, 128, 128)), "TIFF")
    with pytest.raises(ImageError, match=r"^lab\.tif: TIFF colour mode 'LAB' is not supported"):
        decode_image(data, source="lab.tif")


# --- limits ----------------------------------------------------------------------------


def lying_png(width: int, height: int) -> bytes:
    """A few dozen bytes whose header declares a huge image (the pixel data is a stub)."""
    return png_bytes(width, height, bit_depth=8, colour_type=0, rows=b"\x00" * 64)


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded before the size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize(("width", "height"), [(10_000, 10_000), (40_000, 40_000), (1_000_000, 100)])
def test_declared_huge_images_are_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    # 100 M pixels is where Pillow would only warn; 1.6 G where it raises its own error.
    forbid_decoding(monkeypatch)
    data = lying_png(width, height)
    assert len(data) < 200
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data, source="bomb.png")
    assert str(info.value).startswith("bomb.png: ")
    assert "60,000,000" in str(info.value)


def test_pixel_limit_is_configurable_and_checked_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.fromarray(gradient(400, 300)), "JPEG")
    assert decode(data, max_pixels=120_000).shape == (300, 400, 3)
    forbid_decoding(monkeypatch)
    with pytest.raises(ImageTooLargeError, match=r"400x300 = 120,000 pixels exceeds the limit of 119,999"):
        decode(data, max_pixels=119_999)


def test_byte_limit() -> None:
    data = encode(Image.fromarray(gradient()), "PNG")
    assert decode(data, max_bytes=len(data)).shape == (48, 64, 3)
    with pytest.raises(ImageTooLargeError, match=rf"limit of {len(data) - 1:,} bytes"):
        decode(data, max_bytes=len(data) - 1)


def test_oversized_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(5000))

    def no_reading(self: Path, *args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    with pytest.raises(ImageTooLargeError, match=rf"^{path}: file is larger than the limit of 1,000 bytes"):
        load_image(path, ImageLimits(max_bytes=1000))


@pytest.mark.parametrize(("width", "height"), [(15, 100), (100, 15)])
def test_too_small_images_are_refused(width: int, height: int) -> None:
    data = encode(Image.new("RGB", (width, height)), "PNG")
    with pytest.raises(ImageError, match=rf"^thumb\.png: {width}x{height} pixels is too small") as info:
        decode_image(data, source="thumb.png")
    assert not isinstance(info.value, ImageTooLargeError)
    assert decode(data, min_side=15).shape == (height, width, 3)


# --- bad input -------------------------------------------------------------------------


def jpeg_photo() -> bytes:
    return encode(Image.fromarray(gradient(128, 96)), "JPEG", quality=90)


def test_truncated_jpeg() -> None:
    data = jpeg_photo()
    with pytest.raises(ImageError, match=r"^cut\.jpg: truncated JPEG"):
        decode_image(data[: len(data) * 2 // 3], source="cut.jpg")


def test_truncated_png() -> None:
    data = encode(Image.fromarray(gradient(128, 96)), "PNG")
    with pytest.raises(ImageError, match=r"^cut\.png: (truncated|corrupt) PNG"):
        decode_image(data[: len(data) // 2], source="cut.png")


def test_corrupt_header_of_an_accepted_format() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(40)
    with pytest.raises(ImageError, match=r"^x\.png: corrupt PNG header"):
        decode_image(data, source="x.png")


def test_empty_input() -> None:
    with pytest.raises(ImageError, match=r"^nothing\.jpg: empty file \(0 bytes\)"):
        decode_image(b"", source="nothing.jpg")


def test_random_bytes() -> None:
    data = random.Random(7).randbytes(4096)
    with pytest.raises(
        ImageError, match=r"^noise: not a supported image format \(unrecognised binary data\)"
    ):
        decode_image(data, source="noise")


def red_square(fmt: str) -> Callable[[], bytes]:
    return lambda: encode(Image.new("RGB", (32, 32), RED), fmt)


REFUSED: list[tuple[str, Callable[[], bytes]]] = [
    ("GIF", red_square("GIF")),
    ("PDF", red_square("PDF")),
    ("AVIF", red_square("AVIF")),
    ("ICO", red_square("ICO")),
    ("JPEG 2000", red_square("JPEG2000")),
    ("SVG", lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="32"/>'),
    ("HTML", lambda: b"<!DOCTYPE html><html><body><img src=face.jpg></body></html>"),
    ("text", lambda: "Name: Jane Doe\nDOB: 01/02/1980 — photo to follow\n".encode()),
]


@pytest.mark.parametrize(("kind", "make"), REFUSED, ids=[kind for kind, _ in REFUSED])
def test_unsupported_formats_are_named(kind: str, make: Callable[[], bytes]) -> None:
    with pytest.raises(ImageError) as info:
        decode_image(make(), source="evidence/item-7")
    accepted = "accepted: JPEG, PNG, WebP, HEIC/HEIF, BMP, TIFF"
    assert str(info.value) == f"evidence/item-7: not a supported image format ({kind}); {accepted}"


def samples() -> dict[str, bytes]:
    image = Image.fromarray(gradient(48, 40))
    return {
        "jpeg": encode(image, "JPEG", exif=exif_with_orientation(6)),
        "png": encode(image.convert("RGBA"), "PNG"),
        "webp": encode(image, "WEBP", exif=exif_with_orientation(3)),
        "heif": encode(image, "HEIF"),
        "bmp": encode(image.convert("P"), "BMP"),
        "tiff": encode(image, "TIFF", exif=exif_with_orientation(8)),
        "tiff-lzw": encode(image, "TIFF", compression="tiff_lzw"),
    }


@pytest.mark.parametrize("name", ["jpeg", "png", "webp", "heif", "bmp", "tiff", "tiff-lzw"])
def test_damaged_files_raise_image_error_or_decode(name: str) -> None:
    """Cut and bit-flipped variants: an ImageError or a valid image, never a library exception."""
    data = samples()[name]
    rng = random.Random(f"ingest-{name}")
    variants = [data[: rng.randrange(1, len(data))] for _ in range(20)]
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))
    messages: list[str] = []
    for variant in variants:
        try:
            pixels = decode_image(variant, source="damaged").pixels
        except ImageError as exc:
            messages.append(str(exc))
        else:
            assert pixels.dtype == np.uint8
            assert pixels.ndim == 3
            assert pixels.shape[2] == 3
    assert messages, "no variant was refused: the damage did not reach the decoder"
    assert all(message.startswith("damaged: ") for message in messages)


# --- files -----------------------------------------------------------------------------


def test_load_image_reads_a_file(tmp_path: Path) -> None:
    data = jpeg_photo()
    path = tmp_path / "probe.jpg"
    path.write_bytes(data)
    decoded = load_image(str(path))
    assert decoded.source == str(path)
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
    np.testing.assert_array_equal(decoded.pixels, decode_image(data, source="x").pixels)


def test_load_image_names_the_path_when_it_cannot_read(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match=rf"^{missing}: no such file"):
        load_image(missing)
    with pytest.raises(ImageError, match=rf"^{tmp_path}: is a directory"):
        load_image(tmp_path)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=rf"^{fifo}: not a regular file"):
        load_image(fifo)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=rf"^{empty}: empty file"):
        load_image(empty)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_load_image_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(jpeg_photo())
    path.chmod(0)
    with pytest.raises(ImageError, match=rf"^{path}: permission denied"):
        load_image(path)


@pytest.mark.faces
def test_real_lfw_photo(lfw_images: Path) -> None:
    path = next(iter(sorted(next(iter(sorted(lfw_images.iterdir()))).glob("*.jpg"))))
    decoded = load_image(path)
    assert decoded.pixels.shape == (250, 250, 3)
    assert decoded.format == "JPEG"
    assert decoded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert 40 < float(decoded.pixels.mean()) < 220  # a photo, not a blank
