"""Agency devices: searches are accepted only from machines an administrator registered.

Registering a device makes a random credential, shown once and stored only as a digest.
The device presents it with every request (HTTP header ``X-Faceledger-Device: <id>:<secret>``,
or the CLI's config file); a session remembers the device it was opened on and is refused
from any other. A request whose credential is wrong, unknown or revoked still proceeds as
coming from *no* device (``Actor.device_id`` is None, so the policy refuses searches), and
the attempt is written to the audit log. Devices are revoked, never deleted: the audit log
keeps naming them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.audit.events import AuditAction, AuditEvent, JsonValue
from faceledger.domain import text
from faceledger.domain.roles import Action
from faceledger.errors import ConflictError, NotFoundError, ValidationError
from faceledger.services import audit
from faceledger.services.accounts.guard import authorize
from faceledger.services.accounts.hashing import digest, new_secret, same_digest
from faceledger.services.accounts.records import DEVICE_PREFIX, from_db, iso, utc
from faceledger.services.accounts.rows import check_label

if TYPE_CHECKING:
    from faceledger.services.accounts.records import Principal
    from faceledger.services.datadir import DataDir

DEVICE_HEADER = "X-Faceledger-Device"
DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}", re.ASCII)
_DECOY_DIGEST = digest("no such device")


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """What a device presents: its id and the secret it was given at registration."""

    device_id: str
    secret: str = field(repr=False)

    @classmethod
    def parse(cls, value: str) -> DeviceCredential:
        """From ``<id>:<secret>`` (the header value and the CLI config form)."""
        device_id, sep, secret = value.strip().partition(":")
        if not sep or not device_id or not secret:
            raise ValidationError(
                f"a device credential has the form <device-id>:<secret>, got {len(value)} characters "
                "without that shape; use the value printed by `faceledger device register`"
            )
        return cls(device_id, secret)

    def header_value(self) -> str:
        return f"{self.device_id}:{self.secret}"


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    unit: str
    registered_by: str
    registered_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "unit": self.unit,
            "registered_by": self.registered_by,
            "registered_at": iso(self.registered_at),
            "revoked_at": iso(self.revoked_at),
            "revoked_by": self.revoked_by,
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class DeviceCheck:
    """The outcome of checking a presented credential.

    ``device_id`` is set only for a registered, active device whose secret matched, and
    ``unit`` then is the unit it was registered to; ``claimed`` is the id the request named
    (None when it presented nothing); ``problem`` says why a presented credential was not
    accepted.
    """

    device_id: str | None
    claimed: str | None
    problem: str | None = None
    unit: str | None = None


def _to_device(row: Row[Any]) -> Device:
    return Device(
        id=row.id,
        name=row.name,
        unit=row.unit,
        registered_by=row.registered_by,
        registered_at=from_db(row.registered_at) or row.registered_at,
        revoked_at=from_db(row.revoked_at),
        revoked_by=row.revoked_by,
    )


def _row(conn: Connection, device_id: str) -> Row[Any] | None:
    return conn.execute(select(ta.devices).where(ta.devices.c.id == device_id)).first()


def check_device(conn: Connection, credential: DeviceCredential | None) -> DeviceCheck:
    """Whether ``credential`` is a registered, active device's (constant time in the secret)."""
    if credential is None:
        return DeviceCheck(None, None)
    # Hidden characters are written as escapes: a claimed id is recorded, and can then match no device.
    claimed = text.escape_control(credential.device_id)[: ta.DEVICE_ID_LEN]
    row = _row(conn, claimed)
    matches = same_digest(digest(credential.secret), row.credential_hash if row else _DECOY_DIGEST)
    if row is None:
        return DeviceCheck(None, claimed, f"device {claimed!r} is not registered to the agency")
    if row.revoked_at is not None:
        return DeviceCheck(None, claimed, f"device {claimed!r} was revoked")
    if not matches:
        return DeviceCheck(None, claimed, f"the credential presented for device {claimed!r} is wrong")
    return DeviceCheck(claimed, claimed, unit=row.unit)


def record_refused(dd: DataDir, conn: Connection, username: str, check: DeviceCheck, now: datetime) -> None:
    """Audit a presented device credential that was not accepted (no-op when there was none)."""
    if check.problem is None:
        return
    event = events.policy_denied(
        username, attempted="use_device", target=f"device:{check.claimed}", reason=check.problem
    )
    audit.record(dd, conn, event, now=now)


def register_device(
    dd: DataDir, by: Principal, *, device_id: str, name: str, unit: str, now: datetime
) -> tuple[Device, DeviceCredential]:
    """Register an agency device; the returned credential is the only copy of its secret."""
    now = utc(now)
    if not DEVICE_ID.fullmatch(device_id):
        raise ValidationError(
            f"device id {device_id!r} is not valid: 2-64 lowercase letters, digits, '.', '_' or '-' "
            "(e.g. lab-ws-03)"
        )
    name, unit = check_label(name, "device name"), check_label(unit, "device unit")
    authorize(dd, by, [Action.REGISTER_DEVICE], target=f"device:{device_id}", now=now)
    secret = new_secret(DEVICE_PREFIX)
    with dd.store.begin() as conn:
        if _row(conn, device_id) is not None:
            raise ConflictError(
                f"device id {device_id!r} is already taken (ids are never reused, even after revocation); "
                "choose another"
            )
        values = {
            "id": device_id,
            "name": name,
            "unit": unit,
            "credential_hash": digest(secret),
            "registered_by": by.username,
            "registered_at": now,
        }
        conn.execute(insert(ta.devices).values(values))
        description = f"{name} (unit {unit})"
        event = events.device_registered(by.username, device_id=device_id, description=description)
        audit.record(dd, conn, event, now=now)
        device = _to_device(_row_required(conn, device_id))
    return device, DeviceCredential(device_id, secret)


def _row_required(conn: Connection, device_id: str) -> Row[Any]:
    row = _row(conn, device_id)
    if row is None:
        raise NotFoundError(f"no device {device_id!r} is registered (list them with: faceledger device list)")
    return row


def list_devices(dd: DataDir, by: Principal, *, now: datetime) -> list[Device]:
    authorize(dd, by, [Action.REGISTER_DEVICE, Action.READ_AUDIT], target="devices", now=utc(now))
    with dd.store.read() as conn:
        rows = conn.execute(select(ta.devices).order_by(ta.devices.c.id)).all()
    return [_to_device(row) for row in rows]


def revoke_device(dd: DataDir, by: Principal, device_id: str, *, reason: str, now: datetime) -> Device:
    """Revoke a device and end every session opened on it."""
    now = utc(now)
    reason = check_label(reason, "the reason for revoking a device")
    authorize(dd, by, [Action.REGISTER_DEVICE], target=f"device:{device_id}", now=now)
    with dd.store.begin() as conn:
        row = _row_required(conn, device_id)
        if row.revoked_at is not None:
            raise ConflictError(f"device {device_id!r} was already revoked at {iso(from_db(row.revoked_at))}")
        conn.execute(
            update(ta.devices)
            .where(ta.devices.c.id == device_id)
            .values(revoked_at=now, revoked_by=by.username)
        )
        ended = conn.execute(
            update(ta.sessions)
            .where(ta.sessions.c.device_id == device_id, ta.sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        details: dict[str, JsonValue] = {
            "change": "device_revoked",
            "values": {"reason": reason, "sessions_ended": ended},
        }
        event = AuditEvent(by.username, AuditAction.ACCOUNT_CHANGED, f"device:{device_id}", details)
        audit.record(dd, conn, event, now=now)
        return _to_device(_row_required(conn, device_id))


def session_device(conn: Connection, session: Row[Any]) -> DeviceCheck:
    """The device a browser's WebAuthn assertion bound a page session to, checked afresh.

    Read on every request (services/browser_devices.py binds the session): revoking the device,
    or the credential being revoked as cloned, takes effect on the next request.
    """
    claimed = session.device_id
    bc = ta.browser_credentials
    credential = conn.execute(select(bc).where(bc.c.id == session.browser_credential_id)).first()
    if credential is None or credential.device_id != claimed:
        return DeviceCheck(None, claimed, f"the browser credential bound to device {claimed!r} is unknown")
    if credential.revoked_at is not None:
        return DeviceCheck(None, claimed, f"the browser credential for device {claimed!r} was revoked")
    row = _row(conn, claimed)
    if row is None:
        return DeviceCheck(None, claimed, f"device {claimed!r} is not registered to the agency")
    if row.revoked_at is not None:
        return DeviceCheck(None, claimed, f"device {claimed!r} was revoked")
    return DeviceCheck(claimed, claimed, unit=row.unit)
