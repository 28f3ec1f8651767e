"""Who may use the parts of the API whose services do not check roles themselves.

The gallery and audit services do the work they are asked to and leave the question of
who asked to their caller; the web layer asks it here, the same way the case services do:

* with a policy in force, the policy decides (:func:`faceledger.domain.policy.decide_action`:
  account standing, organisation, second factor, role, registered device), and a refusal
  is stored with the decision and written to the audit log before it is raised, citing the
  rule and the policy version;
* before any policy is loaded, the fixed role table and the account's standing decide
  (:func:`faceledger.services.accounts.authorize`, which records its refusals too), so that
  a new installation can be set up (galleries created, the log read) before the agency's
  policy is in place. Searches are still refused until then (rule ``policy.none``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from faceledger.domain.policy import decide_action
from faceledger.domain.roles import Action
from faceledger.services import accounts, policies
from faceledger.services.accounts import Principal
from faceledger.services.datadir import DataDir


def require(
    dd: DataDir, principal: Principal, actions: Iterable[Action], *, target: str, now: datetime
) -> None:
    """Return if ``principal`` may take one of ``actions``; else record the refusal and raise it."""
    wanted = tuple(actions)
    stored = policies.active_stored_policy(dd)
    if stored is None:
        accounts.authorize(dd, principal, wanted, target=target, now=now)
        return
    policy = stored.policy()
    decisions = [decide_action(policy, principal.actor, action, now=now) for action in wanted]
    if not any(decision.allowed for decision in decisions):
        policies.refuse(dd, principal, decisions[0], action=wanted[0].value, target=target, now=now)
