"""Human review of a search's candidates, stored step by step and rebuilt by replaying the rules.

Each step (examination, blind peer assessment, peer verdict, approval or rejection) is kept
as the command a person gave, with who and when; a review is never stored as a state to be
trusted, but rebuilt from its commands with :func:`faceledger.domain.review.replay`, which
re-checks every transition and every separation of duties on the way.

A step is allowed only if the policy in force lets the person take it (``decide_action``:
``propose`` for the examiner, ``peer_review``, ``approve``), and the review's own rules
allow it (state machine, nobody reviews or approves their own search). A refusal of either
kind is recorded (``policy_denied``) and raised as :class:`PermissionDeniedError`. Each step
is written, with its ``review`` audit entry and the search's new state, in one transaction;
``(search_id, seq)`` is unique, so two people recording a step at once cannot fork a review.

While a possible match awaits its blind peer assessment, the examiner's findings and name
are withheld from everyone but the searcher and the examiner, in every view this module or
the case history gives: otherwise the "blind" assessment would not be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.store.tables_cases import review_steps, searches
from faceledger.audit import events as ev
from faceledger.domain import review as rv
from faceledger.domain.models import Candidate
from faceledger.domain.policy import Decision, Policy
from faceledger.domain.roles import Action
from faceledger.errors import ConflictError, PermissionDeniedError
from faceledger.services import audit
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.policies import (
    Principal,
    find_active,
    from_db,
    refuse,
    store_decision,
    stored_policy,
    utc,
)
from faceledger.services.probes import set_probe_retention
from faceledger.services.scoping import require_search_unit
from faceledger.services.search_records import (
    KIND_SEARCH,
    candidate_json,
    case_if_any,
    search_header,
    stored_candidates,
)

SEPARATION_RULE = "review.separation_of_duties"
WITHHELD = "withheld until the blind peer assessment is recorded"

#: Probe retention kind (policy ``[retention.probe_days]``) for each way a review ends.
_RETENTION_KIND = {
    rv.State.CLOSED_NO_LEAD: "no_lead",
    rv.State.REJECTED: "rejected",
    rv.State.APPROVED: "approved",
}


@dataclass(frozen=True, slots=True)
class ReviewView:
    """A review as one person may see it now (examiner's work withheld while it must be)."""

    search_id: int
    case_number: str
    state: str
    searched_by: str
    candidates: tuple[Candidate, ...]
    steps: tuple[dict[str, Any], ...]
    withheld: bool
    allowed_next: tuple[str, ...]
    lead_notice: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "search_id": self.search_id,
            "case_number": self.case_number,
            "state": self.state,
            "searched_by": self.searched_by,
            "candidates": [c.to_dict() for c in self.candidates],
            "steps": list(self.steps),
            "examiner_findings_withheld": self.withheld,
            "allowed_next": list(self.allowed_next),
            "lead_notice": self.lead_notice,
        }


# --- rebuilding a review from what was stored ----------------------------------------------


def _findings(details: dict[str, Any]) -> tuple[rv.Finding, ...]:
    return tuple(
        rv.Finding(
            int(f["face_id"]),
            rv.Outcome(f["outcome"]),
            str(f.get("notes", "")),
            rv.parse_worksheet(f.get("worksheet")),
        )
        for f in details["findings"]
    )


def _command(row: Row[Any]) -> rv.Command:
    event, by, at, details = rv.Event(row.event), row.username, from_db(row.at), dict(row.details)
    if event in (rv.Event.RECORD_NO_LEAD, rv.Event.PROPOSE_MATCH):
        return rv.Examine(by, at, _findings(details))
    if event is rv.Event.PEER_ASSESS:
        return rv.PeerAssess(by, at, _findings(details))
    if event in (rv.Event.PEER_AGREE, rv.Event.PEER_DISAGREE):
        return rv.RecordVerdict(by, at, rv.PeerVerdict(details["verdict"]), str(details.get("notes", "")))
    if event is rv.Event.APPROVE:
        return rv.Approve(by, at, str(details.get("notes", "")))
    return rv.Reject(by, at, str(details.get("reason", "")))


def load_review(conn: Connection, search_id: int) -> rv.Review:
    """The review of a search, rebuilt (and so re-checked) from its stored steps."""
    header = search_header(conn, search_id)
    if header.kind != KIND_SEARCH:
        raise ConflictError(f"record {search_id} is a 1:1 comparison; only 1:N searches are reviewed")
    opened = rv.open_review(
        str(search_id),
        header.case_number,
        header.username,
        stored_candidates(conn, search_id),
        at=header.created_at,
    )
    rows = conn.execute(
        select(review_steps).where(review_steps.c.search_id == search_id).order_by(review_steps.c.seq)
    )
    return rv.replay(opened, [_command(row) for row in rows])


# --- what a person may see -------------------------------------------------------------------


def examiner_work_withheld(review: rv.Review, viewer: str) -> bool:
    """Whether ``viewer`` must not see the examiner's findings yet (see the module docstring)."""
    insiders = {review.searched_by, review.examiner}
    return review.state is rv.State.AWAITING_PEER_ASSESSMENT and viewer not in insiders


def visible_steps(review: rv.Review, viewer: str) -> list[dict[str, Any]]:
    """The review's timeline as ``viewer`` may see it."""
    steps = review.timeline()
    if not examiner_work_withheld(review, viewer):
        return steps
    for step in steps:
        if step["event"] in (rv.Event.PROPOSE_MATCH.value, rv.Event.RECORD_NO_LEAD.value):
            step.update(by=WITHHELD, findings=WITHHELD)
    return steps


def show_review(dd: DataDir, principal: Principal, search_id: int, *, now: datetime) -> ReviewView:
    """The review of a search as ``principal`` may see it (needs ``view_case``)."""
    moment = utc(now)
    _ask_door(dd, principal, search_id, Action.VIEW_CASE, moment)
    require_search_unit(dd, principal, search_id, action=Action.VIEW_CASE, now=moment, read_only=True)
    with dd.store.read() as conn:
        review = load_review(conn, search_id)
        notice = _lead_notice(conn, search_id)
    viewer = principal.actor.username
    return ReviewView(
        search_id=search_id,
        case_number=review.case_number,
        state=review.state.value,
        searched_by=review.searched_by,
        candidates=review.candidates,
        steps=tuple(visible_steps(review, viewer)),
        withheld=examiner_work_withheld(review, viewer),
        allowed_next=tuple(e.value for e in rv.allowed_events(review.state)),
        lead_notice=notice,
    )


def _ask_door(dd: DataDir, principal: Principal, search_id: int, action: Action, now: datetime) -> Decision:
    """The door's answer for ``action`` on search ``search_id``, before anyone learns if it exists.

    A refusal is recorded with the search's case number where there is such a search.
    """
    with dd.store.read() as conn:
        case_number = case_if_any(conn, search_id)
    return authorize(
        dd,
        principal,
        [action],
        target=f"search:{search_id}",
        now=now,
        case_number=case_number,
        search_id=search_id if case_number is not None else None,
    )


def _lead_notice(conn: Connection, search_id: int) -> str:
    policy_id = conn.execute(select(searches.c.policy_id).where(searches.c.id == search_id)).scalar_one()
    return stored_policy(conn, int(policy_id)).policy().lead_notice


def peer_view(dd: DataDir, principal: Principal, search_id: int, *, now: datetime) -> rv.PeerView:
    """The candidate list for the peer reviewer: blind until they record their own findings.

    Showing it is recorded (``candidates_shown``); the searcher and the examiner are refused.
    """
    moment = utc(now)
    decision = _ask_door(dd, principal, search_id, Action.PEER_REVIEW, moment)
    require_search_unit(dd, principal, search_id, action=Action.PEER_REVIEW, now=moment, read_only=False)
    with dd.store.read() as conn:
        review = load_review(conn, search_id)
    try:
        view = rv.peer_view(review, principal.actor.username)
    except rv.SeparationOfDutiesError as exc:
        _refuse_separation(dd, principal, decision, exc, review, Action.PEER_REVIEW, moment)
    with dd.store.begin() as conn:
        shown = [candidate_json(c) for c in view.candidates]
        event = ev.candidates_shown(principal.actor.username, search_id=str(search_id), candidates=shown)
        audit.record(dd, conn, event, now=moment)
    return view


# --- the steps -----------------------------------------------------------------------------


def examine(
    dd: DataDir, principal: Principal, search_id: int, findings: Sequence[rv.Finding], *, now: datetime
) -> rv.Review:
    """The examiner's finding for every candidate ('possible_match' needs notes on what supports it)."""
    chosen = tuple(findings)
    return _step(dd, principal, search_id, Action.PROPOSE, lambda by, at: rv.Examine(by, at, chosen), now)


def peer_assess(
    dd: DataDir, principal: Principal, search_id: int, findings: Sequence[rv.Finding], *, now: datetime
) -> rv.Review:
    """The peer reviewer's own findings, made on the blind view."""
    chosen = tuple(findings)
    return _step(
        dd, principal, search_id, Action.PEER_REVIEW, lambda by, at: rv.PeerAssess(by, at, chosen), now
    )


def record_verdict(
    dd: DataDir,
    principal: Principal,
    search_id: int,
    verdict: rv.PeerVerdict,
    notes: str = "",
    *,
    now: datetime,
) -> rv.Review:
    """The peer reviewer's agreement or disagreement (with notes) once the examiner's work is shown."""
    return _step(
        dd,
        principal,
        search_id,
        Action.PEER_REVIEW,
        lambda by, at: rv.RecordVerdict(by, at, verdict, notes),
        now,
    )


def approve(
    dd: DataDir, principal: Principal, search_id: int, notes: str = "", *, now: datetime
) -> rv.Review:
    """A supervisor approves the lead (as an investigative lead only)."""
    return _step(dd, principal, search_id, Action.APPROVE, lambda by, at: rv.Approve(by, at, notes), now)


def reject(dd: DataDir, principal: Principal, search_id: int, reason: str, *, now: datetime) -> rv.Review:
    """A supervisor rejects the lead, giving a reason."""
    return _step(dd, principal, search_id, Action.APPROVE, lambda by, at: rv.Reject(by, at, reason), now)


_Make = Callable[[str, datetime], rv.Command]


def _step(
    dd: DataDir, principal: Principal, search_id: int, action: Action, make: _Make, now: datetime
) -> rv.Review:
    moment = utc(now)
    decision = _ask_door(dd, principal, search_id, action, moment)
    # Only the searching unit acts on its review: another unit's is answered as not there.
    require_search_unit(dd, principal, search_id, action=action, now=moment, read_only=False)
    with dd.store.read() as conn:
        case_number = load_review(conn, search_id).case_number  # a missing search or a comparison: refused
    command = make(principal.actor.username, moment)
    refused: rv.SeparationOfDutiesError | None = None
    failed: rv.ReviewError | None = None
    try:
        with dd.store.begin() as conn:
            review = load_review(conn, search_id)
            try:
                updated = rv.apply(review, command)
            except rv.SeparationOfDutiesError as exc:
                refused = exc  # recorded below, once this transaction (which wrote nothing) is over
            except rv.ReviewError as exc:
                failed = exc  # a step the review's state does not allow: recorded below too
            else:
                _store_step(dd, conn, principal, decision, updated, search_id, moment)
    except IntegrityError as exc:
        raise ConflictError(
            f"someone else recorded a step of the review of search {search_id} at the same moment; "
            "look at the review again (`faceledger review show`) and retry"
        ) from exc
    if refused is not None:
        _refuse_separation(dd, principal, decision, refused, review, action, moment)
    if failed is not None:
        event = ev.action_failed(
            principal.actor.username,
            attempted=command.event.value,
            target=f"search:{search_id}",
            code=failed.code,
            reason=str(failed),
            details={"case_ref": case_number, "state": review.state.value},
        )
        with dd.store.begin() as conn:
            audit.record(dd, conn, event, now=moment)
        raise failed
    return updated


def _store_step(
    dd: DataDir,
    conn: Connection,
    principal: Principal,
    decision: Decision,
    review: rv.Review,
    search_id: int,
    now: datetime,
) -> None:
    step = review.history[-1]
    details = step.command.details()
    conn.execute(
        insert(review_steps).values(
            search_id=search_id,
            seq=step.seq,
            event=step.event.value,
            from_state=step.from_state.value,
            to_state=step.to_state.value,
            username=principal.actor.username,
            user_id=principal.user_id,
            at=now,
            details=details,
            policy_version=decision.policy_version,
        )
    )
    conn.execute(update(searches).where(searches.c.id == search_id).values(review_state=review.state.value))
    kind = _RETENTION_KIND.get(review.state)
    if kind is not None:
        days = _policy_of(conn, search_id).probe_retention_for(kind)
        set_probe_retention(conn, search_id, now + timedelta(days=days))
    store_decision(
        conn,
        principal,
        decision,
        action=step.event.value,
        now=now,
        case_number=review.case_number,
        search_id=search_id,
    )
    event = ev.review_step(
        principal.actor.username,
        search_id=str(search_id),
        case_ref=review.case_number,
        seq=step.seq,
        event=step.event.value,
        from_state=step.from_state.value,
        to_state=step.to_state.value,
        details=details,
    )
    audit.record(dd, conn, event, now=now)


def _policy_of(conn: Connection, search_id: int) -> Policy:
    stored = find_active(conn)  # retention follows the policy in force when the review ends
    if stored is None:
        policy_id = conn.execute(select(searches.c.policy_id).where(searches.c.id == search_id)).scalar_one()
        stored = stored_policy(conn, int(policy_id))
    return stored.policy()


def _refuse_separation(
    dd: DataDir,
    principal: Principal,
    allowed: Decision,
    exc: rv.SeparationOfDutiesError,
    review: rv.Review,
    action: Action,
    now: datetime,
) -> NoReturn:
    denial = Decision(False, SEPARATION_RULE, allowed.policy_version, str(exc))
    try:
        refuse(
            dd,
            principal,
            denial,
            action=action.value,
            target=f"search:{review.search_id}",
            now=now,
            case_number=review.case_number,
            search_id=int(review.search_id),
        )
    except PermissionDeniedError as refused:
        raise refused from exc
