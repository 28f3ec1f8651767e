"""dlib face models: HOG or MMOD boxes, 5-point landmarks, chip alignment, the ResNet descriptor.

All weights come from the ``face_recognition_models`` package (CC0). dlib's 68-point
landmark model is deliberately not offered: it was trained on iBUG 300-W, whose terms do
not allow commercial use, and the 5-point model is all that alignment needs.

Models load when a component is built, never at import, and every library error is turned
into :class:`~faceledger.errors.ModelError` naming the weight file.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import dlib
import numpy as np
import numpy.typing as npt

from faceledger.domain.models import Box, DetectedFace, Landmarks, ModelRef, Point
from faceledger.errors import AlignmentError, ModelError

if TYPE_CHECKING:
    from faceledger.adapters.models.dlib_flip_helper import DescriptorHelper

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]

LANDMARKS_5_FILE: Final = "shape_predictor_5_face_landmarks.dat"
RESNET_FILE: Final = "dlib_face_recognition_resnet_model_v1.dat"
MMOD_FILE: Final = "mmod_human_face_detector.dat"

#: dlib's face chip: 150 x 150 pixels with 25 % padding around the landmark template, the
#: crop the ResNet was trained on (the defaults of ``dlib.get_face_chip``).
CHIP_SIZE: Final = 150
CHIP_PADDING: Final = 0.25
DESCRIPTOR_DIM: Final = 128
DLIB5_SCHEME: Final = "dlib5"


# --- weights -----------------------------------------------------------------------------


def weights_path(filename: str) -> Path:
    """Where ``face_recognition_models`` keeps a weight file; ModelError when it is missing."""
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelError(
            "the dlib weights are missing: install the 'face_recognition_models' package "
            "(pip install face_recognition_models==0.3.0)"
        ) from exc
    path = Path(face_recognition_models.__file__).resolve().parent / "models" / filename
    if not path.is_file():
        raise ModelError(f"{path}: dlib weight file not found; reinstall face_recognition_models==0.3.0")
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a weight file, hashed once per process (keyed by path, size and mtime)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read weight file ({exc.strerror or exc})") from exc
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read weight file ({exc.strerror or exc})") from exc
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class _Shared:
    """A dlib model shared by every component of this process that uses the same file.

    Loading is what costs (the HOG detector alone takes about half a second), so each is
    loaded once per process. dlib's models are not safe to call concurrently (the HOG
    detector even releases the GIL while it scans), hence one lock per model.
    """

    model: Any
    lock: threading.Lock


def _load(loader: Any, path: Path) -> _Shared:
    stat = path.stat() if path.exists() else None
    return _load_cached(loader, str(path), stat.st_mtime_ns if stat else 0)


@functools.cache
def _load_cached(loader: Any, path: str, mtime_ns: int) -> _Shared:
    try:
        return _Shared(loader(path), threading.Lock())
    except RuntimeError as exc:
        raise ModelError(f"{path}: dlib cannot load this weight file ({exc})") from exc


@functools.cache
def _frontal_detector() -> _Shared:
    return _Shared(dlib.get_frontal_face_detector(), threading.Lock())


# --- boxes -------------------------------------------------------------------------------


def _to_box(rect: Any) -> Box:
    # dlib's right/bottom are inclusive pixel indices; Box edges are exclusive.
    return Box(float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))


def _to_rect(box: Box) -> Any:
    return dlib.rectangle(
        round(box.left), round(box.top), max(round(box.right) - 1, 0), max(round(box.bottom) - 1, 0)
    )


def _contiguous(pixels: ImageArray) -> ImageArray:
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ModelError(
            f"dlib needs an H x W (grey) or H x W x 3 (RGB) uint8 image, got {pixels.shape} {pixels.dtype}"
        )
    return np.ascontiguousarray(pixels)


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector (``ports.FaceBoxDetector``).

    Fast on a CPU (about 7 ms for a 250 x 250 photo) and misses faces turned far from
    frontal. ``adjust_threshold`` below 0 accepts weaker detections (more faces, more false
    ones); the score returned is the SVM margin.
    """

    name = "dlib-hog"
    window_px = 80
    needs_color = False

    def __init__(self, *, adjust_threshold: float = 0.0) -> None:
        self.adjust_threshold = adjust_threshold
        self._detector = _frontal_detector()

    def boxes(self, pixels: ImageArray, *, upsample: int = 0) -> list[tuple[Box, float]]:
        image = _contiguous(pixels)
        with self._detector.lock:
            rects, scores, _ = self._detector.model.run(image, upsample, self.adjust_threshold)
        return [(_to_box(r), float(s)) for r, s in zip(rects, scores, strict=True)]


class DlibCnnDetector:
    """dlib's MMOD CNN face detector (``ports.FaceBoxDetector``), opt-in as ``dlib-cnn``.

    Finds more turned and partly hidden faces than HOG but costs seconds per photo on a
    CPU, so it is never the default. Weights: ``mmod_human_face_detector.dat``.
    """

    name = "dlib-cnn"
    window_px = 80
    needs_color = True

    def __init__(self) -> None:
        self._detector = _load(dlib.cnn_face_detection_model_v1, weights_path(MMOD_FILE))

    def boxes(self, pixels: ImageArray, *, upsample: int = 0) -> list[tuple[Box, float]]:
        image = _contiguous(pixels)
        with self._detector.lock:
            found = self._detector.model(image, upsample)
        return [(_to_box(d.rect), float(d.confidence)) for d in found]


# --- landmarks ---------------------------------------------------------------------------

# Where points sit on an average frontal face, in a frame centred between the eyes with
# x along the eye line (towards the subject's left eye) and y down it, in units of the
# inter-eye distance. The nose tip and mouth corners are those of the widely used 5-point
# (ArcFace) template; the nose base is the mean of dlib's point on LFW (0.771).
_NOSE_BASE_Y: Final = 0.771
_NOSE_TIP: Final = (0.0, 0.571)
_MOUTH_RIGHT: Final = (-0.414, 1.155)
_MOUTH_LEFT: Final = (0.414, 1.155)
# Approximate depth in front of the eye corners (same unit): a point's image offset under
# head rotation grows with its depth, so the nose base's offset from its average place is
# rescaled by depth ratio to move the estimated points consistently with the head.
_DEPTH_NOSE_BASE: Final = 0.35
_DEPTH_NOSE_TIP: Final = 0.5
_DEPTH_MOUTH: Final = 0.3


def landmarks_from_dlib5(points: Sequence[tuple[float, float]]) -> Landmarks:
    """Five standard landmarks from dlib's five points (two corners per eye, nose base).

    dlib's order: 0, 1 outer and inner corner of the subject's left eye; 2, 3 outer and
    inner corner of the right eye; 4 the base of the nose. Eye centres are the corner
    midpoints. The nose tip and mouth corners are not located by this model: they are
    placed by average face geometry, moved with the nose base, and listed in ``estimated``
    (the nose, derived from a located point, is a conversion; the mouth a guess).
    """
    if len(points) != 5:
        raise ModelError(f"dlib's 5-point model gave {len(points)} points, expected 5")
    p = np.asarray(points, dtype=np.float64)
    left_eye = p[0:2].mean(axis=0)
    right_eye = p[2:4].mean(axis=0)
    mid = (left_eye + right_eye) / 2
    axis_x = left_eye - right_eye
    ied = float(np.hypot(*axis_x))
    if ied < 1e-6:
        raise AlignmentError("dlib's landmarks put both eyes at the same place; not a usable face")
    axis_y = np.array([-axis_x[1], axis_x[0]])  # eye line turned 90 degrees: down the face
    offset = p[4] - mid
    dx = float(offset @ axis_x) / ied**2
    dy = float(offset @ axis_y) / ied**2 - _NOSE_BASE_Y

    def place(ref: tuple[float, float], depth: float) -> Point:
        k = depth / _DEPTH_NOSE_BASE
        x, y = ref[0] + dx * k, ref[1] + dy * k
        at = mid + x * axis_x + y * axis_y
        return Point(float(at[0]), float(at[1]))

    return Landmarks(
        right_eye=Point(float(right_eye[0]), float(right_eye[1])),
        left_eye=Point(float(left_eye[0]), float(left_eye[1])),
        nose=place(_NOSE_TIP, _DEPTH_NOSE_TIP),
        mouth_right=place(_MOUTH_RIGHT, _DEPTH_MOUTH),
        mouth_left=place(_MOUTH_LEFT, _DEPTH_MOUTH),
        scheme=DLIB5_SCHEME,
        estimated=("mouth_right", "mouth_left"),
        native=tuple(Point(float(x), float(y)) for x, y in p),
    )


class DlibLandmarker:
    """dlib's 5-point shape predictor (``ports.FaceLandmarker``); about 0.2 ms per face."""

    name = "dlib-5pt"

    def __init__(self) -> None:
        self._predictor = _load(dlib.shape_predictor, weights_path(LANDMARKS_5_FILE))

    def landmarks(self, pixels: ImageArray, box: Box) -> Landmarks:
        image = _contiguous(pixels)
        with self._predictor.lock:
            shape = self._predictor.model(image, _to_rect(box))
        return landmarks_from_dlib5([(p.x, p.y) for p in shape.parts()])


# --- alignment ---------------------------------------------------------------------------


def _dlib_shape(face: DetectedFace) -> Any:
    native = face.landmarks.native
    if face.landmarks.scheme != DLIB5_SCHEME or len(native) != 5:
        raise AlignmentError(
            f"dlib's aligner needs the five native points of dlib's 5-point model; this face has "
            f"landmarks of scheme {face.landmarks.scheme!r} with {len(native)} native points"
        )
    parts = [dlib.point(round(p.x), round(p.y)) for p in native]
    return dlib.full_object_detection(_to_rect(face.box), parts)


class DlibChipAligner:
    """Cuts the chip dlib's ResNet expects (``ports.FaceAligner``): ``dlib.get_face_chip``.

    :meth:`align_mirrored` cuts the chip of the mirror-image photo, for flip averaging:
    dlib's landmark template is not quite symmetric (about 2 px at this chip size), so the
    plain mirror image of a chip is not aligned the way the network was trained, while
    the chip of the mirrored face is. On LFW DevTrain this was worth +0.2 points over
    mirroring the chip (the bench's ``ours-flip-realign`` against ``ours-flip``).
    """

    def __init__(self, *, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> None:
        if size < 1 or not 0 <= padding <= 2:
            raise ModelError(f"chip size must be >= 1 and padding within 0..2, got {size} and {padding}")
        self.size = size
        self.padding = padding

    def align(self, pixels: ImageArray, face: DetectedFace) -> ImageArray:
        chip: ImageArray = dlib.get_face_chip(_rgb(pixels), _dlib_shape(face), self.size, self.padding)
        return chip

    def align_mirrored(self, pixels: ImageArray, face: DetectedFace) -> ImageArray:
        """The chip of the left-right mirror image of the photo (mirrored from the crop only)."""
        rgb = _rgb(pixels)
        shape = _dlib_shape(face)
        left, top, right, bottom = _chip_source(shape, self.size, self.padding, rgb.shape[1], rgb.shape[0])
        crop = np.ascontiguousarray(rgb[top:bottom, left:right][:, ::-1])
        last = right - 1
        # In the mirror the subject's eyes trade places: dlib's order is left eye (0, 1), right eye (2, 3).
        points = [shape.part(i) for i in (2, 3, 0, 1, 4)]
        parts = [dlib.point(last - p.x, p.y - top) for p in points]
        rect = dlib.rectangle(
            last - shape.rect.right(),
            shape.rect.top() - top,
            last - shape.rect.left(),
            shape.rect.bottom() - top,
        )
        chip: ImageArray = dlib.get_face_chip(
            crop, dlib.full_object_detection(rect, parts), self.size, self.padding
        )
        return chip


def _rgb(pixels: ImageArray) -> ImageArray:
    rgb = _contiguous(pixels)
    if rgb.ndim != 3:
        raise AlignmentError(f"dlib's aligner needs an RGB image, got shape {rgb.shape}")
    return rgb


def _chip_source(shape: Any, size: int, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The image region (left, top, right, bottom; clipped) a chip's pixels are taken from."""
    details = dlib.get_face_chip_details(shape, size, padding)
    rect = details.rect
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    reach = math.hypot(rect.width(), rect.height()) / 2 + 3  # any rotation, plus interpolation taps
    return (
        max(0, math.floor(cx - reach)),
        max(0, math.floor(cy - reach)),
        min(width, math.ceil(cx + reach) + 1),
        min(height, math.ceil(cy + reach) + 1),
    )


def mirror_chips(chips: Sequence[ImageArray]) -> list[ImageArray]:
    """Left-right mirror images of chips (flip averaging when the photo is not at hand)."""
    return [np.ascontiguousarray(chip[:, ::-1]) for chip in chips]


# --- embedding ---------------------------------------------------------------------------


def unit_rows(vectors: npt.NDArray[np.floating[Any]]) -> FloatArray:
    """Rows scaled to length 1 (dlib's descriptors come out at length 1.4 to 1.6)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.isfinite(vectors).all() or (norms <= 1e-12).any():
        raise ModelError("dlib's ResNet produced a zero or non-finite descriptor")
    unit: FloatArray = (vectors / norms).astype(np.float32)
    return unit


class DescriptorNet:
    """dlib's ResNet on 150 x 150 chips, as raw (not normalised) float64 descriptors."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or weights_path(RESNET_FILE)
        self._net = _load(dlib.face_recognition_model_v1, self.path)

    def __call__(self, chips: Sequence[ImageArray]) -> npt.NDArray[np.float64]:
        if not chips:
            return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float64)
        check_chips(chips)
        batch = [np.ascontiguousarray(c) for c in chips]
        with self._net.lock:
            out = self._net.model.compute_face_descriptor(batch)
        return np.array([np.asarray(v, dtype=np.float64) for v in out]).reshape(len(chips), DESCRIPTOR_DIM)


def check_chips(chips: Sequence[ImageArray]) -> None:
    """ModelError unless every chip is what ``dlib.get_face_chip`` makes for the ResNet."""
    for i, chip in enumerate(chips):
        if chip.dtype != np.uint8 or chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ModelError(
                f"chip {i} is {chip.shape} {chip.dtype}; dlib's ResNet expects "
                f"({CHIP_SIZE}, {CHIP_SIZE}, 3) uint8 RGB from dlib.get_face_chip"
            )


def dlib_model_ref(path: Path | None = None) -> ModelRef:
    """The identity of dlib's ResNet descriptor, with the sha256 of its weight file."""
    weights = path or weights_path(RESNET_FILE)
    return ModelRef(
        backend="dlib",
        name="dlib_face_recognition_resnet_model_v1",
        version="1",
        weights_sha256=file_sha256(weights),
        dim=DESCRIPTOR_DIM,
    )


class DlibEmbedder:
    """dlib's 128-d ResNet as a ``ports.FaceEmbedder``, with optional mirror-image averaging.

    With ``flip`` each face is described twice, as is and mirrored, and the two unit
    vectors are averaged and renormalised (+0.45 points on LFW DevTrain pairs with the
    mirrored photo's chip, see :meth:`DlibChipAligner.align_mirrored`; ``embed`` alone,
    without the photo, mirrors the chip). The second pass doubles the cost, and dlib
    holds the GIL, so a ``helper`` process (see
    :mod:`~faceledger.adapters.models.dlib_flip_helper`) may compute the mirrored pass while
    this process computes the other; when the helper is not ready or fails, both passes
    run here, with the same result.
    """

    def __init__(self, *, flip: bool = True, helper: DescriptorHelper | None = None) -> None:
        self._net = DescriptorNet()
        self.flip = flip
        self.helper = helper if flip else None
        self.model = dlib_model_ref(self._net.path)
        self._helper_lock = threading.Lock()

    def embed(self, chips: Sequence[ImageArray]) -> FloatArray:
        """Unit vectors of aligned chips; with ``flip``, averaged with their mirror images."""
        return self.embed_with_mirrors(chips, mirror_chips(chips) if self.flip else None)

    def embed_with_mirrors(
        self, chips: Sequence[ImageArray], mirrored: Sequence[ImageArray] | None
    ) -> FloatArray:
        """Like :meth:`embed`, given the mirrored chips (``DlibChipAligner.align_mirrored``)."""
        if not chips:
            return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
        check_chips(chips)
        if not self.flip:
            return unit_rows(self._net(chips))
        if mirrored is None or len(mirrored) != len(chips):
            raise ModelError(
                f"flip averaging needs one mirrored chip per chip, got {len(mirrored or ())} for {len(chips)}"
            )
        check_chips(mirrored)
        other: npt.NDArray[np.float64] | None = None
        # One request at a time: a second thread computing here meanwhile is still correct.
        if self.helper is not None and self._helper_lock.acquire(blocking=False):
            try:
                sent = self.helper.submit(mirrored)
                try:
                    direct = self._net(chips)
                finally:
                    other = self.helper.collect() if sent else None
            finally:
                self._helper_lock.release()
        else:
            direct = self._net(chips)
        if other is None:
            other = self._net(mirrored)
        return unit_rows(unit_rows(direct) + unit_rows(other))

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
