"""The records enrolment takes and returns (pure data)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from faceledger.domain.face_choice import Ambiguous, ChoiceRule, FaceChoice, choose_subject_face
from faceledger.domain.models import Box, DecodedImage, ImageAnalysis, ModelRef, QualityReport
from faceledger.services.datadir import RecoveryReport


class Analyzer(Protocol):
    """What enrolment needs of :class:`faceledger.pipeline.run.Pipeline`."""

    @property
    def model(self) -> ModelRef: ...

    def analyze(self, image: DecodedImage) -> ImageAnalysis: ...


class SkipReason(StrEnum):
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    LOW_QUALITY = "low_quality"
    UNREADABLE = "unreadable_image"
    ANALYSIS_FAILED = "analysis_failed"
    DUPLICATE = "duplicate"
    ALREADY_ENROLLED = "already_enrolled"
    MISSING_PROVENANCE = "missing_provenance"
    BAD_ROW = "bad_row"
    PURGED = "purged"


TurnedDown = tuple[SkipReason, str]


def screen(
    boxes: Sequence[Box], qualities: Sequence[QualityReport], width: int, height: int, floor: float
) -> FaceChoice | TurnedDown:
    """The face enrolment takes from an image with these faces, or why it turns the image down.

    The subject's face is chosen by :func:`~faceledger.domain.face_choice.choose_subject_face`
    (the only face, or one that clearly dominates by size and position); that face must be
    at or above the quality floor. ``boxes`` and ``qualities`` are in the detector's order.
    """
    choice = choose_subject_face(boxes, width, height)
    if choice is None:
        return SkipReason.NO_FACE, "no face found"
    if isinstance(choice, Ambiguous):
        return SkipReason.SEVERAL_FACES, f"{choice.detail}; enrol a crop that shows only the subject"
    quality = qualities[choice.index]
    if quality.score < floor:
        issues = f" ({', '.join(quality.issues)})" if quality.issues else ""
        which = "" if choice.faces_found == 1 else f" (chosen: {choice.detail})"
        return (
            SkipReason.LOW_QUALITY,
            f"quality {quality.score:.1f} below the floor {floor:g}: {quality.lowered_by()}{issues}{which}",
        )
    return choice


@dataclass(frozen=True, slots=True)
class EnrolItem:
    """One image to enrol. Unset provenance fields fall back to :class:`EnrolOptions`."""

    subject_id: str
    path: Path
    source: str | None = None
    record_id: str | None = None
    collected_on: date | None = None
    enrolled_by: str | None = None
    retention_until: date | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class EnrolOptions:
    """How to enrol. ``enrolled_by`` names the person responsible and is always recorded.

    ``re_enrol_purged`` is why images a purge removed from this gallery may be enrolled in it
    again (recorded with each such image); without it they are skipped as ``purged``.
    """

    enrolled_by: str
    re_enrol_purged: str | None = None
    collected_on: date | None = None
    quality_floor: float | None = None  # None: settings.quality_floor
    workers: int | None = None  # None: settings.workers; 0: one per CPU core; 1: in this process
    save_every: int = 100


@dataclass(frozen=True, slots=True)
class Skipped:
    source: str
    reason: SkipReason
    detail: str
    subject_id: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class EnrolledImage:
    subject_id: str
    source: str
    sha256: str
    image_id: int
    face_id: int
    quality_score: float
    #: Which part of the face rule chose the face (``domain.face_choice.ChoiceRule``).
    face_choice: str = "only face"


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    done: int
    enrolled: int
    skipped: int
    current: str


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class EnrolmentResult:
    gallery: str
    run_id: int
    model_key: str | None
    total: int
    enrolled: tuple[EnrolledImage, ...]
    skipped: tuple[Skipped, ...]
    seconds: float
    interrupted: bool = False
    recovery: RecoveryReport | None = None

    def skipped_by_reason(self) -> dict[SkipReason, int]:
        return dict(Counter(s.reason for s in self.skipped))

    def chosen_by_rule(self) -> dict[str, int]:
        """How many enrolled photos with several faces had their face chosen by each rule."""
        return dict(Counter(e.face_choice for e in self.enrolled if e.face_choice != ChoiceRule.ONLY_FACE))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gallery": self.gallery,
            "run_id": self.run_id,
            "model": self.model_key,
            "total": self.total,
            "enrolled": len(self.enrolled),
            "skipped": {str(k): v for k, v in sorted(self.skipped_by_reason().items())},
            "face_chosen_among_several": dict(sorted(self.chosen_by_rule().items())),
            "skipped_items": [
                {"source": s.source, "reason": str(s.reason), "detail": s.detail, "subject_id": s.subject_id}
                for s in self.skipped
            ],
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }


class EnrolmentInterrupted(KeyboardInterrupt):
    """Ctrl-C during an enrolment: what was committed stays; rerun to continue."""

    def __init__(self, result: EnrolmentResult) -> None:
        super().__init__(
            f"enrolment into {result.gallery!r} interrupted after {len(result.enrolled)} images; "
            "rerun the same command to continue"
        )
        self.result = result
