"""Shapes every area of the API shares: pages of lists, times, ids, candidates, decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from faceledger.domain.models import Candidate
from faceledger.domain.policy import Decision

T = TypeVar("T")

#: Largest id or offset accepted (a 64-bit database integer).
MAX_ID = 2**63 - 1
MAX_OFFSET = 1_000_000_000


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("the time is out of range once converted to UTC") from None


#: A moment with its time zone (naive times are refused: they mean a different moment per machine).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Label = Annotated[str, Field(min_length=1, max_length=200)]
Note = Annotated[str, Field(max_length=4000)]


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset``; ``next_offset`` is None on the last page."""

    items: list[T]
    total: int = Field(description="How many items the whole list has.")
    limit: int
    offset: int
    next_offset: int | None


def page_of(items: Sequence[T], *, total: int, limit: int, offset: int) -> Page[T]:
    following = offset + len(items)
    return Page[T](
        items=list(items),
        total=total,
        limit=limit,
        offset=offset,
        next_offset=following if following < total and items else None,
    )


def slice_page(items: Sequence[T], *, limit: int, offset: int) -> Page[T]:
    """A page cut from a list the service returned whole."""
    return page_of(items[offset : offset + limit], total=len(items), limit=limit, offset=offset)


class CandidateOut(BaseModel):
    """One ranked gallery subject: an investigative lead for review, never an identification."""

    rank: int
    subject_id: str
    face_id: int
    gallery: str
    score: float = Field(description="Cosine similarity of the probe face and this gallery face.")
    estimated_fmr: float | None = Field(
        description="How often two different people score at least this high (from the model's calibration)."
    )
    above_threshold: bool

    @classmethod
    def of(cls, candidate: Candidate) -> CandidateOut:
        return cls(**candidate.to_dict())


class DecisionOut(BaseModel):
    """A policy decision: allowed or not, the rule that decided, the policy version in force."""

    allowed: bool
    rule_id: str
    policy_version: str
    reason: str

    @classmethod
    def of(cls, decision: Decision) -> DecisionOut:
        return cls(**decision.to_dict())


class Message(BaseModel):
    message: str


JsonObject = dict[str, Any]
