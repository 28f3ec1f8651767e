"""The first administrator, without a default password.

While no account exists, :func:`bootstrap_admin` makes a one-time secret (stored only as a
digest, valid for ``accounts.bootstrap_minutes``) for the installer to print once. Whoever
presents it to :func:`claim_bootstrap` becomes the first system administrator, with a
password of their own and a TOTP seed to confirm at their first sign-in. A secret works
once; asking for a new one voids the old; once any account exists neither works.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.domain.roles import Role
from faceledger.errors import AuthenticationError, ConflictError
from faceledger.services import audit
from faceledger.services.accounts import hashing, rows, totp
from faceledger.services.accounts.records import BOOTSTRAP_PREFIX, User, from_db, iso, utc

if TYPE_CHECKING:
    from faceledger.services.datadir import DataDir

BOOTSTRAP_ACTOR = "bootstrap"
_ACCOUNTS_EXIST = (
    "accounts already exist, so there is no first administrator to create; "
    "ask a system administrator to create your account (faceledger user create)"
)


def _now(now: datetime | None) -> datetime:
    return utc(now) if now is not None else datetime.now().astimezone()


def needs_bootstrap(dd: DataDir) -> bool:
    """Whether no account exists yet (``faceledger init`` then prints a bootstrap secret)."""
    with dd.store.read() as conn:
        return rows.count_users(conn) == 0


def bootstrap_admin(dd: DataDir, *, now: datetime | None = None) -> str:
    """A new one-time secret for creating the first administrator; print it once, never store it."""
    now = utc(_now(now))
    secret = hashing.new_secret(BOOTSTRAP_PREFIX)
    expires_at = now + timedelta(minutes=dd.settings.accounts.bootstrap_minutes)
    with dd.store.begin() as conn:
        if rows.count_users(conn):
            raise ConflictError(_ACCOUNTS_EXIST)
        conn.execute(
            update(ta.bootstrap_secrets)
            .where(ta.bootstrap_secrets.c.used_at.is_(None))
            .values(used_at=now, used_by="(replaced)")
        )
        values = {"secret_hash": hashing.digest(secret), "created_at": now, "expires_at": expires_at}
        conn.execute(insert(ta.bootstrap_secrets).values(values))
        details = {"expires_at": iso(expires_at)}
        event = events.account_changed(
            events.SYSTEM_ACTOR, account=BOOTSTRAP_ACTOR, change="bootstrap_secret_issued", values=details
        )
        audit.record(dd, conn, event, now=now)
    return secret


def claim_bootstrap(
    dd: DataDir,
    secret: str,
    username: str,
    password: str,
    *,
    organisation: str,
    unit: str,
    display_name: str | None = None,
    now: datetime | None = None,
) -> tuple[User, str]:
    """Create the first system administrator; returns it and its TOTP provisioning URI (show once).

    A wrong, used or expired secret is recorded in the audit log and refused.
    """
    now = utc(_now(now))
    rows.check_username(username)
    labels = {
        "display_name": rows.check_label(display_name or username, "display name"),
        "organisation": rows.check_label(organisation, "organisation"),
        "unit": rows.check_label(unit, "unit"),
    }
    hashing.check_new_password(password, username=username, settings=dd.settings.accounts)
    password_hash = hashing.hash_password(password, dd.settings.accounts)
    with dd.store.begin() as conn:
        if rows.count_users(conn):
            raise ConflictError(_ACCOUNTS_EXIST)
        problem = _use_secret(conn, secret, username, now)
        if problem is None:
            values = {
                "username": username,
                "password_hash": password_hash,
                "expires_at": None,
                "trial": False,
                # The first administrator activates with the bootstrap secret and has
                # nobody to vouch for them: the installer who printed the secret does.
                "activated_at": now,
                "vouched_by": BOOTSTRAP_ACTOR,
                "vouched_at": now,
            }
            times = {"created_by": BOOTSTRAP_ACTOR, "created_at": now, "updated_at": now}
            user_id = rows.insert_user(conn, {**values, **labels, **times})
            rows.replace_roles(conn, user_id, [Role.SYSTEM_ADMIN], by=BOOTSTRAP_ACTOR, now=now)
            uri = _enrol(dd, conn, user_id, username, labels["organisation"], now)
            details = {**labels, "roles": [Role.SYSTEM_ADMIN.value]}
            event = events.account_changed(
                BOOTSTRAP_ACTOR, account=username, change="created", values=details
            )
            audit.record(dd, conn, event, now=now)
            return rows.to_user(conn, rows.user_row_by_id(conn, user_id)), uri
        event = events.sign_in_failed(username, reason=f"bootstrap_{problem}", device_id=None)
        audit.record(dd, conn, event, now=now)
    raise AuthenticationError(
        f"the bootstrap secret is {problem}; print a new one with: faceledger user bootstrap "
        "(works only while no account exists)"
    )


def _use_secret(conn: Connection, secret: str, username: str, now: datetime) -> str | None:
    """Mark the secret used; None when it was valid, else why not ("wrong", "used", "expired")."""
    wanted = hashing.digest(secret)
    row = conn.execute(
        select(ta.bootstrap_secrets).where(ta.bootstrap_secrets.c.secret_hash == wanted)
    ).first()
    if row is None:
        return "wrong"
    if row.used_at is not None:
        return "used"
    if now >= (from_db(row.expires_at) or row.expires_at):
        return "expired"
    claimed = conn.execute(
        update(ta.bootstrap_secrets)
        .where(ta.bootstrap_secrets.c.id == row.id, ta.bootstrap_secrets.c.used_at.is_(None))
        .values(used_at=now, used_by=username)
    ).rowcount
    return None if claimed == 1 else "used"


def _enrol(
    dd: DataDir, conn: Connection, user_id: int, username: str, organisation: str, now: datetime
) -> str:
    seed = totp.new_seed()
    sealed = totp.TotpVault(dd.path).seal(user_id, seed)
    rows.update_user(conn, user_id, now, totp_secret=sealed, totp_confirmed=False, totp_last_step=None)
    return totp.provisioning_uri(seed, username=username, organisation=organisation)
