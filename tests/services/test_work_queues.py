"""Work queues: each person sees the searches of their own unit they may act on next, and no more.

Real searches on real photos, taken through the real review service; the queues must follow
the review's separation of duties (nobody peer-reviews or approves their own work) and the unit.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cases_helpers import (
    CASE,
    CUSTODY,
    PURPOSE,
    T0,
    CachingAnalyzer,
    analyzer,
    audit_rows,
    backend_url,
    create_galleries,
    dd,
    enrol_people,
    load,
    person,
    photo,
)

from faceledger.domain.review import Finding, Outcome, PeerVerdict
from faceledger.domain.roles import Role
from faceledger.errors import PermissionDeniedError
from faceledger.services import reviews
from faceledger.services.accounts import Principal
from faceledger.services.datadir import DataDir
from faceledger.services.probes import Probe
from faceledger.services.search_records import SearchRecord
from faceledger.services.searches import SearchInput, accountable_search
from faceledger.services.work_queues import WorkQueues, work_queues

__all__ = ["analyzer", "backend_url", "dd"]  # fixtures

pytestmark = pytest.mark.faces

EVE = person("eve.examiner", Role.EXAMINER)
ED = person("ed.examiner", Role.EXAMINER)
RITA = person("rita.reviewer", Role.REVIEWER)
ROB = person("rob.reviewer", Role.REVIEWER)
SUE = person("sue.supervisor", Role.SUPERVISOR)
MAX = person("max.both", Role.EXAMINER, Role.REVIEWER)
OTHER_UNIT = person("olga.reviewer", Role.REVIEWER, unit="Other Unit")
AUDITOR = person("ann.auditor", Role.AUDITOR)


def _search(
    dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path, who: Principal, minutes: int
) -> SearchRecord:
    probe = Probe.from_path(photo(lfw_images, "Colin_Powell", 2))
    request = SearchInput(CASE, PURPOSE, (CUSTODY,))
    return accountable_search(dd, analyzer, who, probe, request, now=T0 + timedelta(minutes=minutes))


def _lead(record: SearchRecord) -> list[Finding]:
    top = record.candidates[0]
    return [Finding(top.face_id, Outcome.POSSIBLE_MATCH, "same scar")] + [
        Finding(c.face_id, Outcome.NO_MATCH) for c in record.candidates[1:]
    ]


def _ids(work: WorkQueues, queue: str) -> list[int] | None:
    found = getattr(work, queue)
    return None if found is None else [i.search_id for i in found.items]


def test_each_person_sees_what_they_may_act_on_next(
    dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    create_galleries(dd)
    load(dd)
    enrol_people(dd, analyzer, lfw_images)
    first = _search(dd, analyzer, lfw_images, EVE, 1)
    second = _search(dd, analyzer, lfw_images, ED, 2)
    by_max = _search(dd, analyzer, lfw_images, MAX, 3)
    now = T0 + timedelta(hours=1)

    eve = work_queues(dd, EVE, now=now)
    assert _ids(eve, "to_examine") == [first.search_id, second.search_id, by_max.search_id]
    assert eve.to_peer_review is None
    assert eve.to_approve is None
    assert (eve.searches_today, eve.daily_limit) == (1, 25)
    assert [(c.case_number, c.searches) for c in eve.recent_cases] == [(CASE, 1)]
    ed = work_queues(dd, ED, now=now)
    assert _ids(ed, "to_examine") == [second.search_id, first.search_id, by_max.search_id]  # his own first
    assert _ids(work_queues(dd, RITA, now=now), "to_peer_review") == []  # nothing examined yet

    reviews.examine(dd, EVE, first.search_id, _lead(first), now=now)
    reviews.examine(dd, EVE, by_max.search_id, _lead(by_max), now=now)
    later = now + timedelta(minutes=5)
    assert _ids(work_queues(dd, EVE, now=later), "to_examine") == [second.search_id]
    assert _ids(work_queues(dd, RITA, now=later), "to_peer_review") == [first.search_id, by_max.search_id]
    # max ran one of them: only the other is his to review blind.
    assert _ids(work_queues(dd, MAX, now=later), "to_peer_review") == [first.search_id]
    # Another unit's reviewer sees none of this unit's searches.
    assert _ids(work_queues(dd, OTHER_UNIT, now=later), "to_peer_review") == []

    reviews.peer_assess(dd, RITA, first.search_id, _lead(first), now=later)
    # The verdict after a blind assessment is rita's alone.
    assert _ids(work_queues(dd, RITA, now=later), "to_peer_review") == [first.search_id, by_max.search_id]
    assert _ids(work_queues(dd, ROB, now=later), "to_peer_review") == [by_max.search_id]
    reviews.record_verdict(dd, RITA, first.search_id, PeerVerdict.AGREE, now=later)
    sue = work_queues(dd, SUE, now=later)
    assert _ids(sue, "to_approve") == [first.search_id]
    assert sue.to_examine is None
    assert sue.to_peer_review is None
    reviews.approve(dd, SUE, first.search_id, notes="corroborated by CCTV", now=later)
    assert _ids(work_queues(dd, SUE, now=later), "to_approve") == []

    # An auditor reviews nothing; the list shows no candidates or findings to anyone.
    auditor = work_queues(dd, AUDITOR, now=later)
    assert (auditor.to_examine, auditor.to_peer_review, auditor.to_approve) == (None, None, None)
    item = work_queues(dd, RITA, now=later).to_peer_review
    assert item is not None
    assert set(item.items[0].to_dict()) == {
        "search_id", "case_number", "purpose", "searched_by", "searched_at", "state",
    }  # fmt: skip


def test_the_queues_are_asked_of_the_door_and_a_role_without_cases_has_none(dd: DataDir) -> None:
    """No policy in force: the door refuses ``view_case`` and records it; a gallery administrator,
    whose roles show no case, gets empty lists without asking."""
    gina = person("gina.galleries", Role.GALLERY_ADMIN)
    empty = work_queues(dd, gina, now=T0)
    assert (empty.to_examine, empty.to_peer_review, empty.to_approve, empty.recent_cases) == (
        None,
        None,
        None,
        (),
    )
    assert audit_rows(dd, "policy_denied") == []
    with pytest.raises(PermissionDeniedError) as refused:
        work_queues(dd, EVE, now=T0)
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "policy.none"
    [denied] = audit_rows(dd, "policy_denied")
    assert (denied["actor"], denied["object"]) == (EVE.actor.username, "work_queues")
