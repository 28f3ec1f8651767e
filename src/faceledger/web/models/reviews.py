"""Requests and responses of human review and case history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from faceledger.domain import review as rv
from faceledger.services.cases import HistoryEntry
from faceledger.services.reviews import ReviewView
from faceledger.web.models.common import MAX_ID, CandidateOut, Note


class FeatureIn(BaseModel):
    """One row of the feature worksheet."""

    model_config = ConfigDict(extra="forbid")

    comparison: rv.Comparison
    notes: str = Field(default="", max_length=rv.MAX_FEATURE_NOTES)


class WorksheetIn(BaseModel):
    """The feature worksheet (after ASTM E3149 / FISWG): a row per component compared, the rest left out."""

    model_config = ConfigDict(extra="forbid")

    face_shape: FeatureIn | None = None
    hairline: FeatureIn | None = None
    eyebrows: FeatureIn | None = None
    eyes: FeatureIn | None = None
    nose: FeatureIn | None = None
    ears: FeatureIn | None = None
    mouth: FeatureIn | None = None
    chin: FeatureIn | None = None
    scars_marks_tattoos: FeatureIn | None = None

    def rows(self) -> tuple[rv.FeatureRow, ...]:
        given = {name: row.model_dump(mode="json") for name, row in self if row is not None}
        return rv.parse_worksheet(given)


class FindingIn(BaseModel):
    face_id: int = Field(ge=1, le=MAX_ID, description="The candidate's gallery face id.")
    outcome: rv.Outcome
    notes: Note = Field(default="", description="What supports the finding (required for a possible match).")
    worksheet: WorksheetIn | None = Field(default=None, description="The feature worksheet, if one was made.")

    def finding(self) -> rv.Finding:
        rows = () if self.worksheet is None else self.worksheet.rows()
        return rv.Finding(self.face_id, self.outcome, self.notes, rows)


class FindingsIn(BaseModel):
    findings: list[FindingIn] = Field(min_length=1, max_length=1000, description="One per candidate.")

    def parsed(self) -> list[rv.Finding]:
        return [f.finding() for f in self.findings]


class VerdictIn(BaseModel):
    verdict: rv.PeerVerdict
    notes: Note = ""


class ApproveIn(BaseModel):
    notes: Note = ""


class RejectIn(BaseModel):
    reason: Note = Field(min_length=1, description="Why the lead is rejected.")


class FindingOut(BaseModel):
    face_id: int
    outcome: rv.Outcome
    notes: str
    worksheet: dict[str, dict[str, str]] | None = None

    @classmethod
    def of(cls, finding: rv.Finding) -> FindingOut:
        sheet = finding.worksheet_dict() or None
        return cls(face_id=finding.face_id, outcome=finding.outcome, notes=finding.notes, worksheet=sheet)


class ReviewOut(BaseModel):
    """A search's review as the person asking may see it (the examiner's work withheld while it must be)."""

    search_id: int
    case_number: str
    state: rv.State
    searched_by: str
    candidates: list[CandidateOut]
    steps: list[dict[str, Any]]
    examiner_findings_withheld: bool
    allowed_next: list[rv.Event]
    lead_notice: str

    @classmethod
    def of(cls, view: ReviewView) -> ReviewOut:
        data = view.to_dict()
        data["candidates"] = [CandidateOut.of(c) for c in view.candidates]
        return cls.model_validate(data)


class ReviewStepOut(BaseModel):
    """The review after a step: its state and every step so far."""

    search_id: int
    state: rv.State
    steps: list[dict[str, Any]]

    @classmethod
    def of(cls, review: rv.Review) -> ReviewStepOut:
        return cls(search_id=int(review.search_id), state=review.state, steps=review.timeline())


class PeerViewOut(BaseModel):
    """The candidates for the peer reviewer: blind (no examiner findings) until their own are recorded."""

    search_id: int
    case_number: str
    blind: bool
    candidates: list[CandidateOut]
    examiner_findings: list[FindingOut]
    own_findings: list[FindingOut]

    @classmethod
    def of(cls, view: rv.PeerView) -> PeerViewOut:
        return cls(
            search_id=int(view.search_id),
            case_number=view.case_number,
            blind=view.blind,
            candidates=[CandidateOut.of(c) for c in view.candidates],
            examiner_findings=[FindingOut.of(f) for f in view.examiner_findings],
            own_findings=[FindingOut.of(f) for f in view.own_findings],
        )


class HistoryEntryOut(BaseModel):
    at: datetime
    kind: str = Field(description="decision | probe_edit | search | verify | candidate_viewed | review")
    actor: str
    search_id: int | None
    summary: str
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryEntryOut:
        return cls.model_validate(entry.to_dict())


class CaseHistoryOut(BaseModel):
    """A page of a case's history, oldest first: searches, decisions and refusals, views, review steps."""

    case_number: str
    opened_at: datetime | None = Field(description="None when only refusals carried the case number.")
    opened_by: str | None
    searches: list[int] = Field(description="Ids of the case's searches (GET /api/v1/searches/{id}).")
    verifications: list[int]
    history: list[HistoryEntryOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
