"""Requests and responses of gallery administration."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel, Field

from faceledger.domain.models import SubjectSummary, TurnedDownImage
from faceledger.services.enrolment import EnrolledImage
from faceledger.services.galleries import DEFAULT_REQUIRED, NAME_MAX, GalleryInfo, PurgeAuthority, PurgeReport
from faceledger.web.models.common import documented

#: A gallery name as :func:`faceledger.services.galleries.validate_gallery_name` requires (else 422).
GALLERY_NAME = r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9_-])?$"

ProvenanceField = Literal["source", "collected_on", "enrolled_by", "record_id", "retention_until"]


class GalleryOut(BaseModel):
    """A gallery: the unit of lawful holding, with its legal basis, retention rule and counts."""

    name: str
    legal_basis: str
    source_description: str
    retention_days: int | None
    required_provenance: list[str]
    created_at: str | None
    owner_unit: str | None = Field(
        description="The unit whose gallery administrators may enrol into or purge it (null: any unit's)."
    )
    subjects: int
    images: int
    faces: int

    @classmethod
    def of(cls, info: GalleryInfo) -> GalleryOut:
        g = info.gallery
        return cls(
            name=g.name,
            legal_basis=g.legal_basis,
            source_description=g.source_description,
            retention_days=g.retention_days,
            required_provenance=list(g.required_provenance),
            created_at=g.created_at,
            owner_unit=g.owner_unit,
            subjects=info.counts.subjects,
            images=info.counts.images,
            faces=info.counts.faces,
        )


def _default_required() -> list[ProvenanceField]:
    return [cast(ProvenanceField, name) for name in DEFAULT_REQUIRED]


class GalleryCreate(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        description="Lowercase letters, digits, '-', '_', '.', starting with a letter or digit and not "
        "ending with '.'.",
        examples=["custody"],
        json_schema_extra=documented(GALLERY_NAME),
    )
    legal_basis: str = Field(
        min_length=1, max_length=2000, description="The law or authority the images are held under."
    )
    source_description: str = Field(
        min_length=1, max_length=2000, description="The system of record they come from."
    )
    retention_days: int | None = Field(
        None, ge=1, le=36500, description="Days each image is kept after collection."
    )
    required_provenance: list[ProvenanceField] = Field(
        default_factory=_default_required,
        max_length=5,
        description="Provenance every image must have.",
    )


class SubjectOut(BaseModel):
    subject_id: str
    images: int
    faces: int

    @classmethod
    def of(cls, subject: SubjectSummary) -> SubjectOut:
        return cls(subject_id=subject.external_id, images=subject.images, faces=subject.faces)


class TurnedDownOut(BaseModel):
    """An image enrolment turned down, not enrolled since: its source, subject, reason and run."""

    source: str
    subject_id: str | None
    reason: str
    detail: str
    run_id: int
    when: datetime

    @classmethod
    def of(cls, row: TurnedDownImage) -> TurnedDownOut:
        return cls(
            source=row.source,
            subject_id=row.subject_id,
            reason=row.reason,
            detail=row.detail,
            run_id=row.run_id,
            when=row.when,
        )


class PurgeOut(BaseModel):
    """What a purge removed for good: rows, vectors erased from the indexes, image files deleted."""

    purged: str
    reason: str
    authority: str
    galleries: int
    subjects: int
    images: int
    faces: int
    vectors: int
    files: int

    @classmethod
    def of(cls, what: str, report: PurgeReport, why: PurgeAuthority) -> PurgeOut:
        return cls(
            purged=what,
            reason=why.reason.value,
            authority=why.authority,
            galleries=report.galleries,
            subjects=report.subjects,
            images=report.images,
            faces=report.faces,
            vectors=report.vectors,
            files=report.files,
        )


class EnrolledOut(BaseModel):
    gallery: str
    subject_id: str
    source: str
    sha256: str
    image_id: int
    face_id: int
    quality_score: float

    @classmethod
    def of(cls, gallery: str, image: EnrolledImage) -> EnrolledOut:
        return cls(
            gallery=gallery,
            subject_id=image.subject_id,
            source=image.source,
            sha256=image.sha256,
            image_id=image.image_id,
            face_id=image.face_id,
            quality_score=image.quality_score,
        )
