"""Re-authentication before a sign-off step (SQLite, and the real PostgreSQL server when reachable).

The session's own account's password and a fresh TOTP code, checked and throttled as sign-in is.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from accounts_helpers import (  # noqa: F401 - fixtures
    FAST,
    PASSWORD,
    T0,
    Org,
    audit_rows,
    code,
    dd_fixture,
    details,
    pg_url_fixture,
    template_fixture,
)

from faceledger.errors import AuthenticationError
from faceledger.services import accounts
from faceledger.services.datadir import DataDir

STEP = timedelta(seconds=30)
SUE = "sue.supervisor"


@pytest.fixture
def org(dd: DataDir) -> Org:
    made = Org(dd)
    made.add(SUE, "supervisor")
    return made


def _failures(dd: DataDir) -> list[tuple[str, str]]:
    return [(row.actor, details(row)["reason"]) for row in audit_rows(dd, "sign_in_failed")]


def _reauthenticated(dd: DataDir) -> list[str]:
    rows = audit_rows(dd, "account_changed")
    return [row.actor for row in rows if details(row)["change"] == "reauthenticated"]


def test_the_sessions_own_password_and_a_fresh_code_pass_and_are_recorded(org: Org) -> None:
    sue = org.sign_in(SUE, now=T0)
    later = T0 + 2 * STEP
    accounts.reauthenticate(org.dd, sue, PASSWORD, code(org.seeds[SUE], later), now=later)
    assert _reauthenticated(org.dd) == [SUE]
    with pytest.raises(AuthenticationError, match="already used"):  # the same code twice: no
        accounts.reauthenticate(org.dd, sue, PASSWORD, code(org.seeds[SUE], later), now=later)
    # Another account's password does not do: it is the session's own account that is checked.
    with pytest.raises(AuthenticationError, match="re-authentication failed"):
        accounts.reauthenticate(
            org.dd, sue, "someone else's passphrase", code(org.seeds[SUE], later), now=later
        )
    assert _failures(org.dd)[-2:] == [(SUE, "reauth_totp_reused"), (SUE, "reauth_wrong_password")]


def test_a_missing_or_wrong_code_is_refused_and_recorded(org: Org) -> None:
    sue = org.sign_in(SUE, now=T0)
    with pytest.raises(AuthenticationError, match="code from your authenticator"):
        accounts.reauthenticate(org.dd, sue, PASSWORD, "", now=T0 + STEP)
    with pytest.raises(AuthenticationError, match="re-authentication failed"):
        accounts.reauthenticate(org.dd, sue, PASSWORD, "000000", now=T0 + STEP)
    assert _failures(org.dd)[-2:] == [(SUE, "reauth_totp_missing"), (SUE, "reauth_totp_wrong")]
    assert _reauthenticated(org.dd) == []


def test_wrong_secrets_at_re_authentication_count_towards_the_lockout(org: Org) -> None:
    sue = org.sign_in(SUE, now=T0)
    for _ in range(FAST.lockout_failures):
        with pytest.raises(AuthenticationError, match="re-authentication failed"):
            accounts.reauthenticate(org.dd, sue, "wrong passphrase!", "000000", now=T0 + STEP)
    locked = [details(row)["change"] for row in audit_rows(org.dd, "account_changed")]
    assert locked[-1] == "locked"
    # Locked: even the right password and code are refused, at sign-in and here.
    later = T0 + 3 * STEP
    with pytest.raises(AuthenticationError, match="re-authentication failed"):
        accounts.reauthenticate(org.dd, sue, PASSWORD, code(org.seeds[SUE], later), now=later)
    assert _failures(org.dd)[-1] == (SUE, "reauth_locked")
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        org.sign_in(SUE, now=T0 + 4 * STEP)
    # After the lockout runs out it works again.
    after = T0 + timedelta(minutes=FAST.lockout_minutes + 1)
    accounts.reauthenticate(org.dd, sue, PASSWORD, code(org.seeds[SUE], after), now=after)
    assert _reauthenticated(org.dd) == [SUE]
