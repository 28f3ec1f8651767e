"""Sign-in over HTTP, on SQLite and on the real PostgreSQL server: bootstrap, sessions, devices, tokens.

Every refusal is checked twice: the client gets a clear JSON error, and the audit log
recorded the attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_helpers import (
    ADMIN,
    API,
    DEVICE,
    ORG,
    PASSWORD,
    VOUCHER,
    Agency,
    Clock,
    Session,
    audit_rows,
    backend_url,
    error_of,
    open_installation,
    running,
    template,
)

from faceledger.services import accounts
from faceledger.services.devices import DEVICE_HEADER
from faceledger.web import create_app

__all__ = ["backend_url", "template"]  # fixtures


@pytest.fixture
def agency(tmp_path: Path, template: Path, backend_url: str | None) -> Iterator[Agency]:
    with running(tmp_path / "data", template, database_url=backend_url) as started:
        yield started


def test_the_first_administrator_is_made_with_the_one_time_secret_only(
    tmp_path: Path, template: Path, backend_url: str | None
) -> None:
    dd = open_installation(tmp_path / "data", template, backend_url)
    try:
        with TestClient(create_app(dd, clock=Clock())) as client:
            assert client.get(f"{API}/auth/bootstrap").json() == {"needed": True}
            secret = accounts.bootstrap_admin(dd)
            claim = {"username": ADMIN, "password": PASSWORD, "organisation": ORG, "unit": "IT"}
            wrong = client.post(f"{API}/auth/bootstrap", json={**claim, "secret": "flb_guess"})
            assert wrong.status_code == 401
            assert "bootstrap secret is wrong" in error_of(wrong)["message"]
            assert audit_rows(dd, "sign_in_failed")[-1]["details"]["reason"] == "bootstrap_wrong"

            made = client.post(f"{API}/auth/bootstrap", json={**claim, "secret": secret})
            assert made.status_code == 201
            assert made.json()["user"]["roles"] == ["system_admin"]
            assert made.json()["totp_uri"].startswith("otpauth://totp/")
            assert client.get(f"{API}/auth/bootstrap").json() == {"needed": False}

            again = client.post(
                f"{API}/auth/bootstrap", json={**claim, "secret": secret, "username": "eve.x"}
            )
            assert again.status_code == 409
            assert error_of(again)["code"] == "conflict"
    finally:
        dd.close()


def test_sign_in_gives_a_session_bound_to_the_device(agency: Agency) -> None:
    session = agency.login(ADMIN)
    me = agency.client.get(f"{API}/auth/me", headers=session.headers)
    assert me.status_code == 200
    assert me.json()["username"] == ADMIN
    assert me.json()["device_id"] == DEVICE
    assert me.json()["via"] == "session"
    assert me.json()["mfa_verified"] is True
    assert audit_rows(agency.dd, "sign_in")[-1]["details"]["device_id"] == DEVICE

    without_device = Session(ADMIN, session.token, None)
    assert agency.client.get(f"{API}/auth/me", headers=without_device.headers).json()["device_id"] is None


def test_wrong_credentials_are_refused_alike_and_lock_the_account(agency: Agency) -> None:
    agency.add("eve.examiner", "examiner")
    answers = [
        agency.client.post(f"{API}/auth/login", json={"username": name, "password": "not the password!!"})
        for name in ("nobody.here", "eve.examiner", "eve.examiner", "eve.examiner")
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 401]
    assert error_of(answers[0])["message"] == error_of(answers[1])["message"] == "wrong username or password"
    assert answers[0].headers["WWW-Authenticate"] == "Bearer"
    assert error_of(answers[3])["message"] == "wrong username or password"  # locking says nothing more
    reasons = [row["details"]["reason"] for row in audit_rows(agency.dd, "sign_in_failed")]
    assert reasons[-4:] == ["unknown_user", "wrong_password", "wrong_password", "wrong_password"]
    assert audit_rows(agency.dd, "account_changed")[-1]["details"]["change"] == "locked"
    agency.clock.advance(seconds=31)
    right = agency.client.post(
        f"{API}/auth/login",
        json={"username": "eve.examiner", "password": PASSWORD, "totp": agency.code("eve.examiner")},
    )
    assert right.status_code == 401
    assert error_of(right)["message"] == "wrong username or password"  # as for an unknown username


def test_a_role_that_searches_needs_its_second_factor(agency: Agency) -> None:
    agency.add("eve.examiner", "examiner")
    refused = agency.client.post(f"{API}/auth/login", json={"username": "eve.examiner", "password": PASSWORD})
    assert refused.status_code == 401
    assert "authenticator" in error_of(refused)["message"]
    assert audit_rows(agency.dd, "sign_in_failed")[-1]["details"]["reason"] == "totp_missing"
    wrong = agency.client.post(
        f"{API}/auth/login", json={"username": "eve.examiner", "password": PASSWORD, "totp": "000000"}
    )
    assert wrong.status_code == 401
    assert agency.login("eve.examiner").token.startswith("fls_")


def test_a_session_shown_from_another_device_is_refused_as_copied(agency: Agency) -> None:
    admin = agency.login(ADMIN)
    other = agency.client.post(
        f"{API}/devices", json={"device_id": "ws-02", "name": "Lab 2", "unit": "IT"}, headers=admin.headers
    ).json()["credential"]
    copied = Session(ADMIN, admin.token, other)
    refused = agency.client.get(f"{API}/auth/me", headers=copied.headers)
    assert refused.status_code == 401
    assert "cannot be used from device 'ws-02'" in error_of(refused)["message"]
    assert audit_rows(agency.dd, "policy_denied")[-1]["details"]["attempted"] == "use_session"

    wrong_secret = Session(ADMIN, admin.token, f"{DEVICE}:fld_wrong")
    answer = agency.client.get(f"{API}/auth/me", headers=wrong_secret.headers)
    assert answer.status_code == 200
    assert answer.json()["device_id"] is None  # the request goes on as from no device...
    assert audit_rows(agency.dd, "policy_denied")[-1]["details"]["attempted"] == "use_device"  # ...recorded

    malformed = agency.client.get(f"{API}/auth/me", headers={**admin.headers, DEVICE_HEADER: "no-colon"})
    assert malformed.status_code == 422
    assert error_of(malformed)["code"] == "invalid_input"


def test_signing_out_ends_the_session(agency: Agency) -> None:
    session = agency.login(ADMIN)
    assert agency.client.post(f"{API}/auth/logout", headers=session.headers).status_code == 204
    after = agency.client.get(f"{API}/auth/me", headers=session.headers)
    assert after.status_code == 401
    assert "session was ended" in error_of(after)["message"]
    assert audit_rows(agency.dd, "account_changed")[-1]["details"]["change"] == "signed_out"
    reused = audit_rows(agency.dd, "action_failed")[-1]  # trying the ended session again is recorded
    assert (reused["actor"], reused["details"]["attempted"]) == (ADMIN, "use_session")
    assert reused["object"].startswith("session:")
    assert "session was ended" in reused["details"]["reason"]


def test_requests_without_a_usable_token_are_unauthenticated(agency: Agency) -> None:
    for headers in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": "Bearer fls_unknown"}):
        answer = agency.client.get(f"{API}/users", headers=headers)
        assert answer.status_code == 401, headers
        assert error_of(answer)["code"] == "unauthenticated"


def test_api_tokens_are_scoped_revocable_and_made_only_from_sessions(agency: Agency) -> None:
    agency.add("rita.reviewer", "reviewer")
    rita = agency.login("rita.reviewer")
    made = agency.client.post(
        f"{API}/tokens",
        json={"name": "nightly export", "scopes": ["reviewer"], "days": 7},
        headers=rita.headers,
    )
    assert made.status_code == 201
    secret = made.json()["secret"]
    assert secret.startswith("flt_")
    assert made.json()["token"]["expires_at"].startswith(
        (agency.clock.now + timedelta(days=7)).date().isoformat()
    )
    assert (made.json()["token"]["device_id"], made.json()["token"]["server"]) == ("ws-01", False)
    script = Session("rita.reviewer", secret, rita.device)
    me = agency.client.get(f"{API}/auth/me", headers=script.headers)
    assert me.json()["via"] == "api_token"
    assert me.json()["roles"] == ["reviewer"]
    # Bound to ws-01: the token alone (copied to a personal machine) is refused, and recorded.
    alone = agency.client.get(f"{API}/auth/me", headers=Session("rita.reviewer", secret, None).headers)
    assert alone.status_code == 401
    assert "bound to device 'ws-01'" in error_of(alone)["message"]

    from_token = agency.client.post(
        f"{API}/tokens", json={"name": "another", "scopes": ["reviewer"]}, headers=script.headers
    )
    assert from_token.status_code == 403
    not_held = agency.client.post(
        f"{API}/tokens", json={"name": "more", "scopes": ["examiner"]}, headers=rita.headers
    )
    assert not_held.status_code == 422
    assert "does not hold: examiner" in error_of(not_held)["message"]

    listed = agency.client.get(f"{API}/tokens", headers=rita.headers).json()
    assert [t["name"] for t in listed["items"]] == ["nightly export"]
    token_id = listed["items"][0]["id"]
    revoked = agency.client.post(f"{API}/tokens/{token_id}/revoke", headers=rita.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_by"] == "rita.reviewer"
    assert agency.client.get(f"{API}/auth/me", headers=script.headers).status_code == 401
    assert audit_rows(agency.dd, "policy_denied")[-1]["details"]["attempted"] == "use_token"


def test_an_expired_account_is_refused_at_its_next_request(agency: Agency) -> None:
    agency.add(
        "tina.trial", "reviewer", expires_at=(agency.clock.now + timedelta(hours=1)).isoformat(), trial=True
    )
    tina = agency.login("tina.trial")
    assert agency.client.get(f"{API}/auth/me", headers=tina.headers).status_code == 200
    agency.clock.advance(hours=2)
    refused = agency.client.get(f"{API}/auth/me", headers=tina.headers)
    assert refused.status_code == 401
    assert "expired" in error_of(refused)["message"]
    login = agency.client.post(f"{API}/auth/login", json={"username": "tina.trial", "password": PASSWORD})
    assert login.status_code == 401
    assert audit_rows(agency.dd, "sign_in_failed")[-1]["details"]["reason"] == "expired"


def test_a_suspended_account_is_refused_everything(agency: Agency) -> None:
    agency.add("rita.reviewer", "reviewer")
    rita = agency.login("rita.reviewer")
    suspended = agency.client.post(
        f"{API}/users/rita.reviewer/suspend",
        json={"reason": "under investigation"},
        headers=agency.admin().headers,
    )
    assert suspended.status_code == 200
    assert suspended.json()["suspended"] is True
    assert agency.client.get(f"{API}/auth/me", headers=rita.headers).status_code == 401
    login = agency.client.post(f"{API}/auth/login", json={"username": "rita.reviewer", "password": PASSWORD})
    assert login.status_code == 401
    assert "suspended" in error_of(login)["message"]
    assert audit_rows(agency.dd, "sign_in_failed")[-1]["details"]["reason"] == "suspended"


def test_nobody_changes_their_own_standing(agency: Agency) -> None:
    admin = agency.admin()
    refused = agency.client.put(
        f"{API}/users/{ADMIN}/roles", json={"roles": ["auditor"]}, headers=admin.headers
    )
    assert refused.status_code == 403
    assert "their own account" in error_of(refused)["message"]
    assert audit_rows(agency.dd, "policy_denied")[-1]["details"]["attempted"] == "set_roles"


def test_lists_come_in_pages_with_a_maximum(agency: Agency) -> None:
    for name in ("ann.one", "ben.two", "cat.three"):
        agency.add(name, "reviewer")
    admin = agency.admin()
    first = agency.client.get(f"{API}/users?limit=2", headers=admin.headers).json()
    assert (first["total"], first["limit"], first["offset"], first["next_offset"]) == (5, 2, 0, 2)
    rest = agency.client.get(f"{API}/users?limit=2&offset=2", headers=admin.headers).json()
    assert rest["next_offset"] == 4
    last = agency.client.get(f"{API}/users?limit=2&offset=4", headers=admin.headers).json()
    assert last["next_offset"] is None
    names = [u["username"] for u in first["items"] + rest["items"] + last["items"]]
    assert sorted(names) == sorted([ADMIN, "ann.one", "ben.two", "cat.three", VOUCHER])
    too_many = agency.client.get(f"{API}/users?limit=501", headers=admin.headers)
    assert too_many.status_code == 422
