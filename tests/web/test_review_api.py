"""Cross-user review over HTTP, on real searches: examiner, blind peer reviewer, supervisor.

Nobody reviews or approves a search they took part in, whatever roles they hold; the peer
reviewer sees the candidates without the examiner's findings until theirs are recorded;
everyone else sees the examiner's work withheld until then. Each refusal names its rule
and is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    PAROLE,
    Agency,
    Session,
    audit_rows,
    enrol_people,
    error_of,
    running,
    search_photo,
    shared_pipeline,
    template,
)

from faceledger.domain.review import Feature
from faceledger.services import galleries
from faceledger.web.models.reviews import WorksheetIn

__all__ = ["template"]  # fixtures

pytestmark = pytest.mark.faces

SEPARATION = "review.separation_of_duties"


@dataclass
class Unit:
    agency: Agency
    sam: Session  # examiner and reviewer: runs and examines the searches
    vic: Session  # reviewer and supervisor: the blind peer reviewer
    rita: Session  # another reviewer
    sue: Session  # supervisor: approves
    aud: Session  # auditor: watches


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory, template: Path, lfw_images: Path) -> Iterator[Unit]:
    pipeline = shared_pipeline()
    with running(tmp_path_factory.mktemp("review") / "data", template, analyzer=pipeline) as agency:
        agency.load_example_policy()
        for name in (CUSTODY, PAROLE):
            galleries.create_gallery(agency.dd, name, legal_basis="PACE s.64A", source_description="LFW")
        people = {
            "gil.galleries": ("gallery_admin",),
            "sam.examiner": ("examiner", "reviewer"),
            "vic.reviewer": ("reviewer", "supervisor"),
            "rita.reviewer": ("reviewer",),
            "sue.supervisor": ("supervisor",),
            "aud.auditor": ("auditor",),
        }
        for username, roles in people.items():
            agency.add(username, *roles)
        enrol_people(agency, agency.login("gil.galleries"), lfw_images)
        yield Unit(
            agency,
            sam=agency.login("sam.examiner"),
            vic=agency.login("vic.reviewer"),
            rita=agency.login("rita.reviewer"),
            sue=agency.login("sue.supervisor"),
            aud=agency.login("aud.auditor"),
        )


def post(unit: Unit, session: Session, path: str, body: dict[str, Any] | None = None) -> Any:
    unit.agency.clock.advance(seconds=1)
    return unit.agency.client.post(f"{API}{path}", json=body or {}, headers=session.headers)


def get(unit: Unit, session: Session, path: str) -> Any:
    unit.agency.clock.advance(seconds=1)
    return unit.agency.client.get(f"{API}{path}", headers=session.headers)


def new_search(unit: Unit, lfw_images: Path) -> dict[str, Any]:
    answer = search_photo(unit.agency, unit.sam, lfw_images, "Tony_Blair", 2)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def findings(search: dict[str, Any], match: bool) -> dict[str, Any]:
    """The top candidate a possible match (with notes) or not; the rest no match."""
    out = []
    for rank, candidate in enumerate(search["candidates"]):
        if rank == 0 and match:
            out.append(
                {"face_id": candidate["face_id"], "outcome": "possible_match", "notes": "ear shape, scar"}
            )
        else:
            out.append({"face_id": candidate["face_id"], "outcome": "no_match"})
    return {"findings": out}


def assert_separation(unit: Unit, answer: Any, who: str) -> None:
    assert answer.status_code == 403, answer.text
    assert error_of(answer)["rule_id"] == SEPARATION
    recorded = audit_rows(unit.agency.dd, "policy_denied")[-1]
    assert recorded["actor"] == who
    assert recorded["details"]["decision"]["rule_id"] == SEPARATION


def test_a_lead_goes_through_blind_peer_review_to_approval(unit: Unit, lfw_images: Path) -> None:
    search = new_search(unit, lfw_images)
    sid = search["search_id"]
    examined = post(unit, unit.sam, f"/reviews/{sid}/examination", findings(search, match=True))
    assert examined.status_code == 200, examined.text
    assert examined.json()["state"] == "awaiting_peer_assessment"

    watched = get(unit, unit.aud, f"/reviews/{sid}").json()
    assert watched["examiner_findings_withheld"] is True
    assert watched["steps"][0]["findings"] == watched["steps"][0]["by"]  # both withheld

    blind = get(unit, unit.vic, f"/reviews/{sid}/peer")
    assert blind.status_code == 200
    assert blind.json()["blind"] is True
    assert blind.json()["examiner_findings"] == []
    assert [c["face_id"] for c in blind.json()["candidates"]] == [c["face_id"] for c in search["candidates"]]

    assessed = post(unit, unit.vic, f"/reviews/{sid}/peer", findings(search, match=True))
    assert assessed.status_code == 200, assessed.text
    revealed = assessed.json()
    assert revealed["blind"] is False
    assert revealed["examiner_findings"][0]["outcome"] == "possible_match"
    assert revealed["own_findings"][0]["outcome"] == "possible_match"

    verdict = post(unit, unit.vic, f"/reviews/{sid}/verdict", {"verdict": "agree", "notes": "concur"})
    assert verdict.json()["state"] == "awaiting_approval"
    approved = post(unit, unit.sue, f"/reviews/{sid}/approval", {"notes": "lead to pursue"})
    assert approved.status_code == 200
    assert approved.json()["state"] == "approved"
    assert [s["event"] for s in approved.json()["steps"]] == [
        "propose_match",
        "peer_assess",
        "peer_agree",
        "approve",
    ]
    steps = [
        e["details"]["event"] for e in audit_rows(unit.agency.dd, "review") if e["object"] == f"search:{sid}"
    ]
    assert steps == ["propose_match", "peer_assess", "peer_agree", "approve"]


def test_nobody_peer_reviews_a_search_they_ran_and_examined(unit: Unit, lfw_images: Path) -> None:
    search = new_search(unit, lfw_images)
    sid = search["search_id"]
    post(unit, unit.sam, f"/reviews/{sid}/examination", findings(search, match=True))
    assert_separation(unit, get(unit, unit.sam, f"/reviews/{sid}/peer"), "sam.examiner")
    assert_separation(
        unit, post(unit, unit.sam, f"/reviews/{sid}/peer", findings(search, True)), "sam.examiner"
    )
    assert get(unit, unit.sam, f"/reviews/{sid}").json()["state"] == "awaiting_peer_assessment"


def test_only_the_blind_reviewer_gives_the_verdict_and_no_reviewer_approves(
    unit: Unit, lfw_images: Path
) -> None:
    search = new_search(unit, lfw_images)
    sid = search["search_id"]
    post(unit, unit.sam, f"/reviews/{sid}/examination", findings(search, match=True))
    post(unit, unit.vic, f"/reviews/{sid}/peer", findings(search, match=False))
    other = post(unit, unit.rita, f"/reviews/{sid}/verdict", {"verdict": "agree"})
    assert_separation(unit, other, "rita.reviewer")
    peek = get(unit, unit.rita, f"/reviews/{sid}/peer")
    assert_separation(unit, peek, "rita.reviewer")
    disputed = post(
        unit, unit.vic, f"/reviews/{sid}/verdict", {"verdict": "disagree", "notes": "different ears"}
    )
    assert disputed.json()["state"] == "disputed"
    assert_separation(
        unit, post(unit, unit.vic, f"/reviews/{sid}/rejection", {"reason": "x"}), "vic.reviewer"
    )
    cannot = post(unit, unit.sue, f"/reviews/{sid}/approval", {})
    assert cannot.status_code == 409
    assert error_of(cannot)["code"] == "invalid_transition"
    failed = audit_rows(unit.agency.dd, "action_failed")[-1]  # not a policy decision, still recorded
    assert (failed["actor"], failed["object"]) == ("sue.supervisor", f"search:{sid}")
    assert (failed["details"]["attempted"], failed["details"]["code"]) == ("approve", "invalid_transition")
    assert failed["details"]["state"] == "disputed"
    rejected = post(unit, unit.sue, f"/reviews/{sid}/rejection", {"reason": "peer reviewer disagreed"})
    assert rejected.json()["state"] == "rejected"


def test_no_possible_match_closes_the_review(unit: Unit, lfw_images: Path) -> None:
    search = new_search(unit, lfw_images)
    sid = search["search_id"]
    closed = post(unit, unit.sam, f"/reviews/{sid}/examination", findings(search, match=False))
    assert closed.json()["state"] == "closed_no_lead"
    late = post(unit, unit.sue, f"/reviews/{sid}/approval", {})
    assert late.status_code == 409
    incomplete = {"findings": findings(search, match=False)["findings"][:1]}
    again = new_search(unit, lfw_images)
    refused = post(unit, unit.sam, f"/reviews/{again['search_id']}/examination", incomplete)
    assert len(again["candidates"]) == 3
    assert refused.status_code == 422
    assert "every candidate needs exactly one finding" in error_of(refused)["message"]


def test_the_case_history_shows_the_review_to_those_who_may_see_cases(unit: Unit, lfw_images: Path) -> None:
    search = new_search(unit, lfw_images)
    sid = search["search_id"]
    post(unit, unit.sam, f"/reviews/{sid}/examination", findings(search, match=True))
    history = get(unit, unit.aud, f"/cases/{CASE}?limit=500")
    assert history.status_code == 200
    body = history.json()
    assert sid in body["searches"]
    kinds = {e["kind"] for e in body["history"] if e["search_id"] == sid}
    assert {"search", "review"} <= kinds
    assert body["total"] >= len(body["history"])
    first_page = get(unit, unit.aud, f"/cases/{CASE}?limit=2").json()
    assert len(first_page["history"]) == 2
    assert first_page["next_offset"] == 2
    assert first_page["history"] == body["history"][:2]


def test_a_finding_carries_its_feature_worksheet_over_the_api(unit: Unit, lfw_images: Path) -> None:
    assert set(WorksheetIn.model_fields) == {feature.value for feature in Feature}  # one field each
    search = new_search(unit, lfw_images)
    sid = search["search_id"]
    body = findings(search, match=True)
    bad = {"findings": [dict(body["findings"][0], worksheet={"nose": {"comparison": "maybe"}})]}
    bad["findings"] += body["findings"][1:]
    refused = post(unit, unit.sam, f"/reviews/{sid}/examination", bad)
    assert refused.status_code == 422, refused.text
    assert "nose" in error_of(refused)["message"]
    sheet = {
        "ears": {"comparison": "similar", "notes": "attached lobes"},
        "chin": {"comparison": "not_visible"},
    }
    body["findings"][0]["worksheet"] = sheet
    examined = post(unit, unit.sam, f"/reviews/{sid}/examination", body)
    assert examined.status_code == 200, examined.text
    stored = examined.json()["steps"][0]["findings"][0]["worksheet"]
    assert stored == {"ears": sheet["ears"], "chin": {"comparison": "not_visible", "notes": ""}}
    assessed = post(unit, unit.vic, f"/reviews/{sid}/peer", findings(search, match=True))
    assert assessed.json()["examiner_findings"][0]["worksheet"]["ears"]["notes"] == "attached lobes"
    assert assessed.json()["own_findings"][0]["worksheet"] is None
