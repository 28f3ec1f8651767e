"""Account administration: create, read, change standing; every change audited with it.

Each command takes the acting administrator's :class:`Principal`, checks the fixed role
table and the separations of duty (:mod:`.guard`), and records the change in the audit log
inside the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from faceledger.audit import events
from faceledger.audit.events import JsonValue
from faceledger.domain.roles import Action, Role, parse_role
from faceledger.errors import ConflictError, ValidationError
from faceledger.services import audit
from faceledger.services.accounts import activation, rows
from faceledger.services.accounts.guard import (
    authorize,
    check_role_combination,
    refuse_role_combination,
    refuse_self,
)
from faceledger.services.accounts.records import Activation, User, iso, role_names, utc

if TYPE_CHECKING:
    from faceledger.services.accounts.records import Principal
    from faceledger.services.datadir import DataDir

_Apply = Callable[[Connection, Row[Any]], Mapping[str, JsonValue]]


def parse_roles(values: Iterable[str | Role]) -> frozenset[Role]:
    """Role names (or roles) as a valid combination; errors list the valid names."""
    return check_role_combination(_role_names(values))


def _role_names(values: Iterable[str | Role]) -> frozenset[Role]:
    """Role names (or roles) as a non-empty set, before the separation-of-duty pairs are checked."""
    held = frozenset(value if isinstance(value, Role) else parse_role(value) for value in values)
    if not held:
        check_role_combination(held)  # raises: an account needs at least one role
    return held


def _check_expiry(expires_at: datetime | None, trial: bool, username: str) -> datetime | None:
    if trial and expires_at is None:
        raise ValidationError(f"trial account {username!r} needs an expiry date (trials must end)")
    return None if expires_at is None else utc(expires_at, f"expiry of account {username!r}")


def create_user(
    dd: DataDir,
    by: Principal,
    *,
    username: str,
    display_name: str,
    organisation: str,
    unit: str,
    roles: Iterable[str | Role],
    expires_at: datetime | None = None,
    trial: bool = False,
    now: datetime,
) -> Activation:
    """Create an account waiting for activation; returns its one-time activation code (show once).

    The administrator chooses no password and never sees the second factor: the person
    activates the account with the code and their own password (:func:`.activation.activate`),
    then a supervisor of the unit vouches for it (:func:`.activation.vouch`).
    """
    now = utc(now)
    rows.check_username(username)
    held = _role_names(roles)
    expiry = _check_expiry(expires_at, trial, username)
    labels = {
        "display_name": rows.check_label(display_name, "display name"),
        "organisation": rows.check_label(organisation, "organisation"),
        "unit": rows.check_label(unit, "unit"),
    }
    authorize(dd, by, [Action.MANAGE_ACCOUNTS], target=f"account:{username}", now=now)
    refuse_role_combination(dd, by, held, account=username, attempted="create_account", now=now)
    with dd.store.begin() as conn:
        if rows.user_row(conn, username) is not None:
            raise ConflictError(f"an account named {username!r} already exists")
        values = {"username": username, "password_hash": "!", "expires_at": expiry, "trial": trial}
        times = {"created_by": by.username, "created_at": now, "updated_at": now}
        user_id = rows.insert_user(conn, {**values, **labels, **times})
        rows.replace_roles(conn, user_id, held, by=by.username, now=now)
        code, code_expires = activation.issue(dd, conn, user_id, by=by.username, now=now)
        details: dict[str, JsonValue] = {
            **labels,
            "roles": role_names(held),
            "expires_at": iso(expiry),
            "trial": trial,
            "activation_expires_at": iso(code_expires),
        }
        event = events.account_changed(by.username, account=username, change="created", values=details)
        audit.record(dd, conn, event, now=now)
        user = rows.to_user(conn, rows.user_row_by_id(conn, user_id))
        return Activation(user=user, code=code, expires_at=code_expires)


def get_user(dd: DataDir, by: Principal, username: str, *, now: datetime) -> User:
    """One account; anybody may read their own, administrators and auditors anybody's."""
    if by.username != username:
        authorize(
            dd, by, [Action.MANAGE_ACCOUNTS, Action.READ_AUDIT], target=f"account:{username}", now=utc(now)
        )
    with dd.store.read() as conn:
        return rows.to_user(conn, rows.require_user_row(conn, username))


def list_users(dd: DataDir, by: Principal, *, now: datetime) -> list[User]:
    authorize(dd, by, [Action.MANAGE_ACCOUNTS, Action.READ_AUDIT], target="accounts", now=utc(now))
    with dd.store.read() as conn:
        return rows.list_users(conn)


def _admin_change(
    dd: DataDir, by: Principal, username: str, change: str, now: datetime, apply: _Apply
) -> User:
    now = utc(now)
    authorize(dd, by, [Action.MANAGE_ACCOUNTS], target=f"account:{username}", now=now)
    refuse_self(dd, by, username, change=change, now=now)
    with dd.store.begin() as conn:
        row = rows.require_user_row(conn, username)
        values = apply(conn, row)
        event = events.account_changed(by.username, account=username, change=change, values=values)
        audit.record(dd, conn, event, now=now)
        return rows.to_user(conn, rows.user_row_by_id(conn, row.id))


def set_roles(
    dd: DataDir, by: Principal, username: str, roles: Iterable[str | Role], *, now: datetime
) -> User:
    """Replace an account's roles (API tokens keep only the scopes the account still holds)."""
    held = _role_names(roles)
    authorize(dd, by, [Action.MANAGE_ACCOUNTS], target=f"account:{username}", now=utc(now))
    refuse_role_combination(dd, by, held, account=username, attempted="set_roles", now=utc(now))

    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        before = rows.roles_of(conn, row.id)
        rows.replace_roles(conn, row.id, held, by=by.username, now=utc(now))
        rows.update_user(conn, row.id, utc(now))
        return {"before": role_names(before), "after": role_names(held)}

    return _admin_change(dd, by, username, "set_roles", now, apply)


def suspend(dd: DataDir, by: Principal, username: str, *, reason: str, now: datetime) -> User:
    """Suspend an account: every request it makes is refused, and its sessions end."""
    reason = rows.check_label(reason, "the reason for a suspension")

    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        if row.suspended:
            raise ConflictError(f"account {username!r} is already suspended ({row.suspended_reason})")
        rows.update_user(conn, row.id, utc(now), suspended=True, suspended_reason=reason)
        return {"reason": reason, "sessions_ended": rows.revoke_sessions(conn, row.id, utc(now))}

    return _admin_change(dd, by, username, "suspend", now, apply)


def unsuspend(dd: DataDir, by: Principal, username: str, *, now: datetime) -> User:
    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        if not row.suspended:
            raise ConflictError(f"account {username!r} is not suspended")
        rows.update_user(conn, row.id, utc(now), suspended=False, suspended_reason=None)
        return {"was": row.suspended_reason}

    return _admin_change(dd, by, username, "unsuspend", now, apply)


def set_expiry(
    dd: DataDir,
    by: Principal,
    username: str,
    *,
    expires_at: datetime | None,
    trial: bool | None = None,
    now: datetime,
) -> User:
    """Set (or clear) an account's expiry; ``trial`` None keeps the trial flag as it is."""

    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        is_trial = bool(row.trial) if trial is None else trial
        expiry = _check_expiry(expires_at, is_trial, username)
        rows.update_user(conn, row.id, utc(now), expires_at=expiry, trial=is_trial)
        return {"expires_at": iso(expiry), "trial": is_trial}

    return _admin_change(dd, by, username, "set_expiry", now, apply)


def reset_password(dd: DataDir, by: Principal, username: str, *, now: datetime) -> Activation:
    """Put the account back to "needs activation": a new one-time code, and a new vouch needed.

    The administrator chooses no password: the owner activates the account again with the
    code and a password of their own. Its password and second factor stop working at once,
    and its sessions and API tokens end.
    """
    return _reactivate(dd, by, username, "reset_password", now)


def _reactivate(dd: DataDir, by: Principal, username: str, change: str, now: datetime) -> Activation:
    issued: list[tuple[str, datetime]] = []

    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        ended = activation.end_access(conn, row.id, by=by.username, now=utc(now))
        issued.append(activation.issue(dd, conn, row.id, by=by.username, now=utc(now)))
        return {**ended, "activation_expires_at": iso(issued[0][1])}

    user = _admin_change(dd, by, username, change, now, apply)
    return Activation(user=user, code=issued[0][0], expires_at=issued[0][1])


def unlock(dd: DataDir, by: Principal, username: str, *, now: datetime) -> User:
    """Lift a lockout before it runs out (after checking who was guessing)."""

    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        rows.update_user(conn, row.id, utc(now), failed_attempts=0, locked_until=None)
        return {"was_locked_until": iso(row.locked_until), "failed_attempts": row.failed_attempts}

    return _admin_change(dd, by, username, "unlock", now, apply)


def enrol_totp(dd: DataDir, by: Principal, username: str, *, now: datetime) -> Activation:
    """A new second factor for someone who lost theirs: the account goes back to "needs activation".

    The administrator never receives the seed: the owner activates the account again with
    the returned one-time code (and a password of their own), which gives *them* the new
    TOTP enrolment URI; a supervisor of the unit vouches again. The old seed and password
    stop working at once, and the account's sessions and API tokens end.
    """
    return _reactivate(dd, by, username, "enrol_totp", now)


def update_user(
    dd: DataDir,
    by: Principal,
    username: str,
    *,
    display_name: str | None = None,
    organisation: str | None = None,
    unit: str | None = None,
    now: datetime,
) -> User:
    """Change the name, organisation or unit shown for an account."""
    given = {"display_name": display_name, "organisation": organisation, "unit": unit}
    changes = {key: rows.check_label(value, key.replace("_", " ")) for key, value in given.items() if value}
    if not changes:
        raise ValidationError("nothing to change: give a display name, organisation or unit")

    def apply(conn: Connection, row: Row[Any]) -> Mapping[str, JsonValue]:
        rows.update_user(conn, row.id, utc(now), **changes)
        return {key: {"before": getattr(row, key), "after": value} for key, value in changes.items()}

    return _admin_change(dd, by, username, "update", now, apply)
