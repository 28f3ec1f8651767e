"""The review pages (TestClient) on real searches: examiner -> blind peer -> supervisor, and refusals.

Each person signs in on the page; the searches are made over the API (a page search is another
engineer's page). The sign-off steps need the password and a fresh TOTP code on the form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from pages_helpers import LOCAL, csrf_of, sign_in
from web_helpers import (
    CUSTODY,
    PAROLE,
    PASSWORD,
    UNIT,
    Agency,
    Clock,
    Session,
    audit_rows,
    enrol_people,
    open_installation,
    search_photo,
    shared_pipeline,
    template,
)

from faceledger.services import galleries
from faceledger.services.devices import DEVICE_HEADER
from faceledger.web import create_app

__all__ = ["template"]  # fixtures

pytestmark = pytest.mark.faces

SAM, VIC, RITA, SUE, GIL = "sam.examiner", "vic.reviewer", "rita.reviewer", "sue.supervisor", "gil.galleries"
SEPARATION = "review.separation_of_duties"
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


@dataclass
class Unit:
    agency: Agency
    sam: Session


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory, template: Path, lfw_images: Path) -> Iterator[Unit]:
    clock = Clock()
    dd = open_installation(tmp_path_factory.mktemp("review-pages") / "data", template)
    try:
        app = create_app(dd, analyzer=shared_pipeline(), clock=clock)
        with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client:
            agency = Agency.start(client, dd, clock)
            # The unit's workstation: every request (pages too) comes with its device credential, as
            # a browser's session bound to its device by WebAuthn does (test_web_devices.py).
            client.headers[DEVICE_HEADER] = agency.device_of(UNIT)
            agency.load_example_policy()
            for name in (CUSTODY, PAROLE):
                galleries.create_gallery(dd, name, legal_basis="PACE s.64A", source_description="LFW")
            people = {
                GIL: ("gallery_admin",),
                SAM: ("examiner", "reviewer"),
                VIC: ("reviewer", "supervisor"),
                RITA: ("reviewer",),
                SUE: ("supervisor",),
            }
            for username, roles in people.items():
                agency.add(username, *roles)
            enrol_people(agency, agency.login(GIL), lfw_images)
            yield Unit(agency, agency.login(SAM))
    finally:
        dd.close()


def new_search(unit: Unit, lfw_images: Path) -> tuple[int, list[int]]:
    unit.agency.client.cookies.clear()
    answer = search_photo(unit.agency, unit.sam, lfw_images, "Tony_Blair", 2)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return int(body["search_id"]), [int(c["face_id"]) for c in body["candidates"]]


def as_person(unit: Unit, username: str) -> None:
    unit.agency.client.cookies.clear()
    assert sign_in(unit.agency, username).status_code == 303


def page(unit: Unit, path: str) -> httpx2.Response:
    unit.agency.clock.advance(seconds=1)
    return unit.agency.client.get(path)


def post(unit: Unit, path: str, form_page: str, data: dict[str, str]) -> httpx2.Response:
    """Post ``data`` with the CSRF token of ``form_page`` (fetched first, as a browser has it)."""
    token = csrf_of(page(unit, form_page))
    unit.agency.clock.advance(seconds=31)  # a fresh TOTP step for re-authentication
    return unit.agency.client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def reauth(unit: Unit, username: str, *, password: str = PASSWORD) -> dict[str, str]:
    unit.agency.clock.advance(seconds=31)
    code = unit.agency.code(username)
    assert code is not None
    return {"password": password, "totp": code}


def findings(faces: list[int], *, match: bool, worksheet: bool = False) -> dict[str, str]:
    data: dict[str, str] = {}
    for rank, face in enumerate(faces):
        if rank == 0 and match:
            data[f"outcome-{face}"] = "possible_match"
            data[f"notes-{face}"] = "ear shape and a scar over the left eyebrow"
        else:
            data[f"outcome-{face}"] = "no_match"
    if worksheet:
        top = faces[0]
        data[f"ws-{top}-ears"] = "similar"
        data[f"ws-notes-{top}-ears"] = "lobe attached, same helix"
        data[f"ws-{top}-scars_marks_tattoos"] = "similar"
        data[f"ws-notes-{top}-scars_marks_tattoos"] = HOSTILE
        data[f"ws-{top}-hairline"] = "not_visible"
    return data


def flat(response: httpx2.Response) -> str:
    return " ".join(response.text.split())


def assert_refused(answer: httpx2.Response, status: int, *needles: str) -> None:
    assert answer.status_code == status, answer.text
    assert "text/html" in answer.headers["content-type"]
    assert "Traceback" not in answer.text
    for needle in needles:
        assert needle in answer.text, (needle, answer.text)


def last_denial(unit: Unit) -> dict[str, Any]:
    return audit_rows(unit.agency.dd, "policy_denied")[-1]


def test_examiner_blind_peer_and_supervisor_on_the_pages(unit: Unit, lfw_images: Path) -> None:
    sid, faces = new_search(unit, lfw_images)
    review = f"/reviews/{sid}"

    as_person(unit, SAM)
    opened = page(unit, review)
    assert opened.status_code == 200, opened.text
    assert "Your examination" in opened.text
    assert f'name="outcome-{faces[0]}"' in opened.text
    assert f'name="ws-{faces[0]}-face_shape"' in opened.text
    examined = post(unit, f"{review}/examination", review, findings(faces, match=True, worksheet=True))
    assert examined.status_code == 303, examined.text
    after = page(unit, review)
    assert "awaiting peer assessment" in after.text
    assert "lobe attached, same helix" in after.text  # the worksheet is shown with the finding
    assert "<script>alert" not in after.text
    assert "&lt;script&gt;alert" in after.text
    stored = [e["details"] for e in audit_rows(unit.agency.dd, "review") if e["object"] == f"search:{sid}"][
        -1
    ]
    sheet = stored["details"]["findings"][0]["worksheet"]
    assert sheet["ears"] == {"comparison": "similar", "notes": "lobe attached, same helix"}
    assert set(sheet) == {"hairline", "ears", "scars_marks_tattoos"}  # blank rows are left out

    as_person(unit, VIC)
    overview = page(unit, review)
    assert "withheld until the blind peer assessment" in overview.text
    assert "ear shape and a scar" not in overview.text
    blind = page(unit, f"{review}/peer")
    assert blind.status_code == 200, blind.text
    assert "Blind review" in blind.text
    assert "ear shape and a scar" not in blind.text
    assert "lobe attached" not in blind.text
    assessed = post(unit, f"{review}/peer", f"{review}/peer", findings(faces, match=True))
    assert assessed.status_code == 303, assessed.text
    revealed = page(unit, f"{review}/peer")
    assert "ear shape and a scar" in revealed.text  # only now the examiner's finding
    assert "Your verdict" in revealed.text
    verdict = post(
        unit,
        f"{review}/verdict",
        f"{review}/peer",
        {"verdict": "agree", "notes": "concur: ear and scar", **reauth(unit, VIC)},
    )
    assert verdict.status_code == 303, verdict.text
    assert "concur: ear and scar" in page(unit, review).text

    as_person(unit, SUE)
    pending = page(unit, review)
    assert "Supervisor's decision" in pending.text
    assert 'value="approve"' in pending.text
    approved = post(
        unit,
        f"{review}/decision",
        review,
        {"decision": "approve", "notes": "pursue as a lead", **reauth(unit, SUE)},
    )
    assert approved.status_code == 303, approved.text
    done = flat(page(unit, review))
    assert 'State: <strong class="state">approved</strong>' in done
    assert "pursue as a lead" in done
    assert "concur: ear and scar" in done
    assert "lobe attached" in done
    events = [
        e["details"]["event"] for e in audit_rows(unit.agency.dd, "review") if e["object"] == f"search:{sid}"
    ]
    assert events == ["propose_match", "peer_assess", "peer_agree", "approve"]
    # The case page shows each step's notes and the worksheet too.
    link = re.search(r'href="(/cases/[^"]+)"', page(unit, review).text)
    assert link is not None
    case = flat(page(unit, link.group(1)))
    assert "ears: similar (lobe attached, same helix)" in case
    assert "concur: ear and scar" in case
    assert "pursue as a lead" in case
    assert f'<a href="/reviews/{sid}">{sid}</a>' in case
    reauthed = [
        e["actor"]
        for e in audit_rows(unit.agency.dd, "account_changed")
        if e["details"]["change"] == "reauthenticated"
    ]
    assert reauthed[-2:] == [VIC, SUE]


def test_refusals_show_the_rule_and_reason_and_are_recorded(unit: Unit, lfw_images: Path) -> None:
    sid, faces = new_search(unit, lfw_images)
    review = f"/reviews/{sid}"

    # Wrong role: a supervisor-only account may not examine.
    as_person(unit, SUE)
    refused = post(unit, f"{review}/examination", review, findings(faces, match=True))
    assert_refused(refused, 403, "Rule:")
    assert last_denial(unit)["actor"] == SUE

    # Missing CSRF token: refused before anything else, nothing recorded as a step.
    as_person(unit, SAM)
    no_token = unit.agency.client.post(
        f"{review}/examination", data=findings(faces, match=True), follow_redirects=False
    )
    assert_refused(no_token, 403, "security token")
    # A finding missing for a candidate: a clear page, not a trace.
    partial = post(unit, f"{review}/examination", review, {f"outcome-{faces[0]}": "no_match"})
    assert_refused(partial, 422, f"candidate face {faces[1]}")
    bad_sheet = findings(faces, match=True) | {f"ws-{faces[0]}-nose": "maybe"}
    assert_refused(post(unit, f"{review}/examination", review, bad_sheet), 422, "nose needs a comparison")
    escape = findings(faces, match=True) | {f"notes-{faces[0]}": "ear shape \x1b[31m"}
    assert_refused(post(unit, f"{review}/examination", review, escape), 422, "control")
    assert post(unit, f"{review}/examination", review, findings(faces, match=True)).status_code == 303

    # Separation of duties: the examiner may not peer-review their own search.
    assert_refused(page(unit, f"{review}/peer"), 403, SEPARATION, "may not peer-review")
    assert last_denial(unit)["details"]["decision"]["rule_id"] == SEPARATION

    as_person(unit, VIC)
    assert post(unit, f"{review}/peer", f"{review}/peer", findings(faces, match=True)).status_code == 303
    # Wrong password at re-authentication: refused with the reason, recorded, no step taken.
    failures = len(audit_rows(unit.agency.dd, "sign_in_failed"))
    wrong = post(
        unit,
        f"{review}/verdict",
        f"{review}/peer",
        {"verdict": "agree", **reauth(unit, VIC, password="not the password")},
    )
    assert_refused(wrong, 403, "re-authentication failed")
    failed = audit_rows(unit.agency.dd, "sign_in_failed")
    assert len(failed) == failures + 1
    assert (failed[-1]["actor"], failed[-1]["details"]["reason"]) == (VIC, "reauth_wrong_password")
    wrong_code = post(
        unit,
        f"{review}/verdict",
        f"{review}/peer",
        {"verdict": "agree", "password": PASSWORD, "totp": "000000"},
    )
    assert_refused(wrong_code, 403, "re-authentication failed")
    assert "awaiting peer verdict" in page(unit, review).text
    verdict = {"verdict": "disagree", "notes": "different ears", **reauth(unit, VIC)}
    assert post(unit, f"{review}/verdict", f"{review}/peer", verdict).status_code == 303

    # The peer reviewer may not also decide on it, however they re-authenticate.
    decided = post(
        unit, f"{review}/decision", review, {"decision": "reject", "notes": "x", **reauth(unit, VIC)}
    )
    assert_refused(decided, 403, SEPARATION, "may not approve or reject")
    # Another reviewer may not take over the peer review.
    as_person(unit, RITA)
    assert_refused(page(unit, f"{review}/peer"), 403, SEPARATION)

    as_person(unit, SUE)
    disputed = page(unit, review)
    assert 'value="approve"' not in disputed.text  # a disputed lead can only be rejected
    no_reason = post(unit, f"{review}/decision", review, {"decision": "reject", **reauth(unit, SUE)})
    assert_refused(no_reason, 422, "needs a reason")
    rejected = post(
        unit, f"{review}/decision", review, {"decision": "reject", "notes": HOSTILE, **reauth(unit, SUE)}
    )
    assert rejected.status_code == 303, rejected.text
    closed = page(unit, review)
    assert "rejected" in closed.text
    assert "&lt;img src=x" in closed.text
    assert "<img src=x" not in closed.text


def test_the_home_queues_link_to_the_review_pages(unit: Unit, lfw_images: Path) -> None:
    sid, _ = new_search(unit, lfw_images)
    as_person(unit, SAM)
    home = page(unit, "/")
    assert re.search(rf'<a href="/reviews/{sid}">{sid}</a>', home.text), home.text


def test_bad_search_ids_and_signed_out_visits_get_pages(unit: Unit) -> None:
    unit.agency.client.cookies.clear()
    away = unit.agency.client.get("/reviews/1", follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"].startswith("/signin")
    as_person(unit, SAM)
    for bad in ("/reviews/0", "/reviews/abc", "/reviews/99999999"):
        answer = page(unit, bad)
        assert answer.status_code in (404, 422), (bad, answer.text)
        assert "text/html" in answer.headers["content-type"]
        assert "Traceback" not in answer.text


def test_the_comparison_viewer_streams_both_images_through_the_recording_services(
    unit: Unit, lfw_images: Path
) -> None:
    sid, faces = new_search(unit, lfw_images)
    as_person(unit, SAM)
    viewer = page(unit, f"/reviews/{sid}/compare/{faces[0]}")
    assert viewer.status_code == 200, viewer.text
    assert 'type="module" src="/static/faceledger/compare.js"' in viewer.text
    assert "<script>" not in viewer.text  # the CSP allows no inline script
    for label in ('for="zoom"', 'for="opacity"', 'for="wipe"', "Keyboard shortcuts"):
        assert label in viewer.text
    viewed = len(audit_rows(unit.agency.dd, "candidate_viewed"))
    probe = page(unit, f"/reviews/{sid}/probe-image")
    assert probe.status_code == 200, probe.text
    assert probe.headers["content-type"] == "image/png"
    assert probe.headers["cache-control"] == "no-store"
    assert probe.content.startswith(b"\x89PNG")
    recorded = audit_rows(unit.agency.dd, "probe_viewed")[-1]
    assert (recorded["actor"], recorded["object"]) == (SAM, f"search:{sid}")
    photo = page(unit, f"/reviews/{sid}/compare/{faces[0]}/candidate-image")
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["cache-control"] == "no-store"
    assert len(audit_rows(unit.agency.dd, "candidate_viewed")) == viewed + 1
    # Not a candidate of this search: a clear page.
    assert_refused(page(unit, f"/reviews/{sid}/compare/999999"), 404, "not a candidate")
    as_person(unit, GIL)  # a gallery administrator may not see cases: refused, with its rule
    assert_refused(page(unit, f"/reviews/{sid}/probe-image"), 403, "Rule:")
    assert last_denial(unit)["actor"] == GIL
