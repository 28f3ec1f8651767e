"""Shapes every area of the API shares: pages of lists, times, ids, candidates, decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field

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


def _not_a_number(value: object) -> object:
    """The document says a date-time is text in RFC 3339 form: a number of seconds is not one."""
    if isinstance(value, bool | int | float):
        raise ValueError("give a date and time with its time zone, e.g. 2025-06-02T09:00:00Z")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("give a date and time with its time zone, e.g. 2025-06-02T09:00:00Z")
    return value


#: A moment with its time zone (naive times are refused: they mean a different moment per machine),
#: written as text: Pydantic would also read a number as seconds since 1970, which the document
#: does not offer.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_in_utc)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

# --- what the services refuse in text, stated in the API document -----------------------------
#
# The services check identifiers and free text themselves (faceledger.domain.text) and say
# precisely what is wrong, so these patterns only *document* the rule (``json_schema_extra``):
# Pydantic does not enforce them a second time with a vaguer message. They are written for the
# document's readers: ECMA-262 / PCRE syntax, BMP characters as ``\uXXXX``, the others as
# ``\x{XXXXX}``, and no ``\s`` (whose meaning differs between engines).

#: The characters an identifier or one line of text may not contain: the Unicode categories Cc
#: (control), Cf (format: zero-width characters, bidi controls), Zl and Zp, as the inside of a
#: character class (Unicode 14, Python 3.11's). Lone surrogates (Cs) are refused as well but not
#: listed: JSON text sent as UTF-8 cannot carry them, and regular-expression engines reject them.
HIDDEN_CHARS = (
    r"\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    r"\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    r"\x{110bd}\x{110cd}\x{13430}-\x{13438}\x{1bca0}-\x{1bca3}\x{1d173}-\x{1d17a}"
    r"\x{e0001}\x{e0020}-\x{e007f}"
)
#: The characters multi-line text may not contain: controls but tab and line feed (a CR LF is
#: read as LF, a lone CR is refused), bidi controls, line and paragraph separators.
HIDDEN_IN_TEXT = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
#: Whitespace that is not also a control character (what ``str.strip`` removes besides them).
SPACES = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
#: One line with something visible in it and no hidden character.
VISIBLE_LINE = f"^[{SPACES}]*[^{HIDDEN_CHARS}{SPACES}][^{HIDDEN_CHARS}]*$"
#: One line (perhaps blank) with no hidden character.
ONE_LINE = f"^[^{HIDDEN_CHARS}]*$"
#: Text of several lines: no control character but tab and line feed, no bidi control.
MULTI_LINE = f"^[^{HIDDEN_IN_TEXT}]*$"

#: Not blank: holds a character that is not whitespace (``str.isspace``, what ``str.strip``
#: removes). Unanchored: somewhere in the text.
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def documented(pattern: str) -> dict[str, Any]:
    """``json_schema_extra`` for a string the services check against ``pattern`` themselves."""
    return {"pattern": pattern}


#: A name or label: one line with no hidden character; the services strip it and refuse it blank.
Label = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=documented(VISIBLE_LINE))]
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
    score: float = Field(
        description=(
            "Cosine similarity of the probe face and this gallery face, or, when `template_images` is "
            "more than 1, of the probe face and the subject's mean template of that many faces "
            '(score normalisation "mean-template").'
        )
    )
    estimated_fmr: float | None = Field(
        description=(
            "How often two different people score at least this high (from the model's calibration "
            "of comparisons with `template_images` images)."
        )
    )
    above_threshold: bool
    template_images: int = Field(
        ge=1,
        description="How many of the subject's faces the score compares with: 1, or a mean template of n.",
    )

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
