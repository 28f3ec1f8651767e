"""The fixed role -> action table, the second-factor rule and the Actor record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from faceledger.domain.roles import (
    MFA_ACTIONS,
    PERMISSIONS,
    Action,
    Actor,
    Role,
    parse_action,
    parse_role,
    permissions,
    permits,
    requires_mfa,
    roles_permitting,
)
from faceledger.errors import ValidationError

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# The whole table, written out independently of the code so a change to it is deliberate.
EXPECTED = {
    Role.EXAMINER: {"search", "verify", "propose", "view_case", "view_face_image"},
    Role.REVIEWER: {"peer_review", "view_case", "view_face_image"},
    Role.SUPERVISOR: {"approve", "manage_unit", "reports", "view_case", "view_face_image"},
    Role.GALLERY_ADMIN: {"enrol", "purge", "manage_galleries"},
    Role.AUDITOR: {"read_audit", "export_audit", "reports", "view_case", "view_face_image"},
    Role.SYSTEM_ADMIN: {"manage_accounts", "manage_policy", "register_device"},
}


@pytest.mark.parametrize("role", list(Role))
def test_permission_table_is_as_documented(role: Role) -> None:
    assert {a.value for a in PERMISSIONS[role]} == EXPECTED[role]


def test_every_action_is_granted_by_some_role() -> None:
    assert set().union(*PERMISSIONS.values()) == set(Action)


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.SYSTEM_ADMIN, Role.REVIEWER, Role.GALLERY_ADMIN])
def test_only_examiners_run_face_searches(role: Role) -> None:
    assert not permits([role], Action.SEARCH)
    assert not permits([role], Action.VERIFY)


def test_auditor_is_read_only() -> None:
    writes = {Action.ENROL, Action.PURGE, Action.MANAGE_POLICY, Action.MANAGE_ACCOUNTS, Action.APPROVE}
    assert not permissions([Role.AUDITOR]) & writes


def test_several_roles_combine() -> None:
    granted = permissions([Role.EXAMINER, Role.SUPERVISOR])
    assert {Action.SEARCH, Action.APPROVE, Action.MANAGE_UNIT} <= granted
    assert Action.ENROL not in granted
    assert permissions([]) == frozenset()


def test_roles_permitting() -> None:
    assert roles_permitting(Action.SEARCH) == {Role.EXAMINER}
    assert roles_permitting(Action.REPORTS) == {Role.SUPERVISOR, Role.AUDITOR}


@pytest.mark.parametrize(
    ("roles", "needed"),
    [
        ({Role.EXAMINER}, True),
        ({Role.SUPERVISOR}, True),
        ({Role.GALLERY_ADMIN}, True),
        ({Role.SYSTEM_ADMIN}, True),
        # Reviewers and auditors see face photos (candidates of the cases they read): second factor too.
        ({Role.REVIEWER}, True),
        ({Role.AUDITOR}, True),
        ({Role.AUDITOR, Role.REVIEWER}, True),
        ({Role.AUDITOR, Role.EXAMINER}, True),
        (set(), False),
    ],
)
def test_requires_mfa(roles: set[Role], needed: bool) -> None:
    assert requires_mfa(roles) is needed


def test_mfa_actions_cover_search_and_administration() -> None:
    assert {Action.SEARCH, Action.ENROL, Action.MANAGE_POLICY, Action.REGISTER_DEVICE} <= MFA_ACTIONS
    assert Action.READ_AUDIT not in MFA_ACTIONS


def test_parse_role_and_action() -> None:
    assert parse_role("gallery_admin") is Role.GALLERY_ADMIN
    assert parse_action("export_audit") is Action.EXPORT_AUDIT
    with pytest.raises(ValidationError, match=r"unknown role 'admin' \(valid roles: examiner"):
        parse_role("admin")
    with pytest.raises(ValidationError, match="unknown action 'delete'"):
        parse_action("delete")


def _actor(**overrides: object) -> Actor:
    values: dict[str, object] = {
        "username": "a.examiner",
        "roles": frozenset({Role.EXAMINER}),
        "organisation": "Org",
        "unit": "fiu",
    }
    values.update(overrides)
    return Actor(**values)  # type: ignore[arg-type]


def test_trial_account_needs_an_expiry() -> None:
    with pytest.raises(ValidationError, match=r"trial account 'a\.examiner' must have an expiry"):
        _actor(trial=True)
    assert _actor(trial=True, expires_at=NOW).trial


def test_expiry_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        _actor(expires_at=datetime(2025, 1, 1))


def test_actor_rejects_blank_username_and_bad_roles() -> None:
    with pytest.raises(ValidationError, match="non-empty username"):
        _actor(username="  ")
    with pytest.raises(ValidationError, match="frozenset of Role"):
        _actor(roles={"examiner"})


def test_expiry_is_exclusive_at_the_instant() -> None:
    actor = _actor(expires_at=NOW)
    assert not actor.is_expired(NOW - timedelta(seconds=1))
    assert actor.is_expired(NOW)
    assert not _actor().is_expired(NOW)


def test_actor_can() -> None:
    assert _actor().can(Action.SEARCH)
    assert not _actor().can(Action.APPROVE)


def test_actor_is_frozen() -> None:
    actor = _actor()
    with pytest.raises(AttributeError):
        actor.suspended = True  # type: ignore[misc]
