"""Who may do what: roles, the actions they permit, and the person acting.

The role -> action table is fixed in code rather than in the policy file on purpose: some
separations are not a local choice. An auditor or a system administrator can never run a
face search, whatever a policy file says, so that the people who watch the system and the
people who configure it are never also the people who use it on the public. The policy
file narrows this table (which galleries, which units, which purposes); it cannot widen it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from faceledger.errors import ValidationError


class Role(StrEnum):
    """A job in the unit. One person may hold several."""

    EXAMINER = "examiner"
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"
    GALLERY_ADMIN = "gallery_admin"
    AUDITOR = "auditor"
    SYSTEM_ADMIN = "system_admin"


class Action(StrEnum):
    """Something a person asks the system to do; each is guarded by the policy."""

    SEARCH = "search"
    VERIFY = "verify"
    PROPOSE = "propose"
    PEER_REVIEW = "peer_review"
    APPROVE = "approve"
    VIEW_CASE = "view_case"
    MANAGE_UNIT = "manage_unit"
    MANAGE_GALLERIES = "manage_galleries"
    ENROL = "enrol"
    PURGE = "purge"
    READ_AUDIT = "read_audit"
    EXPORT_AUDIT = "export_audit"
    REPORTS = "reports"
    MANAGE_ACCOUNTS = "manage_accounts"
    MANAGE_POLICY = "manage_policy"
    REGISTER_DEVICE = "register_device"
    VIEW_FACE_IMAGE = "view_face_image"


PERMISSIONS: Mapping[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.EXAMINER: frozenset(
            {Action.SEARCH, Action.VERIFY, Action.PROPOSE, Action.VIEW_CASE, Action.VIEW_FACE_IMAGE}
        ),
        Role.REVIEWER: frozenset({Action.PEER_REVIEW, Action.VIEW_CASE, Action.VIEW_FACE_IMAGE}),
        Role.SUPERVISOR: frozenset(
            {Action.APPROVE, Action.MANAGE_UNIT, Action.REPORTS, Action.VIEW_CASE, Action.VIEW_FACE_IMAGE}
        ),
        Role.GALLERY_ADMIN: frozenset({Action.ENROL, Action.PURGE, Action.MANAGE_GALLERIES}),
        Role.AUDITOR: frozenset(
            {Action.READ_AUDIT, Action.EXPORT_AUDIT, Action.REPORTS, Action.VIEW_CASE, Action.VIEW_FACE_IMAGE}
        ),
        Role.SYSTEM_ADMIN: frozenset({Action.MANAGE_ACCOUNTS, Action.MANAGE_POLICY, Action.REGISTER_DEVICE}),
    }
)

#: Actions that show a person face images of the public (search results, candidate photos,
#: enrolled gallery photos). Whoever may take one of these sees faces, so holds an account
#: that needs the second factor (:data:`MFA_ACTIONS`); fetching the image bytes themselves
#: (:attr:`Action.VIEW_FACE_IMAGE`) also needs a registered device whatever the policy says
#: (:data:`faceledger.domain.policy.DEVICE_ALWAYS_REQUIRED`).
FACE_IMAGE_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.SEARCH,
        Action.VERIFY,
        Action.PROPOSE,
        Action.PEER_REVIEW,
        Action.APPROVE,
        Action.VIEW_CASE,
        Action.VIEW_FACE_IMAGE,
        Action.ENROL,
        Action.PURGE,
        Action.MANAGE_GALLERIES,
    }
)

#: Actions that touch faces of the public or change who may: holding any role that
#: permits one of these means the account must sign in with a second factor.
MFA_ACTIONS: frozenset[Action] = FACE_IMAGE_ACTIONS | frozenset(
    {
        Action.MANAGE_UNIT,
        Action.MANAGE_ACCOUNTS,
        Action.MANAGE_POLICY,
        Action.REGISTER_DEVICE,
    }
)


@dataclass(frozen=True, slots=True)
class IncompatibleRoles:
    """Two roles one account may never hold together, the stable rule id cited, and why."""

    first: Role
    second: Role
    why: str

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset({self.first, self.second})

    @property
    def rule_id(self) -> str:
        return f"roles.incompatible.{self.first.value}+{self.second.value}"

    def message(self) -> str:
        return (
            f"roles {self.first.value} and {self.second.value} cannot be held by one account: "
            f"{self.why} (separation of duties; rule {self.rule_id})"
        )


#: The role pairs no account may hold, whatever a policy says.
INCOMPATIBLE_ROLES: tuple[IncompatibleRoles, ...] = (
    IncompatibleRoles(
        Role.EXAMINER, Role.SYSTEM_ADMIN, "whoever configures the system may not search with it"
    ),
    IncompatibleRoles(Role.AUDITOR, Role.EXAMINER, "whoever audits searches may not run them"),
    IncompatibleRoles(Role.AUDITOR, Role.SYSTEM_ADMIN, "whoever audits the administrators may not be one"),
    IncompatibleRoles(
        Role.AUDITOR, Role.GALLERY_ADMIN, "whoever audits enrolments and purges may not make them"
    ),
    IncompatibleRoles(Role.AUDITOR, Role.SUPERVISOR, "whoever audits approvals may not give them"),
    IncompatibleRoles(
        Role.REVIEWER,
        Role.AUDITOR,
        "an auditor reads the examiner's findings in the audit log, which a blind peer reviewer "
        "must not see before the review is recorded",
    ),
)


def incompatible_pair(roles: Iterable[Role]) -> IncompatibleRoles | None:
    """The first pair of :data:`INCOMPATIBLE_ROLES` that ``roles`` joins, if any."""
    held = frozenset(roles)
    return next((pair for pair in INCOMPATIBLE_ROLES if pair.roles <= held), None)


def permissions(roles: Iterable[Role]) -> frozenset[Action]:
    """Every action the union of ``roles`` permits."""
    granted: set[Action] = set()
    for role in roles:
        granted |= PERMISSIONS[role]
    return frozenset(granted)


def permits(roles: Iterable[Role], action: Action) -> bool:
    return action in permissions(roles)


def roles_permitting(action: Action) -> frozenset[Role]:
    """The roles that grant ``action`` (used to tell a refused person what they lack)."""
    return frozenset(role for role, actions in PERMISSIONS.items() if action in actions)


def requires_mfa(roles: Iterable[Role]) -> bool:
    """Whether an account holding ``roles`` must have passed a second factor to act at all."""
    return bool(permissions(roles) & MFA_ACTIONS)


def parse_role(value: str) -> Role:
    """A role from its name, with an error that lists the valid names."""
    try:
        return Role(value)
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {value!r} (valid roles: {valid})") from None


def parse_action(value: str) -> Action:
    """An action from its name, with an error that lists the valid names."""
    try:
        return Action(value)
    except ValueError:
        valid = ", ".join(a.value for a in Action)
        raise ValidationError(f"unknown action {value!r} (valid actions: {valid})") from None


def require_aware(value: datetime, what: str) -> datetime:
    """Refuse naive datetimes: an expiry without a time zone is a different moment per machine."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what} must be a timezone-aware datetime, got {value.isoformat()}")
    return value


@dataclass(frozen=True, slots=True)
class Actor:
    """The signed-in person making a request, as the session established them.

    ``device_id`` is the id of the registered agency device the request came from, or
    None when the device is not one an administrator registered (a personal phone, an
    unknown browser); ``device_unit`` is the unit that device was registered to.
    ``mfa_verified`` says whether this session passed the second factor.
    A trial account must carry an expiry: trials that never end are how pilots become
    unaccountable production systems.
    """

    username: str
    roles: frozenset[Role]
    organisation: str
    unit: str
    expires_at: datetime | None = None
    suspended: bool = False
    mfa_verified: bool = False
    device_id: str | None = None
    trial: bool = False
    device_unit: str | None = None

    def __post_init__(self) -> None:
        if not self.username.strip():
            raise ValidationError("an actor needs a non-empty username")
        if not isinstance(self.roles, frozenset) or not all(isinstance(r, Role) for r in self.roles):
            raise ValidationError(f"actor {self.username!r}: roles must be a frozenset of Role")
        if self.expires_at is not None:
            require_aware(self.expires_at, f"expiry of account {self.username!r}")
        if self.trial and self.expires_at is None:
            raise ValidationError(f"trial account {self.username!r} must have an expiry date")

    def can(self, action: Action) -> bool:
        return permits(self.roles, action)

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at
