"""API tokens: for scripts and integrations, scoped to some of their owner's roles.

A token is made from a signed-in session (never from another token), carries a subset of
its owner's roles, always expires (at most ``accounts.token_max_days`` ahead), and can be
revoked by its owner or a system administrator. At use, its scopes are cut down to the
roles its owner still holds, so taking a role away from a person takes it from their
tokens too. Only a digest of the token is stored; the token is shown once.

A token is bound to the registered device of the session that made it, and is accepted
only together with that device's credential, so a token copied to a personal machine is
useless there. The exception is a *server token* (``server=True``), for server-to-server
use: it is bound to no device, may be made only while the policy in force says
``[devices] server_tokens = true`` (rule ``token.server_not_allowed``), and acts from no
registered device, so it is refused every action that needs one (searches, comparisons and
face images by default). A token asked for from a session on no registered device that is
not a server token is refused with rule ``token.device_required``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.audit.events import JsonValue
from faceledger.domain.access import NO_POLICY_VERSION
from faceledger.domain.policy import Decision, RuleId
from faceledger.domain.roles import Action, Role, parse_role, requires_mfa
from faceledger.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from faceledger.services import audit
from faceledger.services.accounts import hashing, rows
from faceledger.services.accounts.guard import account_problem, authorize, deny
from faceledger.services.accounts.records import TOKEN_PREFIX, ApiToken, from_db, iso, role_names, utc
from faceledger.services.policies import active_stored_policy, refuse

if TYPE_CHECKING:
    from faceledger.services.accounts.records import Principal
    from faceledger.services.datadir import DataDir


def _to_token(row: Row[Any], username: str) -> ApiToken:
    return ApiToken(
        device_id=row.device_id,
        server=bool(row.server),
        id=row.id,
        username=username,
        name=row.name,
        scopes=frozenset(Role(name) for name in row.scopes),
        mfa=bool(row.mfa),
        created_at=from_db(row.created_at) or row.created_at,
        expires_at=from_db(row.expires_at) or row.expires_at,
        revoked_at=from_db(row.revoked_at),
        revoked_by=row.revoked_by,
        last_used_at=from_db(row.last_used_at),
    )


def _check_request(
    dd: DataDir, by: Principal, scopes: Iterable[str | Role], expires_at: datetime, now: datetime
) -> frozenset[Role]:
    wanted = frozenset(s if isinstance(s, Role) else parse_role(s) for s in scopes)
    if not wanted:
        raise ValidationError("an API token needs at least one scope (one of the roles you hold)")
    extra = wanted - by.scopes
    if extra:
        raise ValidationError(
            f"an API token can only carry roles its owner holds; {by.username!r} does not hold: "
            + ", ".join(role_names(extra))
        )
    limit = now + timedelta(days=dd.settings.accounts.token_max_days)
    if not now < expires_at <= limit:
        raise ValidationError(
            f"an API token must expire after now and at most "
            f"{dd.settings.accounts.token_max_days} days ahead "
            f"(by {limit.isoformat(timespec='minutes')}); got {expires_at.isoformat(timespec='minutes')}"
        )
    if requires_mfa(wanted) and not by.actor.mfa_verified:
        raise PermissionDeniedError("a token for roles that search or administer needs a session with TOTP")
    return wanted


def create_token(
    dd: DataDir,
    by: Principal,
    *,
    name: str,
    scopes: Iterable[str | Role],
    expires_at: datetime,
    now: datetime,
    server: bool = False,
) -> tuple[ApiToken, str]:
    """A new API token for ``by``'s own account; the returned string is its only copy.

    Bound to the device ``by``'s session is on, or (``server``) a server token, where the
    policy allows them.
    """
    now = utc(now)
    expiry = utc(expires_at, "token expiry")
    name = rows.check_label(name, "token name")
    if by.token_id is not None or by.session_id is None:
        deny(dd, by.username, attempted="create_token", target=f"account:{by.username}", now=now,
             reason="API tokens are created from a signed-in session, not from another token")  # fmt: skip
    problem = account_problem(by, now)
    if problem is not None:
        deny(
            dd,
            by.username,
            attempted="create_token",
            target=f"account:{by.username}",
            reason=problem,
            now=now,
        )
    _check_binding(dd, by, server=server, now=now)
    wanted = _check_request(dd, by, scopes, expiry, now)
    secret = hashing.new_secret(TOKEN_PREFIX)
    with dd.store.begin() as conn:
        values = {
            "user_id": by.user_id,
            "name": name,
            "token_hash": hashing.digest(secret),
            "scopes": role_names(wanted),
            "mfa": by.actor.mfa_verified,
            "created_at": now,
            "expires_at": expiry,
            "device_id": None if server else by.actor.device_id,
            "server": server,
        }
        key = conn.execute(insert(ta.api_tokens).values(values)).inserted_primary_key
        assert key is not None
        token = _to_token(_row(conn, int(key[0])), by.username)
        details: dict[str, JsonValue] = {
            "token_id": token.id,
            "name": name,
            "scopes": role_names(wanted),
            "expires_at": iso(expiry),
            "device_id": token.device_id,
            "server": server,
        }
        event = events.account_changed(
            by.username, account=by.username, change="token_created", values=details
        )
        audit.record(dd, conn, event, now=now)
    return token, secret


def _check_binding(dd: DataDir, by: Principal, *, server: bool, now: datetime) -> None:
    """Refuse (and record) a token that could be used away from a registered device."""
    stored = active_stored_policy(dd)
    version = NO_POLICY_VERSION if stored is None else stored.version
    target = f"account:{by.username}"
    if server:
        if stored is not None and stored.policy().server_tokens:
            return
        reason = (
            "server tokens (bound to no device) are refused unless the policy in force says "
            "[devices] server_tokens = true"
        )
        denial = Decision(False, RuleId.TOKEN_SERVER_NOT_ALLOWED, version, reason)
        refuse(dd, by, denial, action="create_token", target=target, now=now)
    if by.actor.device_id is None:
        reason = (
            "an API token is bound to the registered device it is made on, and this session is on "
            "no registered device: sign in on an agency device (or make a server token, where the "
            "policy allows them)"
        )
        refuse(dd, by, Decision(False, RuleId.TOKEN_DEVICE_REQUIRED, version, reason),
               action="create_token", target=target, now=now)  # fmt: skip


def _row(conn: Connection, token_id: int) -> Row[Any]:
    row = conn.execute(select(ta.api_tokens).where(ta.api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFoundError(f"no API token {token_id} (list yours with: faceledger token list)")
    return row


def list_tokens(dd: DataDir, by: Principal, *, username: str | None = None, now: datetime) -> list[ApiToken]:
    """``by``'s own tokens, or (for an administrator or auditor) another account's."""
    owner = username or by.username
    if owner != by.username:
        authorize(
            dd, by, [Action.MANAGE_ACCOUNTS, Action.READ_AUDIT], target=f"account:{owner}", now=utc(now)
        )
    with dd.store.read() as conn:
        user = rows.require_user_row(conn, owner)
        found = conn.execute(
            select(ta.api_tokens).where(ta.api_tokens.c.user_id == user.id).order_by(ta.api_tokens.c.id)
        ).all()
    return [_to_token(row, owner) for row in found]


def revoke_token(dd: DataDir, by: Principal, token_id: int, *, now: datetime) -> ApiToken:
    """Revoke a token: its owner may, and so may a system administrator."""
    now = utc(now)
    with dd.store.read() as conn:
        owner = rows.user_row_by_id(conn, _row(conn, token_id).user_id).username
    if owner != by.username:
        authorize(dd, by, [Action.MANAGE_ACCOUNTS], target=f"token:{token_id}", now=now)
    with dd.store.begin() as conn:
        row = _row(conn, token_id)
        if row.revoked_at is not None:
            raise ConflictError(f"API token {token_id} was already revoked at {iso(from_db(row.revoked_at))}")
        conn.execute(
            update(ta.api_tokens)
            .where(ta.api_tokens.c.id == token_id)
            .values(revoked_at=now, revoked_by=by.username)
        )
        details = {"token_id": token_id, "name": row.name}
        event = events.account_changed(by.username, account=owner, change="token_revoked", values=details)
        audit.record(dd, conn, event, now=now)
        return _to_token(_row(conn, token_id), owner)
