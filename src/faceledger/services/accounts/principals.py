"""From a presented session or API token (and device credential) to the person acting.

Called on every request, so the account's standing and roles are read fresh each time:
a suspension, an expiry or a role removed takes effect on the next request, not at the
next sign-in. A session is bound to the device it was opened on; presenting another
device's credential with it is refused outright (a copied token), while a wrong or
revoked credential for its own device only drops the device (so searches are refused by
the policy) and is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.domain.roles import Role
from faceledger.errors import AuthenticationError
from faceledger.services import audit
from faceledger.services.accounts import hashing, rows
from faceledger.services.accounts.records import SESSION_PREFIX, TOKEN_PREFIX, Principal, from_db, utc
from faceledger.services.accounts.signin import account_standing, actor_for
from faceledger.services.devices import (
    DeviceCheck,
    DeviceCredential,
    check_device,
    record_refused,
    session_device,
)

if TYPE_CHECKING:
    from faceledger.services.datadir import DataDir

SIGN_IN_AGAIN = "sign in again (faceledger login)"


def principal_from_token(
    dd: DataDir, token: str, device: DeviceCredential | None, *, now: datetime, page: bool = False
) -> Principal:
    """The principal a session token (``fls_...``) or API token (``flt_...``) stands for.

    ``page``: the token came from the web pages' session cookie. Only then does a session that a
    browser's WebAuthn assertion bound to a device act from that device
    (:func:`~faceledger.services.devices.session_device`); the same token presented any other
    way acts from the device whose credential comes with it, as every API session does.
    """
    now = utc(now)
    if not token.startswith((SESSION_PREFIX, TOKEN_PREFIX)):
        raise AuthenticationError(f"not a faceledger session or API token; {SIGN_IN_AGAIN}")
    with dd.store.begin() as conn:
        if token.startswith(SESSION_PREFIX):
            outcome = _from_session(dd, conn, token, device, now, page=page)
        else:
            outcome = _from_api_token(dd, conn, token, device, now)
    if isinstance(outcome, str):
        raise AuthenticationError(outcome)
    return outcome


def _refuse(
    dd: DataDir, conn: Connection, username: str, attempted: str, target: str, reason: str, now: datetime
) -> str:
    event = events.policy_denied(username, attempted=attempted, target=target, reason=reason)
    audit.record(dd, conn, event, now=now)
    return reason


def _failed(
    dd: DataDir, conn: Connection, username: str, attempted: str, target: str, reason: str, now: datetime
) -> str:
    """Record a credential that was real but is no longer valid (ended or expired), and say why."""
    event = events.action_failed(
        username, attempted=attempted, target=target, code=AuthenticationError.code, reason=reason
    )
    audit.record(dd, conn, event, now=now)
    return reason


def _user_refusal(dd: DataDir, conn: Connection, user: Row[Any], attempted: str, now: datetime) -> str | None:
    standing = account_standing(user, now)
    if standing is None:
        return None
    return _refuse(dd, conn, user.username, attempted, f"account:{user.username}", standing[1], now)


def _from_session(
    dd: DataDir, conn: Connection, token: str, device: DeviceCredential | None, now: datetime, *, page: bool
) -> Principal | str:
    session = conn.execute(
        select(ta.sessions).where(ta.sessions.c.token_hash == hashing.digest(token))
    ).first()
    if session is None:
        return f"unknown session; {SIGN_IN_AGAIN}"
    user = rows.user_row_by_id(conn, session.user_id)
    target = f"session:{session.id}"
    if session.revoked_at is not None:
        reason = f"this session was ended (signed out, or the account was changed); {SIGN_IN_AGAIN}"
        return _failed(dd, conn, user.username, "use_session", target, reason, now)
    expires_at = from_db(session.expires_at) or session.expires_at
    if now >= expires_at:
        reason = f"this session expired at {expires_at.isoformat(timespec='minutes')}; {SIGN_IN_AGAIN}"
        return _failed(dd, conn, user.username, "use_session", target, reason, now)
    refusal = _user_refusal(dd, conn, user, "use_session", now)
    if refusal is not None:
        return refusal
    check = check_device(conn, device)
    if check.claimed is not None and check.claimed != session.device_id:
        opened_on = f"device {session.device_id!r}" if session.device_id else "no registered device"
        reason = (
            f"session {session.id} was opened on {opened_on} and cannot be used "
            f"from device {check.claimed!r}; "
            f"{SIGN_IN_AGAIN} from this device"
        )
        return _refuse(dd, conn, user.username, "use_session", f"session:{session.id}", reason, now)
    if check.claimed is None and page and session.browser_credential_id is not None:
        check = session_device(conn, session)
    record_refused(dd, conn, user.username, check, now)
    roles = rows.roles_of(conn, user.id)
    return Principal(
        actor=actor_for(user, roles, mfa=bool(session.mfa), device=check),
        user_id=user.id,
        scopes=roles,
        expires_at=expires_at,
        session_id=session.id,
    )


def _token_device_refusal(row: Row[Any], check: DeviceCheck) -> str | None:
    """Why a device-bound token is not accepted with the device credential presented (None: it is)."""
    if row.server:
        return None
    if row.device_id is None:
        return (
            f"API token {row.id} ({row.name!r}) is bound to no device (it was made before tokens were "
            "bound to their device); make a new one from a session on a registered device"
        )
    if check.device_id == row.device_id:
        return None
    presented = "no device credential" if check.claimed is None else f"device {check.claimed!r}"
    if check.problem is not None:
        presented += f" ({check.problem})"
    return (
        f"API token {row.id} ({row.name!r}) is bound to device {row.device_id!r} and is accepted only "
        f"with that device's credential; this request presented {presented}"
    )


def _from_api_token(
    dd: DataDir, conn: Connection, token: str, device: DeviceCredential | None, now: datetime
) -> Principal | str:
    row = conn.execute(
        select(ta.api_tokens).where(ta.api_tokens.c.token_hash == hashing.digest(token))
    ).first()
    if row is None:
        return "unknown API token; create one with: faceledger token create"
    user = rows.user_row_by_id(conn, row.user_id)
    if row.revoked_at is not None:
        reason = f"API token {row.id} ({row.name!r}) was revoked"
        return _refuse(dd, conn, user.username, "use_token", f"token:{row.id}", reason, now)
    expires_at = from_db(row.expires_at) or row.expires_at
    if now >= expires_at:
        reason = f"API token {row.id} ({row.name!r}) expired at {expires_at.isoformat(timespec='minutes')}"
        return _failed(dd, conn, user.username, "use_token", f"token:{row.id}", reason, now)
    refusal = _user_refusal(dd, conn, user, "use_token", now)
    if refusal is not None:
        return refusal
    scopes = frozenset(Role(name) for name in row.scopes) & rows.roles_of(conn, user.id)
    if not scopes:
        reason = (
            f"API token {row.id} ({row.name!r}) has no scope left: "
            f"{user.username!r} no longer holds its roles"
        )
        return _refuse(dd, conn, user.username, "use_token", f"token:{row.id}", reason, now)
    # A server token acts from no device; any other is accepted only with its own device's credential.
    check = DeviceCheck(None, None) if row.server else check_device(conn, device)
    bound = _token_device_refusal(row, check)
    if bound is not None:
        return _refuse(dd, conn, user.username, "use_token", f"token:{row.id}", bound, now)
    record_refused(dd, conn, user.username, check, now)
    conn.execute(update(ta.api_tokens).where(ta.api_tokens.c.id == row.id).values(last_used_at=now))
    return Principal(
        actor=actor_for(user, scopes, mfa=bool(row.mfa), device=check),
        user_id=user.id,
        scopes=scopes,
        expires_at=expires_at,
        token_id=row.id,
    )
