"""Human review of a search's candidates: examiner, blind peer review, supervisor.

A candidate list is not an identification. A trained examiner compares each candidate with
the probe and records "possible match", "no match" or "inconclusive"; a possible match then
goes to an independent peer reviewer, who first sees the candidates *without* the
examiner's findings and records their own (so that agreement means something), then sees
the examiner's findings and records agreement or disagreement; a supervisor finally
approves the lead or rejects it. Only the transitions in :data:`TRANSITIONS` exist.

Separation of duties is checked by identity here: whoever ran or examined the search may
not peer-review it, and neither they nor the peer reviewer may approve it. Whether a person
holds the role for a step at all is the policy's question (``decide_action``), asked by the
service before it calls in here.

A :class:`Review` is immutable; each step returns a new one with the step appended to its
history, and :func:`replay` rebuilds (and so re-checks) a review from stored commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from faceledger.domain.models import Candidate
from faceledger.domain.roles import require_aware
from faceledger.errors import ConflictError, ValidationError


class ReviewError(ConflictError):
    """The review's state forbids what was asked."""

    code = "review_error"


class InvalidTransitionError(ReviewError):
    """An event that has no transition from the review's current state."""

    code = "invalid_transition"

    def __init__(self, state: State, event: Event, search_id: str = "") -> None:
        self.state = state
        self.event = event
        where = f"review of search {search_id!r}" if search_id else "a review"
        allowed = ", ".join(e.value for e in allowed_events(state)) or "none (the review is closed)"
        super().__init__(
            f"{where} is in state {state.value!r}, where {event.value!r} cannot happen (possible: {allowed})"
        )


class SeparationOfDutiesError(ReviewError):
    """The person asking already took part in this search in a role that excludes this step."""

    code = "separation_of_duties"


class Outcome(StrEnum):
    """A finding about one candidate."""

    POSSIBLE_MATCH = "possible_match"
    NO_MATCH = "no_match"
    INCONCLUSIVE = "inconclusive"


class PeerVerdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"


class State(StrEnum):
    AWAITING_EXAMINATION = "awaiting_examination"
    CLOSED_NO_LEAD = "closed_no_lead"
    AWAITING_PEER_ASSESSMENT = "awaiting_peer_assessment"
    AWAITING_PEER_VERDICT = "awaiting_peer_verdict"
    AWAITING_APPROVAL = "awaiting_approval"
    DISPUTED = "disputed"
    APPROVED = "approved"
    REJECTED = "rejected"


class Event(StrEnum):
    RECORD_NO_LEAD = "record_no_lead"
    PROPOSE_MATCH = "propose_match"
    PEER_ASSESS = "peer_assess"
    PEER_AGREE = "peer_agree"
    PEER_DISAGREE = "peer_disagree"
    APPROVE = "approve"
    REJECT = "reject"


TRANSITIONS: Mapping[tuple[State, Event], State] = MappingProxyType(
    {
        (State.AWAITING_EXAMINATION, Event.RECORD_NO_LEAD): State.CLOSED_NO_LEAD,
        (State.AWAITING_EXAMINATION, Event.PROPOSE_MATCH): State.AWAITING_PEER_ASSESSMENT,
        (State.AWAITING_PEER_ASSESSMENT, Event.PEER_ASSESS): State.AWAITING_PEER_VERDICT,
        (State.AWAITING_PEER_VERDICT, Event.PEER_AGREE): State.AWAITING_APPROVAL,
        (State.AWAITING_PEER_VERDICT, Event.PEER_DISAGREE): State.DISPUTED,
        (State.AWAITING_APPROVAL, Event.APPROVE): State.APPROVED,
        (State.AWAITING_APPROVAL, Event.REJECT): State.REJECTED,
        # A lead the peer reviewer disputes can only be closed, never approved.
        (State.DISPUTED, Event.REJECT): State.REJECTED,
    }
)

TERMINAL_STATES: frozenset[State] = frozenset(State) - {state for state, _ in TRANSITIONS}


def allowed_events(state: State) -> tuple[Event, ...]:
    return tuple(event for (source, event) in TRANSITIONS if source is state)


def next_state(state: State, event: Event, *, search_id: str = "") -> State:
    """The state ``event`` leads to from ``state``; :class:`InvalidTransitionError` if none."""
    target = TRANSITIONS.get((state, event))
    if target is None:
        raise InvalidTransitionError(state, event, search_id)
    return target


# --- commands: what a person records ---------------------------------------------------


class Feature(StrEnum):
    """The facial components of the feature worksheet (after ASTM E3149 and FISWG), in order."""

    FACE_SHAPE = "face_shape"
    HAIRLINE = "hairline"
    EYEBROWS = "eyebrows"
    EYES = "eyes"
    NOSE = "nose"
    EARS = "ears"
    MOUTH = "mouth"
    CHIN = "chin"
    MARKS = "scars_marks_tattoos"


class Comparison(StrEnum):
    """How one facial component of the probe compares with the candidate's."""

    SIMILAR = "similar"
    DISSIMILAR = "dissimilar"
    NOT_VISIBLE = "not_visible"


#: The longest note one worksheet row takes.
MAX_FEATURE_NOTES = 2000


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One row of the feature worksheet: a component, how it compares, and notes."""

    feature: Feature
    comparison: Comparison
    notes: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"comparison": self.comparison.value, "notes": self.notes}


def parse_worksheet(raw: Mapping[str, Any] | None) -> tuple[FeatureRow, ...]:
    """A worksheet from plain data (``{feature: {"comparison": ..., "notes": ...}}``), in the
    order of :class:`Feature`; :class:`ValidationError` naming the row for anything else."""
    if not raw:
        return ()
    if not isinstance(raw, Mapping):
        raise ValidationError("a feature worksheet is a mapping of facial component to its comparison")
    rows = []
    for key, value in raw.items():
        try:
            feature = Feature(key)
        except ValueError:
            valid = ", ".join(f.value for f in Feature)
            raise ValidationError(
                f"worksheet: {str(key)[:40]!r} is not a facial component ({valid})"
            ) from None
        if not isinstance(value, Mapping):
            raise ValidationError(f"worksheet: {feature.value} needs a comparison and notes")
        try:
            comparison = Comparison(str(value.get("comparison", "")))
        except ValueError:
            valid = ", ".join(c.value for c in Comparison)
            raise ValidationError(f"worksheet: {feature.value} needs a comparison ({valid})") from None
        notes = value.get("notes", "")
        if not isinstance(notes, str) or len(notes) > MAX_FEATURE_NOTES:
            raise ValidationError(
                f"worksheet: the notes on {feature.value} must be text of at most "
                f"{MAX_FEATURE_NOTES} characters"
            )
        rows.append(FeatureRow(feature, comparison, notes))
    order = list(Feature)
    return tuple(sorted(rows, key=lambda row: order.index(row.feature)))


@dataclass(frozen=True, slots=True)
class Finding:
    """One person's finding about one candidate (identified by its gallery face id).

    ``worksheet`` holds the feature-by-feature comparison, at most one row per component.
    """

    face_id: int
    outcome: Outcome
    notes: str = ""
    worksheet: tuple[FeatureRow, ...] = ()

    def __post_init__(self) -> None:
        features = [row.feature for row in self.worksheet]
        if len(set(features)) != len(features):
            raise ValidationError(f"the worksheet for face {self.face_id} lists a component twice")

    def worksheet_dict(self) -> dict[str, dict[str, str]]:
        return {row.feature.value: row.to_dict() for row in self.worksheet}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"face_id": self.face_id, "outcome": self.outcome.value, "notes": self.notes}
        if self.worksheet:
            data["worksheet"] = self.worksheet_dict()
        return data


@dataclass(frozen=True, slots=True)
class Examine:
    """The examiner's finding for every candidate."""

    by: str
    at: datetime
    findings: tuple[Finding, ...]

    @property
    def event(self) -> Event:
        proposed = any(f.outcome is Outcome.POSSIBLE_MATCH for f in self.findings)
        return Event.PROPOSE_MATCH if proposed else Event.RECORD_NO_LEAD

    def details(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True, slots=True)
class PeerAssess:
    """The peer reviewer's own findings, made without seeing the examiner's."""

    by: str
    at: datetime
    findings: tuple[Finding, ...]

    @property
    def event(self) -> Event:
        return Event.PEER_ASSESS

    def details(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True, slots=True)
class RecordVerdict:
    """The peer reviewer's agreement or disagreement with the examiner, once revealed."""

    by: str
    at: datetime
    verdict: PeerVerdict
    notes: str = ""

    @property
    def event(self) -> Event:
        return Event.PEER_AGREE if self.verdict is PeerVerdict.AGREE else Event.PEER_DISAGREE

    def details(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "notes": self.notes}


@dataclass(frozen=True, slots=True)
class Approve:
    by: str
    at: datetime
    notes: str = ""

    @property
    def event(self) -> Event:
        return Event.APPROVE

    def details(self) -> dict[str, Any]:
        return {"notes": self.notes}


@dataclass(frozen=True, slots=True)
class Reject:
    by: str
    at: datetime
    reason: str

    @property
    def event(self) -> Event:
        return Event.REJECT

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


Command = Examine | PeerAssess | RecordVerdict | Approve | Reject


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded step of a review: who did what, when, and the state it moved between."""

    seq: int
    event: Event
    from_state: State
    to_state: State
    command: Command

    @property
    def by(self) -> str:
        return self.command.by

    @property
    def at(self) -> datetime:
        return self.command.at

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.event.value,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "by": self.by,
            "at": self.at.isoformat(),
            **self.command.details(),
        }


# --- the review ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    """The review of one search: its candidates, current state and every step taken."""

    search_id: str
    case_number: str
    searched_by: str
    candidates: tuple[Candidate, ...]
    opened_at: datetime
    state: State = State.AWAITING_EXAMINATION
    history: tuple[Step, ...] = ()

    def _last(self, kind: type[Any]) -> Any:
        return next((s.command for s in reversed(self.history) if isinstance(s.command, kind)), None)

    @property
    def examination(self) -> Examine | None:
        found: Examine | None = self._last(Examine)
        return found

    @property
    def peer_assessment(self) -> PeerAssess | None:
        found: PeerAssess | None = self._last(PeerAssess)
        return found

    @property
    def verdict(self) -> RecordVerdict | None:
        found: RecordVerdict | None = self._last(RecordVerdict)
        return found

    @property
    def examiner(self) -> str | None:
        return None if self.examination is None else self.examination.by

    @property
    def peer_reviewer(self) -> str | None:
        return None if self.peer_assessment is None else self.peer_assessment.by

    @property
    def closed(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def proposed_face_ids(self) -> frozenset[int]:
        """Candidates the examiner marked as a possible match."""
        return _possible(self.examination.findings) if self.examination else frozenset()

    @property
    def blind_concordance(self) -> bool | None:
        """Whether the peer's blind findings named exactly the examiner's possible matches."""
        if self.peer_assessment is None:
            return None
        return _possible(self.peer_assessment.findings) == self.proposed_face_ids

    def timeline(self) -> list[dict[str, Any]]:
        """The whole history, oldest first, as plain data for display and audit."""
        return [step.to_dict() for step in self.history]


def _possible(findings: Iterable[Finding]) -> frozenset[int]:
    return frozenset(f.face_id for f in findings if f.outcome is Outcome.POSSIBLE_MATCH)


def open_review(
    search_id: str, case_number: str, searched_by: str, candidates: Iterable[Candidate], *, at: datetime
) -> Review:
    """A review awaiting examination of the candidates a search returned."""
    require_aware(at, f"opening time of the review of search {search_id!r}")
    listed = tuple(candidates)
    ids = [c.face_id for c in listed]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"search {search_id!r}: a candidate face is listed twice")
    for what, value in (("search id", search_id), ("case number", case_number), ("searcher", searched_by)):
        if not value.strip():
            raise ValidationError(f"a review needs a non-empty {what}")
    return Review(search_id, case_number, searched_by, listed, at)


# --- applying a step -------------------------------------------------------------------


def apply(review: Review, command: Command) -> Review:
    """``review`` after ``command``, or an error naming why the step is not possible."""
    _check_time(review, command)
    target = next_state(review.state, command.event, search_id=review.search_id)
    _check_duties(review, command)
    _check_content(review, command)
    step = Step(len(review.history) + 1, command.event, review.state, target, command)
    return replace(review, state=target, history=(*review.history, step))


def replay(review: Review, commands: Iterable[Command]) -> Review:
    """Re-apply stored commands to a freshly opened review, re-checking every rule."""
    for command in commands:
        review = apply(review, command)
    return review


def _check_time(review: Review, command: Command) -> None:
    require_aware(command.at, f"time of the {command.event.value!r} step")
    if not command.by.strip():
        raise ValidationError(f"review of search {review.search_id!r}: every step needs the person taking it")
    last = review.history[-1].at if review.history else review.opened_at
    if command.at < last:
        raise ValidationError(
            f"review of search {review.search_id!r}: step at {command.at.isoformat()} is earlier than "
            f"the previous step at {last.isoformat()}"
        )


def _check_duties(review: Review, command: Command) -> None:
    who = command.by
    ran = {review.searched_by} | ({review.examiner} if review.examiner else set())
    if isinstance(command, PeerAssess) and who in ran:
        raise SeparationOfDutiesError(
            f"{who!r} ran or examined search {review.search_id!r} and may not peer-review it"
        )
    if isinstance(command, RecordVerdict) and who != review.peer_reviewer:
        raise SeparationOfDutiesError(
            f"the verdict on search {review.search_id!r} must come from {review.peer_reviewer!r}, "
            "who assessed the candidates blind"
        )
    if isinstance(command, Approve | Reject) and (who in ran or who == review.peer_reviewer):
        raise SeparationOfDutiesError(
            f"{who!r} took part in search {review.search_id!r} and may not approve or reject it"
        )


def _check_content(review: Review, command: Command) -> None:
    if isinstance(command, Examine | PeerAssess):
        _check_findings(review, command.findings)
    elif isinstance(command, RecordVerdict) and command.verdict is PeerVerdict.DISAGREE:
        _require_text(review, command.notes, "a disagreement needs notes saying why")
    elif isinstance(command, Reject):
        _require_text(review, command.reason, "a rejection needs a reason")


def _require_text(review: Review, text: str, message: str) -> None:
    if not text.strip():
        raise ValidationError(f"review of search {review.search_id!r}: {message}")


def _check_findings(review: Review, findings: tuple[Finding, ...]) -> None:
    expected = {c.face_id for c in review.candidates}
    given = [f.face_id for f in findings]
    if len(set(given)) != len(given):
        raise ValidationError(f"review of search {review.search_id!r}: a candidate has two findings")
    if set(given) != expected:
        missing = sorted(expected - set(given))
        unknown = sorted(set(given) - expected)
        raise ValidationError(
            f"review of search {review.search_id!r}: every candidate needs exactly one finding "
            f"(missing face ids: {missing}; not candidates: {unknown})"
        )
    for finding in findings:
        if finding.outcome is Outcome.POSSIBLE_MATCH and not finding.notes.strip():
            raise ValidationError(
                f"review of search {review.search_id!r}: the possible match with face {finding.face_id} "
                "needs notes on what supports it"
            )


# --- convenience -----------------------------------------------------------------------


def examine(review: Review, by: str, findings: Iterable[Finding], *, at: datetime) -> Review:
    return apply(review, Examine(by, at, tuple(findings)))


def peer_assess(review: Review, by: str, findings: Iterable[Finding], *, at: datetime) -> Review:
    return apply(review, PeerAssess(by, at, tuple(findings)))


def record_verdict(review: Review, by: str, verdict: PeerVerdict, notes: str = "", *, at: datetime) -> Review:
    return apply(review, RecordVerdict(by, at, verdict, notes))


def approve(review: Review, by: str, notes: str = "", *, at: datetime) -> Review:
    return apply(review, Approve(by, at, notes))


def reject(review: Review, by: str, reason: str, *, at: datetime) -> Review:
    return apply(review, Reject(by, at, reason))


# --- what the peer reviewer may see ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerView:
    """The candidate list as a peer reviewer sees it.

    While ``blind`` the examiner's findings, notes and name are withheld; once the reviewer
    has recorded their own findings the examiner's are shown next to them.
    """

    search_id: str
    case_number: str
    candidates: tuple[Candidate, ...]
    blind: bool
    examiner_findings: tuple[Finding, ...] = ()
    own_findings: tuple[Finding, ...] = ()


_REVEALED_STATES = frozenset(
    {State.AWAITING_PEER_VERDICT, State.AWAITING_APPROVAL, State.DISPUTED, State.APPROVED, State.REJECTED}
)


def peer_view(review: Review, viewer: str) -> PeerView:
    """What ``viewer``, as peer reviewer, may see of ``review`` now."""
    if viewer in {review.searched_by, review.examiner}:
        raise SeparationOfDutiesError(
            f"{viewer!r} ran or examined search {review.search_id!r} and may not peer-review it"
        )
    base = PeerView(review.search_id, review.case_number, review.candidates, blind=True)
    if review.state is State.AWAITING_PEER_ASSESSMENT:
        return base
    if review.state in _REVEALED_STATES and review.peer_assessment is not None:
        if viewer != review.peer_reviewer:
            raise SeparationOfDutiesError(
                f"search {review.search_id!r} is peer-reviewed by {review.peer_reviewer!r}, not {viewer!r}"
            )
        assert review.examination is not None
        return replace(
            base,
            blind=False,
            examiner_findings=review.examination.findings,
            own_findings=review.peer_assessment.findings,
        )
    raise ReviewError(
        f"search {review.search_id!r} is in state {review.state.value!r}: there is no peer review"
    )
