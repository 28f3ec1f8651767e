"""The one door: may this person take this action on this target, now?

Every service that acts for a person asks :func:`authorize` before it does anything, and
the web API, the CLI and the library call those services, so all of them get the same
answer. The answer comes from one place:

* with a policy in force, the policy decides
  (:func:`faceledger.domain.policy.decide_action`: account standing, organisation, second
  factor, role, registered device), citing its rule and version;
* before any policy is loaded, setup actions are decided by the fixed role table and the
  account's standing, and casework is refused with rule ``policy.none``
  (:func:`faceledger.domain.access.decide_without_policy`).

Scoping by unit is part of the same door. Changing a gallery (managing, enrolling,
purging) is for the gallery administrators of the units the policy names in its
``[[galleries]] admin_units`` (others are refused with rule ``gallery.admin_unit_not_allowed``)
or, where the policy names none, of the unit that created it (``galleries.owner_unit``;
others are refused with ``scope.other_unit``). Searches, cases and reviews are scoped in
:mod:`faceledger.services.scoping`.

A refusal is recorded (a decision row and a ``policy_denied`` audit entry, committed)
before it is raised, whichever route the request came by. Searches and comparisons are
decided by :mod:`faceledger.services.searches`, which also binds them to a case and a
purpose and reserves the day's search count in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select

from faceledger.adapters.store.tables import galleries
from faceledger.domain.access import NO_POLICY_VERSION, decide_without_policy
from faceledger.domain.policy import Decision, RuleId, decide_action
from faceledger.domain.roles import Action
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal, active_stored_policy, refuse, utc

#: Rule a refusal cites when a record belongs to another unit.
OTHER_UNIT_RULE = "scope.other_unit"

#: What changes a gallery, and so is for its owner unit's gallery administrators only.
GALLERY_CHANGES: frozenset[Action] = frozenset({Action.MANAGE_GALLERIES, Action.ENROL, Action.PURGE})


def decide(dd: DataDir, principal: Principal, actions: Iterable[Action], *, now: datetime) -> list[Decision]:
    """The answer for each of ``actions`` (none of them a search or a comparison), in order."""
    moment = utc(now)
    stored = active_stored_policy(dd)
    if stored is None:
        return [decide_without_policy(principal.actor, action, now=moment) for action in actions]
    policy = stored.policy()
    return [decide_action(policy, principal.actor, action, now=moment) for action in actions]


def authorize(
    dd: DataDir,
    principal: Principal,
    actions: Iterable[Action],
    *,
    target: str,
    now: datetime,
    case_number: str | None = None,
    search_id: int | None = None,
    gallery: str | None = None,
) -> Decision:
    """The first allowed decision among ``actions``; else the first refusal, recorded and raised.

    ``actions`` are alternatives: a gallery's subject list, for instance, may be read by
    whoever may manage galleries *or* read the audit log. With ``gallery``, an allowed
    action that changes it (:data:`GALLERY_CHANGES`) is still refused to a person outside
    the units that administer it (see the module's docstring).
    """
    wanted = tuple(actions)
    if not wanted:
        raise ValueError("authorize needs at least one action")
    decisions = decide(dd, principal, wanted, now=now)
    for action, decision in zip(wanted, decisions, strict=True):
        if decision.allowed:
            if gallery is not None and action in GALLERY_CHANGES:
                _require_gallery_unit(dd, principal, gallery, action, decision, target=target, now=now)
            return decision
    return refuse(
        dd,
        principal,
        decisions[0],
        action=wanted[0].value,
        target=target,
        now=utc(now),
        case_number=case_number,
        search_id=search_id,
    )


def gallery_owner_unit(dd: DataDir, name: str) -> str | None:
    """The unit that owns gallery ``name`` (None: no such gallery, or one every unit may change)."""
    with dd.store.read() as conn:
        found = conn.execute(select(galleries.c.owner_unit).where(galleries.c.name == name)).first()
    return None if found is None or found.owner_unit is None else str(found.owner_unit)


def _require_gallery_unit(
    dd: DataDir,
    principal: Principal,
    gallery: str,
    action: Action,
    allowed: Decision,
    *,
    target: str,
    now: datetime,
) -> None:
    unit = principal.actor.unit
    stored = active_stored_policy(dd)
    rule = None if stored is None else stored.policy().gallery(gallery)
    if rule is not None and rule.admin_units is not None:
        if unit in rule.admin_units:
            return
        names = ", ".join(sorted(rule.admin_units))
        reason = (
            f"gallery {gallery!r} is administered by the units {names} under the policy; "
            f"{principal.actor.username!r} is of unit {unit!r}"
        )
        denial = Decision(False, RuleId.GALLERY_ADMIN_UNIT_NOT_ALLOWED, allowed.policy_version, reason)
        refuse(dd, principal, denial, action=action.value, target=target, now=utc(now))
    owner = gallery_owner_unit(dd, gallery)
    if owner is None or owner == unit:
        return
    reason = (
        f"gallery {gallery!r} belongs to unit {owner!r}; {principal.actor.username!r} is of unit "
        f"{principal.actor.unit!r}"
    )
    refuse_other_unit(
        dd, principal, reason, action=action, target=target, now=now, version=allowed.policy_version
    )


def refuse_other_unit(
    dd: DataDir,
    principal: Principal,
    reason: str,
    *,
    action: Action,
    target: str,
    now: datetime,
    version: str | None = None,
    case_number: str | None = None,
    search_id: int | None = None,
) -> NoReturn:
    """Record and raise a refusal with rule ``scope.other_unit``, citing the policy in force.

    ``version`` is the policy version to cite (default: the one in force, or ``none``).
    """
    if version is None:
        stored = active_stored_policy(dd)
        version = NO_POLICY_VERSION if stored is None else stored.version
    refuse(
        dd,
        principal,
        Decision(False, OTHER_UNIT_RULE, version, reason),
        action=action.value,
        target=target,
        now=utc(now),
        case_number=case_number,
        search_id=search_id,
    )
