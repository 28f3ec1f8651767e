"""Red team: an administrator acting as someone else (issue 7).

The hole: a system administrator (a role that may never search) created an examiner
account, chose its password, received its TOTP seed, signed in as it and searched;
resetting an existing examiner's password and TOTP worked the same way.

Now an administrator gets a one-time activation code instead, the owner activates with it
and their own password (and alone receives the second factor), and the account is usable
only once a supervisor of its unit, who neither created it nor issued the code, has vouched
for it after the activation. These tests show that the administrator chooses no password
and sees no seed; that the code alone (activated by the administrator herself) makes no
usable account; that a reset or a new second factor returns the account to activation;
that codes work once and expire; and that every step, and every refusal with its rule id,
is in the audit log.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import signed_in_unit as cli
from accounts_helpers import FAST, ORG, PASSWORD, T0, UNIT, VOUCHER, Org, code
from signed_in_unit import build_unit
from sqlalchemy import select
from web_helpers import API, Agency, error_of, running, template

from audit_records import audit_rows
from faceledger.adapters.store import tables_accounts as ta
from faceledger.adapters.store.tables_audit import audit_entries
from faceledger.config import Settings
from faceledger.errors import AuthenticationError, PermissionDeniedError
from faceledger.services import accounts
from faceledger.services.accounts import activation
from faceledger.services.accounts.records import Activation, Principal
from faceledger.services.datadir import DataDir, init_data_dir

__all__ = ["template"]  # fixtures

STOLEN = "the administrator's choice 1"  # the password an administrator picks for someone else


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    dd = init_data_dir(tmp_path / "data", settings=Settings(accounts=FAST))
    try:
        org = Org(dd)
        org.add("sue.supervisor", "supervisor")  # (the helpers' own supervisor, una, comes first)
        yield org
    finally:
        dd.close()


def _create(
    org: Org, username: str, *roles: str, by: Principal | None = None, unit: str = UNIT
) -> Activation:
    return accounts.create_user(
        org.dd,
        by or org.admin,
        username=username,
        display_name=username.title(),
        organisation=ORG,
        unit=unit,
        roles=roles or ("examiner",),
        now=T0,
    )


def _sign_in(org: Org, username: str, password: str, uri: str | None, at: timedelta) -> Principal:
    now = T0 + at
    totp = code(uri, now) if uri else None
    return accounts.authenticate(
        org.dd, username=username, password=password, totp=totp, device=None, now=now
    )


def _last_rule(dd: DataDir) -> str:
    decision = audit_rows(dd, "policy_denied")[-1]["details"]["decision"]
    assert decision is not None
    rule: str = decision["rule_id"]
    return rule


def _stored_text(dd: DataDir) -> str:
    """Everything the users table and the audit log hold, as one text (to look for secrets in)."""
    with dd.store.read() as conn:
        users = conn.execute(select(ta.users)).all()
        entries = conn.execute(select(audit_entries)).all()
    return "\n".join(repr(tuple(row)) for row in [*users, *entries])


# --- the administrator chooses no password and sees no seed ----------------------------------------


def test_creating_an_account_takes_no_password_and_returns_no_second_factor(org: Org) -> None:
    assert "password" not in inspect.signature(accounts.create_user).parameters
    made = _create(org, "eve.examiner")
    assert made.code.startswith("fla_")
    assert len(made.code) > 40  # 256 random bits
    assert made.expires_at == T0 + timedelta(hours=72)
    assert (made.user.state, made.user.totp_enrolled, made.user.activated_at) == (
        "needs_activation",
        False,
        None,
    )
    with org.dd.store.read() as conn:
        row = conn.execute(select(ta.users).where(ta.users.c.username == "eve.examiner")).one()
    assert row.activation_hash == hashlib.sha256(made.code.encode()).hexdigest()
    assert row.totp_secret is None
    assert made.code not in _stored_text(org.dd)  # only the digest is kept
    # Nothing the administrator could know signs in: not the code, not a guess.
    for guess in (made.code, PASSWORD, STOLEN):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            _sign_in(org, "eve.examiner", guess, None, timedelta(0))


def test_the_api_refuses_a_password_at_creation_and_returns_a_code_not_a_seed(
    tmp_path: Path, template: Path
) -> None:
    with running(tmp_path / "data", template) as agency:
        body: dict[str, object] = {"username": "eve.examiner", "display_name": "Eve", "organisation": ORG}
        body |= {"unit": UNIT, "roles": ["examiner"]}
        admin = agency.admin().headers
        refused = agency.client.post(f"{API}/users", json=body | {"password": STOLEN}, headers=admin)
        assert refused.status_code == 422, refused.text
        assert "body.password" in error_of(refused)["message"]
        made = agency.client.post(f"{API}/users", json=body, headers=admin)
        assert made.status_code == 201, made.text
        assert set(made.json()) == {"user", "activation_code", "expires_at"}
        assert "otpauth" not in made.text
        assert made.json()["user"]["state"] == "needs_activation"
        for route in ("password", "totp"):  # resets too: a code, never a seed or a chosen password
            reset = agency.client.post(f"{API}/users/eve.examiner/{route}", headers=agency.admin().headers)
            assert reset.status_code == 200, reset.text
            assert "otpauth" not in reset.text
            assert reset.json()["activation_code"].startswith("fla_")


# --- the code alone makes no usable account --------------------------------------------------------


def test_the_administrator_holding_the_code_cannot_make_a_usable_account_alone(org: Org) -> None:
    made = _create(org, "eve.examiner")
    # She activates it herself with a password of her choice, and gets the seed that way...
    uri = accounts.activate(org.dd, username="eve.examiner", code=made.code, password=STOLEN, now=T0)
    # ...but the account does not sign in: nobody of the unit has vouched for it.
    with pytest.raises(AuthenticationError, match="waits for a supervisor of its unit"):
        _sign_in(org, "eve.examiner", STOLEN, uri, timedelta(0))
    # She cannot vouch herself (an administrator does not supervise a unit)...
    with pytest.raises(PermissionDeniedError, match="'manage_unit' needs one of the roles supervisor"):
        accounts.vouch(org.dd, org.admin, "eve.examiner", now=T0)
    # ...nor can a second administrator, nor the installer (eve is no unit's first supervisor).
    with pytest.raises(PermissionDeniedError, match="manage_unit"):
        accounts.vouch(org.dd, org.second_admin(), "eve.examiner", now=T0)
    with pytest.raises(PermissionDeniedError, match="first supervisor of a unit"):
        accounts.vouch_as_installer(org.dd, "eve.examiner", now=T0)
    assert _last_rule(org.dd) == activation.RULE_INSTALLER
    # A supervisor of another unit may not vouch for this one's people.
    org.vouchers["traffic"] = org.vouchers[UNIT]
    other = _create(org, "tom.traffic", "supervisor", unit="traffic")
    tom_uri = accounts.activate(org.dd, username="tom.traffic", code=other.code, password=PASSWORD, now=T0)
    accounts.vouch_as_installer(org.dd, "tom.traffic", now=T0)  # the first supervisor of "traffic"
    tom = _sign_in(org, "tom.traffic", PASSWORD, tom_uri, timedelta(0))
    with pytest.raises(PermissionDeniedError, match="only a supervisor of unit 'facial-identification'"):
        accounts.vouch(org.dd, tom, "eve.examiner", now=T0)
    assert _last_rule(org.dd) == activation.RULE_OTHER_UNIT
    with pytest.raises(AuthenticationError, match="waits for a supervisor"):
        _sign_in(org, "eve.examiner", STOLEN, uri, timedelta(seconds=31))
    assert accounts.get_user(org.dd, org.admin, "eve.examiner", now=T0).state == "needs_vouch"


def test_an_administrator_who_also_supervises_the_unit_cannot_vouch_for_her_own_creation(org: Org) -> None:
    bob = org.second_admin()
    accounts.set_roles(org.dd, bob, "ada.admin", ["system_admin", "supervisor"], now=T0)
    assert accounts.update_user(org.dd, bob, "ada.admin", unit=UNIT, now=T0).unit == UNIT
    ada = _sign_in(org, "ada.admin", PASSWORD, org.seeds["ada.admin"], timedelta(seconds=62))
    made = _create(org, "eve.examiner", by=ada)
    accounts.activate(org.dd, username="eve.examiner", code=made.code, password=STOLEN, now=T0)
    with pytest.raises(PermissionDeniedError, match="another person must vouch"):
        accounts.vouch(org.dd, ada, "eve.examiner", now=T0)
    assert _last_rule(org.dd) == activation.RULE_ISSUER


def test_a_vouch_comes_after_the_activation_so_it_cannot_be_given_in_advance(org: Org) -> None:
    made = _create(org, "eve.examiner")
    with pytest.raises(PermissionDeniedError, match="not activated yet"):
        accounts.vouch(org.dd, org.vouchers[UNIT], "eve.examiner", now=T0)
    assert _last_rule(org.dd) == activation.RULE_NOT_ACTIVATED
    uri = accounts.activate(org.dd, username="eve.examiner", code=made.code, password=PASSWORD, now=T0)
    with pytest.raises(PermissionDeniedError, match="nobody may vouch for their own account"):
        accounts.vouch(org.dd, org.vouchers[UNIT], VOUCHER, now=T0)
    assert _last_rule(org.dd) == activation.RULE_SELF
    accounts.vouch(org.dd, org.vouchers[UNIT], "eve.examiner", now=T0)
    with pytest.raises(PermissionDeniedError, match="already vouched for"):
        accounts.vouch(
            org.dd, org.sign_in("sue.supervisor", now=T0 + timedelta(seconds=31)), "eve.examiner", now=T0
        )
    assert _last_rule(org.dd) == activation.RULE_ALREADY_VOUCHED
    eve = _sign_in(org, "eve.examiner", PASSWORD, uri, timedelta(0))
    assert eve.actor.mfa_verified  # the first sign-in with a code confirmed the owner's seed
    assert accounts.get_user(org.dd, org.admin, "eve.examiner", now=T0).totp_confirmed


# --- resets go back to activation ------------------------------------------------------------------


@pytest.mark.parametrize("reset", [accounts.reset_password, accounts.enrol_totp])
def test_a_reset_returns_the_account_to_activation_and_ends_its_access(org: Org, reset: object) -> None:
    org.add("eve.examiner", "examiner")
    old_uri = org.seeds["eve.examiner"]
    workstation = org.workstation()
    session = org.sign_in("eve.examiner", device=workstation)
    _, token = accounts.create_token(
        org.dd, session, name="batch", scopes=["examiner"], expires_at=T0 + timedelta(days=1), now=T0
    )
    assert accounts.principal_from_token(org.dd, token, workstation, now=T0).actor.username == "eve.examiner"
    assert callable(reset)
    again = reset(org.dd, org.admin, "eve.examiner", now=T0)
    assert isinstance(again, Activation)
    assert (again.user.state, again.user.totp_enrolled, again.user.vouched_by) == (
        "needs_activation",
        False,
        None,
    )
    for presented in (session.session_token or "", token):
        with pytest.raises(AuthenticationError):
            accounts.principal_from_token(org.dd, presented, workstation, now=T0 + timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="wrong username or password"):  # the old password is gone
        _sign_in(org, "eve.examiner", PASSWORD, old_uri, timedelta(seconds=31))
    new_uri = accounts.activate(
        org.dd, username="eve.examiner", code=again.code, password="her own new passphrase", now=T0
    )
    assert new_uri != old_uri  # a new seed, to the owner
    with pytest.raises(AuthenticationError, match="waits for a supervisor"):  # a new vouch is needed
        _sign_in(org, "eve.examiner", "her own new passphrase", new_uri, timedelta(seconds=62))
    accounts.vouch(org.dd, org.vouchers[UNIT], "eve.examiner", now=T0)
    with pytest.raises(AuthenticationError, match="wrong second-factor code"):  # the old seed is gone
        _sign_in(org, "eve.examiner", "her own new passphrase", old_uri, timedelta(seconds=93))
    assert _sign_in(
        org, "eve.examiner", "her own new passphrase", new_uri, timedelta(seconds=124)
    ).actor.mfa_verified


# --- codes work once, expire, and are refused with one message -------------------------------------


def test_activation_codes_work_once_and_expire(org: Org) -> None:
    made = _create(org, "eve.examiner")
    late = _create(org, "lou.late")
    replaced = _create(org, "rex.reset")
    newer = accounts.reset_password(org.dd, org.admin, "rex.reset", now=T0)
    attempts = [
        ("nobody.here", made.code, T0),  # no such account
        ("eve.examiner", late.code, T0),  # another account's code
        ("eve.examiner", "fla_" + "A" * 43, T0),  # a guess
        ("lou.late", late.code, T0 + timedelta(hours=72)),  # expired
        ("rex.reset", replaced.code, T0),  # voided by the reset
    ]
    for username, presented, at in attempts:
        with pytest.raises(AuthenticationError) as refused:
            accounts.activate(org.dd, username=username, code=presented, password=PASSWORD, now=at)
        assert str(refused.value) == activation.BAD_CODE
    accounts.activate(org.dd, username="eve.examiner", code=made.code, password=PASSWORD, now=T0)
    with pytest.raises(AuthenticationError) as used:
        accounts.activate(org.dd, username="eve.examiner", code=made.code, password=STOLEN, now=T0)
    assert str(used.value) == activation.BAD_CODE
    accounts.activate(org.dd, username="rex.reset", code=newer.code, password=PASSWORD, now=T0)
    reasons = [row["details"]["reason"] for row in audit_rows(org.dd, "sign_in_failed")]
    assert reasons == [
        "activation_unknown_user",
        "activation_wrong",
        "activation_wrong",
        "activation_expired",
        "activation_wrong",
        "activation_no_code",
    ]
    # the second activation changed nothing: the owner's password still signs in, the other not
    accounts.vouch(org.dd, org.vouchers[UNIT], "eve.examiner", now=T0)
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        _sign_in(org, "eve.examiner", STOLEN, None, timedelta(0))


def test_the_activation_route_answers_one_401_and_is_throttled(tmp_path: Path, template: Path) -> None:
    with running(tmp_path / "data", template) as agency:
        made = _api_create(agency, "eve.examiner")
        wrong = {"username": "eve.examiner", "code": "fla_guess", "password": PASSWORD}
        answers = [agency.client.post(f"{API}/auth/activate", json=wrong) for _ in range(10)]
        assert {a.status_code for a in answers} == {401}
        assert {error_of(a)["message"] for a in answers} == {activation.BAD_CODE}
        blocked = agency.client.post(f"{API}/auth/activate", json=wrong | {"code": made})
        assert blocked.status_code == 429, blocked.text  # even the right code, once the guesses are spent
        assert blocked.headers["retry-after"]


def _api_create(agency: Agency, username: str) -> str:
    body = {
        "username": username,
        "display_name": "E",
        "organisation": ORG,
        "unit": UNIT,
        "roles": ["examiner"],
    }
    made = agency.client.post(f"{API}/users", json=body, headers=agency.admin().headers)
    assert made.status_code == 201, made.text
    created: str = made.json()["activation_code"]
    return created


# --- every step is recorded ------------------------------------------------------------------------


def test_every_step_of_an_activation_is_in_the_audit_log(tmp_path: Path, template: Path) -> None:
    with running(tmp_path / "data", template) as agency:
        agency.add("sue.supervisor", "supervisor")  # after the helpers' first supervisor, una
        created = _api_create(agency, "eve.examiner")
        agency.activate("eve.examiner", created)
        refused = agency.client.post(f"{API}/users/eve.examiner/vouch", headers=agency.admin().headers)
        assert refused.status_code == 403, refused.text
        sue = agency.login("sue.supervisor")
        vouched = agency.client.post(f"{API}/users/eve.examiner/vouch", headers=sue.headers)
        assert vouched.status_code == 200, vouched.text
        assert (vouched.json()["state"], vouched.json()["vouched_by"]) == ("active", "sue.supervisor")
        again = agency.client.post(
            f"{API}/users/eve.examiner/vouch", headers=agency.login("sue.supervisor").headers
        )
        assert again.status_code == 403, again.text
        assert error_of(again)["rule_id"] == activation.RULE_ALREADY_VOUCHED
        agency.login("eve.examiner")
        reset = agency.client.post(f"{API}/users/eve.examiner/password", headers=agency.admin().headers)
        assert reset.status_code == 200, reset.text

        steps = [
            (r["actor"], r["details"]["change"])
            for r in audit_rows(agency.dd, "account_changed")
            if r["object"] == "account:eve.examiner"
        ]
        assert steps == [
            ("ada.admin", "created"),
            ("eve.examiner", "activated"),
            ("sue.supervisor", "vouched"),
            ("eve.examiner", "totp_confirmed"),
            ("ada.admin", "reset_password"),
        ]
        last = audit_rows(agency.dd, "account_changed")[-1]["details"]["values"]
        assert last["sessions_ended"] == 1
        assert "activation_expires_at" in last
        denied = [
            (r["actor"], r["details"]["attempted"], (r["details"]["decision"] or {}).get("rule_id"))
            for r in audit_rows(agency.dd, "policy_denied")
            if r["object"] == "account:eve.examiner"
        ]
        assert denied == [
            ("ada.admin", "manage_unit", "role.not_permitted"),
            ("sue.supervisor", "vouch", activation.RULE_ALREADY_VOUCHED),
        ]
        una = [(r["actor"], r["details"]["change"]) for r in audit_rows(agency.dd, "account_changed")]
        assert (
            "installer",
            "vouched",
        ) in una  # the first supervisor of the unit, vouched for by the installer


# --- the same over the command line ----------------------------------------------------------------


def test_a_reset_over_the_cli_prints_a_code_and_the_owner_activates_again(tmp_path: Path) -> None:
    unit = build_unit(tmp_path, [("eve.examiner", "examiner")], example_policy=False)
    try:
        reset = unit.run(cli.ADMIN, "user", "reset-password", "eve.examiner")  # no password is asked
        assert "otpauth://" not in reset
        fresh = cli.found(r"fla_[A-Za-z0-9_-]+", reset)
        assert "session was ended" in unit.run("eve.examiner", "user", "show", "eve.examiner", code=1)
        mine = "her very own passphrase"
        activated = unit.run(
            "eve.examiner", "user", "activate", "eve.examiner", input=f"{fresh}\n{mine}\n{mine}\n"
        )
        uri = cli.found(r"otpauth://\S+", activated)
        waiting = unit.run(
            "eve.examiner", "login", "eve.examiner", input=f"{mine}\n{cli.code_for(uri)}\n", code=1
        )
        assert "waits for a supervisor" in waiting
        assert "vouched for by una.unitlead" in unit.run(cli.VOUCHER, "user", "vouch", "eve.examiner")
        assert "signed in as eve.examiner" in unit.run(
            "eve.examiner", "login", "eve.examiner", input=f"{mine}\n{cli.code_for(uri)}\n"
        )
    finally:
        unit.close()
