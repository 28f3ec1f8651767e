"""Who may administer accounts, and the separations of duty no administrator can override.

Administration goes through the one door (:func:`faceledger.services.authorization.authorize`:
the account's standing, second factor, the fixed role table of :mod:`faceledger.domain.roles`,
and the policy in force, which can only narrow the table). Two separations are enforced
here on top, whoever asks:

* nobody changes their own account's standing (roles, suspension, expiry, lockout,
  password reset, second factor): a second administrator must do it, so one person can
  never grant themselves power or undo their own suspension;
* some roles may not be held together (:data:`INCOMPATIBLE_ROLES`): the people who watch
  the system, and the people who configure it, are never also the people who search.

A refusal is recorded in the audit log before it is raised: attempts show intent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from faceledger.audit import events
from faceledger.audit.events import JsonValue
from faceledger.domain.roles import INCOMPATIBLE_ROLES as FIXED_PAIRS
from faceledger.domain.roles import (
    Action,
    IncompatibleRoles,
    Role,
    incompatible_pair,
    requires_mfa,
)
from faceledger.errors import PermissionDeniedError, ValidationError
from faceledger.services import audit
from faceledger.services.authorization import authorize as one_door

if TYPE_CHECKING:
    from faceledger.services.accounts.records import Principal
    from faceledger.services.datadir import DataDir

#: Pairs of roles one account may not hold at once: role set -> the pair, with its rule id and why.
INCOMPATIBLE_ROLES: dict[frozenset[Role], IncompatibleRoles] = {pair.roles: pair for pair in FIXED_PAIRS}


def check_role_combination(roles: Iterable[Role]) -> frozenset[Role]:
    """``roles`` as a set, refused when empty or when it joins duties that must stay apart."""
    held = frozenset(roles)
    if not held:
        raise ValidationError(
            "an account needs at least one role (valid: " + ", ".join(r.value for r in Role) + ")"
        )
    pair = incompatible_pair(held)
    if pair is not None:
        raise ValidationError(pair.message())
    return held


def refuse_role_combination(
    dd: DataDir, by: Principal, roles: Iterable[Role], *, account: str, attempted: str, now: datetime
) -> None:
    """Refuse ``roles`` for ``account`` when they join duties that must stay apart, citing the pair's rule id.

    Raises :class:`ValidationError` (the request is one no administrator may make) after
    the ``policy_denied`` entry is committed: an attempt to combine them shows intent.
    """
    pair = incompatible_pair(roles)
    if pair is None:
        return
    reason = pair.message()
    with dd.store.begin() as conn:
        decision: dict[str, JsonValue] = {
            "allowed": False,
            "rule_id": pair.rule_id,
            "policy_version": "none",
            "reason": reason,
        }
        event = events.policy_denied(
            by.username, attempted=attempted, target=f"account:{account}", reason=reason, decision=decision
        )
        audit.record(dd, conn, event, now=now)
    raise ValidationError(reason)


def account_problem(principal: Principal, now: datetime) -> str | None:
    actor = principal.actor
    if actor.is_expired(now):
        return f"account {actor.username!r} has expired"
    if actor.suspended:
        return f"account {actor.username!r} is suspended"
    if requires_mfa(actor.roles) and not actor.mfa_verified:
        return f"account {actor.username!r} must sign in with its second factor (TOTP) first"
    return None


def authorize(
    dd: DataDir, principal: Principal, actions: Iterable[Action], *, target: str, now: datetime
) -> None:
    """Refuse (and record) unless ``principal`` may take one of ``actions``: the one door decides.

    :func:`faceledger.services.authorization.authorize` applies the account's standing, its
    second factor, the role table, the device and the policy in force, and records a refusal
    with its rule id.
    """
    one_door(dd, principal, actions, target=target, now=now)


def refuse_self(dd: DataDir, principal: Principal, username: str, *, change: str, now: datetime) -> None:
    if principal.username == username:
        deny(
            dd,
            principal.username,
            attempted=change,
            target=f"account:{username}",
            reason=f"nobody may {change.replace('_', ' ')} on their own account; "
            "another system administrator must do it (separation of duties)",
            now=now,
        )


def deny(dd: DataDir, actor: str, *, attempted: str, target: str, reason: str, now: datetime) -> NoReturn:
    """Record a refusal in its own transaction, then raise it."""
    with dd.store.begin() as conn:
        event = events.policy_denied(actor, attempted=attempted, target=target, reason=reason)
        audit.record(dd, conn, event, now=now)
    raise PermissionDeniedError(reason)
