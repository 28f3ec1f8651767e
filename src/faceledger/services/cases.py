"""A case's whole history: every search and comparison, decision, probe edit, view and review step.

A case is opened by its first allowed search and named by its case number. Its history is
assembled from the records the other services keep (never from the audit log, which is
the independent check on them), in time order, so that anyone allowed to see the case
(``view_case``) can follow who searched what, under which policy, what was refused, what
was shown and opened, and who concluded what in review. Refused requests that carried the
case number are part of it, even before the case was opened.

The examiner's findings are withheld from a viewer while they must stay blind (see
:mod:`.reviews`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from faceledger.adapters.store.tables_accounts import users
from faceledger.adapters.store.tables_cases import candidate_views, cases, policy_decisions, searches
from faceledger.domain.calibration import verification_statement
from faceledger.domain.roles import Action, Actor
from faceledger.errors import NotFoundError, ValidationError
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal, from_db, utc
from faceledger.services.reviews import load_review, visible_steps
from faceledger.services.scoping import may_see, require_unit, units_of
from faceledger.services.search_records import (
    KIND_SEARCH,
    SearchRecord,
    VerifyRecord,
    load_search,
    load_verification,
    search_ids_of_case,
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One thing that happened in a case."""

    at: datetime
    kind: str  # decision | probe_edit | search | verify | candidate_viewed | review
    actor: str
    summary: str
    search_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "actor": self.actor,
            "search_id": self.search_id,
            "summary": self.summary,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class CaseHistory:
    case_number: str
    opened_at: datetime | None
    opened_by: str | None
    searches: tuple[SearchRecord, ...]
    verifications: tuple[VerifyRecord, ...]
    entries: tuple[HistoryEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_number": self.case_number,
            "opened_at": None if self.opened_at is None else self.opened_at.isoformat(),
            "opened_by": self.opened_by,
            "searches": [s.to_dict() for s in self.searches],
            "verifications": [v.to_dict() for v in self.verifications],
            "history": [e.to_dict() for e in self.entries],
        }


def case_history(dd: DataDir, principal: Principal, case_number: str, *, now: datetime) -> CaseHistory:
    """Everything recorded about ``case_number``, oldest first, as ``principal`` may see it."""
    number = case_number.strip()
    if not number:
        raise ValidationError("name the case: its case number is empty")
    moment = utc(now)
    authorize(dd, principal, [Action.VIEW_CASE], target=f"case:{number}", now=moment, case_number=number)
    with dd.store.read() as conn:
        history = _history(conn, number, principal.actor)
    if history is None:
        # Recorded, then answered exactly as a case with no record at all.
        require_unit(
            dd,
            principal,
            _OTHER,
            action=Action.VIEW_CASE,
            target=f"case:{number}",
            missing=_missing(number),
            now=moment,
            read_only=True,
            case_number=number,
        )
        raise NotFoundError(_missing(number))  # pragma: no cover - require_unit raised
    return history


#: Stands for "some unit other than the viewer's" in :func:`case_history`'s refusal.
_OTHER = "(another unit)"


def _missing(number: str) -> str:
    return f"nothing is recorded for case {number!r}"


def _decision_units(conn: Connection, number: str) -> dict[int, str]:
    """The unit of each account that has a decision recorded under case ``number``."""
    rows = conn.execute(
        select(users.c.id, users.c.unit)
        .join(policy_decisions, policy_decisions.c.user_id == users.c.id)
        .where(policy_decisions.c.case_number == number)
    )
    return {int(r.id): str(r.unit) for r in rows}


def _history(conn: Connection, number: str, actor: Actor) -> CaseHistory | None:
    """The case as ``actor`` may see it: only its unit's part (all of it for oversight).

    None when the case has records but none ``actor`` may see; NotFoundError when it has none.
    """
    viewer = actor.username
    case = conn.execute(select(cases).where(cases.c.case_number == number)).first()
    all_ids = [] if case is None else search_ids_of_case(conn, int(case.id))
    unit_of = units_of(conn, [search_id for search_id, _kind in all_ids])
    visible = {i for i, unit in unit_of.items() if may_see(actor, unit, read_only=True)}
    decider_unit = _decision_units(conn, number)
    everything = _decisions(conn, number)
    entries = [
        e
        for e in everything
        if (e.search_id in visible)
        or (
            e.search_id is None
            and may_see(actor, decider_unit.get(e.details.get("user_id", -1)), read_only=True)
        )
    ]
    for entry in entries:
        entry.details.pop("user_id", None)
    found: list[SearchRecord] = []
    compared: list[VerifyRecord] = []
    if case is not None:
        for search_id, kind in all_ids:
            if search_id not in visible:
                continue
            if kind == KIND_SEARCH:
                record = load_search(conn, search_id)
                found.append(record)
                entries += _search_entries(record)
                entries += _review_entries(conn, search_id, viewer)
            else:
                verification = load_verification(conn, search_id)
                compared.append(verification)
                entries.append(_verify_entry(verification))
        entries += [v for v in _views(conn, int(case.id)) if v.search_id in visible]
    if case is None and not everything:
        raise NotFoundError(_missing(number))
    if not entries and not found and not compared:
        return None
    entries.sort(key=lambda e: e.at)  # stable: same-moment entries keep the order they were added in
    return CaseHistory(
        case_number=number,
        opened_at=None if case is None else from_db(case.opened_at),
        opened_by=None if case is None or not (found or compared) else case.opened_by,
        searches=tuple(found),
        verifications=tuple(compared),
        entries=tuple(entries),
    )


def _decisions(conn: Connection, number: str) -> list[HistoryEntry]:
    rows = conn.execute(
        select(policy_decisions)
        .where(policy_decisions.c.case_number == number)
        .order_by(policy_decisions.c.id)
    )
    out: list[HistoryEntry] = []
    for r in rows:
        verdict = "allowed" if r.allowed else "REFUSED"
        out.append(
            HistoryEntry(
                at=from_db(r.at),
                kind="decision",
                actor=r.username,
                search_id=None if r.search_id is None else int(r.search_id),
                summary=f"{verdict} {r.action} ({r.rule_id}, policy {r.policy_version}): {r.reason}",
                details={
                    "action": r.action,
                    "allowed": bool(r.allowed),
                    "rule_id": r.rule_id,
                    "policy_version": r.policy_version,
                    "reason": r.reason,
                    "user_id": None if r.user_id is None else int(r.user_id),
                },
            )
        )
    return out


def _search_entries(record: SearchRecord) -> list[HistoryEntry]:
    out = [
        HistoryEntry(
            at=record.created_at,
            kind="probe_edit",
            actor=record.username,
            search_id=record.search_id,
            summary=f"probe edit {step.seq}: {step.edit.describe()} -> {step.width}x{step.height}, "
            f"sha256 {step.sha256[:12]}",
            details=step.to_dict(),
        )
        for step in record.edits
    ]
    galleries = ", ".join(record.galleries)
    out.append(
        HistoryEntry(
            at=record.created_at,
            kind="search",
            actor=record.username,
            search_id=record.search_id,
            summary=f"search {record.search_id} of {galleries} for {record.purpose!r}: "
            f"{len(record.candidates)} candidate(s) shown; probe sha256 {record.probe_sha256[:12]}; "
            f"{record.score_normalisation.says()}",
            details={
                "purpose": record.purpose,
                "galleries": list(record.galleries),
                "probe_sha256": record.probe_sha256,
                "searched_sha256": record.searched_sha256,
                "policy_version": record.policy_version,
                "rule_ids": list(record.rule_ids),
                "score_normalisation": record.score_normalisation.key,
                "candidates": [c.to_dict() for c in record.candidates],
            },
        )
    )
    return out


def _verify_entry(record: VerifyRecord) -> HistoryEntry:
    return HistoryEntry(
        at=record.created_at,
        kind="verify",
        actor=record.username,
        search_id=record.search_id,
        summary=f"1:1 comparison {record.search_id} for {record.purpose!r}: "
        + verification_statement(record.score, record.threshold, record.threshold_fmr, record.estimated_fmr)
        + f"; {record.score_normalisation.says()}",
        details=record.to_dict(),
    )


def _review_entries(conn: Connection, search_id: int, viewer: str) -> list[HistoryEntry]:
    review = load_review(conn, search_id)
    return [
        HistoryEntry(
            at=datetime.fromisoformat(step["at"]),
            kind="review",
            actor=str(step["by"]),
            search_id=search_id,
            summary=f"review of search {search_id}: {step['event']} "
            f"({step['from_state']} -> {step['to_state']})",
            details=step,
        )
        for step in visible_steps(review, viewer)
    ]


def _views(conn: Connection, case_id: int) -> list[HistoryEntry]:
    rows = conn.execute(
        select(candidate_views)
        .join(searches, searches.c.id == candidate_views.c.search_id)
        .where(searches.c.case_id == case_id)
        .order_by(candidate_views.c.id)
    )
    return [
        HistoryEntry(
            at=from_db(r.at),
            kind="candidate_viewed",
            actor=r.username,
            search_id=int(r.search_id),
            summary=f"opened candidate face {r.face_id} of search {r.search_id}",
            details={"face_id": int(r.face_id)},
        )
        for r in rows
    ]
