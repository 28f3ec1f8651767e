"""Activation: an account becomes usable only through its owner and a second person.

An administrator who creates an account (or resets one) never chooses its password and
never sees its second factor. What the administrator gets is a one-time activation code
(256 random bits, only its SHA-256 stored, valid ``accounts.activation_hours``) to hand to
the person. The order is fixed:

1. **create / reset** (system administrator): a new code; the account cannot sign in, its
   old password and TOTP seed stop working, its sessions and API tokens end;
2. **activate** (the person, unauthenticated): the code and their own new password; they
   receive the TOTP enrolment URI, which their first sign-in with a code confirms;
3. **vouch** (a supervisor of the account's unit, signed in, who did not issue the code):
   confirms, after the activation, that the account is held by the person it names.

The account signs in only when both 2 and 3 are done. The vouch comes *after* the
activation on purpose: a supervisor vouches for an account already in someone's hands, so
an administrator who activated it herself with the code still cannot use it, and a vouch
given in advance cannot be spent later by whoever holds the code.

The first supervisor of a unit has nobody in the unit to vouch for them: the vouch of the
installer (:func:`vouch_as_installer`, only from the server's own command line, with the
data directory) is accepted for an account holding the supervisor role while its unit has
no other usable supervisor; it is recorded with the actor ``installer``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Row, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.audit.events import JsonValue
from faceledger.domain.policy import Decision
from faceledger.domain.roles import Action, Role
from faceledger.errors import AuthenticationError, PermissionDeniedError
from faceledger.services import audit
from faceledger.services.accounts import hashing, rows, totp
from faceledger.services.accounts.guard import authorize
from faceledger.services.accounts.records import ACTIVATION_PREFIX, User, from_db, iso, utc

if TYPE_CHECKING:
    from faceledger.services.accounts.records import Principal
    from faceledger.services.datadir import DataDir

INSTALLER = "installer"
#: One answer for an unknown account, a wrong code, a used one and an expired one.
BAD_CODE = (
    "this activation code is wrong, expired or already used; "
    "ask a system administrator for a new one (faceledger user reset-password)"
)

RULE_NOT_ACTIVATED = "accounts.vouch.not_activated"
RULE_ALREADY_VOUCHED = "accounts.vouch.already_vouched"
RULE_OTHER_UNIT = "accounts.vouch.other_unit"
RULE_ISSUER = "accounts.vouch.issuer"
RULE_SELF = "accounts.vouch.self"
RULE_INSTALLER = "accounts.vouch.installer_not_first_supervisor"


def issue(dd: DataDir, conn: Connection, row_id: int, *, by: str, now: datetime) -> tuple[str, datetime]:
    """Put account ``row_id`` back to "needs activation" with a new code; returns (code, expiry).

    Its password and second factor stop working (the password is replaced by a random one
    nobody knows), the vouch is cleared; the caller ends its sessions and tokens.
    """
    code = hashing.new_secret(ACTIVATION_PREFIX)
    expires_at = now + timedelta(hours=dd.settings.accounts.activation_hours)
    unusable = hashing.hash_password(hashing.new_secret("x"), dd.settings.accounts)
    rows.update_user(
        conn,
        row_id,
        now,
        password_hash=unusable,
        totp_secret=None,
        totp_confirmed=False,
        totp_last_step=None,
        failed_attempts=0,
        locked_until=None,
        activation_hash=hashing.digest(code),
        activation_expires_at=expires_at,
        activation_issued_by=by,
        activated_at=None,
        vouched_by=None,
        vouched_at=None,
    )
    return code, expires_at


def end_access(conn: Connection, row_id: int, *, by: str, now: datetime) -> dict[str, JsonValue]:
    """End every session and API token of the account (after a reset)."""
    return {
        "sessions_ended": rows.revoke_sessions(conn, row_id, now),
        "tokens_revoked": rows.revoke_tokens(conn, row_id, now, by=by),
    }


def activate(dd: DataDir, *, username: str, code: str, password: str, now: datetime) -> str:
    """Activate an account with its one-time code and the owner's own password.

    Returns the TOTP provisioning URI, for the owner alone (show it once); the first
    sign-in with a valid code confirms it. The account signs in once a supervisor of its
    unit has vouched for it too (:func:`vouch`). A wrong, used or expired code, or an
    unknown account, is refused with one message, and recorded.
    """
    now = utc(now)
    username = rows.sign_in_name(username)
    hashing.check_new_password(password, username=username, settings=dd.settings.accounts)
    password_hash = hashing.hash_password(password, dd.settings.accounts)
    with dd.store.begin() as conn:
        row = rows.user_row(conn, username)
        problem = _code_problem(row, code, now)
        if problem is None:
            assert row is not None
            claimed = conn.execute(
                update(ta.users)
                .where(ta.users.c.id == row.id, ta.users.c.activation_hash == row.activation_hash)
                .values(activation_hash=None, activation_expires_at=None)
            ).rowcount
            problem = None if claimed == 1 else "used"
        if problem is None:
            assert row is not None
            seed = totp.new_seed()
            sealed = totp.TotpVault(dd.path).seal(row.id, seed)
            rows.update_user(
                conn,
                row.id,
                now,
                password_hash=password_hash,
                totp_secret=sealed,
                totp_confirmed=False,
                totp_last_step=None,
                failed_attempts=0,
                locked_until=None,
                activated_at=now,
            )
            details: dict[str, JsonValue] = {"issued_by": row.activation_issued_by, "totp_enrolled": True}
            event = events.account_changed(username, account=username, change="activated", values=details)
            audit.record(dd, conn, event, now=now)
            return totp.provisioning_uri(seed, username=username, organisation=row.organisation)
        event = events.sign_in_failed(
            username[: ta.USERNAME_LEN], reason=f"activation_{problem}", device_id=None
        )
        audit.record(dd, conn, event, now=now)
    raise AuthenticationError(BAD_CODE)


def _code_problem(row: Row[Any] | None, code: str, now: datetime) -> str | None:
    """None when ``code`` activates ``row``, else why not (recorded, never shown)."""
    if row is None:
        return "unknown_user"
    if row.activation_hash is None:
        return "no_code"
    if not hashing.same_digest(hashing.digest(code), row.activation_hash):
        return "wrong"
    expires_at = from_db(row.activation_expires_at)
    if expires_at is None or now >= expires_at:
        return "expired"
    return None


def vouch(dd: DataDir, by: Principal, username: str, *, now: datetime) -> User:
    """Vouch, as a supervisor of the account's unit, that the activated account is its owner's."""
    now = utc(now)
    target = f"account:{username}"
    authorize(dd, by, [Action.MANAGE_UNIT], target=target, now=now)
    with dd.store.read() as conn:
        row = rows.require_user_row(conn, username)
    if by.username == username:
        _refuse(dd, by.username, target, RULE_SELF, "nobody may vouch for their own account", now)
    if by.actor.unit != row.unit:  # before the account's state: another unit learns nothing of it
        reason = (
            f"only a supervisor of unit {row.unit!r} may vouch for {username!r}; "
            f"{by.username!r} supervises {by.actor.unit!r}"
        )
        _refuse(dd, by.username, target, RULE_OTHER_UNIT, reason, now)
    _check_vouchable(dd, by.username, row, now)
    if by.username in {row.activation_issued_by, row.created_by}:
        reason = (
            f"{by.username!r} issued the activation code of {username!r} (or created the account), "
            "so another person must vouch for it (separation of duties)"
        )
        _refuse(dd, by.username, target, RULE_ISSUER, reason, now)
    return _record_vouch(dd, by.username, row, now)


def vouch_as_installer(dd: DataDir, username: str, *, now: datetime) -> User:
    """The installer's vouch, for the first supervisor of a unit (server command line only)."""
    now = utc(now)
    target = f"account:{username}"
    with dd.store.read() as conn:
        row = rows.require_user_row(conn, username)
        first = Role.SUPERVISOR in rows.roles_of(conn, row.id) and not _unit_has_supervisor(
            conn, row.unit, now, besides=row.id
        )
    _check_vouchable(dd, INSTALLER, row, now)
    if not first:
        reason = (
            f"the installer vouches only for the first supervisor of a unit; {username!r} is not one, "
            f"or unit {row.unit!r} has a supervisor already, who must vouch (faceledger user vouch)"
        )
        _refuse(dd, INSTALLER, target, RULE_INSTALLER, reason, now)
    return _record_vouch(dd, INSTALLER, row, now)


def _check_vouchable(dd: DataDir, actor: str, row: Row[Any], now: datetime) -> None:
    target = f"account:{row.username}"
    if row.activated_at is None:
        reason = (
            f"account {row.username!r} is not activated yet: its owner activates it first "
            f"(faceledger user activate {row.username}), then a supervisor vouches for it"
        )
        _refuse(dd, actor, target, RULE_NOT_ACTIVATED, reason, now)
    if row.vouched_at is not None:
        reason = f"account {row.username!r} was already vouched for by {row.vouched_by!r}"
        _refuse(dd, actor, target, RULE_ALREADY_VOUCHED, reason, now)


def _unit_has_supervisor(conn: Connection, unit: str, now: datetime, *, besides: int) -> bool:
    """Whether a usable account (activated, vouched, not suspended or expired) supervises ``unit``."""
    query = (
        select(ta.users)
        .join(ta.user_roles, ta.user_roles.c.user_id == ta.users.c.id)
        .where(
            ta.users.c.unit == unit,
            ta.users.c.id != besides,
            ta.user_roles.c.role == Role.SUPERVISOR.value,
            ta.users.c.vouched_at.is_not(None),
            ta.users.c.activated_at.is_not(None),
            ta.users.c.suspended.is_(False),
        )
    )
    for row in conn.execute(query).all():
        expires_at = from_db(row.expires_at)
        if expires_at is None or now < expires_at:
            return True
    return False


def _record_vouch(dd: DataDir, actor: str, row: Row[Any], now: datetime) -> User:
    with dd.store.begin() as conn:
        claimed = conn.execute(
            update(ta.users)
            .where(
                ta.users.c.id == row.id,
                ta.users.c.vouched_at.is_(None),
                # the activation the voucher was shown, not a later one after a reset
                ta.users.c.activated_at == row.activated_at,
            )
            .values(vouched_by=actor, vouched_at=now, updated_at=now)
        ).rowcount
        if claimed != 1:
            reason = f"account {row.username!r} changed meanwhile (reset, or vouched for by someone else)"
            audit.record(
                dd, conn, _denied(actor, f"account:{row.username}", RULE_ALREADY_VOUCHED, reason), now=now
            )
        else:
            details: dict[str, JsonValue] = {
                "activated_at": iso(from_db(row.activated_at)),
                "issued_by": row.activation_issued_by,
            }
            event = events.account_changed(actor, account=row.username, change="vouched", values=details)
            audit.record(dd, conn, event, now=now)
            return rows.to_user(conn, rows.user_row_by_id(conn, row.id))
    raise PermissionDeniedError(reason, Decision(False, RULE_ALREADY_VOUCHED, "none", reason))


def _denied(actor: str, target: str, rule_id: str, reason: str) -> events.AuditEvent:
    decision: dict[str, JsonValue] = {
        "allowed": False,
        "rule_id": rule_id,
        "policy_version": "none",
        "reason": reason,
    }
    return events.policy_denied(actor, attempted="vouch", target=target, reason=reason, decision=decision)


def _refuse(dd: DataDir, actor: str, target: str, rule_id: str, reason: str, now: datetime) -> NoReturn:
    """Record the refusal (with its rule id) in its own transaction, then raise it."""
    with dd.store.begin() as conn:
        audit.record(dd, conn, _denied(actor, target, rule_id, reason), now=now)
    raise PermissionDeniedError(reason, Decision(False, rule_id, "none", reason))
