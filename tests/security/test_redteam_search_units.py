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
        agency.add("tom.traffic", "gallery_admin", unit=OTHER)
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


# --- every operation that takes an id, across units ---------------------------------------------

#: Operations whose ids name organisation-wide records, each with why another unit is no concern.
ORGANISATION_WIDE = {
    "GET /users/{username}": "accounts are the system administrators' (any unit's), or one's own",
    "PATCH /users/{username}": "accounts are the system administrators'",
    "PUT /users/{username}/roles": "accounts are the system administrators'",
    "POST /users/{username}/suspend": "accounts are the system administrators'",
    "POST /users/{username}/unsuspend": "accounts are the system administrators'",
    "PUT /users/{username}/expiry": "accounts are the system administrators'",
    "POST /users/{username}/password": "accounts are the system administrators'",
    "POST /users/{username}/totp": "accounts are the system administrators'",
    "POST /users/{username}/unlock": "accounts are the system administrators'",
    "POST /devices/{device_id}/revoke": "devices are registered and revoked by system administrators",
    "POST /devices/{device_id}/browser-enrolments": (
        "system administrators issue browser enrolments; the code is then used only by a person of the "
        "device's unit (tests/services/test_browser_devices.py)"
    ),
    "POST /tokens/{token_id}/revoke": "one's own tokens, or any as a system administrator",
    "GET /galleries/{name}": "which galleries exist, and under what legal basis, is no secret in the agency",
    "GET /audit/proofs/entries/{seq}": "the audit log is the auditors', who oversee every unit",
}


def _image_form() -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    form = {"subject_id": "S-9", "source": "custody record 9", "collected_on": "2024-05-01"}
    return form, {"image": ("s9.jpg", b"not an image", "image/jpeg")}


#: Operation -> (a person of the other unit whose role would let them, the call). Each must be
#: refused: 404 exactly as for a missing search, or 403 citing the unit rule for galleries, and
#: recorded with the rule that refused.
Call = Any
UNIT_SCOPED: dict[str, tuple[str, Call]] = {
    "GET /searches/{search_id}": (
        "tina.examiner",
        lambda c, sid, face, h: c.get(f"{API}/searches/{sid}", headers=h),
    ),
    "GET /searches/{search_id}/candidates/{face_id}": (
        "tina.examiner",
        lambda c, sid, face, h: c.get(f"{API}/searches/{sid}/candidates/{face}", headers=h),
    ),
    "GET /searches/{search_id}/candidates/{face_id}/image": (
        "ray.reviewer",
        lambda c, sid, face, h: c.get(f"{API}/searches/{sid}/candidates/{face}/image", headers=h),
    ),
    "GET /reviews/{search_id}": (
        "sue.supervisor",
        lambda c, sid, face, h: c.get(f"{API}/reviews/{sid}", headers=h),
    ),
    "POST /reviews/{search_id}/examination": (
        "tina.examiner",
        lambda c, sid, face, h: c.post(f"{API}/reviews/{sid}/examination", json=_PEER, headers=h),
    ),
    "GET /reviews/{search_id}/peer": (
        "ray.reviewer",
        lambda c, sid, face, h: c.get(f"{API}/reviews/{sid}/peer", headers=h),
    ),
    "POST /reviews/{search_id}/peer": (
        "ray.reviewer",
        lambda c, sid, face, h: c.post(f"{API}/reviews/{sid}/peer", json=_PEER, headers=h),
    ),
    "POST /reviews/{search_id}/verdict": (
        "ray.reviewer",
        lambda c, sid, face, h: c.post(f"{API}/reviews/{sid}/verdict", json={"verdict": "agree"}, headers=h),
    ),
    "POST /reviews/{search_id}/approval": (
        "sue.supervisor",
        lambda c, sid, face, h: c.post(f"{API}/reviews/{sid}/approval", json={}, headers=h),
    ),
    "POST /reviews/{search_id}/rejection": (
        "sue.supervisor",
        lambda c, sid, face, h: c.post(f"{API}/reviews/{sid}/rejection", json={"reason": "weak"}, headers=h),
    ),
    "DELETE /galleries/{name}": (
        "tom.traffic",
        lambda c, sid, face, h: c.delete(
            f"{API}/galleries/{CUSTODY}",
            params={"reason": "court_order", "authority": "Order 1", "confirm": CUSTODY},
            headers=h,
        ),
    ),
    "GET /galleries/{name}/subjects": (
        "tom.traffic",
        lambda c, sid, face, h: c.get(f"{API}/galleries/{CUSTODY}/subjects", headers=h),
    ),
    "GET /galleries/{name}/turned-down": (
        "tom.traffic",
        lambda c, sid, face, h: c.get(f"{API}/galleries/{CUSTODY}/turned-down", headers=h),
    ),
    "POST /galleries/{name}/images": (
        "tom.traffic",
        lambda c, sid, face, h: c.post(
            f"{API}/galleries/{CUSTODY}/images", data=_image_form()[0], files=_image_form()[1], headers=h
        ),
    ),
    "DELETE /galleries/{name}/subjects/{subject_id}": (
        "tom.traffic",
        lambda c, sid, face, h: c.delete(
            f"{API}/galleries/{CUSTODY}/subjects/Tony_Blair",
            params={"reason": "court_order", "authority": "Order 1"},
            headers=h,
        ),
    ),
    "POST /users/{username}/vouch": (
        "sue.supervisor",
        lambda c, sid, face, h: c.post(f"{API}/users/sam.examiner/vouch", headers=h),
    ),
    "GET /cases/{case_number}": (
        "tina.examiner",
        lambda c, sid, face, h: c.get(f"{API}/cases/{CASE}", headers=h),
    ),
}
_PEER: dict[str, Any] = {"findings": [{"face_id": 1, "outcome": "no_match"}]}


def test_every_operation_that_takes_an_id_is_checked_across_units(units: Units) -> None:
    """A new route with an id fails here until it is scoped below or said to be organisation-wide."""
    spec = units.agency.client.get("/openapi.json").json()
    with_ids = {
        f"{method.upper()} {path.removeprefix(API)}"
        for path, operations in spec["paths"].items()
        if "{" in path
        for method in operations
    }
    assert with_ids == UNIT_SCOPED.keys() | ORGANISATION_WIDE.keys()
    assert not UNIT_SCOPED.keys() & ORGANISATION_WIDE.keys()


@pytest.mark.parametrize("operation", sorted(UNIT_SCOPED))
def test_another_unit_is_refused_every_operation_on_this_units_records(units: Units, operation: str) -> None:
    agency, search = units.agency, units.search
    sid, face = search["search_id"], search["candidates"][0]["face_id"]
    who, call = UNIT_SCOPED[operation]
    before = len(audit_rows(agency.dd, "policy_denied"))
    answer = call(agency.client, sid, face, units.login(who).headers)
    denials = [d for d in audit_rows(agency.dd, "policy_denied")[before:] if d["actor"] == who]
    rules = {d["details"].get("decision", {}).get("rule_id") or d["details"].get("rule_id") for d in denials}
    if operation == "GET /cases/{case_number}":
        # A case number is shared by units (it is the agency's); another unit sees its own part only.
        assert answer.status_code in (200, 404), answer.text
        if answer.status_code == 200:
            assert sid not in answer.json()["searches"]
        return
    if operation.startswith(("GET /searches", "GET /reviews", "POST /reviews")):
        assert answer.status_code == 404, answer.text
        assert "scope.other_unit" in rules, (operation, denials)
        absent = call(agency.client, MISSING, face, units.login(who).headers)
        assert _not_there(answer, sid) == _not_there(absent, MISSING), operation
    else:
        assert answer.status_code == 403, answer.text
        assert rules, (operation, denials)
        assert rules <= {"scope.other_unit", "accounts.vouch.other_unit", "gallery.admin_unit_not_allowed"}
