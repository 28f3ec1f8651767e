"""What the account services hand out: users, principals, API tokens.

None of these carries a stored secret. The only secrets that ever leave the services are
freshly made ones, returned once to the caller that asked for them (a session token from
sign-in, an API token at creation): they are never readable again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faceledger.domain.roles import Actor, Role
from faceledger.errors import ValidationError

#: Prefixes tell the kinds of secret apart at a glance (and in a leaked-secret scanner).
SESSION_PREFIX = "fls_"
TOKEN_PREFIX = "flt_"  # noqa: S105 - a prefix, not a secret
BOOTSTRAP_PREFIX = "flb_"
DEVICE_PREFIX = "fld_"
ACTIVATION_PREFIX = "fla_"


def utc(moment: datetime, what: str = "time") -> datetime:
    """``moment`` in UTC; naive times are refused (they mean a different moment per machine)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(f"{what} must be a timezone-aware datetime, got {moment.isoformat()}")
    return moment.astimezone(UTC)


def from_db(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything was written in UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def role_names(roles: frozenset[Role]) -> list[str]:
    return sorted(role.value for role in roles)


@dataclass(frozen=True, slots=True)
class User:
    """An account as an administrator sees it (no password hash, no TOTP seed)."""

    id: int
    username: str
    display_name: str
    organisation: str
    unit: str
    roles: frozenset[Role]
    totp_enrolled: bool
    totp_confirmed: bool
    failed_attempts: int
    locked_until: datetime | None
    suspended: bool
    suspended_reason: str | None
    expires_at: datetime | None
    trial: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    activation_expires_at: datetime | None = None
    activation_issued_by: str | None = None
    activated_at: datetime | None = None
    vouched_by: str | None = None
    vouched_at: datetime | None = None

    @property
    def state(self) -> str:
        """``needs_activation``, ``needs_vouch`` or ``active`` (suspension and expiry aside)."""
        if self.activated_at is None:
            return "needs_activation"
        return "needs_vouch" if self.vouched_at is None else "active"

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "organisation": self.organisation,
            "unit": self.unit,
            "roles": role_names(self.roles),
            "totp_enrolled": self.totp_enrolled,
            "totp_confirmed": self.totp_confirmed,
            "failed_attempts": self.failed_attempts,
            "locked_until": iso(self.locked_until),
            "suspended": self.suspended,
            "suspended_reason": self.suspended_reason,
            "expires_at": iso(self.expires_at),
            "trial": self.trial,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "state": self.state,
            "activation_expires_at": iso(self.activation_expires_at),
            "activation_issued_by": self.activation_issued_by,
            "activated_at": iso(self.activated_at),
            "vouched_by": self.vouched_by,
            "vouched_at": iso(self.vouched_at),
        }


@dataclass(frozen=True, slots=True)
class Activation:
    """An account waiting for its owner, and its one-time activation code (shown once, never stored)."""

    user: User
    code: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for, as a session or API token established it.

    ``actor`` is what the policy judges; its roles are ``scopes`` (all of the user's roles for
    a session, the token's scopes still held by the user for an API token). ``actor.device_id``
    is set only when the request came from a registered, active device that matches the
    session. ``session_token`` is filled only on the principal that sign-in returns: it is the
    one moment the token exists outside the caller.
    """

    actor: Actor
    user_id: int
    scopes: frozenset[Role]
    expires_at: datetime
    session_id: int | None = None
    token_id: int | None = None
    session_token: str | None = field(default=None, repr=False)

    @property
    def username(self) -> str:
        return self.actor.username


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's record (its secret is shown once, at creation)."""

    id: int
    username: str
    name: str
    scopes: frozenset[Role]
    mfa: bool
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None
    #: The registered device it is accepted with (None: a server token, or one made before binding).
    device_id: str | None = None
    #: A server-to-server token, bound to no device (the policy must allow them).
    server: bool = False

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "scopes": role_names(self.scopes),
            "mfa": self.mfa,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "revoked_by": self.revoked_by,
            "last_used_at": iso(self.last_used_at),
            "device_id": self.device_id,
            "server": self.server,
        }
