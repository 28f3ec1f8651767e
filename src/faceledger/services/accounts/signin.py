"""Signing in, and turning a session or API token back into the person acting.

A refused sign-in is recorded and *committed* before it is raised, so that guessing leaves
a trace even though nothing else happens: the functions below build the outcome inside
the transaction (a :class:`Principal`, or the refusal's message), and the caller raises
after the transaction has committed.

Refusals say enough for a person to act on, but an unknown username, a wrong password and
a locked account get the same message and take the same time (each checks a password
hash), so the sign-in form cannot be used to find out who has an account or whether it is
locked. A lockout refuses new sign-ins only; open sessions and API tokens keep working.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.audit.events import JsonValue
from faceledger.domain.roles import Actor, Role, requires_mfa
from faceledger.errors import AuthenticationError
from faceledger.services import audit
from faceledger.services.accounts import hashing, rows
from faceledger.services.accounts import totp as totp_codes
from faceledger.services.accounts.records import SESSION_PREFIX, Principal, from_db, iso, utc
from faceledger.services.devices import DeviceCheck, DeviceCredential, check_device, record_refused

if TYPE_CHECKING:
    from faceledger.services.datadir import DataDir

WRONG_CREDENTIALS = "wrong username or password"


def authenticate(
    dd: DataDir,
    *,
    username: str,
    password: str,
    totp: str | None,
    device: DeviceCredential | None,
    now: datetime,
) -> Principal:
    """Sign in; the returned principal carries the new session token (``.session_token``).

    ``totp`` is the code from the account's authenticator: required for roles that can
    search or administer, and for any account whose second factor is confirmed. The first
    valid code after :func:`~faceledger.services.accounts.users.enrol_totp` confirms it.
    """
    now = utc(now)
    username = rows.sign_in_name(username)  # control characters: refused as an unknown name
    with dd.store.begin() as conn:
        outcome = _sign_in(dd, conn, username, password, totp, check_device(conn, device), now)
    if isinstance(outcome, str):
        raise AuthenticationError(outcome)
    return outcome


def _sign_in(
    dd: DataDir,
    conn: Connection,
    username: str,
    password: str,
    code: str | None,
    check: DeviceCheck,
    now: datetime,
) -> Principal | str:
    settings = dd.settings.accounts
    row = rows.user_row(conn, username)
    if row is None:
        hashing.spend_like_a_password_check(password, settings)
        return _failed(dd, conn, username, "unknown_user", check, now, WRONG_CREDENTIALS)
    locked_until = from_db(row.locked_until)
    if locked_until is not None and now < locked_until:
        # The same answer, after the same work, as an unknown username or a wrong password: a
        # locked account is not revealed, and a guess during the lockout learns nothing.
        hashing.verify_password(row.password_hash, password, settings)
        return _failed(dd, conn, username, "locked", check, now, WRONG_CREDENTIALS)
    matches, stale_hash = hashing.verify_password(row.password_hash, password, settings)
    if not matches:
        return _count_failure(dd, conn, row, "wrong_password", check, now, WRONG_CREDENTIALS)
    if stale_hash:
        rows.update_user(conn, row.id, now, password_hash=hashing.hash_password(password, settings))
    standing = account_standing(row, now)
    if standing is not None:
        return _failed(dd, conn, username, standing[0], check, now, standing[1])
    roles = rows.roles_of(conn, row.id)
    mfa = _second_factor(dd, conn, row, roles, code, check, now)
    if isinstance(mfa, str):
        return mfa
    if row.failed_attempts:
        conn.execute(update(ta.users).where(ta.users.c.id == row.id).values(failed_attempts=0))
    record_refused(dd, conn, username, check, now)
    return _open_session(dd, conn, row, roles, mfa, check, now)


def account_standing(row: Row[Any], now: datetime) -> tuple[str, str] | None:
    """(reason code, message) when the account may not act at all, whatever it presents.

    A lockout is not part of the standing: it refuses new sign-ins only (see
    :func:`authenticate`), so that anyone who types a username wrongly a few times can keep
    its owner from signing in for a while, but cannot end the owner's open sessions or stop
    its API tokens (docs/accounts.md).
    """
    if row.activated_at is None:
        return "not_activated", (
            f"account {row.username!r} is not activated: activate it with the code from a system "
            f"administrator (faceledger user activate {row.username})"
        )
    if row.vouched_at is None:
        return "not_vouched", (
            f"account {row.username!r} is activated but waits for a supervisor of its unit to vouch "
            f"for it (faceledger user vouch {row.username})"
        )
    expires_at = from_db(row.expires_at)
    if expires_at is not None and now >= expires_at:
        kind = "trial account" if row.trial else "account"
        return "expired", f"{kind} {row.username!r} expired at {expires_at.isoformat(timespec='minutes')}"
    if row.suspended:
        return "suspended", f"account {row.username!r} is suspended; ask a system administrator"
    return None


def _failed(
    dd: DataDir, conn: Connection, username: str, reason: str, check: DeviceCheck, now: datetime, message: str
) -> str:
    event = events.sign_in_failed(username[: ta.USERNAME_LEN], reason=reason, device_id=check.claimed)
    audit.record(dd, conn, event, now=now)
    return message


def _count_failure(
    dd: DataDir, conn: Connection, row: Row[Any], reason: str, check: DeviceCheck, now: datetime, message: str
) -> str:
    """Record a wrong secret; the ``lockout_failures``-th in a row locks the account."""
    settings = dd.settings.accounts
    attempts = conn.execute(
        update(ta.users)
        .where(ta.users.c.id == row.id)
        .values(failed_attempts=ta.users.c.failed_attempts + 1)
        .returning(ta.users.c.failed_attempts)
    ).scalar_one()
    _failed(dd, conn, row.username, reason, check, now, message)
    if attempts < settings.lockout_failures:
        return message
    # The answer does not say the account is now locked: an unknown username is never locked,
    # so saying so would tell a stranger that the account exists.
    until = now + timedelta(minutes=settings.lockout_minutes)
    conn.execute(
        update(ta.users).where(ta.users.c.id == row.id).values(failed_attempts=0, locked_until=until)
    )
    values = {"locked_until": iso(until), "failed_attempts": attempts}
    event = events.account_changed(events.SYSTEM_ACTOR, account=row.username, change="locked", values=values)
    audit.record(dd, conn, event, now=now)
    return message


def _second_factor(
    dd: DataDir,
    conn: Connection,
    row: Row[Any],
    roles: frozenset[Role],
    code: str | None,
    check: DeviceCheck,
    now: datetime,
) -> bool | str:
    """Whether the second factor was passed, or the refusal's message."""
    needed = requires_mfa(roles)
    if row.totp_secret is None:
        if not needed:
            return False
        message = (
            f"account {row.username!r} holds a role that needs a second factor, but none is enrolled; "
            f"ask a system administrator to run: faceledger user enrol-totp {row.username} "
            "(you then activate the account again)"
        )
        return _failed(dd, conn, row.username, "totp_not_enrolled", check, now, message)
    if not (code or "").strip():
        if not needed and not row.totp_confirmed:
            return False
        message = f"account {row.username!r} must give the code from its authenticator app (TOTP)"
        return _failed(dd, conn, row.username, "totp_missing", check, now, message)
    seed = totp_codes.TotpVault(dd.path).open(row.id, row.totp_secret)
    step = totp_codes.matching_step(seed, code or "", now)
    if step is None:
        return _count_failure(dd, conn, row, "totp_wrong", check, now, "wrong second-factor code")
    if not _claim_step(conn, row.id, step):
        message = "this second-factor code was already used; wait for the next one"
        return _count_failure(dd, conn, row, "totp_reused", check, now, message)
    if not row.totp_confirmed:
        event = events.account_changed(row.username, account=row.username, change="totp_confirmed", values={})
        audit.record(dd, conn, event, now=now)
    return True


def _claim_step(conn: Connection, user_id: int, step: int) -> bool:
    """Mark ``step`` used unless it, or a later one, already was.

    One conditional update, so two sign-ins racing with the same code cannot both pass.
    """
    last = ta.users.c.totp_last_step
    claimed = conn.execute(
        update(ta.users)
        .where(ta.users.c.id == user_id, (last.is_(None)) | (last < step))
        .values(totp_last_step=step, totp_confirmed=True)
    )
    return claimed.rowcount == 1


def actor_for(row: Row[Any], roles: frozenset[Role], *, mfa: bool, device: DeviceCheck) -> Actor:
    """The account ``row`` acting with ``roles``, from the device ``device`` accepted (if any)."""
    return Actor(
        username=row.username,
        roles=roles,
        organisation=row.organisation,
        unit=row.unit,
        expires_at=from_db(row.expires_at),
        suspended=bool(row.suspended),
        mfa_verified=mfa,
        device_id=device.device_id,
        trial=bool(row.trial),
        device_unit=device.unit if device.device_id is not None else None,
    )


def _open_session(
    dd: DataDir,
    conn: Connection,
    row: Row[Any],
    roles: frozenset[Role],
    mfa: bool,
    device: DeviceCheck,
    now: datetime,
) -> Principal:
    device_id = device.device_id
    token = hashing.new_secret(SESSION_PREFIX)
    expires_at = now + timedelta(hours=dd.settings.accounts.session_hours)
    account_expiry = from_db(row.expires_at)
    if account_expiry is not None:
        expires_at = min(expires_at, account_expiry)
    values = {
        "user_id": row.id,
        "token_hash": hashing.digest(token),
        "device_id": device_id,
        "mfa": mfa,
        "created_at": now,
        "expires_at": expires_at,
    }
    key = conn.execute(insert(ta.sessions).values(values)).inserted_primary_key
    assert key is not None
    audit.record(dd, conn, events.sign_in(row.username, device_id=device_id, mfa=mfa), now=now)
    return Principal(
        actor=actor_for(row, roles, mfa=mfa, device=device),
        user_id=row.id,
        scopes=roles,
        expires_at=expires_at,
        session_id=int(key[0]),
        session_token=token,
    )


def logout(dd: DataDir, token: str, *, now: datetime, reason: str | None = None) -> bool:
    """End the session ``token`` opened; False when it was unknown or already ended.

    ``reason`` (e.g. ``"idle"``: the web pages end a session left unused) is recorded with
    the entry; without one the person signed out.
    """
    now = utc(now)
    if not token.startswith(SESSION_PREFIX):
        raise AuthenticationError(
            "that is not a session token (API tokens end with: faceledger token revoke)"
        )
    with dd.store.begin() as conn:
        session = conn.execute(
            select(ta.sessions).where(ta.sessions.c.token_hash == hashing.digest(token))
        ).first()
        if session is None or session.revoked_at is not None:
            return False
        conn.execute(update(ta.sessions).where(ta.sessions.c.id == session.id).values(revoked_at=now))
        user = rows.user_row_by_id(conn, session.user_id)
        values: dict[str, JsonValue] = {"session_id": session.id}
        if reason is not None:
            values["reason"] = reason
        event = events.account_changed(
            user.username, account=user.username, change="signed_out", values=values
        )
        audit.record(dd, conn, event, now=now)
    return True


REAUTH_REFUSED = "re-authentication failed: wrong password or second-factor code"


def reauthenticate(dd: DataDir, principal: Principal, password: str, code: str, *, now: datetime) -> None:
    """Check that the person of ``principal``'s session is at the keyboard: their own account's
    password and a fresh TOTP code, before a sign-off step (peer verdict, approval, rejection).

    Checked and throttled as sign-in is: a wrong password or code counts towards the lockout
    and is recorded (``sign_in_failed`` with a ``reauth_`` reason); a locked, suspended or
    expired account is refused; a used code cannot be used again. Success is recorded too
    (``account_changed``, change ``reauthenticated``). Raises :class:`AuthenticationError`.
    """
    now = utc(now)
    check = DeviceCheck(principal.actor.device_id, principal.actor.device_id)
    with dd.store.begin() as conn:
        outcome = _reauthenticate(dd, conn, principal, password, code, check, now)
    if outcome is not None:
        raise AuthenticationError(outcome)


def _reauthenticate(
    dd: DataDir,
    conn: Connection,
    principal: Principal,
    password: str,
    code: str,
    check: DeviceCheck,
    now: datetime,
) -> str | None:
    settings = dd.settings.accounts
    row = rows.user_row_by_id(conn, principal.user_id)
    locked_until = from_db(row.locked_until)
    if locked_until is not None and now < locked_until:
        hashing.verify_password(row.password_hash, password, settings)
        return _failed(dd, conn, row.username, "reauth_locked", check, now, REAUTH_REFUSED)
    matches, _stale = hashing.verify_password(row.password_hash, password, settings)
    if not matches:
        return _count_failure(dd, conn, row, "reauth_wrong_password", check, now, REAUTH_REFUSED)
    standing = account_standing(row, now)
    if standing is not None:
        return _failed(dd, conn, row.username, f"reauth_{standing[0]}", check, now, standing[1])
    if row.totp_secret is None:
        message = (
            f"account {row.username!r} has no second factor enrolled; sign-off steps need one "
            f"(a system administrator runs: faceledger user enrol-totp {row.username})"
        )
        return _failed(dd, conn, row.username, "reauth_totp_not_enrolled", check, now, message)
    if not code.strip():
        message = "re-authentication needs the code from your authenticator app (TOTP) as well"
        return _failed(dd, conn, row.username, "reauth_totp_missing", check, now, message)
    seed = totp_codes.TotpVault(dd.path).open(row.id, row.totp_secret)
    step = totp_codes.matching_step(seed, code, now)
    if step is None:
        return _count_failure(dd, conn, row, "reauth_totp_wrong", check, now, REAUTH_REFUSED)
    if not _claim_step(conn, row.id, step):
        message = "this second-factor code was already used; wait for the next one"
        return _count_failure(dd, conn, row, "reauth_totp_reused", check, now, message)
    if row.failed_attempts:
        conn.execute(update(ta.users).where(ta.users.c.id == row.id).values(failed_attempts=0))
    event = events.account_changed(
        row.username,
        account=row.username,
        change="reauthenticated",
        values={"session_id": principal.session_id},
    )
    audit.record(dd, conn, event, now=now)
    return None
