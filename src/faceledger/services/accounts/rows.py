"""Reading and writing account rows (SQLAlchemy Core); no decisions are made here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.domain import text
from faceledger.domain.roles import Role
from faceledger.errors import NotFoundError, ValidationError
from faceledger.services.accounts.records import User, from_db

#: ASCII only (``re.ASCII``; the classes are ASCII ranges anyway), so no control, format or
#: look-alike character can be part of a username.
USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}", re.ASCII)
#: Names the audit log already uses for itself, or that would read ambiguously in it.
RESERVED_USERNAMES = frozenset({"system", "bootstrap", "installer", "admin", "root", "anonymous", "library"})


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        shown = text.escape_control(username) if isinstance(username, str) else ""
        raise ValidationError(
            f"username {shown!r} is not valid: use 2-64 characters, lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter"
        )
    if username in RESERVED_USERNAMES:
        raise ValidationError(f"username {username!r} is reserved; choose a personal name (e.g. j.smith)")
    return username


def sign_in_name(username: str) -> str:
    """The name a sign-in looks up and records: ``username`` itself, or its escaped form.

    A name with control or format characters can never be an account's
    (:func:`check_username`), so it is refused like an unknown one; what is recorded of it
    is :func:`faceledger.domain.text.escape_control`'s single visible line, which contains a
    backslash and so cannot match any account either.
    """
    return username if text.first_hidden(username) is None else text.escape_control(username)


def check_label(value: str, what: str) -> str:
    """A name or label of one line: no hidden character anywhere, stripped, 1 to LABEL_LEN characters."""
    hidden = text.first_hidden(value)
    if hidden is not None:
        raise ValidationError(
            f"{what} contains the invisible character {text.describe(hidden)}; "
            "control and format characters are not allowed"
        )
    cleaned = value.strip()
    if not cleaned or len(cleaned) > ta.LABEL_LEN:
        raise ValidationError(f"{what} must be 1-{ta.LABEL_LEN} characters, got {value!r}")
    return cleaned


def user_row(conn: Connection, username: str) -> Row[Any] | None:
    return conn.execute(select(ta.users).where(ta.users.c.username == username)).first()


def require_user_row(conn: Connection, username: str) -> Row[Any]:
    row = user_row(conn, username)
    if row is None:
        raise NotFoundError(f"no account named {username!r} (list them with: faceledger user list)")
    return row


def user_row_by_id(conn: Connection, user_id: int) -> Row[Any]:
    return conn.execute(select(ta.users).where(ta.users.c.id == user_id)).one()


def roles_of(conn: Connection, user_id: int) -> frozenset[Role]:
    names = conn.execute(select(ta.user_roles.c.role).where(ta.user_roles.c.user_id == user_id)).scalars()
    return frozenset(Role(name) for name in names)


def to_user(conn: Connection, row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        organisation=row.organisation,
        unit=row.unit,
        roles=roles_of(conn, row.id),
        totp_enrolled=row.totp_secret is not None,
        totp_confirmed=bool(row.totp_confirmed),
        failed_attempts=row.failed_attempts,
        locked_until=from_db(row.locked_until),
        suspended=bool(row.suspended),
        suspended_reason=row.suspended_reason,
        expires_at=from_db(row.expires_at),
        trial=bool(row.trial),
        created_by=row.created_by,
        created_at=from_db(row.created_at) or row.created_at,
        updated_at=from_db(row.updated_at) or row.updated_at,
        activation_expires_at=from_db(row.activation_expires_at),
        activation_issued_by=row.activation_issued_by,
        activated_at=from_db(row.activated_at),
        vouched_by=row.vouched_by,
        vouched_at=from_db(row.vouched_at),
    )


def list_users(conn: Connection) -> list[User]:
    rows = conn.execute(select(ta.users).order_by(ta.users.c.username)).all()
    return [to_user(conn, row) for row in rows]


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(ta.users)).scalar_one())


def insert_user(conn: Connection, values: dict[str, Any]) -> int:
    defaults = {
        "totp_secret": None,
        "totp_confirmed": False,
        "totp_last_step": None,
        "failed_attempts": 0,
        "locked_until": None,
        "suspended": False,
        "suspended_reason": None,
        "activation_hash": None,
        "activation_expires_at": None,
        "activation_issued_by": None,
        "activated_at": None,
        "vouched_by": None,
        "vouched_at": None,
    }
    result = conn.execute(insert(ta.users).values({**defaults, **values}))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def update_user(conn: Connection, user_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(ta.users).where(ta.users.c.id == user_id).values(updated_at=now, **values))


def replace_roles(conn: Connection, user_id: int, roles: Iterable[Role], *, by: str, now: datetime) -> None:
    conn.execute(delete(ta.user_roles).where(ta.user_roles.c.user_id == user_id))
    rows = [{"user_id": user_id, "role": r.value, "granted_by": by, "granted_at": now} for r in roles]
    if rows:
        conn.execute(insert(ta.user_roles), rows)


def revoke_sessions(conn: Connection, user_id: int, now: datetime) -> int:
    """End every open session of a user (after a password reset, a new TOTP seed, a suspension)."""
    result = conn.execute(
        update(ta.sessions)
        .where(ta.sessions.c.user_id == user_id, ta.sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


def revoke_tokens(conn: Connection, user_id: int, now: datetime, *, by: str) -> int:
    """Revoke every API token of a user that is not revoked yet (when the account is reset)."""
    result = conn.execute(
        update(ta.api_tokens)
        .where(ta.api_tokens.c.user_id == user_id, ta.api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by)
    )
    return result.rowcount
