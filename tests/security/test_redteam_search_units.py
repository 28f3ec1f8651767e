"""Red team: one unit's searches, candidates, photos, cases and reviews are nothing to another unit.

The hole: an examiner of another unit read the facial identification unit's search, its
candidates and their gallery photos, the case and the review, and closed that unit's lead
as "no match". Now every one of those routes answers another unit's people exactly as it
answers for a search that does not exist (404, the same message), records the attempt with
rule ``scope.other_unit``, and lets nobody of another unit act on the review. Auditors,
who oversee every unit, may read (never act).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from web_helpers import (
    API,
    CASE,
    CUSTODY,
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

from faceledger.services import galleries

__all__ = ["template"]  # fixtures

pytestmark = pytest.mark.faces

OTHER = "traffic"
MISSING = 999_999


@dataclass
class Units:
    agency: Agency
    search: dict[str, Any]  # the facial identification unit's search

    def login(self, username: str) -> Session:
        return self.agency.login(username)


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory, template: Path, lfw_images: Path) -> Iterator[Units]:
    pipeline = shared_pipeline()
    with running(tmp_path_factory.mktemp("search-units") / "data", template, analyzer=pipeline) as agency:
        agency.load_example_policy()
        galleries.create_gallery(agency.dd, CUSTODY, legal_basis="PACE s.64A", source_description="LFW")
        agency.add("gil.galleries", "gallery_admin")
        agency.add("sam.examiner", "examiner")
        for username, role in (("tina.examiner", "examiner"), ("ray.reviewer", "reviewer")):
            agency.add(username, role, unit=OTHER)
        agency.add("sue.supervisor", "supervisor", unit=OTHER)
        agency.add("aud.auditor", "auditor", unit="professional-standards")
        enrol_people(agency, agency.login("gil.galleries"), lfw_images)
        answer = search_photo(agency, agency.login("sam.examiner"), lfw_images, "Tony_Blair", 2)
        assert answer.status_code == 201, answer.text
        yield Units(agency, answer.json())


def _reads(search: dict[str, Any], sid: int) -> list[str]:
    face = search["candidates"][0]["face_id"]
    return [
        f"/searches/{sid}",
        f"/searches/{sid}/candidates/{face}",
        f"/searches/{sid}/candidates/{face}/image",
        f"/reviews/{sid}",
        f"/reviews/{sid}/peer",
    ]


def _no_match(search: dict[str, Any]) -> dict[str, Any]:
    return {"findings": [{"face_id": c["face_id"], "outcome": "no_match"} for c in search["candidates"]]}


def _not_there(answer: httpx2.Response, sid: int) -> str:
    assert answer.status_code == 404, answer.text
    message = str(error_of(answer)["message"])
    assert str(sid) in message
    return message.replace(str(sid), "N")


@pytest.mark.parametrize("who", ["tina.examiner", "ray.reviewer", "sue.supervisor"])
def test_another_unit_reads_nothing_of_the_search_and_it_looks_absent(units: Units, who: str) -> None:
    agency, search = units.agency, units.search
    sid = search["search_id"]
    session = units.login(who)
    for ours, missing in zip(_reads(search, sid), _reads(search, MISSING), strict=True):
        before = len(audit_rows(agency.dd, "policy_denied"))
        answer = agency.client.get(f"{API}{ours}", headers=session.headers)
        absent = agency.client.get(f"{API}{missing}", headers=session.headers)
        denials = audit_rows(agency.dd, "policy_denied")[before:]
        rules = {d["details"]["decision"]["rule_id"] for d in denials if d["actor"] == who}
        if answer.status_code == 403:
            # The role does not permit it (the peer list is a reviewer's): refused before anyone
            # looks the search up, so the answer is the same whether or not it exists.
            assert answer.json() == absent.json(), ours
            assert error_of(answer)["rule_id"] == "role.not_permitted", ours
            assert rules == {"role.not_permitted"}, (ours, denials)
        else:
            assert _not_there(answer, sid) == _not_there(absent, MISSING), ours
            assert "scope.other_unit" in rules, (ours, denials)


def test_another_units_examiner_cannot_close_the_lead(units: Units) -> None:
    agency, search = units.agency, units.search
    sid = search["search_id"]
    closed = agency.client.post(
        f"{API}/reviews/{sid}/examination",
        json=_no_match(search),
        headers=units.login("tina.examiner").headers,
    )
    _not_there(closed, sid)
    review = agency.client.get(f"{API}/reviews/{sid}", headers=units.login("sam.examiner").headers)
    assert review.status_code == 200, review.text
    assert review.json()["state"] == "awaiting_examination"
    assert [s for s in audit_rows(agency.dd, "review") if s["object"] == f"search:{sid}"] == []


def test_the_case_history_of_another_unit_leaves_the_search_out(units: Units) -> None:
    agency, sid = units.agency, units.search["search_id"]
    theirs = agency.client.get(f"{API}/cases/{CASE}", headers=units.login("tina.examiner").headers)
    if theirs.status_code == 200:
        assert sid not in theirs.json()["searches"]
        assert all(entry["search_id"] != sid for entry in theirs.json()["history"])
    else:
        assert theirs.status_code == 404, theirs.text
    ours = agency.client.get(f"{API}/cases/{CASE}", headers=units.login("sam.examiner").headers)
    assert ours.status_code == 200, ours.text
    assert sid in ours.json()["searches"]


def test_an_auditor_of_any_unit_reads_the_search_but_cannot_act_on_it(units: Units) -> None:
    agency, search = units.agency, units.search
    sid = search["search_id"]
    aud = units.login("aud.auditor")
    for path in (f"/searches/{sid}", f"/reviews/{sid}", f"/cases/{CASE}"):
        answer = agency.client.get(f"{API}{path}", headers=aud.headers)
        assert answer.status_code == 200, (path, answer.text)
    acted = agency.client.post(
        f"{API}/reviews/{sid}/examination", json=_no_match(search), headers=aud.headers
    )
    assert acted.status_code in (403, 404), acted.text
