"""Registered agency devices, on a real data directory (SQLite file, and the real PostgreSQL server).

A device that is not registered, revoked, or presents the wrong secret leaves the request
without a device (so the policy refuses searches) and leaves a record in the audit log.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest
from accounts_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    T0,
    UNIT,
    Org,
    audit_rows,
    dd_fixture,
    details,
    pg_url_fixture,
    template_fixture,
)
from sqlalchemy import select

from faceledger.adapters.policy_file import load_policy
from faceledger.adapters.store import tables_accounts as ta
from faceledger.domain.policy import SearchRequest, decide_search
from faceledger.domain.roles import Actor
from faceledger.errors import AuthenticationError, ConflictError, PermissionDeniedError, ValidationError
from faceledger.services import accounts, devices
from faceledger.services.datadir import DataDir
from faceledger.services.devices import DeviceCredential

LATER = T0.replace(minute=5)


@pytest.fixture
def org(dd: DataDir) -> Org:
    org = Org(dd)
    org.add("eve.examiner", "examiner")
    return org


def _register(org: Org, device_id: str = "lab-ws-03") -> DeviceCredential:
    _, credential = devices.register_device(
        org.dd, org.admin, device_id=device_id, name=f"Workstation {device_id}", unit=UNIT, now=T0
    )
    return credential


def _device_refusals(dd: DataDir) -> list[tuple[str, str, str]]:
    rows = audit_rows(dd, "policy_denied")
    return [
        (r.actor, r.object, details(r)["reason"]) for r in rows if details(r)["attempted"] == "use_device"
    ]


def test_registration_shows_the_credential_once_and_stores_only_its_digest(org: Org) -> None:
    device, credential = devices.register_device(
        org.dd, org.admin, device_id="lab-ws-03", name="Lab workstation 3", unit="FIU", now=T0
    )
    assert (device.id, device.unit, device.registered_by, device.active) == ("lab-ws-03", "FIU", ADMIN, True)
    assert credential.secret.startswith("fld_")
    assert credential.secret not in repr(credential)
    assert DeviceCredential.parse(credential.header_value()) == credential
    with org.dd.store.read() as conn:
        stored = conn.execute(select(ta.devices.c.credential_hash)).scalar_one()
    assert stored == hashlib.sha256(credential.secret.encode()).hexdigest()
    registered = audit_rows(org.dd, "device_registered")
    assert [(r.actor, r.object) for r in registered] == [(ADMIN, "device:lab-ws-03")]
    with pytest.raises(ConflictError, match="already taken"):
        _register(org)
    for bad in ("Lab WS", "-x", "a"):
        with pytest.raises(ValidationError, match="device id"):
            _register(org, bad)
    for text in ("no-colon-here", ":secret", "id:"):
        with pytest.raises(ValidationError, match="<device-id>:<secret>"):
            DeviceCredential.parse(text)


def test_only_system_administrators_register_and_revoke_devices(org: Org) -> None:
    credential = _register(org)
    examiner = org.sign_in("eve.examiner", device=credential)
    with pytest.raises(PermissionDeniedError, match="system_admin"):
        devices.register_device(org.dd, examiner, device_id="my-laptop", name="Mine", unit="FIU", now=T0)
    with pytest.raises(PermissionDeniedError, match="system_admin"):
        devices.revoke_device(org.dd, examiner, "lab-ws-03", reason="I want to", now=T0)
    assert [details(r)["attempted"] for r in audit_rows(org.dd, "policy_denied")] == ["register_device"] * 2


def test_a_session_opened_on_a_registered_device_carries_it(org: Org) -> None:
    credential = _register(org)
    session = org.sign_in("eve.examiner", device=credential)
    assert session.actor.device_id == "lab-ws-03"
    token = session.session_token or ""
    assert accounts.principal_from_token(org.dd, token, credential, now=LATER).actor.device_id == "lab-ws-03"
    # without its credential the request has no device (nothing was attempted, nothing recorded)
    assert accounts.principal_from_token(org.dd, token, None, now=LATER).actor.device_id is None
    assert _device_refusals(org.dd) == []
    assert details(audit_rows(org.dd, "sign_in")[-1]) == {"device_id": "lab-ws-03", "mfa": True}


def test_a_wrong_secret_or_an_unregistered_device_gives_no_device_and_is_recorded(org: Org) -> None:
    credential = _register(org)
    wrong = DeviceCredential("lab-ws-03", "fld_" + "A" * 43)
    personal = DeviceCredential("my-phone", "fld_whatever")
    first = org.sign_in("eve.examiner", device=wrong)
    second = org.sign_in("eve.examiner", device=personal, now=T0.replace(minute=1))
    assert (first.actor.device_id, second.actor.device_id) == (None, None)
    refusals = _device_refusals(org.dd)
    assert [(actor, obj) for actor, obj, _ in refusals] == [
        ("eve.examiner", "device:lab-ws-03"),
        ("eve.examiner", "device:my-phone"),
    ]
    assert "wrong" in refusals[0][2]
    assert "not registered" in refusals[1][2]
    # the session opened from the phone stays without a device even with a good credential later
    with pytest.raises(AuthenticationError, match="opened on no registered device"):
        accounts.principal_from_token(org.dd, second.session_token or "", credential, now=LATER)


def test_another_devices_credential_with_a_session_is_refused_and_recorded(org: Org) -> None:
    mine, other = _register(org, "lab-ws-03"), _register(org, "lab-ws-04")
    session = org.sign_in("eve.examiner", device=mine)
    with pytest.raises(AuthenticationError, match="opened on device 'lab-ws-03'"):
        accounts.principal_from_token(org.dd, session.session_token or "", other, now=LATER)
    denied = audit_rows(org.dd, "policy_denied")[-1]
    assert (denied.actor, denied.object) == ("eve.examiner", f"session:{session.session_id}")
    assert "lab-ws-04" in details(denied)["reason"]


def test_a_revoked_device_ends_its_sessions_and_is_refused_afterwards(org: Org) -> None:
    credential = _register(org)
    session = org.sign_in("eve.examiner", device=credential)
    revoked = devices.revoke_device(org.dd, org.admin, "lab-ws-03", reason="reported stolen", now=LATER)
    assert not revoked.active
    assert revoked.revoked_by == ADMIN
    with pytest.raises(AuthenticationError, match="ended"):
        accounts.principal_from_token(org.dd, session.session_token or "", credential, now=LATER)
    again = org.sign_in("eve.examiner", device=credential, now=LATER)
    assert again.actor.device_id is None
    assert "revoked" in _device_refusals(org.dd)[-1][2]
    with pytest.raises(ConflictError, match="already revoked"):
        devices.revoke_device(org.dd, org.admin, "lab-ws-03", reason="again", now=LATER)
    with pytest.raises(ConflictError, match="never reused"):
        _register(org, "lab-ws-03")
    listed = devices.list_devices(org.dd, org.admin, now=LATER)
    assert [(d.id, d.active) for d in listed] == [("lab-ws-03", False)]
    change = details(audit_rows(org.dd, "account_changed")[-1])
    assert change == {
        "change": "device_revoked",
        "values": {"reason": "reported stolen", "sessions_ended": 1},
    }


def test_api_tokens_are_checked_against_the_device_of_each_request(org: Org) -> None:
    credential = _register(org)
    session = org.sign_in("eve.examiner", device=credential)
    _, token = accounts.create_token(
        org.dd, session, name="batch", scopes=["examiner"], expires_at=T0.replace(hour=18), now=T0
    )
    assert accounts.principal_from_token(org.dd, token, credential, now=LATER).actor.device_id == "lab-ws-03"
    # The token is bound to lab-ws-03: a wrong secret for it, another device or none is refused.
    other = _register(org, "lab-ws-04")
    for presented, shown in (
        (DeviceCredential("lab-ws-03", "fld_stolen"), "device 'lab-ws-03' (the credential presented"),
        (other, "device 'lab-ws-04'"),
        (None, "no device credential"),
    ):
        with pytest.raises(AuthenticationError, match="bound to device 'lab-ws-03'") as refused:
            accounts.principal_from_token(org.dd, token, presented, now=LATER)
        assert f"this request presented {shown}" in str(refused.value)
    refusals = [details(r) for r in audit_rows(org.dd, "policy_denied")]
    denied = [d for d in refusals if d["attempted"] == "use_token"]
    assert len(denied) == 3
    assert all("bound to device 'lab-ws-03'" in d["reason"] for d in denied)


def test_a_token_from_before_tokens_were_bound_is_refused_and_must_be_made_again(org: Org) -> None:
    credential = _register(org)
    session = org.sign_in("eve.examiner", device=credential)
    info, token = accounts.create_token(
        org.dd, session, name="old", scopes=["examiner"], expires_at=T0.replace(hour=18), now=T0
    )
    with org.dd.store.begin() as conn:  # as migration 0011 leaves a token made before it
        conn.execute(ta.api_tokens.update().where(ta.api_tokens.c.id == info.id).values(device_id=None))
    with pytest.raises(AuthenticationError, match=r"bound to no device .* make a new one"):
        accounts.principal_from_token(org.dd, token, credential, now=LATER)


def test_the_policy_refuses_a_search_from_no_registered_device(org: Org) -> None:
    policy = load_policy(Path(str(resources.files("faceledger") / "data" / "example-policy.toml")))
    credential = _register(org)

    def decide(actor: Actor) -> str:
        request = SearchRequest(
            actor=actor,
            case_number="2025/CID/004211",
            purpose="criminal_investigation",
            galleries=("custody_arrest_photos",),
        )
        return decide_search(policy, request, now=LATER).rule_id

    on_device = org.sign_in("eve.examiner", device=credential)
    elsewhere = org.sign_in("eve.examiner", device=DeviceCredential("home-pc", "x"), now=T0.replace(minute=1))
    assert decide(elsewhere.actor) == "device.unregistered"
    assert decide(on_device.actor) == "search.allowed_pending_quality"
