"""The browser-device pages over HTTP (TestClient at http://localhost) with a software authenticator.

The administrator's code from the API route, enrolment and confirmation through the four JSON
POSTs the page's script makes (CSRF header, a signed-in page session), the session cookie
replaced when the session is bound, and the refusals: no session, no CSRF token, a host that is
not the relying-party id, a wrong role for the API route. The real browser does the same in
test_web_browser.py with Chromium's virtual authenticator.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pages_helpers import csrf_of, page_agency, sign_in
from soft_authenticator import SoftAuthenticator
from web_helpers import API, DEVICE, Agency, audit_rows, template

from faceledger.config import WebSettings, load_settings
from faceledger.domain.roles import Role
from faceledger.errors import AuthenticationError, ConfigError
from faceledger.services import accounts
from faceledger.services.browser_devices import CEREMONY_SECONDS, Ceremony
from faceledger.web.pages.session import Ceremonies

__all__ = ["template"]  # fixtures

EVE = "eve.examiner"
LOCALHOST = "http://localhost"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template, base_url=LOCALHOST) as made:
        made.add(EVE, Role.EXAMINER)
        yield made


def _challenge(options: dict[str, object]) -> bytes:
    text = str(options["challenge"])
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _issue(agency: Agency) -> str:
    admin = agency.login("ada.admin", device=None)
    answer = agency.client.post(f"{API}/devices/{DEVICE}/browser-enrolments", headers=admin.headers)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["device_id"] == DEVICE
    assert body["enrol_at"] == "/devices/enrol"
    code: str = body["code"]
    return code


def _csrf(agency: Agency, path: str = "/") -> dict[str, str]:
    page = agency.client.get(path)
    assert page.status_code == 200, page.text
    return {"X-CSRF-Token": csrf_of(page)}


def test_enrolment_and_confirmation_bind_the_page_session_to_the_device(agency: Agency) -> None:
    code = _issue(agency)
    assert sign_in(agency, EVE).status_code == 303
    home = agency.client.get("/")
    assert "Confirm this browser&#39;s device" in home.text or "Confirm this browser's device" in home.text
    key = SoftAuthenticator(origin=LOCALHOST)
    headers = _csrf(agency, "/devices/enrol")
    options = agency.client.post("/devices/enrol/options", data={"code": code}, headers=headers)
    assert options.status_code == 200, options.text
    assert options.json()["rp"]["id"] == "localhost"
    assert options.json()["authenticatorSelection"]["userVerification"] == "preferred"
    created = key.create(_challenge(options.json()))
    finished = agency.client.post("/devices/enrol/finish", content=created, headers=headers)
    assert finished.status_code == 200, finished.text
    assert finished.json() == {"device_id": DEVICE}

    old_token = agency.client.cookies["faceledger_session"]
    headers = _csrf(agency)
    options = agency.client.post("/devices/confirm/options", headers=headers)
    assert options.status_code == 200, options.text
    assert [c["id"] for c in options.json()["allowCredentials"]] == [json.loads(created)["id"]]
    confirmed = agency.client.post(
        "/devices/confirm/finish", content=key.get(_challenge(options.json())), headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    new_token = agency.client.cookies["faceledger_session"]
    assert new_token != old_token
    home = agency.client.get("/")
    assert f'<dd class="device">{DEVICE}</dd>' in home.text
    assert "Confirm this browser" not in home.text
    actor = accounts.principal_from_token(agency.dd, new_token, None, now=agency.clock.now, page=True).actor
    assert actor.device_id == DEVICE
    with pytest.raises(AuthenticationError, match="unknown session"):
        accounts.principal_from_token(agency.dd, old_token, None, now=agency.clock.now, page=True)
    changes = [r["details"]["change"] for r in audit_rows(agency.dd, "account_changed")]
    assert {"browser_enrolment_issued", "browser_enrolled", "browser_device_confirmed"} <= set(changes)

    # The challenge was taken: the same answer again finds nothing waiting, and is recorded.
    again = agency.client.post("/devices/confirm/finish", content=key.get(b"x"), headers=_csrf(agency))
    assert again.status_code == 403
    assert "no challenge is waiting" in again.json()["error"]


def test_the_device_posts_need_a_page_session_and_its_csrf_token(agency: Agency) -> None:
    assert agency.client.get("/devices/enrol", follow_redirects=False).headers["location"] == "/signin"
    stranger = agency.client.post("/devices/confirm/options")
    assert stranger.status_code == 401
    assert stranger.json()["error"] == "sign in first"
    assert sign_in(agency, EVE).status_code == 303
    forged = agency.client.post("/devices/enrol/options", data={"code": "fle_x"})
    assert forged.status_code == 403
    nothing = agency.client.post("/devices/confirm/options", headers=_csrf(agency))
    assert nothing.status_code == 404
    assert "not a registered device" in nothing.json()["error"]
    huge = agency.client.post(
        "/devices/enrol/options", data={"code": "fle_" + "x" * 300}, headers=_csrf(agency)
    )
    assert huge.status_code == 422
    assert "at most 128" in huge.json()["error"]
    wrong = agency.client.post(
        "/devices/enrol/options", data={"code": "fle_\x1b[2Jnope"}, headers=_csrf(agency)
    )
    assert wrong.status_code == 403
    assert "unknown browser enrolment code" in wrong.json()["error"]


def test_a_host_that_is_not_the_rp_id_is_refused_with_the_reason(tmp_path: Path, template: Path) -> None:
    with page_agency(tmp_path / "data", template) as agency:  # http://127.0.0.1
        agency.add(EVE, Role.EXAMINER)
        assert sign_in(agency, EVE).status_code == 303
        answer = agency.client.post("/devices/enrol/options", data={"code": "fle_x"}, headers=_csrf(agency))
        assert answer.status_code == 422
        assert "made for 'localhost' ([web] rp_id" in answer.json()["error"]


def test_only_a_system_administrator_issues_a_code_over_the_api(agency: Agency) -> None:
    eve = agency.login(EVE)
    refused = agency.client.post(f"{API}/devices/{DEVICE}/browser-enrolments", headers=eve.headers)
    assert refused.status_code == 403
    assert "register_device" in refused.text
    admin = agency.login("ada.admin", device=None)
    missing = agency.client.post(f"{API}/devices/nowhere/browser-enrolments", headers=admin.headers)
    assert missing.status_code == 404


def test_the_relying_party_settings_are_checked_with_their_reason(tmp_path: Path) -> None:
    chosen = load_settings(
        tmp_path,
        env={
            "FACELEDGER_WEB__RP_ID": "fl.agency.example",
            "FACELEDGER_WEB__ORIGIN": "https://fl.agency.example",
        },
    )
    assert chosen.web.rp_id == "fl.agency.example"
    assert chosen.web.origin == "https://fl.agency.example"
    assert load_settings(tmp_path, env={}).web.rp_id == "localhost"
    for rp_id in ("https://fl.example", "fl.example:443", "FL.example", "fl example", ""):
        with pytest.raises(ConfigError, match=r"web\.rp_id"):
            WebSettings(rp_id=rp_id)
    for origin in (
        "http://fl.example",  # plain HTTP only for localhost
        "https://evil.example",  # not under the rp id
        "https://fl.example.evil",
        "https://fl.example/path",
        "ftp://fl.example",
    ):
        with pytest.raises(ConfigError, match=r"web\.origin"):
            WebSettings(rp_id="fl.example", origin=origin)
    assert WebSettings(rp_id="fl.example", origin="https://pages.fl.example:8443").origin


def test_unanswered_challenges_are_dropped_once_expired() -> None:
    ceremonies = Ceremonies()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def made(session_id: int, at: datetime) -> Ceremony:
        expires = at + timedelta(seconds=CEREMONY_SECONDS)
        return Ceremony("confirm", session_id, b"c", "{}", expires)

    ceremonies.put(made(1, start), start)
    ceremonies.put(made(2, start), start)
    assert ceremonies.waiting() == 2
    later = start + timedelta(seconds=CEREMONY_SECONDS + 1)
    ceremonies.put(made(3, later), later)
    assert ceremonies.waiting() == 1
    assert ceremonies.take(1) is None
    taken = ceremonies.take(3)
    assert taken is not None
    assert taken.session_id == 3
    assert ceremonies.take(3) is None  # answered at most once
