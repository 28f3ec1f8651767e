"""Browsers as registered devices (services/browser_devices.py), with a software WebAuthn authenticator.

The administrator's one-time code (shown once, stored hashed, 15 minutes, used once), who may use
it, the registration and assertion checks (challenge, origin, signature, sign count: a clone is
refused and its credential revoked), and the page session it binds: the same DeviceCheck as an
API device, read fresh on every request, so revoking the device ends it at once. Every step and
every refusal is in the audit log.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from accounts_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    ORG,
    PASSWORD,
    T0,
    UNIT,
    Org,
    audit_rows,
    code,
    dd_fixture,
    details,
    pg_url_fixture,
    template_fixture,
)
from soft_authenticator import SoftAuthenticator
from sqlalchemy import select

from faceledger.adapters.policy_file import load_policy
from faceledger.adapters.store import tables_accounts as ta
from faceledger.domain.policy import SearchRequest, decide_search
from faceledger.domain.roles import Actor
from faceledger.errors import AuthenticationError, NotFoundError, PermissionDeniedError, ValidationError
from faceledger.services import accounts, browser_devices, devices
from faceledger.services.accounts import Principal
from faceledger.services.browser_devices import ENROLMENT_MINUTES, RelyingParty
from faceledger.services.datadir import DataDir

RP = RelyingParty(id="localhost", origin="http://localhost:8000")
DEVICE = "fiu-ws-07"


@pytest.fixture
def org(dd: DataDir) -> Org:
    org = Org(dd)
    org.add("eve.examiner", "examiner")
    devices.register_device(dd, org.admin, device_id=DEVICE, name="FIU workstation 7", unit=UNIT, now=T0)
    return org


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _eve(org: Org, minutes: float) -> Principal:
    return org.sign_in("eve.examiner", now=_at(minutes))


def _enrol(
    org: Org, person: Principal, when: datetime, key: SoftAuthenticator | None = None
) -> SoftAuthenticator:
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=when)
    key = key or SoftAuthenticator()
    ceremony = browser_devices.begin_enrolment(org.dd, person, issued.code, RP, now=when)
    browser_devices.finish_enrolment(org.dd, person, ceremony, key.create(ceremony.challenge), RP, now=when)
    return key


def _confirm(org: Org, person: Principal, key: SoftAuthenticator, when: datetime, **kw: object) -> str:
    assert person.session_token is not None
    ceremony = browser_devices.begin_confirmation(org.dd, person, RP, now=when)
    assert ceremony is not None
    answer = key.get(ceremony.challenge, **kw)  # type: ignore[arg-type]
    _, token = browser_devices.confirm_device(
        org.dd, person, person.session_token, ceremony, answer, RP, now=when
    )
    return token


def _refusals(dd: DataDir, attempted: str) -> list[str]:
    rows = audit_rows(dd, "policy_denied")
    return [details(r)["reason"] for r in rows if details(r)["attempted"] == attempted]


def _changes(dd: DataDir, change: str) -> list[dict[str, object]]:
    return [details(r) for r in audit_rows(dd, "account_changed") if details(r)["change"] == change]


def test_the_code_is_shown_once_stored_hashed_and_recorded(org: Org) -> None:
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=T0)
    assert issued.code.startswith("fle_")
    assert issued.code not in repr(issued)
    assert issued.expires_at == T0 + timedelta(minutes=ENROLMENT_MINUTES)
    with org.dd.store.read() as conn:
        stored = conn.execute(select(ta.browser_enrolments)).one()
    assert stored.code_hash == hashlib.sha256(issued.code.encode()).hexdigest()
    assert issued.code not in str(tuple(stored))
    (row,) = [
        r for r in audit_rows(org.dd, "account_changed") if details(r)["change"] == "browser_enrolment_issued"
    ]
    assert row.actor == ADMIN
    assert row.object == f"device:{DEVICE}"
    assert issued.code not in row.details


def test_only_a_system_administrator_issues_a_code_and_a_refusal_is_recorded(org: Org) -> None:
    eve = _eve(org, 1)
    with pytest.raises(PermissionDeniedError, match="register_device"):
        browser_devices.issue_enrolment(org.dd, eve, DEVICE, now=_at(1))
    assert any(r.actor == "eve.examiner" for r in audit_rows(org.dd, "policy_denied"))
    with pytest.raises(NotFoundError, match="no device 'nowhere'"):
        browser_devices.issue_enrolment(org.dd, org.admin, "nowhere", now=_at(1))


def test_enrolment_stores_the_public_key_and_the_code_works_once(org: Org) -> None:
    eve = _eve(org, 1)
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=_at(1))
    key = SoftAuthenticator()
    ceremony = browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(2))
    device_id = browser_devices.finish_enrolment(
        org.dd, eve, ceremony, key.create(ceremony.challenge), RP, now=_at(2)
    )
    assert device_id == DEVICE
    with org.dd.store.read() as conn:
        credential = conn.execute(select(ta.browser_credentials)).one()
        enrolment = conn.execute(select(ta.browser_enrolments)).one()
    assert bytes(credential.credential_id) == key.credential_id
    assert credential.device_id == DEVICE
    assert credential.enrolled_by == "eve.examiner"
    assert enrolment.used_by == "eve.examiner"
    assert _changes(org.dd, "browser_enrolled")[-1]["values"]["enrolment_id"] == issued.id  # type: ignore[index]

    again = _eve(org, 3)
    with pytest.raises(PermissionDeniedError, match="already used"):
        browser_devices.begin_enrolment(org.dd, again, issued.code, RP, now=_at(3))
    assert "already used" in _refusals(org.dd, "enrol_browser")[-1]


def test_an_expired_code_is_refused_and_recorded(org: Org) -> None:
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=T0)
    eve = _eve(org, ENROLMENT_MINUTES + 1)
    with pytest.raises(PermissionDeniedError, match="expired"):
        browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(ENROLMENT_MINUTES + 1))
    failed = [
        details(r) for r in audit_rows(org.dd, "action_failed") if details(r)["attempted"] == "enrol_browser"
    ]
    assert failed
    assert "expired" in str(failed[-1]["reason"])


def test_a_code_that_expires_while_the_browser_answers_enrols_nothing(org: Org) -> None:
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=T0)
    eve = _eve(org, 14)
    ceremony = browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(14.9))
    answer = SoftAuthenticator().create(ceremony.challenge)
    with pytest.raises(PermissionDeniedError, match="used, expired or its device revoked"):
        browser_devices.finish_enrolment(org.dd, eve, ceremony, answer, RP, now=_at(15.5))
    with org.dd.store.read() as conn:
        assert conn.execute(select(ta.browser_credentials)).all() == []


def test_a_person_of_another_unit_is_refused_and_the_code_stays_usable(org: Org) -> None:
    made = accounts.create_user(
        org.dd, org.admin, username="tom.traffic", display_name="Tom", organisation=ORG,
        unit="traffic", roles=["supervisor"], now=T0,
    )  # fmt: skip
    uri = accounts.activate(org.dd, username="tom.traffic", code=made.code, password=PASSWORD, now=T0)
    accounts.vouch_as_installer(org.dd, "tom.traffic", now=T0)
    tom = accounts.authenticate(
        org.dd, username="tom.traffic", password=PASSWORD, totp=code(uri, _at(1)), device=None, now=_at(1)
    )
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=_at(1))
    with pytest.raises(PermissionDeniedError, match=f"belongs to unit '{UNIT}'"):
        browser_devices.begin_enrolment(org.dd, tom, issued.code, RP, now=_at(1))
    assert "only a person of that unit" in _refusals(org.dd, "enrol_browser")[-1]
    eve = _eve(org, 2)
    assert browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(2)).device_id == DEVICE


@pytest.mark.parametrize(
    "hostile",
    ["", "not-a-code", "fle_" + "x" * 500, "fle_\x00\x1b[31m", "fle_unknownbutwellformed"],
)
def test_hostile_codes_are_refused_with_a_reason_and_recorded(org: Org, hostile: str) -> None:
    eve = _eve(org, 1)
    with pytest.raises(PermissionDeniedError, match="enrolment code"):
        browser_devices.begin_enrolment(org.dd, eve, hostile, RP, now=_at(1))
    assert _refusals(org.dd, "enrol_browser")


def test_a_revoked_device_takes_no_enrolment(org: Org) -> None:
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=T0)
    devices.revoke_device(org.dd, org.admin, DEVICE, reason="stolen", now=T0)
    eve = _eve(org, 1)
    with pytest.raises(PermissionDeniedError, match="was revoked"):
        browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(1))
    with pytest.raises(PermissionDeniedError, match="was revoked"):
        browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=_at(1))
    assert len(_refusals(org.dd, "enrol_browser")) == 2


def test_a_synced_passkey_or_another_origin_is_not_enrolled(org: Org) -> None:
    eve = _eve(org, 1)
    issued = browser_devices.issue_enrolment(org.dd, org.admin, DEVICE, now=_at(1))
    ceremony = browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(1))
    synced = SoftAuthenticator(synced=True).create(ceremony.challenge)
    with pytest.raises(PermissionDeniedError, match="synced or backed up"):
        browser_devices.finish_enrolment(org.dd, eve, ceremony, synced, RP, now=_at(1))
    ceremony = browser_devices.begin_enrolment(org.dd, eve, issued.code, RP, now=_at(1))
    phished = SoftAuthenticator().create(ceremony.challenge, origin="http://localhost.evil:8000")
    with pytest.raises(PermissionDeniedError, match="not accepted"):
        browser_devices.finish_enrolment(org.dd, eve, ceremony, phished, RP, now=_at(1))
    with pytest.raises(PermissionDeniedError, match="not accepted"):
        browser_devices.finish_enrolment(org.dd, eve, ceremony, '{"id": 3}', RP, now=_at(1))
    with pytest.raises(PermissionDeniedError, match="no challenge is waiting"):
        browser_devices.finish_enrolment(org.dd, eve, None, "{}", RP, now=_at(1))
    assert len(_refusals(org.dd, "enrol_browser")) == 4
    with org.dd.store.read() as conn:
        assert conn.execute(select(ta.browser_credentials)).all() == []


def _search_rule(actor: Actor) -> str:
    policy = load_policy(Path(str(resources.files("faceledger") / "data" / "example-policy.toml")))
    request = SearchRequest(
        actor=actor,
        case_number="2025/CID/004211",
        purpose="criminal_investigation",
        galleries=("custody_arrest_photos",),
    )
    return decide_search(policy, request, now=_at(5)).rule_id


def test_an_assertion_binds_the_page_session_to_the_device_like_an_api_device(org: Org) -> None:
    key = _enrol(org, _eve(org, 1), _at(1))
    eve = _eve(org, 2)
    assert eve.session_token is not None
    token = _confirm(org, eve, key, _at(2))
    assert token != eve.session_token
    with pytest.raises(AuthenticationError, match="unknown session"):  # the old token was replaced
        accounts.principal_from_token(org.dd, eve.session_token, None, now=_at(3), page=True)
    on_page = accounts.principal_from_token(org.dd, token, None, now=_at(3), page=True)
    assert on_page.actor.device_id == DEVICE
    assert on_page.actor.device_unit == UNIT
    assert _search_rule(on_page.actor) == "search.allowed_pending_quality"
    # The same token presented as a bearer token (not from the page cookie) acts from no device.
    as_bearer = accounts.principal_from_token(org.dd, token, None, now=_at(3))
    assert as_bearer.actor.device_id is None
    assert _search_rule(as_bearer.actor) == "device.unregistered"
    confirmed = _changes(org.dd, "browser_device_confirmed")[-1]
    assert confirmed["values"]["session_id"] == eve.session_id  # type: ignore[index]
    with org.dd.store.read() as conn:
        session = conn.execute(select(ta.sessions).where(ta.sessions.c.id == eve.session_id)).one()
    assert session.device_id == DEVICE


def test_a_browser_without_a_credential_signs_in_on_no_device_and_is_refused_searches(org: Org) -> None:
    eve = _eve(org, 1)
    assert browser_devices.begin_confirmation(org.dd, eve, RP, now=_at(1)) is None  # nothing enrolled
    _enrol(org, eve, _at(1))
    assert eve.session_token is not None
    stranger = SoftAuthenticator()  # a personal device: a key the agency never enrolled
    with pytest.raises(PermissionDeniedError, match="not enrolled for any device"):
        _confirm(org, eve, stranger, _at(2))
    page = accounts.principal_from_token(org.dd, eve.session_token, None, now=_at(2), page=True)
    assert page.actor.device_id is None
    assert _search_rule(page.actor) == "device.unregistered"
    assert "not enrolled" in _refusals(org.dd, "confirm_device")[-1]


def test_a_cloned_authenticator_is_refused_and_its_credential_revoked(org: Org) -> None:
    key = _enrol(org, _eve(org, 1), _at(1))
    first = _confirm(org, _eve(org, 2), key, _at(2))  # sign count 1
    clone = _eve(org, 3)
    with pytest.raises(PermissionDeniedError, match="sign count that did not increase"):
        _confirm(org, clone, key, _at(3), count=1)
    assert "copied to another authenticator" in _refusals(org.dd, "confirm_device")[-1]
    # The session bound before loses its device on its next request, and that is recorded.
    bound = accounts.principal_from_token(org.dd, first, None, now=_at(3), page=True)
    assert bound.actor.device_id is None
    device_refusals = [d for d in _refusals(org.dd, "use_device") if "was revoked" in d]
    assert device_refusals
    # The credential is revoked: no browser is offered it again, so no session gets the device.
    assert browser_devices.begin_confirmation(org.dd, _eve(org, 4), RP, now=_at(4)) is None


def test_a_wrong_origin_or_a_replayed_challenge_is_refused(org: Org) -> None:
    key = _enrol(org, _eve(org, 1), _at(1))
    eve = _eve(org, 2)
    assert eve.session_token is not None
    with pytest.raises(PermissionDeniedError, match="not accepted"):
        _confirm(org, eve, key, _at(2), origin="http://evil.example")
    ceremony = browser_devices.begin_confirmation(org.dd, eve, RP, now=_at(2))
    assert ceremony is not None
    other = browser_devices.begin_confirmation(org.dd, eve, RP, now=_at(2))
    assert other is not None
    answer = key.get(other.challenge)
    with pytest.raises(PermissionDeniedError, match="not accepted"):
        browser_devices.confirm_device(org.dd, eve, eve.session_token, ceremony, answer, RP, now=_at(2))
    late = key.get(ceremony.challenge)
    with pytest.raises(PermissionDeniedError, match="did not answer within"):
        browser_devices.confirm_device(org.dd, eve, eve.session_token, ceremony, late, RP, now=_at(5))
    assert len(_refusals(org.dd, "confirm_device")) == 3


def test_revoking_the_device_makes_the_credential_useless_at_once(org: Org) -> None:
    key = _enrol(org, _eve(org, 1), _at(1))
    eve = _eve(org, 2)
    token = _confirm(org, eve, key, _at(2))
    devices.revoke_device(org.dd, org.admin, DEVICE, reason="left the unit", now=_at(3))
    with pytest.raises(AuthenticationError, match="ended"):
        accounts.principal_from_token(org.dd, token, None, now=_at(3), page=True)
    later = _eve(org, 4)
    assert browser_devices.begin_confirmation(org.dd, later, RP, now=_at(4)) is None
    with pytest.raises(ValidationError, match="page session"):
        browser_devices.begin_confirmation(
            org.dd, dataclasses.replace(later, session_id=None), RP, now=_at(4)
        )
