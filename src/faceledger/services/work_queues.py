"""What is waiting for a person: the searches they may examine, peer-review or approve, now.

:func:`work_queues` answers one signed-in person, within their own unit only:

- ``to_examine``: searches of the unit awaiting examination, for a person whose roles allow
  ``propose`` (their own searches first);
- ``to_peer_review``: searches of the unit awaiting a blind peer assessment that the person
  neither ran nor examined, and those whose blind assessment they made and whose verdict is
  still theirs to give, for a person whose roles allow ``peer_review``;
- ``to_approve``: searches of the unit awaiting approval in which the person took no part, for
  a person whose roles allow ``approve``;
- ``recent_cases``: the cases of the person's own most recent searches;
- the searches they made today against their daily limit, under the policy in force.

The lists name searches and cases, so they are asked of the one door as ``view_case`` (a
refusal, such as no policy in force or an expired account, is recorded and raised); a person
none of whose roles permits ``view_case`` (gallery and system administrators) has no queue to
see, and gets empty lists without asking. The separation-of-duties rules are the review's own
(:mod:`faceledger.domain.review`): a search listed here is one the review would let this person
act on. An item names the search, its case, purpose, who ran it and when; never the candidates
or the examiner's findings, so a blind peer reviewer learns nothing from the list. Acting on an
item goes through the one door as always (:mod:`faceledger.services.reviews`). An allowed
reading changes nothing and is not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from faceledger.adapters.store.tables_cases import cases, searches
from faceledger.domain import review as rv
from faceledger.domain.roles import PERMISSIONS, Action
from faceledger.services.accounts import Principal
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.policies import find_active, from_db
from faceledger.services.reviews import load_review
from faceledger.services.search_records import KIND_SEARCH
from faceledger.services.searches import searches_today

#: The most items of each queue (oldest waiting first); ``total`` says how many there are.
QUEUE_LIMIT = 50
#: The most recent cases listed.
RECENT_CASES = 10


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One search waiting for the person."""

    search_id: int
    case_number: str
    purpose: str
    searched_by: str
    searched_at: datetime
    state: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "search_id": self.search_id,
            "case_number": self.case_number,
            "purpose": self.purpose,
            "searched_by": self.searched_by,
            "searched_at": self.searched_at.isoformat(),
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class Queue:
    """Up to :data:`QUEUE_LIMIT` items, oldest first, and how many are waiting in all."""

    items: tuple[QueueItem, ...]
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"items": [i.to_dict() for i in self.items], "total": self.total}


@dataclass(frozen=True, slots=True)
class RecentCase:
    case_number: str
    last_search_at: datetime
    searches: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_number": self.case_number,
            "last_search_at": self.last_search_at.isoformat(),
            "searches": self.searches,
        }


@dataclass(frozen=True, slots=True)
class WorkQueues:
    """What :func:`work_queues` found; a queue the person's roles do not give them is None."""

    username: str
    unit: str
    to_examine: Queue | None
    to_peer_review: Queue | None
    to_approve: Queue | None
    recent_cases: tuple[RecentCase, ...]
    searches_today: int
    daily_limit: int | None
    """None when no policy is in force (then no search is allowed at all)."""

    def to_dict(self) -> dict[str, Any]:
        def queue(q: Queue | None) -> dict[str, Any] | None:
            return None if q is None else q.to_dict()

        return {
            "username": self.username,
            "unit": self.unit,
            "to_examine": queue(self.to_examine),
            "to_peer_review": queue(self.to_peer_review),
            "to_approve": queue(self.to_approve),
            "recent_cases": [c.to_dict() for c in self.recent_cases],
            "searches_today": self.searches_today,
            "daily_limit": self.daily_limit,
        }


def _may(principal: Principal, action: Action) -> bool:
    return any(action in PERMISSIONS[role] for role in principal.actor.roles)


def _waiting(conn: Connection, unit: str, states: tuple[rv.State, ...]) -> list[Any]:
    """Every search of ``unit`` in one of ``states``, oldest first (id breaks ties)."""
    stmt = (
        select(
            searches.c.id,
            cases.c.case_number,
            searches.c.purpose,
            searches.c.username,
            searches.c.created_at,
            searches.c.review_state,
        )
        .join(cases, cases.c.id == searches.c.case_id)
        .where(
            searches.c.kind == KIND_SEARCH,
            searches.c.unit == unit,
            searches.c.review_state.in_([s.value for s in states]),
        )
        .order_by(searches.c.created_at, searches.c.id)
    )
    return list(conn.execute(stmt))


def _item(row: Any) -> QueueItem:
    return QueueItem(
        search_id=int(row.id),
        case_number=row.case_number,
        purpose=row.purpose,
        searched_by=row.username,
        searched_at=from_db(row.created_at),
        state=row.review_state,
    )


def _queue(rows: list[Any]) -> Queue:
    return Queue(tuple(_item(r) for r in rows[:QUEUE_LIMIT]), len(rows))


def _peer_rows(conn: Connection, unit: str, username: str) -> list[Any]:
    kept = []
    for row in _waiting(conn, unit, (rv.State.AWAITING_PEER_ASSESSMENT, rv.State.AWAITING_PEER_VERDICT)):
        review = load_review(conn, int(row.id))
        if review.state is rv.State.AWAITING_PEER_ASSESSMENT:
            if username not in {review.searched_by, review.examiner}:
                kept.append(row)
        elif review.peer_reviewer == username:
            kept.append(row)
    return kept


def _approval_rows(conn: Connection, unit: str, username: str) -> list[Any]:
    kept = []
    for row in _waiting(conn, unit, (rv.State.AWAITING_APPROVAL,)):
        review = load_review(conn, int(row.id))
        if username not in {review.searched_by, review.examiner, review.peer_reviewer}:
            kept.append(row)
    return kept


def _recent_cases(conn: Connection, username: str) -> tuple[RecentCase, ...]:
    last = func.max(searches.c.created_at).label("last")
    stmt = (
        select(cases.c.case_number, last, func.count().label("n"))
        .join(cases, cases.c.id == searches.c.case_id)
        .where(searches.c.username == username)
        .group_by(cases.c.case_number)
        .order_by(last.desc(), cases.c.case_number)
        .limit(RECENT_CASES)
    )
    return tuple(RecentCase(r.case_number, from_db(r.last), int(r.n)) for r in conn.execute(stmt))


def nothing_for(principal: Principal) -> WorkQueues:
    """No queue, no case, no limit: what a person with no queue to see (or refused them) is shown."""
    return WorkQueues(principal.actor.username, principal.actor.unit, None, None, None, (), 0, None)


def work_queues(dd: DataDir, principal: Principal, *, now: datetime) -> WorkQueues:
    """What is waiting for ``principal`` in their unit now (see the module docstring)."""
    actor = principal.actor
    if not _may(principal, Action.VIEW_CASE):
        return nothing_for(principal)
    authorize(dd, principal, [Action.VIEW_CASE], target="work_queues", now=now)
    with dd.store.read() as conn:
        to_examine = to_peer = to_approve = None
        if _may(principal, Action.PROPOSE):
            waiting = _waiting(conn, actor.unit, (rv.State.AWAITING_EXAMINATION,))
            to_examine = _queue(sorted(waiting, key=lambda r: r.username != actor.username))  # mine first
        if _may(principal, Action.PEER_REVIEW):
            to_peer = _queue(_peer_rows(conn, actor.unit, actor.username))
        if _may(principal, Action.APPROVE):
            to_approve = _queue(_approval_rows(conn, actor.unit, actor.username))
        stored = find_active(conn)
        policy = None if stored is None else stored.policy()
        today = 0 if policy is None else searches_today(conn, actor.username, policy, now)
        return WorkQueues(
            username=actor.username,
            unit=actor.unit,
            to_examine=to_examine,
            to_peer_review=to_peer,
            to_approve=to_approve,
            recent_cases=_recent_cases(conn, actor.username),
            searches_today=today,
            daily_limit=None if policy is None else policy.daily_limit_for(actor.username),
        )
