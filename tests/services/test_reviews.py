"""Human review of real search results: examiner, blind peer review, supervisor, separation of duties."""

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
from sqlalchemy import select, update

from faceledger.adapters.store.tables_cases import review_steps, searches
from faceledger.domain.review import (
    Finding,
    InvalidTransitionError,
    Outcome,
    PeerVerdict,
    SeparationOfDutiesError,
    State,
    parse_worksheet,
)
from faceledger.domain.roles import Role
from faceledger.errors import ConflictError, PermissionDeniedError, ValidationError
from faceledger.services import reviews
from faceledger.services.datadir import DataDir
from faceledger.services.policies import from_db
from faceledger.services.probes import Probe
from faceledger.services.search_records import SearchRecord
from faceledger.services.searches import SearchInput, accountable_search, probe_image

__all__ = ["analyzer", "backend_url", "dd"]  # fixtures

pytestmark = pytest.mark.faces

EXAMINER = person("eve.examiner", Role.EXAMINER)
OTHER_EXAMINER = person("ed.examiner", Role.EXAMINER)
REVIEWER = person("rita.reviewer", Role.REVIEWER)
SUPERVISOR = person("sue.supervisor", Role.SUPERVISOR)
#: Someone who may both search and peer-review (allowed roles), so only separation of duties stops them.
EXAMINER_REVIEWER = person("max.both", Role.EXAMINER, Role.REVIEWER)
EXAMINER_SUPERVISOR = person("sid.both", Role.EXAMINER, Role.SUPERVISOR)
GALLERY_ADMIN = person("gil.galleries", Role.GALLERY_ADMIN)


@pytest.fixture
def searched(dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path) -> tuple[DataDir, SearchRecord]:
    """A real search of a Colin Powell photo against three enrolled people, by EXAMINER."""
    create_galleries(dd)
    enrol_people(dd, analyzer, lfw_images)
    load(dd)
    probe = Probe.from_path(photo(lfw_images, "Colin_Powell", 2))
    record = accountable_search(dd, analyzer, EXAMINER, probe, SearchInput(CASE, PURPOSE, (CUSTODY,)), now=T0)
    assert record.candidates[0].subject_id == "Colin_Powell"
    return dd, record


def lead(record: SearchRecord) -> list[Finding]:
    """The top candidate as a possible match, the rest not."""
    top, *rest = record.candidates
    return [Finding(top.face_id, Outcome.POSSIBLE_MATCH, "ear shape and hairline agree")] + [
        Finding(c.face_id, Outcome.NO_MATCH) for c in rest
    ]


def no_lead(record: SearchRecord) -> list[Finding]:
    return [Finding(c.face_id, Outcome.NO_MATCH) for c in record.candidates]


def _review_entries(dd: DataDir) -> list[tuple[str, str]]:
    return [(e["actor"], e["details"]["event"]) for e in audit_rows(dd, "review")]


def test_a_lead_goes_through_blind_peer_review_to_approval(searched: tuple[DataDir, SearchRecord]) -> None:
    dd, record = searched
    sid = record.search_id
    review = reviews.examine(dd, EXAMINER, sid, lead(record), now=T0 + timedelta(minutes=5))
    assert review.state is State.AWAITING_PEER_ASSESSMENT

    blind = reviews.peer_view(dd, REVIEWER, sid, now=T0 + timedelta(minutes=10))
    assert blind.blind
    assert blind.examiner_findings == ()
    assert [c.face_id for c in blind.candidates] == [c.face_id for c in record.candidates]
    assert [e["actor"] for e in audit_rows(dd, "candidates_shown")] == ["eve.examiner", "rita.reviewer"]

    reviews.peer_assess(dd, REVIEWER, sid, lead(record), now=T0 + timedelta(minutes=20))
    revealed = reviews.peer_view(dd, REVIEWER, sid, now=T0 + timedelta(minutes=21))
    assert not revealed.blind
    assert revealed.examiner_findings == tuple(lead(record))
    reviews.record_verdict(dd, REVIEWER, sid, PeerVerdict.AGREE, now=T0 + timedelta(minutes=22))
    final = reviews.approve(dd, SUPERVISOR, sid, "disseminate as a lead", now=T0 + timedelta(hours=1))

    assert final.state is State.APPROVED
    assert final.blind_concordance is True
    assert [s.by for s in final.history] == [
        "eve.examiner",
        "rita.reviewer",
        "rita.reviewer",
        "sue.supervisor",
    ]
    assert _review_entries(dd) == [
        ("eve.examiner", "propose_match"),
        ("rita.reviewer", "peer_assess"),
        ("rita.reviewer", "peer_agree"),
        ("sue.supervisor", "approve"),
    ]
    with dd.store.read() as conn:
        state, keep = conn.execute(select(searches.c.review_state, searches.c.probe_retain_until)).one()
        rebuilt = reviews.load_review(conn, sid)
    assert state == "approved"
    assert from_db(keep) == T0 + timedelta(hours=1) + timedelta(days=2190)  # the policy's "approved" period
    assert rebuilt.timeline() == final.timeline()


def test_no_possible_match_closes_the_review_and_shortens_retention(
    searched: tuple[DataDir, SearchRecord],
) -> None:
    dd, record = searched
    review = reviews.examine(
        dd, OTHER_EXAMINER, record.search_id, no_lead(record), now=T0 + timedelta(days=2)
    )
    assert review.state is State.CLOSED_NO_LEAD
    with dd.store.read() as conn:
        keep = conn.execute(select(searches.c.probe_retain_until)).scalar_one()
    assert from_db(keep) == T0 + timedelta(days=2 + 30)
    with pytest.raises(InvalidTransitionError, match="closed_no_lead"):
        reviews.approve(dd, SUPERVISOR, record.search_id, now=T0 + timedelta(days=3))


def test_nobody_peer_reviews_their_own_search_and_the_attempt_is_recorded(
    searched: tuple[DataDir, SearchRecord], analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    dd, _ = searched
    probe = Probe.from_path(photo(lfw_images, "Tony_Blair", 2))
    own = accountable_search(
        dd, analyzer, EXAMINER_REVIEWER, probe, SearchInput(CASE, PURPOSE, (CUSTODY,)), now=T0
    )
    reviews.examine(dd, EXAMINER, own.search_id, lead(own), now=T0 + timedelta(minutes=1))
    for attempt in (
        lambda: reviews.peer_view(dd, EXAMINER_REVIEWER, own.search_id, now=T0 + timedelta(minutes=2)),
        lambda: reviews.peer_assess(
            dd, EXAMINER_REVIEWER, own.search_id, lead(own), now=T0 + timedelta(minutes=2)
        ),
    ):
        with pytest.raises(PermissionDeniedError, match="may not peer-review it") as refused:
            attempt()
        assert isinstance(refused.value.__cause__, SeparationOfDutiesError)
        assert refused.value.decision is not None
        assert refused.value.decision.rule_id == "review.separation_of_duties"
    denials = audit_rows(dd, "policy_denied")
    assert [(d["actor"], d["details"]["decision"]["rule_id"]) for d in denials] == [
        ("max.both", "review.separation_of_duties")
    ] * 2
    with dd.store.read() as conn:
        assert reviews.load_review(conn, own.search_id).state is State.AWAITING_PEER_ASSESSMENT
        assert (
            len(conn.execute(select(review_steps).where(review_steps.c.search_id == own.search_id)).all())
            == 1
        )


def test_nobody_approves_a_search_they_ran_or_reviewed(
    searched: tuple[DataDir, SearchRecord], analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    dd, _ = searched
    probe = Probe.from_path(photo(lfw_images, "Tony_Blair", 2))
    own = accountable_search(
        dd, analyzer, EXAMINER_SUPERVISOR, probe, SearchInput(CASE, PURPOSE, (CUSTODY,)), now=T0
    )
    reviews.examine(dd, EXAMINER_SUPERVISOR, own.search_id, lead(own), now=T0 + timedelta(minutes=1))
    reviews.peer_assess(dd, REVIEWER, own.search_id, lead(own), now=T0 + timedelta(minutes=2))
    reviews.record_verdict(dd, REVIEWER, own.search_id, PeerVerdict.AGREE, now=T0 + timedelta(minutes=3))
    with pytest.raises(PermissionDeniedError, match="may not approve or reject it"):
        reviews.approve(dd, EXAMINER_SUPERVISOR, own.search_id, now=T0 + timedelta(minutes=4))
    with pytest.raises(PermissionDeniedError, match="needs one of the roles: supervisor"):
        reviews.approve(dd, REVIEWER, own.search_id, now=T0 + timedelta(minutes=4))
    assert [d["details"]["decision"]["rule_id"] for d in audit_rows(dd, "policy_denied")] == [
        "review.separation_of_duties",
        "role.not_permitted",
    ]
    approved = reviews.approve(dd, SUPERVISOR, own.search_id, now=T0 + timedelta(minutes=5))
    assert approved.state is State.APPROVED


def test_only_the_blind_reviewer_records_the_verdict(searched: tuple[DataDir, SearchRecord]) -> None:
    dd, record = searched
    reviews.examine(dd, EXAMINER, record.search_id, lead(record), now=T0 + timedelta(minutes=1))
    reviews.peer_assess(dd, REVIEWER, record.search_id, no_lead(record), now=T0 + timedelta(minutes=2))
    other_reviewer = person("ray.reviewer", Role.REVIEWER)
    with pytest.raises(PermissionDeniedError, match=r"must come from 'rita\.reviewer'"):
        reviews.record_verdict(
            dd, other_reviewer, record.search_id, PeerVerdict.AGREE, now=T0 + timedelta(minutes=3)
        )
    with pytest.raises(PermissionDeniedError, match=r"peer-reviewed by 'rita\.reviewer'"):
        reviews.peer_view(dd, other_reviewer, record.search_id, now=T0 + timedelta(minutes=3))


def test_a_disputed_lead_can_only_be_rejected(searched: tuple[DataDir, SearchRecord]) -> None:
    dd, record = searched
    sid = record.search_id
    reviews.examine(dd, EXAMINER, sid, lead(record), now=T0 + timedelta(minutes=1))
    reviews.peer_assess(dd, REVIEWER, sid, no_lead(record), now=T0 + timedelta(minutes=2))
    with pytest.raises(ValidationError, match="disagreement needs notes"):
        reviews.record_verdict(dd, REVIEWER, sid, PeerVerdict.DISAGREE, now=T0 + timedelta(minutes=3))
    disputed = reviews.record_verdict(
        dd, REVIEWER, sid, PeerVerdict.DISAGREE, "different ear lobe", now=T0 + timedelta(minutes=3)
    )
    assert disputed.state is State.DISPUTED
    assert disputed.blind_concordance is False
    with pytest.raises(InvalidTransitionError, match="possible: reject"):
        reviews.approve(dd, SUPERVISOR, sid, now=T0 + timedelta(minutes=4))
    rejected = reviews.reject(dd, SUPERVISOR, sid, "peer reviewer disagrees", now=T0 + timedelta(minutes=5))
    assert rejected.state is State.REJECTED
    with dd.store.read() as conn:
        keep = conn.execute(select(searches.c.probe_retain_until)).scalar_one()
    assert from_db(keep) == T0 + timedelta(minutes=5) + timedelta(days=30)


def test_the_examiners_work_is_withheld_until_the_blind_assessment(
    searched: tuple[DataDir, SearchRecord],
) -> None:
    dd, record = searched
    sid = record.search_id
    reviews.examine(dd, OTHER_EXAMINER, sid, lead(record), now=T0 + timedelta(minutes=1))
    to_reviewer = reviews.show_review(dd, REVIEWER, sid, now=T0 + timedelta(minutes=2))
    assert to_reviewer.withheld
    assert to_reviewer.steps[0]["findings"] == reviews.WITHHELD
    assert to_reviewer.steps[0]["by"] == reviews.WITHHELD
    assert "ear shape" not in str(to_reviewer.to_dict())
    for insider in (EXAMINER, OTHER_EXAMINER):  # who ran it, who examined it
        seen = reviews.show_review(dd, insider, sid, now=T0 + timedelta(minutes=2))
        assert not seen.withheld
        assert seen.steps[0]["findings"][0]["notes"] == "ear shape and hairline agree"
    reviews.peer_assess(dd, REVIEWER, sid, lead(record), now=T0 + timedelta(minutes=3))
    after = reviews.show_review(dd, REVIEWER, sid, now=T0 + timedelta(minutes=4))
    assert not after.withheld
    assert after.steps[0]["by"] == "ed.examiner"
    assert after.allowed_next == ("peer_agree", "peer_disagree")


def test_every_candidate_needs_one_finding_and_a_possible_match_needs_notes(
    searched: tuple[DataDir, SearchRecord],
) -> None:
    dd, record = searched
    top = record.candidates[0]
    with pytest.raises(ValidationError, match="every candidate needs exactly one finding"):
        reviews.examine(dd, EXAMINER, record.search_id, [Finding(top.face_id, Outcome.NO_MATCH)], now=T0)
    unexplained = [Finding(top.face_id, Outcome.POSSIBLE_MATCH), *no_lead(record)[1:]]
    with pytest.raises(ValidationError, match="needs notes on what supports it"):
        reviews.examine(dd, EXAMINER, record.search_id, unexplained, now=T0)
    assert audit_rows(dd, "review") == []


def test_a_reviewer_cannot_examine_and_an_examiner_cannot_approve(
    searched: tuple[DataDir, SearchRecord],
) -> None:
    dd, record = searched
    with pytest.raises(PermissionDeniedError, match="'propose' needs one of the roles: examiner"):
        reviews.examine(dd, REVIEWER, record.search_id, lead(record), now=T0)
    with pytest.raises(
        PermissionDeniedError, match="device"
    ):  # the policy wants approvals from agency devices
        reviews.examine(
            dd, person("eve.examiner", Role.EXAMINER, device=None), record.search_id, lead(record), now=T0
        )


def test_a_tampered_history_does_not_load(searched: tuple[DataDir, SearchRecord]) -> None:
    """Replaying re-checks the rules: an approval rewritten to the examiner's name is caught."""
    dd, record = searched
    sid = record.search_id
    reviews.examine(dd, EXAMINER, sid, lead(record), now=T0 + timedelta(minutes=1))
    reviews.peer_assess(dd, REVIEWER, sid, lead(record), now=T0 + timedelta(minutes=2))
    reviews.record_verdict(dd, REVIEWER, sid, PeerVerdict.AGREE, now=T0 + timedelta(minutes=3))
    reviews.approve(dd, SUPERVISOR, sid, now=T0 + timedelta(minutes=4))
    with dd.store.begin() as conn:
        conn.execute(update(review_steps).where(review_steps.c.seq == 4).values(username="eve.examiner"))
    with pytest.raises(SeparationOfDutiesError), dd.store.read() as conn:
        reviews.load_review(conn, sid)


def test_a_step_recorded_meanwhile_by_someone_else_is_a_conflict(
    searched: tuple[DataDir, SearchRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two examiners at once: the one whose view is stale cannot fork the review."""
    dd, record = searched
    sid = record.search_id
    with dd.store.read() as conn:
        stale = reviews.load_review(conn, sid)
    reviews.examine(dd, EXAMINER, sid, lead(record), now=T0 + timedelta(minutes=1))
    monkeypatch.setattr(reviews, "load_review", lambda conn, search_id: stale)  # read before that commit
    with pytest.raises(ConflictError, match="at the same moment"):
        reviews.examine(dd, OTHER_EXAMINER, sid, no_lead(record), now=T0 + timedelta(minutes=2))
    monkeypatch.undo()
    with dd.store.read() as conn:
        assert [s.by for s in reviews.load_review(conn, sid).history] == ["eve.examiner"]
    assert _review_entries(dd) == [("eve.examiner", "propose_match")]


def test_the_feature_worksheet_is_stored_with_the_examiners_finding(
    searched: tuple[DataDir, SearchRecord],
) -> None:
    dd, record = searched
    sid = record.search_id
    sheet = parse_worksheet(
        {
            "ears": {"comparison": "similar", "notes": "attached lobes, same helix"},
            "scars_marks_tattoos": {"comparison": "not_visible", "notes": "left cheek in shadow"},
        }
    )
    top, *rest = lead(record)
    examined = [Finding(top.face_id, top.outcome, top.notes, sheet), *rest]
    reviews.examine(dd, EXAMINER, sid, examined, now=T0 + timedelta(minutes=5))
    with dd.store.read() as conn:
        stored = conn.execute(
            select(review_steps.c.details).where(review_steps.c.search_id == sid)
        ).scalar_one()
        rebuilt = reviews.load_review(conn, sid)
    assert stored["findings"][0]["worksheet"]["ears"] == {
        "comparison": "similar",
        "notes": "attached lobes, same helix",
    }
    assert "worksheet" not in stored["findings"][1]  # none made for that candidate
    assert rebuilt.examination is not None
    assert rebuilt.examination.findings[0].worksheet == sheet  # replayed from what was stored
    assert audit_rows(dd, "review")[-1]["details"]["details"]["findings"][0]["worksheet"]["ears"][
        "comparison"
    ] == ("similar")
    # The blind reviewer sees none of it until their own assessment is recorded.
    reviews.peer_assess(dd, REVIEWER, sid, lead(record), now=T0 + timedelta(minutes=10))
    revealed = reviews.peer_view(dd, REVIEWER, sid, now=T0 + timedelta(minutes=11))
    assert revealed.examiner_findings[0].worksheet == sheet


def test_the_searched_probe_is_shown_through_the_door_and_recorded(
    searched: tuple[DataDir, SearchRecord],
) -> None:
    dd, record = searched
    png = probe_image(dd, REVIEWER, record.search_id, now=T0 + timedelta(minutes=1))
    assert png.startswith(b"\x89PNG")
    shown = audit_rows(dd, "probe_viewed")
    assert [(e["actor"], e["object"]) for e in shown] == [("rita.reviewer", f"search:{record.search_id}")]
    assert shown[0]["details"]["probe_sha256"] == record.probe_sha256
    with pytest.raises(PermissionDeniedError):
        probe_image(dd, GALLERY_ADMIN, record.search_id, now=T0 + timedelta(minutes=2))
    assert audit_rows(dd, "policy_denied")[-1]["actor"] == "gil.galleries"
    assert len(audit_rows(dd, "probe_viewed")) == 1
