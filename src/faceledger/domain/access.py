"""What a person may do before the agency's policy is loaded (pure: no I/O).

A new installation has to be set up before its policy exists: the first system
administrator creates accounts and registers devices, a gallery administrator creates
galleries and enrols, an auditor reads the log. Those *setup* actions are decided by the
fixed role table (:mod:`faceledger.domain.roles`) and the account's standing. Casework
(searches, comparisons, review, reading cases) needs a policy that binds it to cases and
purposes, so without one it is refused with rule ``policy.none``.

Once a policy is in force, :func:`faceledger.domain.policy.decide_action` decides every
action instead; this module never widens what a policy allows.
"""

from __future__ import annotations

from datetime import datetime

from faceledger.domain.policy import Decision, RuleId
from faceledger.domain.roles import Action, Actor, requires_mfa, roles_permitting

#: Rule and version a decision cites when no policy has been loaded.
NO_POLICY_RULE = "policy.none"
NO_POLICY_VERSION = "none"

#: Actions the role table alone may allow while no policy is in force.
SETUP_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.MANAGE_ACCOUNTS,
        Action.MANAGE_UNIT,  # a supervisor vouches for a new account of the unit (setting people up)
        Action.MANAGE_POLICY,
        Action.REGISTER_DEVICE,
        Action.MANAGE_GALLERIES,
        Action.ENROL,
        Action.PURGE,
        Action.READ_AUDIT,
        Action.EXPORT_AUDIT,
        Action.REPORTS,
    }
)


def no_policy_decision() -> Decision:
    """The refusal of casework on a data directory without a policy."""
    return Decision(
        False,
        NO_POLICY_RULE,
        NO_POLICY_VERSION,
        "no policy is in force in this data directory: a system administrator must load the "
        "agency's policy first (`faceledger policy load FILE`; see docs/policy.md)",
    )


def _deny(rule: RuleId, reason: str) -> Decision:
    return Decision(False, rule.value, NO_POLICY_VERSION, reason)


def decide_without_policy(actor: Actor, action: Action, *, now: datetime) -> Decision:
    """May ``actor`` do ``action`` on a data directory that has no policy yet?

    Checks, in order: casework (refused), account expired, suspended, second factor, role.
    """
    if action not in SETUP_ACTIONS:
        return no_policy_decision()
    if actor.is_expired(now):
        return _deny(RuleId.ACCOUNT_EXPIRED, f"account {actor.username!r} has expired")
    if actor.suspended:
        return _deny(RuleId.ACCOUNT_SUSPENDED, f"account {actor.username!r} is suspended")
    if requires_mfa(actor.roles) and not actor.mfa_verified:
        return _deny(
            RuleId.MFA_REQUIRED,
            f"account {actor.username!r} must sign in with its second factor (TOTP) first",
        )
    if not actor.can(action):
        needed = ", ".join(sorted(role.value for role in roles_permitting(action)))
        held = ", ".join(sorted(role.value for role in actor.roles)) or "none"
        return _deny(
            RuleId.ROLE_NOT_PERMITTED,
            f"{action.value!r} needs one of the roles {needed}; {actor.username!r} acts with: {held}",
        )
    return Decision(
        True, RuleId.ACTION_ALLOWED.value, NO_POLICY_VERSION, f"{actor.username!r} may {action.value}"
    )
