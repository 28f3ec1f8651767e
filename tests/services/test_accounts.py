"""Accounts on a real data directory (SQLite file, and the real PostgreSQL server when reachable).

Each refusal is checked twice: that it happens, and that the audit log recorded it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from datetime import datetime, timedelta

import pytest
from accounts_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    FAST,
    ORG,
    PASSWORD,
    T0,
    UNIT,
    VOUCHER,
    Org,
    audit_rows,
    code,
    dd_fixture,
    details,
    pg_url_fixture,
    reopen,
    template_fixture,
)
from sqlalchemy import select, update

from faceledger.adapters.store import tables_accounts as ta
from faceledger.domain.roles import Role, requires_mfa
from faceledger.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    StoreError,
    ValidationError,
)
from faceledger.services import accounts
from faceledger.services.accounts import totp
from faceledger.services.datadir import DataDir

STEP = timedelta(seconds=30)


@pytest.fixture
def org(dd: DataDir) -> Org:
    return Org(dd)


def _failures(dd: DataDir) -> list[str]:
    return [details(row)["reason"] for row in audit_rows(dd, "sign_in_failed")]


# --- bootstrap ---------------------------------------------------------------------------


def test_a_new_installation_has_no_account_and_no_default_password(dd: DataDir) -> None:
    for username, password in [("admin", "admin"), ("root", "password"), ("system", "")]:
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            accounts.authenticate(dd, username=username, password=password, totp=None, device=None, now=T0)
    assert _failures(dd) == ["unknown_user"] * 3


def test_the_bootstrap_secret_creates_the_first_admin_once_only(dd: DataDir) -> None:
    assert accounts.needs_bootstrap(dd)
    secret = accounts.bootstrap_admin(dd, now=T0)
    assert secret.startswith("flb_")
    user, uri = accounts.claim_bootstrap(dd, secret, ADMIN, PASSWORD, organisation=ORG, unit="IT", now=T0)
    assert user.roles == frozenset({Role.SYSTEM_ADMIN})
    assert not accounts.needs_bootstrap(dd)
    assert (user.totp_enrolled, user.totp_confirmed) == (True, False)
    assert uri.startswith("otpauth://totp/")
    assert "ada.admin" in uri

    with pytest.raises(ConflictError, match="accounts already exist"):
        accounts.claim_bootstrap(dd, secret, "mallory", PASSWORD, organisation=ORG, unit="IT", now=T0)
    with pytest.raises(ConflictError, match="accounts already exist"):
        accounts.bootstrap_admin(dd, now=T0)
    with dd.store.read() as conn:
        stored = conn.execute(select(ta.bootstrap_secrets)).one()
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()  # only the digest is kept
    assert stored.used_by == ADMIN

    # the first administrator must confirm the second factor before acting
    with pytest.raises(AuthenticationError, match="authenticator"):
        accounts.authenticate(dd, username=ADMIN, password=PASSWORD, totp=None, device=None, now=T0)
    admin = accounts.authenticate(
        dd, username=ADMIN, password=PASSWORD, totp=code(uri, T0), device=None, now=T0
    )
    assert admin.actor.roles == frozenset({Role.SYSTEM_ADMIN})
    assert admin.actor.mfa_verified
    assert accounts.get_user(dd, admin, ADMIN, now=T0).totp_confirmed


def test_a_bootstrap_secret_expires_and_a_newer_one_voids_it(dd: DataDir) -> None:
    first = accounts.bootstrap_admin(dd, now=T0)
    with pytest.raises(AuthenticationError, match="expired"):
        accounts.claim_bootstrap(
            dd, first, ADMIN, PASSWORD, organisation=ORG, unit="IT", now=T0 + timedelta(hours=2)
        )
    second = accounts.bootstrap_admin(dd, now=T0)
    third = accounts.bootstrap_admin(dd, now=T0)
    with pytest.raises(AuthenticationError, match="used"):
        accounts.claim_bootstrap(dd, second, ADMIN, PASSWORD, organisation=ORG, unit="IT", now=T0)
    with pytest.raises(AuthenticationError, match="wrong"):
        accounts.claim_bootstrap(dd, "flb_guess", ADMIN, PASSWORD, organisation=ORG, unit="IT", now=T0)
    assert _failures(dd) == ["bootstrap_expired", "bootstrap_used", "bootstrap_wrong"]
    user, _ = accounts.claim_bootstrap(dd, third, ADMIN, PASSWORD, organisation=ORG, unit="IT", now=T0)
    assert user.username == ADMIN


# --- passwords and lockout -----------------------------------------------------------------


def test_a_wrong_password_is_refused_like_an_unknown_user_and_recorded(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    for username in ("rita.reviewer", "nobody.here"):
        with pytest.raises(AuthenticationError, match=r"^wrong username or password$"):
            accounts.authenticate(
                org.dd, username=username, password="not the password", totp=None, device=None, now=T0
            )
    assert _failures(org.dd) == ["wrong_password", "unknown_user"]
    assert [row.actor for row in audit_rows(org.dd, "sign_in_failed")] == ["rita.reviewer", "nobody.here"]
    assert accounts.get_user(org.dd, org.admin, "rita.reviewer", now=T0).failed_attempts == 1


def test_repeated_failures_lock_the_account_until_the_lockout_runs_out(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    for attempt in range(FAST.lockout_failures):
        with pytest.raises(AuthenticationError) as refused:
            org.sign_in("rita.reviewer", password=f"guess {attempt}", now=T0)
    assert str(refused.value) == "wrong username or password"  # locking reveals nothing
    with pytest.raises(AuthenticationError, match=r"^wrong username or password$"):
        org.sign_in("rita.reviewer", now=T0 + timedelta(minutes=14))  # even the right password
    assert _failures(org.dd)[-1] == "locked"
    locked = [details(r) for r in audit_rows(org.dd, "account_changed") if details(r)["change"] == "locked"]
    assert locked == [
        {"change": "locked", "values": {"failed_attempts": 3, "locked_until": "2026-03-02T09:15:00+00:00"}}
    ]

    principal = org.sign_in("rita.reviewer", now=T0 + timedelta(minutes=15))
    assert principal.actor.username == "rita.reviewer"
    assert accounts.get_user(org.dd, org.admin, "rita.reviewer", now=T0).failed_attempts == 0


def test_an_administrator_can_lift_a_lockout_but_not_their_own(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    for _ in range(FAST.lockout_failures):
        with pytest.raises(AuthenticationError):
            org.sign_in("rita.reviewer", password="wrong password!", now=T0)
    user = accounts.unlock(org.dd, org.admin, "rita.reviewer", now=T0)
    assert not user.is_locked(T0)
    assert org.sign_in("rita.reviewer", now=T0).actor.username == "rita.reviewer"
    with pytest.raises(PermissionDeniedError, match="own account"):
        accounts.unlock(org.dd, org.admin, ADMIN, now=T0)


def test_passwords_are_argon2_hashed_and_rehashed_when_the_cost_rises(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    with org.dd.store.read() as conn:
        before = conn.execute(
            select(ta.users.c.password_hash).where(ta.users.c.username == "rita.reviewer")
        ).scalar()
    assert before is not None
    assert before.startswith("$argon2id$")
    assert "t=1" in before
    assert PASSWORD not in before

    dd = reopen(org.dd, dataclasses.replace(FAST, argon2_time_cost=2))
    try:
        totp_code = code(org.seeds["rita.reviewer"], T0)  # reviewers see face photos: second factor
        accounts.authenticate(
            dd, username="rita.reviewer", password=PASSWORD, totp=totp_code, device=None, now=T0
        )
        with dd.store.read() as conn:
            after = conn.execute(
                select(ta.users.c.password_hash).where(ta.users.c.username == "rita.reviewer")
            ).scalar()
        assert after is not None
        assert "t=2" in after
        assert after != before
    finally:
        dd.close()


def test_weak_passwords_and_bad_usernames_are_refused(org: Org) -> None:
    for username, password, match in (
        ("sam.short", "short", "too short"),
        ("samuel.same.name", "Samuel.Same.Name", "not be blank or the username"),
    ):
        made = accounts.create_user(
            org.dd,
            org.admin,
            username=username,
            display_name="S",
            organisation=ORG,
            unit="U",
            roles=["reviewer"],
            now=T0,
        )
        with pytest.raises(ValidationError, match=match):  # the owner's own password, at activation
            accounts.activate(org.dd, username=username, code=made.code, password=password, now=T0)
        # the refused password did not use up the code
        accounts.activate(org.dd, username=username, code=made.code, password=PASSWORD, now=T0)
    for bad in ("Admin", "x", "system", "installer", "library", "has space"):
        with pytest.raises(ValidationError):
            accounts.create_user(
                org.dd,
                org.admin,
                username=bad,
                display_name="S",
                organisation=ORG,
                unit="U",
                roles=["reviewer"],
                now=T0,
            )


# --- account standing ------------------------------------------------------------------------


def test_an_expired_trial_account_refuses_everything(org: Org) -> None:
    with pytest.raises(ValidationError, match="trials must end"):
        org.add("tom.trial", "reviewer", trial=True)
    end = T0 + timedelta(days=1)
    org.add("tom.trial", "reviewer", trial=True, expires_at=end)
    ws = org.workstation()
    session = org.sign_in("tom.trial", now=T0, device=ws)
    assert session.actor.trial
    assert session.actor.expires_at == end
    assert session.expires_at <= end  # a session never outlives its account
    long_session = accounts.principal_from_token(org.dd, session.session_token or "", None, now=T0)
    assert long_session.actor.username == "tom.trial"
    _, token = accounts.create_token(
        org.dd, session, name="script", scopes=["reviewer"], expires_at=T0 + timedelta(days=30), now=T0
    )

    later = end + timedelta(minutes=1)
    with pytest.raises(AuthenticationError, match=r"trial account 'tom\.trial' expired"):
        org.sign_in("tom.trial", now=later)
    with pytest.raises(AuthenticationError, match="expired"):
        accounts.principal_from_token(org.dd, token, ws, now=later)
    with pytest.raises(PermissionDeniedError, match="expired"):
        accounts.create_token(
            org.dd, session, name="again", scopes=["reviewer"], expires_at=later + STEP, now=later
        )
    assert _failures(org.dd)[-1] == "expired"
    denied = [details(r)["attempted"] for r in audit_rows(org.dd, "policy_denied")]
    assert denied == ["use_token", "create_token"]


def test_a_suspended_account_is_refused_and_its_sessions_end(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    session = org.sign_in("rita.reviewer")
    user = accounts.suspend(org.dd, org.admin, "rita.reviewer", reason="under investigation", now=T0)
    assert user.suspended
    assert user.suspended_reason == "under investigation"
    with pytest.raises(AuthenticationError, match="ended"):
        accounts.principal_from_token(org.dd, session.session_token or "", None, now=T0)
    with pytest.raises(AuthenticationError, match="suspended"):
        org.sign_in("rita.reviewer")
    with pytest.raises(ConflictError, match="already suspended"):
        accounts.suspend(org.dd, org.admin, "rita.reviewer", reason="again", now=T0)
    accounts.unsuspend(org.dd, org.admin, "rita.reviewer", now=T0)
    assert org.sign_in("rita.reviewer", now=T0 + STEP).actor.username == "rita.reviewer"
    changes = [details(r)["change"] for r in audit_rows(org.dd, "account_changed")]
    assert changes[-2:] == ["suspend", "unsuspend"]


def test_changes_to_an_account_apply_from_its_next_request(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    session = org.sign_in("rita.reviewer")
    accounts.set_roles(org.dd, org.admin, "rita.reviewer", ["reviewer", "supervisor"], now=T0)
    again = accounts.principal_from_token(org.dd, session.session_token or "", None, now=T0 + STEP)
    assert again.actor.roles == frozenset({Role.REVIEWER, Role.SUPERVISOR})
    accounts.set_expiry(org.dd, org.admin, "rita.reviewer", expires_at=T0 + timedelta(hours=1), now=T0)
    with pytest.raises(AuthenticationError, match="expired"):
        accounts.principal_from_token(org.dd, session.session_token or "", None, now=T0 + timedelta(hours=2))


# --- second factor ---------------------------------------------------------------------------


def test_mfa_is_required_for_roles_that_search_see_faces_or_administer(org: Org) -> None:
    needs = {role for role in Role if requires_mfa([role])}
    # Every role searches, sees face photos (reviewer, auditor: a case's candidates) or administers.
    assert needs == set(Role)
    for role in Role:
        username = f"only.{role.value.replace('_', '-')}"
        org.add(username, role.value, with_totp=False)
        if role in needs:
            with pytest.raises(AuthenticationError, match="needs a second factor, but none is enrolled"):
                org.sign_in(username)
        else:
            assert not org.sign_in(username).actor.mfa_verified
    assert _failures(org.dd) == ["totp_not_enrolled"] * len(needs)

    org.activate(accounts.enrol_totp(org.dd, org.admin, "only.examiner", now=T0))
    uri = org.seeds["only.examiner"]
    with pytest.raises(AuthenticationError, match="code from its authenticator"):
        accounts.authenticate(
            org.dd, username="only.examiner", password=PASSWORD, totp=None, device=None, now=T0
        )
    examiner = accounts.authenticate(
        org.dd, username="only.examiner", password=PASSWORD, totp=code(uri, T0), device=None, now=T0
    )
    assert examiner.actor.mfa_verified
    assert examiner.actor.roles == frozenset({Role.EXAMINER})


def test_a_confirmed_second_factor_is_always_asked_for(org: Org) -> None:
    org.add("rita.reviewer", "reviewer", with_totp=True)
    assert org.sign_in("rita.reviewer").actor.mfa_verified  # confirms the seed
    with pytest.raises(AuthenticationError, match="authenticator"):
        accounts.authenticate(
            org.dd, username="rita.reviewer", password=PASSWORD, totp=None, device=None, now=T0
        )


def test_totp_codes_are_checked_within_one_step_and_never_accepted_twice(org: Org) -> None:
    org.add("eve.examiner", "examiner")
    uri = org.seeds["eve.examiner"]

    def attempt(code_text: str, now: datetime = T0) -> None:
        accounts.authenticate(
            org.dd, username="eve.examiner", password=PASSWORD, totp=code_text, device=None, now=now
        )

    with pytest.raises(AuthenticationError, match="wrong second-factor code"):
        attempt(code(uri, T0 - 3 * STEP))  # three steps old: outside the window
    with pytest.raises(AuthenticationError, match="wrong second-factor code"):
        attempt("12345x")
    attempt(code(uri, T0 - STEP))  # one step of clock drift is tolerated
    with pytest.raises(AuthenticationError, match="already used"):
        attempt(code(uri, T0 - STEP))
    with pytest.raises(AuthenticationError, match="already used"):
        attempt(code(uri, T0 - 2 * STEP), T0 - STEP)  # older than the last one used
    attempt(code(uri, T0 + STEP), T0 + STEP)
    assert _failures(org.dd) == ["totp_wrong", "totp_wrong", "totp_reused", "totp_reused"]


def test_wrong_totp_codes_count_towards_the_lockout(org: Org) -> None:
    org.add("eve.examiner", "examiner")
    for _ in range(FAST.lockout_failures):
        with pytest.raises(AuthenticationError, match="wrong second-factor code"):
            accounts.authenticate(
                org.dd, username="eve.examiner", password=PASSWORD, totp="000000", device=None, now=T0
            )
    with pytest.raises(AuthenticationError, match=r"^wrong username or password$"):
        org.sign_in("eve.examiner", now=T0 + STEP)
    assert _failures(org.dd)[-1] == "locked"


def test_the_totp_seed_is_stored_encrypted_under_a_private_key_file(org: Org) -> None:
    org.add("eve.examiner", "examiner")
    seed = totp.seed_from_uri(org.seeds["eve.examiner"])
    with org.dd.store.read() as conn:
        sealed = {r.username: r.totp_secret for r in conn.execute(select(ta.users)).all()}
    assert seed.encode() not in sealed["eve.examiner"]
    shown = accounts.get_user(org.dd, org.admin, "eve.examiner", now=T0)
    assert seed not in repr(shown)
    assert seed not in str(shown.to_dict())
    key_file = org.dd.path / "keys" / "totp.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # a seed copied onto another account's row does not decrypt there
    with org.dd.store.begin() as conn:
        conn.execute(
            update(ta.users).where(ta.users.c.username == ADMIN).values(totp_secret=sealed["eve.examiner"])
        )
    with pytest.raises(StoreError, match="does not decrypt"):
        org.sign_in(ADMIN, now=T0 + STEP)

    os.chmod(key_file, 0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        org.sign_in("eve.examiner", now=T0 + STEP)


# --- separation of duties and administration -------------------------------------------------


def test_roles_that_must_stay_apart_cannot_be_combined(org: Org) -> None:
    for pair in accounts.INCOMPATIBLE_ROLES:
        with pytest.raises(ValidationError, match="separation of duties"):
            org.add("x." + "-".join(sorted(r.value.replace("_", "-") for r in pair)), *pair)
    with pytest.raises(ValidationError, match="at least one role"):
        org.add("nora.none")
    with pytest.raises(ValidationError, match="unknown role 'god'"):
        org.add("greg.god", "god")
    org.add("eve.examiner", "examiner", "reviewer")  # a permitted combination
    with pytest.raises(ValidationError, match="separation of duties"):
        accounts.set_roles(org.dd, org.admin, "eve.examiner", ["examiner", "auditor"], now=T0)


def test_nobody_changes_their_own_standing(org: Org) -> None:
    for change in (
        lambda: accounts.set_roles(org.dd, org.admin, ADMIN, ["system_admin", "supervisor"], now=T0),
        lambda: accounts.set_expiry(org.dd, org.admin, ADMIN, expires_at=None, now=T0),
        lambda: accounts.reset_password(org.dd, org.admin, ADMIN, now=T0),
        lambda: accounts.enrol_totp(org.dd, org.admin, ADMIN, now=T0),
    ):
        with pytest.raises(PermissionDeniedError, match="separation of duties"):
            change()
    assert len(audit_rows(org.dd, "policy_denied")) == 4
    other = org.second_admin()
    user = accounts.set_roles(org.dd, other, ADMIN, ["system_admin", "supervisor"], now=T0)
    assert user.roles == frozenset({Role.SYSTEM_ADMIN, Role.SUPERVISOR})


def test_only_system_administrators_manage_accounts(org: Org) -> None:
    org.add("eve.examiner", "examiner")
    org.add("aud.auditor", "auditor")
    examiner = org.sign_in("eve.examiner")
    with pytest.raises(PermissionDeniedError, match="needs one of the roles system_admin"):
        accounts.create_user(
            org.dd,
            examiner,
            username="evil.twin",
            display_name="E",
            organisation=ORG,
            unit="U",
            roles=["examiner"],
            now=T0,
        )
    with pytest.raises(PermissionDeniedError):
        accounts.list_users(org.dd, examiner, now=T0)
    assert accounts.get_user(org.dd, examiner, "eve.examiner", now=T0).username == "eve.examiner"  # self
    auditor = org.sign_in("aud.auditor")
    assert [u.username for u in accounts.list_users(org.dd, auditor, now=T0)] == [
        ADMIN,
        "aud.auditor",
        "eve.examiner",
        VOUCHER,
    ]
    with pytest.raises(PermissionDeniedError):
        accounts.suspend(org.dd, auditor, "eve.examiner", reason="curious", now=T0)
    denied = audit_rows(org.dd, "policy_denied")
    assert [(r.actor, details(r)["attempted"]) for r in denied] == [
        ("eve.examiner", "manage_accounts"),
        ("eve.examiner", "manage_accounts"),
        ("aud.auditor", "manage_accounts"),
    ]


def test_account_changes_are_recorded_with_who_made_them(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    accounts.update_user(org.dd, org.admin, "rita.reviewer", unit="Review Team", now=T0)
    reset = accounts.reset_password(org.dd, org.admin, "rita.reviewer", now=T0)
    with pytest.raises(AuthenticationError):
        org.sign_in("rita.reviewer")
    org.vouchers["Review Team"] = org.vouchers[UNIT]  # a supervisor of the new unit (for the helper)
    with pytest.raises(PermissionDeniedError, match="only a supervisor of unit 'Review Team'"):
        org.activate(reset, password="a brand new passphrase")
    changes = [(r.actor, r.object, details(r)["change"]) for r in audit_rows(org.dd, "account_changed")]
    changes = [c for c in changes if c[1] == "account:rita.reviewer" and "totp" not in c[2]]
    assert changes == [
        (ADMIN, "account:rita.reviewer", "created"),
        ("rita.reviewer", "account:rita.reviewer", "activated"),
        (VOUCHER, "account:rita.reviewer", "vouched"),
        (ADMIN, "account:rita.reviewer", "update"),
        (ADMIN, "account:rita.reviewer", "reset_password"),
        ("rita.reviewer", "account:rita.reviewer", "activated"),
    ]
    sign_ins = [r.actor for r in audit_rows(org.dd, "sign_in")]
    assert sign_ins == [ADMIN, VOUCHER]


# --- sessions and API tokens -------------------------------------------------------------------


def test_sessions_expire_and_end_at_sign_out(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    session = org.sign_in("rita.reviewer")
    token = session.session_token or ""
    assert token.startswith("fls_")
    assert "fls_" not in repr(session)
    with org.dd.store.read() as conn:
        stored = conn.execute(select(ta.sessions.c.token_hash).where(ta.sessions.c.id == session.session_id))
        assert stored.scalar() == hashlib.sha256(token.encode()).hexdigest()  # only the digest is kept
    hours = org.dd.settings.accounts.session_hours
    with pytest.raises(AuthenticationError, match="expired"):
        accounts.principal_from_token(org.dd, token, None, now=T0 + timedelta(hours=hours))
    assert accounts.logout(org.dd, token, now=T0)
    assert not accounts.logout(org.dd, token, now=T0)
    with pytest.raises(AuthenticationError, match="ended"):
        accounts.principal_from_token(org.dd, token, None, now=T0)
    with pytest.raises(AuthenticationError, match="not a faceledger"):
        accounts.principal_from_token(org.dd, "Bearer nonsense", None, now=T0)


def test_api_tokens_are_scoped_expiring_and_revocable(org: Org) -> None:
    org.add("sue.super", "supervisor", "reviewer")
    ws = org.workstation()
    session = org.sign_in("sue.super", device=ws)
    week = T0 + timedelta(days=7)
    with pytest.raises(ValidationError, match="does not hold: examiner"):
        accounts.create_token(
            org.dd, session, name="t", scopes=["reviewer", "examiner"], expires_at=week, now=T0
        )
    with pytest.raises(ValidationError, match="at most 90 days"):
        accounts.create_token(
            org.dd, session, name="t", scopes=["reviewer"], expires_at=T0 + timedelta(days=91), now=T0
        )
    info, secret = accounts.create_token(
        org.dd, session, name="review bot", scopes=["reviewer"], expires_at=week, now=T0
    )
    assert secret.startswith("flt_")
    assert info.scopes == frozenset({Role.REVIEWER})

    principal = accounts.principal_from_token(org.dd, secret, ws, now=T0 + STEP)
    assert principal.actor.roles == frozenset({Role.REVIEWER})
    assert principal.token_id == info.id
    with pytest.raises(PermissionDeniedError, match="signed-in session"):
        accounts.create_token(org.dd, principal, name="child", scopes=["reviewer"], expires_at=week, now=T0)
    listed = accounts.list_tokens(org.dd, session, now=T0 + STEP)
    assert [(t.name, t.last_used_at) for t in listed] == [("review bot", T0 + STEP)]

    with pytest.raises(AuthenticationError, match="expired"):
        accounts.principal_from_token(org.dd, secret, ws, now=week)
    accounts.set_roles(org.dd, org.admin, "sue.super", ["supervisor"], now=T0)
    with pytest.raises(AuthenticationError, match="no scope left"):
        accounts.principal_from_token(org.dd, secret, ws, now=T0 + STEP)
    accounts.set_roles(org.dd, org.admin, "sue.super", ["supervisor", "reviewer"], now=T0)
    revoked = accounts.revoke_token(org.dd, session, info.id, now=T0 + STEP)
    assert revoked.revoked_by == "sue.super"
    assert not revoked.is_active(T0 + STEP)
    with pytest.raises(AuthenticationError, match="revoked"):
        accounts.principal_from_token(org.dd, secret, ws, now=T0 + 2 * STEP)
    with pytest.raises(ConflictError, match="already revoked"):
        accounts.revoke_token(org.dd, session, info.id, now=T0)
    changes = [details(r)["change"] for r in audit_rows(org.dd, "account_changed")]
    assert changes.count("token_created") == 1
    assert changes.count("token_revoked") == 1
    assert [details(r)["attempted"] for r in audit_rows(org.dd, "policy_denied")][-1] == "use_token"


def test_other_peoples_tokens_are_for_administrators_only(org: Org) -> None:
    org.add("rita.reviewer", "reviewer")
    org.add("aud.auditor", "auditor")
    rita = org.sign_in("rita.reviewer", device=org.workstation())
    info, _ = accounts.create_token(
        org.dd, rita, name="mine", scopes=["reviewer"], expires_at=T0 + STEP * 10, now=T0
    )
    auditor = org.sign_in("aud.auditor")
    assert [t.id for t in accounts.list_tokens(org.dd, auditor, username="rita.reviewer", now=T0)] == [
        info.id
    ]
    with pytest.raises(PermissionDeniedError):
        accounts.revoke_token(org.dd, auditor, info.id, now=T0)
    assert accounts.revoke_token(org.dd, org.admin, info.id, now=T0).revoked_by == ADMIN


@pytest.mark.parametrize("hidden", ["\u202e", "\x1b", "\u200b", "\t", "\x1c"])
def test_names_units_and_reasons_with_an_invisible_character_are_refused_saying_which(
    org: Org, hidden: str
) -> None:
    """A display name or a reason is shown to other people: it may not hide or reorder text."""
    with pytest.raises(ValidationError, match=r"display name contains the invisible character U\+"):
        accounts.create_user(
            org.dd, org.admin, username="nia.new", display_name=f"Nia{hidden}New", organisation=ORG,
            unit=UNIT, roles=["examiner"], now=T0,
        )  # fmt: skip
    with pytest.raises(ValidationError, match=r"unit contains the invisible character"):
        accounts.create_user(
            org.dd, org.admin, username="nia.new", display_name="Nia New", organisation=ORG,
            unit=f"{hidden}{UNIT}", roles=["examiner"], now=T0,
        )  # fmt: skip
    with pytest.raises(ValidationError, match=r"reason for a suspension contains the invisible character"):
        accounts.suspend(org.dd, org.admin, ADMIN, reason=f"left{hidden}", now=T0)
    assert accounts.get_user(org.dd, org.admin, ADMIN, now=T0).suspended is False
    assert [r for r in audit_rows(org.dd, "account_changed") if r.object == "account:nia.new"] == []
