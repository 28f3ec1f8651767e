"""Finding every face: a cheap pass on a small copy first, bigger passes only when needed.

A box detector finds faces down to a fixed window (dlib's HOG: about 80 px), so the image
scale it looks at decides the smallest face it can find, and its cost grows with the number
of pixels it scans. A 1-megapixel probe scanned at full size would cost most of the time a
search may take, although the face in it is usually large. So the passes are:

1. a copy whose longer side is at most ``first_pass_max_side`` (or smaller still, when the
   smallest face asked for, ``min_face_px``, does not need that much);
2. only when nothing was found: twice the scale, up to full size, then dlib's own upsampling
   (each doubles the scale) up to ``max_upsample`` times, stopping at the first pass that
   finds a face or whose scale covers ``min_face_px``.

3. only when all of those found nothing, and a ``rescue`` detector is configured: one pass
   of it on a copy at most ``rescue_max_side`` long (dlib's CNN: slow, but it finds the
   turned, tilted and partly hidden faces that HOG misses, and only such images pay).

Boxes are mapped back to the full image, duplicates merged, and the landmarks placed on
the full-resolution pixels (the landmarker needs the detail; it costs well under a ms).
Faces smaller than ``min_face_px`` are dropped: they were not asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.domain.models import Box, DetectedFace
from faceledger.errors import ConfigError

if TYPE_CHECKING:
    from faceledger.config import DetectorSettings
    from faceledger.ports import FaceBoxDetector, FaceLandmarker

ImageArray = npt.NDArray[np.uint8]

#: Two boxes are one face when they overlap this much (intersection over union) ...
DUPLICATE_IOU = 0.5
#: ... or when this much of the smaller one lies inside the larger one.
DUPLICATE_CONTAINED = 0.8


@dataclass(frozen=True, slots=True)
class DetectionPass:
    """One detector run: ``resize`` applied first (at most 1), then dlib's ``upsample``."""

    resize: float
    upsample: int

    @property
    def scale(self) -> float:
        """The image scale the detector's window sees."""
        return self.resize * 2.0**self.upsample

    def smallest_face_px(self, window_px: int) -> float:
        return window_px / self.scale


def check_settings(settings: DetectorSettings) -> None:
    """ConfigError naming the setting when a detector setting cannot work."""
    if settings.min_face_px < 8:
        raise ConfigError(f"detector.min_face_px must be at least 8 pixels, got {settings.min_face_px}")
    if settings.first_pass_max_side < 64:
        raise ConfigError(
            f"detector.first_pass_max_side must be at least 64, got {settings.first_pass_max_side}"
        )
    if not 0 <= settings.max_upsample <= 3:
        raise ConfigError(f"detector.max_upsample must be between 0 and 3, got {settings.max_upsample}")
    if settings.rescue_max_side < 64:
        raise ConfigError(f"detector.rescue_max_side must be at least 64, got {settings.rescue_max_side}")


def plan_passes(width: int, height: int, window_px: int, settings: DetectorSettings) -> list[DetectionPass]:
    """The passes to try in order, for an image of this size (see the module docstring)."""
    check_settings(settings)
    needed = window_px / settings.min_face_px
    largest = 2.0**settings.max_upsample
    scale = min(1.0, settings.first_pass_max_side / max(width, height, 1), needed)
    passes: list[DetectionPass] = []
    while True:
        if scale <= 1.0:
            passes.append(DetectionPass(resize=scale, upsample=0))
        else:
            passes.append(DetectionPass(resize=1.0, upsample=round(np.log2(scale))))
        if scale >= needed or scale >= largest:
            return passes
        scale = min(2.0 * scale, needed, 1.0) if scale < 1.0 else 2.0 * scale


def face_size(box: Box) -> float:
    """A face's size in pixels: the mean of its box's width and height."""
    return (box.width + box.height) / 2.0


def _overlap(a: Box, b: Box) -> tuple[float, float]:
    """(intersection over union, intersection over the smaller area)."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0, 0.0
    inter = w * h
    area_a, area_b = a.width * a.height, b.width * b.height
    return inter / (area_a + area_b - inter), inter / max(min(area_a, area_b), 1e-9)


def merge_duplicates(found: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """One box per face: the best-scoring of each group of overlapping boxes."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(found, key=lambda item: -item[1]):
        if all(
            iou < DUPLICATE_IOU and contained < DUPLICATE_CONTAINED
            for iou, contained in (_overlap(box, other) for other, _ in kept)
        ):
            kept.append((box, score))
    return kept


class _Views:
    """The image as the detector wants it (grey or RGB), resized once per scale."""

    def __init__(self, pixels: ImageArray, *, color: bool) -> None:
        self._image = Image.fromarray(np.ascontiguousarray(pixels))
        if not color:
            self._image = self._image.convert("L")
        self._cache: dict[float, tuple[ImageArray, float, float]] = {}

    def at(self, resize: float) -> tuple[ImageArray, float, float]:
        """(pixels, x factor, y factor) where factor = view size / image size."""
        if resize not in self._cache:
            image = self._image
            width, height = image.size
            if resize < 1.0:
                size = (max(1, round(width * resize)), max(1, round(height * resize)))
                image = image.resize(size, Image.Resampling.BILINEAR)
            self._cache[resize] = (np.asarray(image), image.size[0] / width, image.size[1] / height)
        return self._cache[resize]


def rescue_pass(width: int, height: int, settings: DetectorSettings) -> DetectionPass:
    """The single pass of the rescue detector: no upsampling, longer side capped."""
    return DetectionPass(resize=min(1.0, settings.rescue_max_side / max(width, height, 1)), upsample=0)


def _run_pass(
    views: _Views, detector: FaceBoxDetector, detection_pass: DetectionPass, settings: DetectorSettings
) -> list[tuple[Box, float, DetectionPass]]:
    view, fx, fy = views.at(detection_pass.resize)
    found = [
        (Box(b.left / fx, b.top / fy, b.right / fx, b.bottom / fy), score)
        for b, score in detector.boxes(view, upsample=detection_pass.upsample)
    ]
    found = [(b, s) for b, s in found if face_size(b) >= settings.min_face_px]
    return [(box, score, detection_pass) for box, score in merge_duplicates(found)]


def find_boxes(
    pixels: ImageArray,
    detector: FaceBoxDetector,
    settings: DetectorSettings,
    rescue: FaceBoxDetector | None = None,
) -> list[tuple[Box, float, DetectionPass, FaceBoxDetector]]:
    """Face boxes in full-image coordinates from the first pass that finds any, with their detector."""
    height, width = pixels.shape[:2]
    views = _Views(pixels, color=detector.needs_color)
    for detection_pass in plan_passes(width, height, detector.window_px, settings):
        found = _run_pass(views, detector, detection_pass, settings)
        if found:
            return [(box, score, p, detector) for box, score, p in found]
    if rescue is None:
        return []
    if rescue.needs_color != detector.needs_color:
        views = _Views(pixels, color=rescue.needs_color)
    found = _run_pass(views, rescue, rescue_pass(width, height, settings), settings)
    return [(box, score, p, rescue) for box, score, p in found]


def find_faces(
    pixels: ImageArray,
    detector: FaceBoxDetector,
    landmarker: FaceLandmarker,
    settings: DetectorSettings,
    rescue: FaceBoxDetector | None = None,
) -> list[DetectedFace]:
    """Every face (box, five landmarks, score), largest first.

    ``detector`` names the detector and the scale of the pass that found the face, e.g.
    ``dlib-hog@0.64x``: a face found on an upsampled copy or by the rescue detector is
    worth knowing about when its result is weighed.
    """
    faces = [
        DetectedFace(
            box=box,
            landmarks=landmarker.landmarks(pixels, box),
            score=score,
            detector=f"{found_by.name}@{detection_pass.scale:.3g}x",
        )
        for box, score, detection_pass, found_by in find_boxes(pixels, detector, settings, rescue)
    ]
    return sorted(faces, key=lambda f: -f.box.width * f.box.height)


class CascadeDetector:
    """The pass cascade as a ``ports.FaceDetector``: box detector + landmarker + settings.

    ``detect(..., upsample=n)`` allows ``n`` more upsampling passes than the settings do.
    """

    def __init__(
        self,
        detector: FaceBoxDetector,
        landmarker: FaceLandmarker,
        settings: DetectorSettings,
        rescue: FaceBoxDetector | None = None,
    ) -> None:
        check_settings(settings)
        self.boxes = detector
        self.rescue = rescue
        self.landmarker = landmarker
        self.settings = settings
        self.name = f"{detector.name}+{landmarker.name}"

    def detect(self, pixels: ImageArray, *, upsample: int = 0) -> list[DetectedFace]:
        settings = self.settings
        if upsample:
            settings = replace(settings, max_upsample=settings.max_upsample + upsample)
        return find_faces(pixels, self.boxes, self.landmarker, settings, self.rescue)
