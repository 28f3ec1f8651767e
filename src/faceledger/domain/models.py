"""Frozen records that travel the data path.

Every number that leaves the engine carries the identity of what produced it: an
:class:`Embedding` carries its :class:`ModelRef`, a :class:`SearchResult` carries the
threshold and model that ranked it. A result that cannot say how it was made is not
evidence. These records are pure data: no I/O, no framework imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from faceledger.domain.normalisation import ScoreNormalisation

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]
    ImageArray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Identity of an embedding model: backend, name, version and the sha256 of its weights."""

    backend: str
    name: str
    version: str
    weights_sha256: str
    dim: int

    @property
    def key(self) -> str:
        """A short stable identifier, used to keep vectors of different models apart."""
        return f"{self.backend}/{self.name}/{self.version}/{self.weights_sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "name": self.name,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
        }


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned face box in pixel coordinates of the (orientation-corrected) image."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> Point:
        return Point((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def scaled(self, factor: float) -> Box:
        return Box(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor)

    def to_dict(self) -> dict[str, float]:
        return {
            "left": round(self.left, 2),
            "top": round(self.top, 2),
            "right": round(self.right, 2),
            "bottom": round(self.bottom, 2),
        }


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Five facial landmarks in image pixel coordinates.

    Order (from the subject's point of view, as in most 5-point schemes): right eye centre,
    left eye centre, nose tip, right mouth corner, left mouth corner. Backends whose
    landmark model has other points (dlib's 5-point model marks eye corners and the base of
    the nose) convert to this order and say so in ``scheme``; points a model does not
    locate are estimated and listed in ``estimated``. ``native`` keeps the points exactly as
    the landmark model gave them, for aligners trained on that scheme.
    """

    right_eye: Point
    left_eye: Point
    nose: Point
    mouth_right: Point
    mouth_left: Point
    scheme: str = "5pt"
    estimated: tuple[str, ...] = ()
    native: tuple[Point, ...] = ()

    def points(self) -> tuple[Point, Point, Point, Point, Point]:
        return (self.right_eye, self.left_eye, self.nose, self.mouth_right, self.mouth_left)

    @property
    def inter_eye_distance(self) -> float:
        return math.hypot(self.left_eye.x - self.right_eye.x, self.left_eye.y - self.right_eye.y)

    def to_dict(self) -> dict[str, Any]:
        names = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
        out: dict[str, Any] = {
            n: [round(p.x, 2), round(p.y, 2)] for n, p in zip(names, self.points(), strict=True)
        }
        out["scheme"] = self.scheme
        if self.estimated:
            out["estimated"] = list(self.estimated)
        return out


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face found by a detector, with the detector's own confidence."""

    box: Box
    landmarks: Landmarks
    score: float
    detector: str


#: The aspects the quality score multiplies, in the order reports list them.
QUALITY_ASPECTS = ("size", "sharpness", "pose", "exposure")


@dataclass(frozen=True, slots=True)
class QualityReport:
    """A per-face quality assessment a person can read, and one 0-100 score.

    ``score`` is the product of the four aspect factors (each 0-100: the factor times
    100), divided by 100 cubed, times the share of the face box inside the image. The
    factors are None in a report made before they were recorded; :meth:`explanation`
    then says only the score and the issues.
    """

    face_size_px: float
    inter_eye_px: float
    sharpness: float
    yaw_deg: float
    roll_deg: float
    pitch_deg: float
    brightness: float
    contrast: float
    overexposed_fraction: float
    underexposed_fraction: float
    score: float
    issues: tuple[str, ...] = ()
    size_factor: float | None = None
    sharpness_factor: float | None = None
    pose_factor: float | None = None
    exposure_factor: float | None = None
    outside_fraction: float = 0.0

    @property
    def factors(self) -> dict[str, float] | None:
        """Each aspect's factor (0-100) by name, or None when the report predates them."""
        values = (self.size_factor, self.sharpness_factor, self.pose_factor, self.exposure_factor)
        if any(v is None for v in values):
            return None
        return {name: float(v) for name, v in zip(QUALITY_ASPECTS, values, strict=True) if v is not None}

    def _detail(self, aspect: str) -> str:
        if aspect == "size":
            return f"face {self.face_size_px:.0f} px, eyes {self.inter_eye_px:.0f} px apart"
        if aspect == "sharpness":
            return f"sharpness {self.sharpness:.2f}"
        if aspect == "pose":
            angles = {"yaw": self.yaw_deg, "pitch": self.pitch_deg, "roll": self.roll_deg}
            name = max(angles, key=lambda k: abs(angles[k]))
            return f"{name} {angles[name]:+.0f} degrees"
        return f"brightness {self.brightness:.0f} of 255, contrast {self.contrast:.0f}"

    def explanation(self, *, shown: float = 99.5) -> str:
        """Which aspects lowered the score, worst first, e.g.

        ``score 52: lowered most by pose (factor 0.61, yaw +28 degrees), then sharpness (0.90)``.
        Aspects with a factor of ``shown`` or more (out of 100) are left out; a face cut
        off by the image edge says how much of it is outside.
        """
        head = f"score {self.score:.0f}"
        if self.factors is None:
            return f"{head}: {'; '.join(self.issues)}" if self.issues else head
        return f"{head}: {self.lowered_by(shown=shown)}"

    def lowered_by(self, *, shown: float = 99.5) -> str:
        """:meth:`explanation` without the score: which aspects lowered it, worst first."""
        factors = self.factors
        if factors is None:
            return "; ".join(self.issues) if self.issues else "no factors recorded"
        lowered = sorted((v, k) for k, v in factors.items() if v < shown)
        parts = []
        for rank, (value, aspect) in enumerate(lowered):
            if rank == 0:
                parts.append(f"lowered most by {aspect} (factor {value / 100:.2f}, {self._detail(aspect)})")
            else:
                parts.append(f"then {aspect} ({value / 100:.2f}, {self._detail(aspect)})")
        if self.outside_fraction > 0.005:
            parts.append(f"{self.outside_fraction:.0%} of the face outside the image")
        return ", ".join(parts) if parts else "no aspect lowered it"

    def to_dict(self) -> dict[str, Any]:
        factors = self.factors
        return {
            "score": round(self.score, 1),
            "face_size_px": round(self.face_size_px, 1),
            "inter_eye_px": round(self.inter_eye_px, 1),
            "sharpness": round(self.sharpness, 2),
            "yaw_deg": round(self.yaw_deg, 1),
            "roll_deg": round(self.roll_deg, 1),
            "pitch_deg": round(self.pitch_deg, 1),
            "brightness": round(self.brightness, 1),
            "contrast": round(self.contrast, 1),
            "overexposed_fraction": round(self.overexposed_fraction, 4),
            "underexposed_fraction": round(self.underexposed_fraction, 4),
            "outside_fraction": round(self.outside_fraction, 4),
            "factors": {k: round(v, 1) for k, v in factors.items()} if factors is not None else None,
            "explanation": self.explanation(),
            "issues": list(self.issues),
        }


@dataclass(frozen=True, slots=True, eq=False)
class Embedding:
    """A unit-length face descriptor and the model that made it."""

    vector: FloatArray
    model: ModelRef


@dataclass(frozen=True, slots=True, eq=False)
class DecodedImage:
    """An image decoded to 8-bit RGB, upright (EXIF orientation applied).

    ``sha256`` is the hash of the original bytes as received, so a record can always be
    traced back to the exact file that was submitted.
    """

    pixels: ImageArray
    sha256: str
    format: str
    source: str
    original_mode: str
    exif_orientation: int = 1

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class AnalyzedFace:
    """Everything the pipeline knows about one face in one image."""

    index: int
    face: DetectedFace
    quality: QualityReport
    embedding: Embedding


@dataclass(frozen=True, slots=True, eq=False)
class ImageAnalysis:
    """All faces of one image, in detector order (largest first)."""

    image_sha256: str
    source: str
    width: int
    height: int
    faces: tuple[AnalyzedFace, ...]


# --- galleries -------------------------------------------------------------------------


#: The provenance fields a gallery may require of every image, and those it requires by default.
PROVENANCE_FIELDS = ("source", "collected_on", "enrolled_by", "record_id", "retention_until")
DEFAULT_REQUIRED = ("source", "collected_on")


class PurgeReason(StrEnum):
    """Why a gallery's images are purged; every purge names one, with its authority."""

    COURT_ORDER = "court_order"
    EXPUNGEMENT = "expungement"
    RETENTION = "retention"


@dataclass(frozen=True, slots=True)
class Gallery:
    """A controlled set of lawfully held images: the unit of lawful holding."""

    name: str
    legal_basis: str
    source_description: str
    retention_days: int | None
    required_provenance: tuple[str, ...] = ("source", "collected_on")
    id: int | None = None
    created_at: str | None = None
    #: The unit whose gallery administrators may change it (None: any unit's, for galleries
    #: created before units owned galleries, or without an account).
    owner_unit: str | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an enrolled image came from and how long it may be kept."""

    source: str
    collected_on: date | None
    enrolled_by: str
    retention_until: date | None = None
    record_id: str | None = None

    def missing(self, required: tuple[str, ...]) -> list[str]:
        """Names of required provenance fields that are empty."""
        missing: list[str] = []
        for name in required:
            value = getattr(self, name, None)
            if value is None or (isinstance(value, str) and not value.strip()):
                missing.append(name)
        return missing


# --- search ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery face (or subject, shown by one of its faces) returned for a probe face, ranked."""

    rank: int
    subject_id: str
    face_id: int
    gallery: str
    score: float
    estimated_fmr: float | None
    above_threshold: bool
    #: How many of the subject's faces the score compares with: 1 for a single image, n for
    #: a mean template of n images (faceledger.domain.templates), read on that size's calibration.
    template_images: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "subject_id": self.subject_id,
            "face_id": self.face_id,
            "gallery": self.gallery,
            "score": round(self.score, 5),
            "estimated_fmr": self.estimated_fmr,
            "above_threshold": self.above_threshold,
            "template_images": self.template_images,
        }


@dataclass(frozen=True, slots=True, eq=False)
class ProbeFaceResult:
    """The ranked candidates for one face of a probe image."""

    probe: AnalyzedFace
    candidates: tuple[Candidate, ...]
    subjects: tuple[Candidate, ...]
    below_quality_floor: bool


@dataclass(frozen=True, slots=True, eq=False)
class SearchResult:
    """A probe image searched against one or more galleries."""

    probe_sha256: str
    source: str
    galleries: tuple[str, ...]
    model: ModelRef
    threshold: float
    threshold_fmr: float | None
    quality_floor: float
    faces: tuple[ProbeFaceResult, ...]
    score_normalisation: ScoreNormalisation
    """What produced every candidate's score (and the scale ``threshold`` is on)."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    template_thresholds: dict[int, float] | None = None
    """Mean-template searches: the threshold of each template size (1 is ``threshold``), each at
    the estimated FMR of ``threshold``; None when subjects are scored by their best face."""


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """1:1 comparison of the best face of two images."""

    score: float
    threshold: float
    estimated_fmr: float | None
    same_person: bool
    model: ModelRef
    score_normalisation: ScoreNormalisation
    """What produced ``score`` (and the scale ``threshold`` is on)."""


# --- what the gallery and search services report (built by the store, shown by the web) ----


@dataclass(frozen=True, slots=True)
class SubjectSummary:
    """One subject of a gallery: its external id and how many images and faces it holds."""

    external_id: str
    images: int
    faces: int


@dataclass(frozen=True, slots=True)
class TurnedDownImage:
    """An image enrolment turned down and that is not in the gallery since: what and why.

    ``source`` is where it was read from (file or manifest row), ``reason`` a
    ``SkipReason`` value, ``detail`` the words enrolment gave, ``run_id`` the run.
    """

    source: str
    subject_id: str | None
    reason: str
    detail: str
    run_id: int
    when: datetime


@dataclass(frozen=True, slots=True)
class GalleryCounts:
    """How many subjects, images and faces a gallery holds."""

    subjects: int
    images: int
    faces: int


@dataclass(frozen=True, slots=True)
class FaceInfo:
    """What a search result needs to say about one gallery face."""

    face_id: int
    gallery: str
    subject_id: str
    image_id: int
    image_sha256: str
    source: str
    quality_score: float
    model_key: str
