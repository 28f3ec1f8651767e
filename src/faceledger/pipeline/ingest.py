"""Ingest: untrusted bytes in, upright 8-bit RGB pixels out, or an ImageError a person can act on.

Everything downstream (detector, aligner, embedder) assumes one representation: an
``H x W x 3`` C-contiguous ``uint8`` array, upright, in sRGB-ish 8-bit RGB. This module is
the only place that knows about file formats, colour modes and orientation, so that a
probe photo from a phone (HEIC, rotated by EXIF), a scanner (16-bit TIFF) or a web page
(palette PNG with transparency) is treated the same way as a plain JPEG.

Choices worth knowing:

* Accepted formats: JPEG (including MPO, where the primary image is used), PNG, WebP,
  HEIC/HEIF, BMP and TIFF. Only those decoders are ever tried, which keeps Pillow's
  less-travelled plugins (and Ghostscript for EPS) away from untrusted input. Animated
  PNG/WebP is refused: which frame is "the photo" is ambiguous. A multi-page TIFF yields
  its first page and a multi-image HEIF its primary image, which is what viewers show.
* Limits are checked from the header, before any pixel is decoded: ``max_bytes`` before
  the file is read, ``max_pixels`` and ``min_side`` before decoding.
* EXIF orientation (all eight values) is applied so pixels are upright, and the stored
  value is kept in ``DecodedImage.exif_orientation``. A HEIF's own transform boxes are
  authoritative (as the HEIF specification and phones have it): libheif applies them and
  the EXIF value is only reported. Pillow rotates TIFFs while loading them.
* Transparent pixels are composited over neutral grey (``BACKGROUND``), because the
  colour stored under full transparency is arbitrary (often black) and would otherwise
  show up as a dark shape the detector can mistake for structure.
* 16-bit grey is scaled (``v * 255 / 65535``, rounded), never clipped; Pillow itself
  reduces 48/64-bit RGB(A) PNGs to their high byte, also a scaling. Modes ``I`` and
  ``F`` have no fixed range, so they are mapped by their value range (see
  :func:`_numeric_to_l`).
* Embedded colour profiles are not applied; CMYK uses Pillow's profile-free conversion.
* Pillow's warnings (decompression-bomb warning, corrupt EXIF, ...) are recorded and
  logged at DEBUG instead of being emitted. On Python < 3.14 ``warnings.catch_warnings``
  is process-wide, so under concurrent decoding a warning may occasionally be emitted
  normally instead of logged; results are unaffected.
* ``DecodedImage.pixels`` is read-only: the record is frozen, and the array is shared.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin, UnidentifiedImageError

from faceledger.config import ImageLimits
from faceledger.domain.models import DecodedImage
from faceledger.errors import ImageError, ImageTooLargeError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["ACCEPTED", "BACKGROUND", "decode_image", "load_image"]

log = logging.getLogger(__name__)

#: Pillow format names that may be decoded, in the order they are tried.
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "BMP", "TIFF")
#: How accepted formats are named to a person.
ACCEPTED = "JPEG, PNG, WebP, HEIC/HEIF, BMP, TIFF"
#: Neutral grey that transparent pixels are composited over.
BACKGROUND = (128, 128, 128)

# Pillow's JPEG opener returns an MPO image for JPEGs carrying a multi-picture index
# (many cameras and phones); the first picture is an ordinary JPEG.
_FORMAT_ALIASES = {"MPO": "JPEG"}

# How to turn a stored image upright, per EXIF orientation value (1 needs nothing).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_DIRECT_MODES = frozenset({"1", "L", "P", "RGBX", "CMYK", "YCbCr"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_NUMERIC_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S"})

# Everything a Pillow or pillow-heif decoder has been seen to raise on bad input.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    RuntimeError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
)


def load_image(path: Path | str, limits: ImageLimits = ImageLimits()) -> DecodedImage:  # noqa: B008 - frozen
    """Read and decode an image file, refusing oversized files before reading them."""
    source = str(path)
    data = _read_limited(Path(path), source, limits.max_bytes)
    return decode_image(data, source=source, limits=limits)


def decode_image(data: bytes, *, source: str, limits: ImageLimits = ImageLimits()) -> DecodedImage:  # noqa: B008
    """Decode untrusted image bytes to upright 8-bit RGB; ``source`` names them in errors."""
    _check_byte_count(len(data), source, limits.max_bytes)
    with _recorded_warnings(source):
        try:
            image = _open(data, source)
            fmt = _FORMAT_ALIASES.get(str(image.format), str(image.format))
            _check_header(image, fmt, source, limits)
            original_mode = image.mode
            stored_orientation = _orientation_applied_by_decoder(image)
            rgb = _to_rgb(image, fmt, source)
            pending = _exif_orientation(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(
                f"{source}: refused to decode, the header declares too many pixels ({exc}); "
                f"the limit is {limits.max_pixels:,} pixels"
            ) from exc
        except MemoryError as exc:
            raise ImageTooLargeError(f"{source}: not enough memory to decode this image") from exc
        except _DECODE_ERRORS as exc:
            raise ImageError(_damage_message(source, _sniff_format(data), exc)) from exc
    if pending in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[pending])
    return DecodedImage(
        pixels=_to_array(rgb),
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        source=source,
        original_mode=original_mode,
        exif_orientation=stored_orientation or pending,
    )


# --- reading ---------------------------------------------------------------------------


def _read_limited(path: Path, source: str, max_bytes: int) -> bytes:
    """Read a regular file whole, checking its size before reading (and again while reading).

    ``stat`` comes first so that a FIFO or device is refused instead of blocking the reader.
    """
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{source}: is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{source}: not a regular file")
        _check_byte_count(info.st_size, source, max_bytes, allow_empty=True)
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ImageError(f"{source}: no such file") from exc
    except PermissionError as exc:
        raise ImageError(f"{source}: permission denied") from exc
    except OSError as exc:
        raise ImageError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    _check_byte_count(len(data), source, max_bytes, allow_empty=True)  # it grew meanwhile
    return data


def _check_byte_count(size: int, source: str, max_bytes: int, *, allow_empty: bool = False) -> None:
    if size == 0 and not allow_empty:
        raise ImageError(f"{source}: empty file (0 bytes), not an image")
    if size > max_bytes:
        raise ImageTooLargeError(
            f"{source}: file is larger than the limit of {max_bytes:,} bytes; "
            "refused as a possible decompression bomb"
        )


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF once, on first use, so importing faceledger stays cheap."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def _open(data: bytes, source: str) -> Image.Image:
    """Identify the format and read the header only (Pillow decodes pixels lazily)."""
    _register_heif()
    try:
        return Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except UnidentifiedImageError:
        kind = _sniff_format(data)
        if kind in ("JPEG", "PNG", "WebP", "HEIF", "BMP", "TIFF"):
            raise ImageError(f"{source}: corrupt {kind} header, the image cannot be read") from None
        raise ImageError(f"{source}: not a supported image format ({kind}); accepted: {ACCEPTED}") from None


def _check_header(image: Image.Image, fmt: str, source: str, limits: ImageLimits) -> None:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"{source}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{limits.max_pixels:,} pixels; refused before decoding as a possible decompression bomb"
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            f"{source}: {width}x{height} pixels is too small; both sides must be at least "
            f"{limits.min_side} pixels"
        )
    if fmt in ("PNG", "WEBP") and getattr(image, "is_animated", False):
        frames = getattr(image, "n_frames", "several")
        raise ImageError(
            f"{source}: animated {fmt} ({frames} frames) is not accepted; submit a still photo "
            "(export the frame you mean as JPEG or PNG)"
        )


def _damage_message(source: str, fmt: str, exc: BaseException) -> str:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in reason.lower():
        return f"{source}: truncated {fmt} (the file ends early; re-export or re-copy it): {reason}"
    return f"{source}: corrupt {fmt} data, the image cannot be decoded: {reason}"


# --- pixels ----------------------------------------------------------------------------


def _to_rgb(image: Image.Image, fmt: str, source: str) -> Image.Image:
    """Decode the pixels and bring any supported mode to 8-bit RGB."""
    image.load()
    mode = image.mode
    if mode in _NUMERIC_MODES:  # a tRNS colour key on 16-bit grey is ignored (seen in no camera)
        return Image.fromarray(_numeric_to_l(np.asarray(image))).convert("RGB")
    if mode == "La":  # premultiplied grey + alpha (TIFF); Pillow converts it only via RGBa
        grey, alpha = image.split()
        return _flatten(Image.merge("RGBa", (grey, grey, grey, alpha)).convert("RGBA"))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _flatten(image.convert("RGBA") if mode != "RGBA" else image)
    if mode == "RGB":
        return image
    if mode in _DIRECT_MODES:
        return image.convert("RGB")
    raise ImageError(f"{source}: {fmt} colour mode {mode!r} is not supported; convert it to RGB")


def _flatten(rgba: Image.Image) -> Image.Image:
    """Composite over grey, so fully transparent pixels become grey rather than their hidden colour."""
    canvas = Image.new("RGB", rgba.size, BACKGROUND)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _numeric_to_l(values: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Scale single-channel 16-bit, 32-bit integer or float samples to 8 bits.

    16-bit unsigned data uses its full range. ``I`` and ``F`` carry no range of their own:
    data that fits 0-1 (floats), 0-255 or 0-65535 is read as that range, anything else
    (negative or wider values) is stretched from its minimum to its maximum.
    """
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return _rescale(values, 0.0, 65535.0)
    finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(finite.min()), float(finite.max())
    if values.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return _rescale(finite, 0.0, 1.0)
    if low >= 0.0 and high <= 255.0:
        return _rescale(finite, 0.0, 255.0)
    if low >= 0.0 and high <= 65535.0:
        return _rescale(finite, 0.0, 65535.0)
    return _rescale(finite, low, high)


def _rescale(values: npt.NDArray[np.generic], low: float, high: float) -> npt.NDArray[np.uint8]:
    span = high - low or 1.0
    scaled = (values.astype(np.float64) - low) * (255.0 / span)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _orientation_applied_by_decoder(image: Image.Image) -> int | None:
    """The orientation a decoder turns upright by itself, read before it does so.

    libheif applies a HEIF's own transforms and pillow-heif then resets the EXIF value to 1
    (keeping the original aside); Pillow rotates a TIFF while loading it and drops the tag.
    """
    if isinstance(image, TiffImagePlugin.TiffImageFile):
        value = image.tag_v2.get(ExifTags.Base.Orientation)
    else:
        value = image.info.get("original_orientation")
    return _valid_orientation(value)


def _exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation still to be applied after loading (1 when none)."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation)
    except _DECODE_ERRORS as exc:  # damaged EXIF must not cost the photo
        log.debug("unreadable EXIF, orientation taken as 1: %s", exc)
        return 1
    return _valid_orientation(value) or 1


def _valid_orientation(value: object) -> int | None:
    """1-8 as stored; anything else is ignored, as viewers do."""
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    return None


def _to_array(rgb: Image.Image) -> npt.NDArray[np.uint8]:
    pixels = np.asarray(rgb)  # one copy out of Pillow's padded storage, already C-contiguous
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:  # pragma: no cover
        raise AssertionError(f"ingest produced {pixels.dtype} {pixels.shape}, expected uint8 HxWx3")
    pixels.flags.writeable = False
    return pixels


@contextmanager
def _recorded_warnings(source: str) -> Iterator[None]:
    """Keep Pillow's warnings out of the caller's stream (and out of pytest's error filter)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for item in caught:
        log.debug("%s: %s: %s", source, item.category.__name__, item.message)


# --- naming what was refused -----------------------------------------------------------

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"WEBP", 8, "WebP"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"II+\x00", 0, "TIFF"),
    (b"MM\x00+", 0, "TIFF"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"%PDF", 0, "PDF"),
    (b"%!PS", 0, "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", 0, "PostScript/EPS"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "JPEG XL"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"8BPS", 0, "PSD"),
    (b"PK\x03\x04", 0, "ZIP archive"),
    (b"\x1f\x8b", 0, "gzip archive"),
)
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def _sniff_format(data: bytes) -> str:
    """A best-effort name for what some bytes are, for telling a person why they were refused."""
    for magic, offset, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
        return f"ISO media, brand {brand.decode('latin-1').strip()!r}"
    return _sniff_text(data[:2048])


def _sniff_text(head: bytes) -> str:
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sample
            return "unrecognised binary data"
        text = head[: exc.start].decode("utf-8-sig", errors="replace")
    if not text or any(not (ch.isprintable() or ch in "\t\n\r\f") for ch in text):
        return "unrecognised binary data"
    lowered = text.lstrip().lower()
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        return "SVG"
    if lowered.startswith(("<!doctype html", "<html")):
        return "HTML"
    return "text"
