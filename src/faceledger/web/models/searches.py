"""Responses of accountable searches, verifications and candidate views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from faceledger.domain import normalisation
from faceledger.domain.models import FaceInfo
from faceledger.services.search_records import CandidateView, SearchRecord, VerifyRecord
from faceledger.web.models.common import CandidateOut


def _normalisation_field(what: str) -> str:
    """The description of a response's ``score_normalisation``, naming what it produced."""
    known = "; ".join(f'"{n.key}": {n.description}' for n in normalisation.KNOWN.values())
    return f"Key of the score normalisation that produced {what} (the threshold is on its scale); {known}."


class SearchDecision(BaseModel):
    """The policy's answer that let this search run (refusals are 403 errors citing the rule)."""

    allowed: bool = True
    policy_version: str
    policy_sha256: str | None
    rule_ids: list[str] = Field(
        description="Every rule that allowed it, e.g. search.allowed, probe.quality_ok."
    )


class EditOut(BaseModel):
    seq: int
    kind: str
    params: dict[str, Any]
    description: str
    width: int
    height: int
    sha256: str = Field(description="sha256 of the pixels this edit produced.")


class ProbeOut(BaseModel):
    sha256: str = Field(description="sha256 of the probe file as submitted (kept as evidence).")
    searched_sha256: str = Field(description="sha256 of the pixels searched, after the edits.")
    edits: list[EditOut]
    purged: bool
    retain_until: datetime
    faces_found: int
    face: dict[str, Any] | None = Field(description="The face searched: box, landmarks, quality.")


class SearchOut(BaseModel):
    """An accountable search: who, why, under which policy, what was searched, and the leads found.

    A candidate is an investigative lead for trained review, never an identification.
    """

    search_id: int
    case_number: str
    purpose: str
    justification: str | None
    on_behalf_of: str | None
    agreement_ref: str | None
    searched_by: str
    device_id: str | None
    created_at: datetime
    decision: SearchDecision
    probe: ProbeOut
    model: str
    threshold: float
    threshold_fmr: float | None = Field(description="Estimated false match rate at the threshold.")
    score_normalisation: str = Field(
        description=_normalisation_field("every candidate's score"), examples=["mean-template"]
    )
    template_thresholds: dict[str, float] | None = Field(
        description=(
            'For "mean-template" searches, the threshold applied to a candidate whose score compares with '
            'a mean template of that many images (`template_images`), keyed by the number ("1" is '
            "`threshold`); each is at the estimated FMR of `threshold` on its own calibration. "
            "Null when subjects were scored by their best face."
        ),
        examples=[{"1": 0.9287, "2": 0.9349, "3": 0.937, "4": 0.9383}],
    )
    top_k: int | None
    galleries: list[str]
    candidates: list[CandidateOut]
    timings_ms: dict[str, float]
    review_state: str | None
    lead_notice: str

    @classmethod
    def of(cls, record: SearchRecord) -> SearchOut:
        data = record.to_dict()
        return cls(
            **{k: v for k, v in data.items() if k not in {"policy", "candidates"}},
            decision=SearchDecision(
                policy_version=record.policy_version,
                policy_sha256=record.policy_sha256,
                rule_ids=list(record.rule_ids),
            ),
            candidates=[CandidateOut.of(c) for c in record.candidates],
        )


class VerifyOut(BaseModel):
    """An accountable 1:1 comparison of the largest face in each of two photos."""

    search_id: int
    case_number: str
    purpose: str
    verified_by: str
    device_id: str | None
    created_at: datetime
    decision: SearchDecision
    probe_sha256s: list[str]
    model: str
    score: float
    threshold: float
    threshold_fmr: float | None
    same_person: bool = Field(description="Score at or above the threshold: a lead to review, not a finding.")
    estimated_fmr: float | None = Field(
        description="How often two different people score this high (null on comparisons recorded before it "
        "was kept). A score below the threshold is not evidence of different people."
    )
    score_normalisation: str = Field(description=_normalisation_field("the score"), examples=["none"])
    lead_notice: str

    @classmethod
    def of(cls, record: VerifyRecord) -> VerifyOut:
        data = record.to_dict()
        return cls(
            **{k: v for k, v in data.items() if k != "policy"},
            decision=SearchDecision(
                policy_version=record.policy_version, policy_sha256=None, rule_ids=list(record.rule_ids)
            ),
        )


class FaceOut(BaseModel):
    face_id: int
    gallery: str
    subject_id: str
    image_id: int
    image_sha256: str
    source: str
    quality_score: float
    model_key: str

    @classmethod
    def of(cls, face: FaceInfo) -> FaceOut:
        return cls(
            face_id=face.face_id,
            gallery=face.gallery,
            subject_id=face.subject_id,
            image_id=face.image_id,
            image_sha256=face.image_sha256,
            source=face.source,
            quality_score=face.quality_score,
            model_key=face.model_key,
        )


class CandidateViewOut(BaseModel):
    """One candidate opened for comparison (recorded); ``face`` is None once it was purged."""

    search_id: int
    candidate: CandidateOut
    face: FaceOut | None

    @classmethod
    def of(cls, view: CandidateView) -> CandidateViewOut:
        return cls(
            search_id=view.search_id,
            candidate=CandidateOut.of(view.candidate),
            face=None if view.face is None else FaceOut.of(view.face),
        )
