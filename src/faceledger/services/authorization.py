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

A refusal is recorded (a decision row and a ``policy_denied`` audit entry, committed)
before it is raised, whichever route the request came by. Searches and comparisons are
decided by :mod:`faceledger.services.searches`, which also binds them to a case and a
purpose and reserves the day's search count in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from faceledger.domain.access import decide_without_policy
from faceledger.domain.policy import Decision, decide_action
from faceledger.domain.roles import Action
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal, active_stored_policy, refuse, utc


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
) -> Decision:
    """The first allowed decision among ``actions``; else the first refusal, recorded and raised.

    ``actions`` are alternatives: a gallery's subject list, for instance, may be read by
    whoever may manage galleries *or* read the audit log.
    """
    wanted = tuple(actions)
    if not wanted:
        raise ValueError("authorize needs at least one action")
    decisions = decide(dd, principal, wanted, now=now)
    allowed = next((decision for decision in decisions if decision.allowed), None)
    if allowed is not None:
        return allowed
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
