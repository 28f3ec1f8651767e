"""Probe edits an examiner may make before searching: crop, rotate, brightness, contrast.

An edited probe is a different image from the one submitted, so an edit is never applied
silently: each is a typed transformation with its parameters, and applying it yields the
new pixels together with the sha256 of those pixels. The service stores the original file
and the list of transformations (never a re-encoded edited file), so anyone can re-derive
the searched image from the evidence and check it against the recorded hashes
(:func:`replay_edits`).

The pixel hash (:func:`pixels_sha256`) covers the size and the raw RGB bytes, not an
encoded file: encoders differ between library versions, pixels do not. Crops, quarter
turns, brightness and contrast are plain integer/float arithmetic and give the same pixels
everywhere. A rotation by any other angle resamples (bicubic, through Pillow), whose output
could change with a Pillow release; a replay then reports the mismatch instead of showing
a different image as the searched one.

Everything here is pure: pixels in, pixels out; no file, clock or database.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from faceledger.errors import ValidationError

if TYPE_CHECKING:
    import numpy.typing as npt

    ImageArray = npt.NDArray[np.uint8]

#: Colour that fills the corners a rotation exposes (the neutral grey ingest composites over).
FILL = (128, 128, 128)
MAX_EDITS = 20
MAX_BRIGHTNESS = 8.0
MAX_CONTRAST = 8.0
#: The level contrast is stretched about (mid-grey): it stays where it is.
CONTRAST_PIVOT = 128.0
#: An edit may not leave fewer pixels per side than this (no face is found in less).
MIN_SIDE = 16


@dataclass(frozen=True, slots=True)
class Crop:
    """Keep the rectangle [left, right) x [top, bottom) of the current image, in pixels."""

    kind: ClassVar[str] = "crop"
    left: int
    top: int
    right: int
    bottom: int

    def params(self) -> dict[str, Any]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    def describe(self) -> str:
        return f"crop to ({self.left},{self.top})-({self.right},{self.bottom})"


@dataclass(frozen=True, slots=True)
class Rotate:
    """Turn the image counter-clockwise by ``degrees``; the canvas grows to keep every pixel."""

    kind: ClassVar[str] = "rotate"
    degrees: float

    def params(self) -> dict[str, Any]:
        return {"degrees": self.degrees}

    def describe(self) -> str:
        return f"rotate {self.degrees:g} degrees counter-clockwise"


@dataclass(frozen=True, slots=True)
class Brightness:
    """Multiply every channel by ``factor`` (1 leaves the image as it is), rounding and clipping."""

    kind: ClassVar[str] = "brightness"
    factor: float

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def describe(self) -> str:
        return f"brightness x{self.factor:g}"


@dataclass(frozen=True, slots=True)
class Contrast:
    """Stretch every channel about mid-grey (128) by ``factor`` (1 leaves it), rounding and clipping."""

    kind: ClassVar[str] = "contrast"
    factor: float

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def describe(self) -> str:
        return f"contrast x{self.factor:g}"


Edit = Crop | Rotate | Brightness | Contrast
EDIT_KINDS: tuple[str, ...] = (Crop.kind, Rotate.kind, Brightness.kind, Contrast.kind)


@dataclass(frozen=True, slots=True)
class AppliedEdit:
    """One transformation as recorded: what was done, and the image it produced."""

    seq: int
    edit: Edit
    width: int
    height: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.edit.kind,
            "params": self.edit.params(),
            "description": self.edit.describe(),
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True, eq=False)
class EditResult:
    """Pixels after a chain of edits, the hash of those pixels, and every step on the way."""

    pixels: ImageArray
    sha256: str
    steps: tuple[AppliedEdit, ...]


def pixels_sha256(pixels: ImageArray) -> str:
    """The sha256 of an RGB image's size and raw bytes (the identity of decoded pixels)."""
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = int(array.shape[0]), int(array.shape[1])
    digest = hashlib.sha256(f"rgb8 {width}x{height}\n".encode("ascii"))
    digest.update(array.tobytes())
    return digest.hexdigest()


# --- building edits from what a person typed or what was stored ------------------------


def _number(params: Mapping[str, Any], key: str, kind: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{kind} edit: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _integer(params: Mapping[str, Any], key: str, kind: str) -> int:
    value = _number(params, key, kind)
    if not value.is_integer():
        raise ValidationError(f"{kind} edit: {key!r} must be a whole number of pixels, got {value!r}")
    return int(value)


def make_edit(kind: str, params: Mapping[str, Any]) -> Edit:
    """An edit from its kind and parameters (as stored, or as an API client sent them)."""
    expected = {
        Crop.kind: {"left", "top", "right", "bottom"},
        Rotate.kind: {"degrees"},
        Brightness.kind: {"factor"},
        Contrast.kind: {"factor"},
    }.get(kind)
    if expected is None:
        raise ValidationError(f"unknown probe edit {kind!r} (known: {', '.join(EDIT_KINDS)})")
    if set(params) != expected:
        raise ValidationError(f"{kind} edit takes exactly {sorted(expected)}, got {sorted(params)}")
    edit: Edit
    if kind == Crop.kind:
        left, top, right, bottom = (_integer(params, k, kind) for k in ("left", "top", "right", "bottom"))
        edit = Crop(left, top, right, bottom)
    elif kind == Rotate.kind:
        edit = Rotate(_number(params, "degrees", kind))
    elif kind == Contrast.kind:
        edit = Contrast(_number(params, "factor", kind))
    else:
        edit = Brightness(_number(params, "factor", kind))
    check_edit(edit)
    return edit


def parse_edit(spec: str) -> Edit:
    """An edit from its command-line form: ``crop:L,T,R,B``, ``rotate:DEGREES``, ``brightness:FACTOR``,
    ``contrast:FACTOR``."""
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    values = [v.strip() for v in rest.split(",")] if sep else []
    names = {Crop.kind: ("left", "top", "right", "bottom"), Rotate.kind: ("degrees",)}
    keys = names.get(kind, ("factor",) if kind in (Brightness.kind, Contrast.kind) else ())
    if not keys:
        raise ValidationError(
            f"unknown probe edit {spec!r} (use crop:L,T,R,B, rotate:DEG, brightness:F or contrast:F)"
        )
    if len(values) != len(keys):
        raise ValidationError(f"probe edit {spec!r}: {kind} takes {len(keys)} value(s): {', '.join(keys)}")
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        raise ValidationError(f"probe edit {spec!r}: every value must be a number") from None
    return make_edit(kind, dict(zip(keys, numbers, strict=True)))


def check_edit(edit: Edit) -> None:
    """Refuse parameters that can never make sense, whatever image they meet."""
    if isinstance(edit, Crop):
        if edit.left < 0 or edit.top < 0:
            raise ValidationError(f"{edit.describe()}: left and top must not be negative")
        if edit.right - edit.left < MIN_SIDE or edit.bottom - edit.top < MIN_SIDE:
            raise ValidationError(
                f"{edit.describe()}: the crop must keep at least {MIN_SIDE} x {MIN_SIDE} pixels"
            )
    elif isinstance(edit, Rotate):
        if not math.isfinite(edit.degrees) or abs(edit.degrees) > 360:
            raise ValidationError(f"rotate edit: degrees must be between -360 and 360, got {edit.degrees!r}")
    elif isinstance(edit, Contrast):
        if not math.isfinite(edit.factor) or not 0 < edit.factor <= MAX_CONTRAST:
            raise ValidationError(
                f"contrast edit: the factor must be above 0 and at most {MAX_CONTRAST:g}, got {edit.factor!r}"
            )
    elif not math.isfinite(edit.factor) or not 0 < edit.factor <= MAX_BRIGHTNESS:
        raise ValidationError(
            f"brightness edit: the factor must be above 0 and at most {MAX_BRIGHTNESS:g}, got {edit.factor!r}"
        )


# --- applying edits --------------------------------------------------------------------


def _crop(pixels: ImageArray, edit: Crop) -> ImageArray:
    height, width = pixels.shape[:2]
    if edit.right > width or edit.bottom > height:
        raise ValidationError(f"{edit.describe()}: the image is only {width} x {height} pixels")
    return np.ascontiguousarray(pixels[edit.top : edit.bottom, edit.left : edit.right])


def _rotate(pixels: ImageArray, edit: Rotate) -> ImageArray:
    turns, rest = divmod(edit.degrees, 90.0)
    if rest == 0:
        return np.ascontiguousarray(np.rot90(pixels, k=int(turns) % 4))
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    turned = image.rotate(edit.degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=FILL)
    return np.asarray(turned, dtype=np.uint8).copy()


def _brightness(pixels: ImageArray, edit: Brightness) -> ImageArray:
    scaled = np.rint(pixels.astype(np.float64) * edit.factor)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _contrast(pixels: ImageArray, edit: Contrast) -> ImageArray:
    scaled = np.rint((pixels.astype(np.float64) - CONTRAST_PIVOT) * edit.factor + CONTRAST_PIVOT)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _check_pixels(pixels: ImageArray) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValidationError(
            f"probe edits need H x W x 3 uint8 RGB pixels, got {pixels.shape} {pixels.dtype}"
        )


def apply_edit(pixels: ImageArray, edit: Edit) -> ImageArray:
    """``pixels`` after one edit (a new array; the input is never changed)."""
    _check_pixels(pixels)
    check_edit(edit)
    if isinstance(edit, Crop):
        out = _crop(pixels, edit)
    elif isinstance(edit, Rotate):
        out = _rotate(pixels, edit)
    elif isinstance(edit, Contrast):
        out = _contrast(pixels, edit)
    else:
        out = _brightness(pixels, edit)
    out.setflags(write=False)
    return out


def apply_edits(pixels: ImageArray, edits: Iterable[Edit]) -> EditResult:
    """``pixels`` after every edit in order, with each step's size and pixel hash."""
    chain = tuple(edits)
    if len(chain) > MAX_EDITS:
        raise ValidationError(f"a probe may carry at most {MAX_EDITS} edits, got {len(chain)}")
    current = pixels
    steps: list[AppliedEdit] = []
    for seq, edit in enumerate(chain, start=1):
        current = apply_edit(current, edit)
        height, width = current.shape[:2]
        steps.append(AppliedEdit(seq, edit, int(width), int(height), pixels_sha256(current)))
    _check_pixels(current)
    return EditResult(current, pixels_sha256(current), tuple(steps))


def replay_edits(pixels: ImageArray, recorded: Sequence[AppliedEdit]) -> EditResult:
    """Re-derive an edited probe from its original pixels, checking every recorded hash.

    Raises :class:`ValidationError` naming the first step whose pixels differ from what
    was recorded (the original is not the one edited, or a resampling library changed).
    """
    result = apply_edits(pixels, [step.edit for step in recorded])
    for stored, redone in zip(recorded, result.steps, strict=True):
        if stored.sha256 != redone.sha256:
            raise ValidationError(
                f"probe edit {stored.seq} ({stored.edit.describe()}) no longer gives the recorded image "
                f"(recorded sha256 {stored.sha256[:12]}..., now {redone.sha256[:12]}...)"
            )
    return result
