"""A case's whole history, in time order: refusals, searches, probe edits, views, review steps."""

from __future__ import annotations

from dataclasses import replace
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

from faceledger.domain.review import Finding, Outcome
from faceledger.domain.roles import Role
from faceledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from faceledger.pipeline.edit import Crop, Rotate
from faceledger.services import cases, reviews
from faceledger.services.datadir import DataDir
from faceledger.services.probes import Probe
from faceledger.services.searches import (
    SearchInput,
    VerifyInput,
    accountable_search,
    accountable_verify,
    view_candidate,
)

__all__ = ["analyzer", "backend_url", "dd"]  # fixtures

pytestmark = pytest.mark.faces

EXAMINER = person("eve.examiner", Role.EXAMINER)
REVIEWER = person("rita.reviewer", Role.REVIEWER)
SUPERVISOR = person("sue.supervisor", Role.SUPERVISOR)
REQUEST = SearchInput(CASE, PURPOSE, (CUSTODY,))


@pytest.fixture
def story(dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path) -> DataDir:
    """A case worked over a day: a refusal, an edited search, a view, a comparison, an examination."""
    create_galleries(dd)
    enrol_people(dd, analyzer, lfw_images)
    load(dd)
    probe = Probe.from_path(photo(lfw_images, "Colin_Powell", 2))
    with pytest.raises(PermissionDeniedError):
        accountable_search(
            dd,
            analyzer,
            EXAMINER,
            probe,
            replace(REQUEST, purpose="protected_activity"),
            now=T0 - timedelta(hours=1),
        )
    # Turned a quarter and back: HOG (the default detector) looks for upright faces.
    edited = replace(REQUEST, edits=(Crop(30, 20, 220, 230), Rotate(90), Rotate(-90)))
    record = accountable_search(dd, analyzer, EXAMINER, probe, edited, now=T0)
    top = record.candidates[0]
    view_candidate(dd, EXAMINER, record.search_id, top.face_id, now=T0 + timedelta(minutes=5))
    second = Probe.from_path(photo(lfw_images, "Colin_Powell", 1))
    accountable_verify(
        dd, analyzer, EXAMINER, probe, second, VerifyInput(CASE, PURPOSE), now=T0 + timedelta(minutes=6)
    )
    findings = [Finding(top.face_id, Outcome.POSSIBLE_MATCH, "scar above the left eyebrow")] + [
        Finding(c.face_id, Outcome.NO_MATCH) for c in record.candidates[1:]
    ]
    reviews.examine(dd, EXAMINER, record.search_id, findings, now=T0 + timedelta(minutes=10))
    return dd


def test_the_history_lists_everything_in_time_order(story: DataDir) -> None:
    history = cases.case_history(story, EXAMINER, CASE, now=T0 + timedelta(hours=2))
    assert (history.case_number, history.opened_by, history.opened_at) == (CASE, "eve.examiner", T0)
    kinds = [(e.kind, e.actor) for e in history.entries]
    assert kinds == [
        ("decision", "eve.examiner"),  # the refused attempt, before the case was opened
        ("decision", "eve.examiner"),  # search allowed pending quality
        ("decision", "eve.examiner"),  # probe quality ok
        ("probe_edit", "eve.examiner"),
        ("probe_edit", "eve.examiner"),
        ("probe_edit", "eve.examiner"),
        ("search", "eve.examiner"),
        ("candidate_viewed", "eve.examiner"),
        ("decision", "eve.examiner"),  # verify allowed
        ("decision", "eve.examiner"),  # quality ok
        ("verify", "eve.examiner"),
        ("decision", "eve.examiner"),  # propose allowed
        ("review", "eve.examiner"),
    ]
    assert [e.at for e in history.entries] == sorted(e.at for e in history.entries)
    refused = history.entries[0]
    assert refused.details["rule_id"] == "purpose.prohibited"
    assert refused.summary.startswith("REFUSED search (purpose.prohibited, policy example-2025.1)")
    edits = [e for e in history.entries if e.kind == "probe_edit"]
    assert [e.details["kind"] for e in edits] == ["crop", "rotate", "rotate"]
    assert edits[-1].details["sha256"] == history.searches[0].searched_sha256
    assert "rotate 90 degrees" in edits[1].summary
    assert "rotate -90 degrees" in edits[2].summary
    [search] = history.searches
    assert search.probe_sha256 != search.searched_sha256
    [verification] = history.verifications
    assert verification.same_person
    # Each scored entry says which normalisation produced its scores, in words and as the key.
    for kind, key in (("search", "mean-template"), ("verify", "none")):
        [entry] = [e for e in history.entries if e.kind == kind]
        assert entry.details["score_normalisation"] == key
        assert entry.summary.endswith(f'(score normalisation "{key}")')
    review = history.entries[-1]
    assert review.details["event"] == "propose_match"
    assert review.details["findings"][0]["notes"] == "scar above the left eyebrow"
    document = history.to_dict()
    assert document["history"][6]["kind"] == "search"
    assert document["searches"][0]["probe"]["edits"][0]["params"] == {
        "left": 30,
        "top": 20,
        "right": 220,
        "bottom": 230,
    }


def test_the_history_keeps_the_examiner_blind_until_the_peer_assessment(story: DataDir) -> None:
    for viewer in (REVIEWER, SUPERVISOR):
        seen = cases.case_history(story, viewer, CASE, now=T0 + timedelta(hours=2))
        review = seen.entries[-1]
        assert review.details["findings"] == reviews.WITHHELD
        assert review.actor == reviews.WITHHELD
        assert "scar" not in str(seen.to_dict())


def test_refusals_alone_make_a_history_and_unknown_cases_are_not_found(
    dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path
) -> None:
    create_galleries(dd)
    load(dd)
    probe = Probe.from_path(photo(lfw_images, "Colin_Powell", 2))
    refused_case = "2025/CID/000999"
    with pytest.raises(PermissionDeniedError):
        accountable_search(
            dd,
            analyzer,
            EXAMINER,
            probe,
            replace(REQUEST, case_number=refused_case, purpose="personal_use"),
            now=T0,
        )
    history = cases.case_history(dd, SUPERVISOR, refused_case, now=T0)
    assert history.opened_at is None
    assert history.searches == ()
    assert [(e.kind, e.details["rule_id"]) for e in history.entries] == [("decision", "purpose.prohibited")]
    with pytest.raises(NotFoundError, match="nothing is recorded for case '2025/CID/123456'"):
        cases.case_history(dd, SUPERVISOR, "2025/CID/123456", now=T0)
    with pytest.raises(ValidationError, match="case number is empty"):
        cases.case_history(dd, SUPERVISOR, "  ", now=T0)


def test_only_people_who_may_view_cases_see_one_and_refusals_are_recorded(story: DataDir) -> None:
    gallery_admin = person("gina.galleries", Role.GALLERY_ADMIN)
    with pytest.raises(PermissionDeniedError, match="'view_case' needs one of the roles"):
        cases.case_history(story, gallery_admin, CASE, now=T0 + timedelta(hours=1))
    [denied] = [d for d in audit_rows(story, "policy_denied") if d["actor"] == "gina.galleries"]
    assert denied["object"] == f"case:{CASE}"
    auditor = person("ann.auditor", Role.AUDITOR, device=None)
    history = cases.case_history(story, auditor, CASE, now=T0 + timedelta(hours=1))
    assert len(history.entries) == 14  # the refused look at the case is part of its history too
    last = history.entries[-1]
    assert (last.kind, last.actor) == ("decision", "gina.galleries")
    assert last.details["rule_id"] == "role.not_permitted"
