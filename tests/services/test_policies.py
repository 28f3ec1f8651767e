"""The stored, versioned policy: nothing in force on a fresh installation, loads audited and guarded."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from cases_helpers import ADMIN, ORG, T0, audit_rows, backend_url, dd, load, person, policy_text
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.policy_file import example_policy_text
from faceledger.adapters.store.tables_cases import policy_decisions, policy_versions
from faceledger.domain.roles import Action, Role
from faceledger.errors import ConfigError, ConflictError, NotFoundError, PermissionDeniedError
from faceledger.services import authorization, policies
from faceledger.services.datadir import DataDir

__all__ = ["backend_url", "dd"]  # fixtures

EXAMPLE_SHA = hashlib.sha256(example_policy_text().encode()).hexdigest()


def _decision_rows(dd: DataDir) -> list[tuple[str, str, bool, str]]:
    with dd.store.read() as conn:
        rows = conn.execute(select(policy_decisions).order_by(policy_decisions.c.id)).all()
    return [(r.username, r.action, bool(r.allowed), r.rule_id) for r in rows]


def test_a_fresh_installation_has_no_policy_in_force(dd: DataDir) -> None:
    with pytest.raises(NotFoundError, match="faceledger policy load"):
        policies.active_policy(dd)
    [decision] = authorization.decide(dd, person("eve.examiner", Role.EXAMINER), [Action.PROPOSE], now=T0)
    assert (decision.allowed, decision.rule_id, decision.policy_version) == (False, "policy.none", "none")
    assert policies.policy_history(dd) == []


def test_an_administrator_loads_a_policy_file_and_it_is_kept_and_audited(dd: DataDir, tmp_path: Path) -> None:
    file = tmp_path / "agency.toml"
    file.write_text(example_policy_text(), encoding="utf-8")
    loaded = policies.load_policy(dd, ADMIN, file, now=T0)
    assert loaded.version == "example-2025.1"
    assert policies.active_policy(dd) == loaded
    [stored] = policies.policy_history(dd)
    assert (stored.version, stored.sha256, stored.active, stored.loaded_by) == (
        "example-2025.1",
        EXAMPLE_SHA,
        True,
        "sam.admin",
    )
    assert stored.loaded_at == T0
    assert stored.text == example_policy_text()
    assert stored.source == str(file)
    [changed] = audit_rows(dd, "policy_changed")
    assert changed["actor"] == "sam.admin"
    assert changed["details"] == {
        "sha256_before": None,
        "sha256_after": EXAMPLE_SHA,
        "version_before": None,
        "version_after": "example-2025.1",
    }
    assert _decision_rows(dd) == [("sam.admin", "manage_policy", True, "action.allowed")]


def test_a_new_version_replaces_the_old_one_which_stays_on_record(dd: DataDir) -> None:
    load(dd)
    second = policy_text(version='"example-2025.2"', daily_limit_per_user="10")
    load(dd, second, at=T0 + timedelta(hours=1))
    history = policies.policy_history(dd)
    assert [(p.version, p.active) for p in history] == [("example-2025.1", False), ("example-2025.2", True)]
    assert policies.active_policy(dd).daily_search_limit == 10
    changes = [e["details"] for e in audit_rows(dd, "policy_changed")]
    assert changes[1]["sha256_before"] == EXAMPLE_SHA
    assert changes[1]["version_before"] == "example-2025.1"
    assert changes[1]["sha256_after"] == hashlib.sha256(second.encode()).hexdigest()


def test_loading_the_text_in_force_again_changes_and_records_nothing(dd: DataDir) -> None:
    load(dd)
    entries = len(audit_rows(dd))
    load(dd, at=T0 + timedelta(minutes=5))
    assert len(policies.policy_history(dd)) == 1
    assert len(audit_rows(dd)) == entries


def test_an_older_text_can_be_put_back_and_that_is_a_new_load(dd: DataDir) -> None:
    load(dd)
    load(dd, policy_text(version='"example-2025.2"'), at=T0 + timedelta(hours=1))
    load(dd, at=T0 + timedelta(hours=2))
    assert [(p.version, p.active) for p in policies.policy_history(dd)] == [
        ("example-2025.1", False),
        ("example-2025.2", False),
        ("example-2025.1", True),
    ]


def test_a_version_string_names_one_text_for_ever(dd: DataDir) -> None:
    load(dd)
    with pytest.raises(ConflictError, match="raise `version`"):
        load(dd, policy_text(daily_limit_per_user="3"))
    assert len(policies.policy_history(dd)) == 1


def test_only_a_system_administrator_may_load_and_a_refusal_is_recorded(dd: DataDir) -> None:
    load(dd)
    examiner = person("eve.examiner", Role.EXAMINER)
    with pytest.raises(PermissionDeniedError) as refused:
        policies.load_policy_text(dd, examiner, policy_text(version='"mine"'), source="x.toml", now=T0)
    decision = refused.value.decision
    assert decision is not None
    assert (decision.rule_id, decision.policy_version) == ("role.not_permitted", "example-2025.1")
    assert "needs one of the roles: system_admin" in str(refused.value)
    assert [p.version for p in policies.policy_history(dd)] == ["example-2025.1"]
    [denied] = audit_rows(dd, "policy_denied")
    assert denied["actor"] == "eve.examiner"
    assert denied["details"]["decision"]["rule_id"] == "role.not_permitted"
    assert _decision_rows(dd)[-1] == ("eve.examiner", "manage_policy", False, "role.not_permitted")


def test_the_first_policy_is_decided_by_itself(dd: DataDir) -> None:
    """With none in force, the one being loaded judges the administrator (second factor included)."""
    no_mfa = person("sam.admin", Role.SYSTEM_ADMIN, device=None, mfa=False)
    with pytest.raises(PermissionDeniedError) as refused:
        policies.load_example_policy(dd, no_mfa, now=T0)
    assert refused.value.decision is not None
    assert refused.value.decision.rule_id == "mfa.required"
    assert policies.policy_history(dd) == []
    assert [e["details"]["decision"]["policy_version"] for e in audit_rows(dd, "policy_denied")] == [
        "example-2025.1"
    ]


def test_a_policy_for_another_organisation_is_refused(dd: DataDir) -> None:
    other = policy_text(organisation='"Other Force"')
    admin = person("sam.admin", Role.SYSTEM_ADMIN, device=None, organisation="Other Force")
    load(dd)
    with pytest.raises(PermissionDeniedError, match="wrong_organisation"):
        policies.load_policy_text(dd, admin, other, source="other.toml", now=T0)
    with pytest.raises(ConflictError, match=r"governs 'Other Force', but 'sam\.admin' belongs to"):
        policies.load_policy_text(dd, ADMIN, other, source="other.toml", now=T0)
    assert policies.active_policy(dd).organisation == ORG


def test_bad_files_are_refused_with_file_line_and_key(dd: DataDir, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        policies.load_policy(dd, ADMIN, tmp_path / "missing.toml", now=T0)
    bad = tmp_path / "bad.toml"
    bad.write_text(example_policy_text().replace("[[purposes.prohibited]]", "[[purposes.prohibitted]]", 1))
    with pytest.raises(ConfigError, match=r"bad\.toml, line \d+: purposes\.prohibitted"):
        policies.load_policy(dd, ADMIN, bad, now=T0)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        policies.load_policy(dd, ADMIN, binary, now=T0)
    assert policies.policy_history(dd) == []


def test_the_database_itself_allows_one_active_policy(dd: DataDir) -> None:
    load(dd)
    row = {
        "version": "forged",
        "sha256": "0" * 64,
        "organisation": ORG,
        "text": "x",
        "source": "x",
        "loaded_by": "mallory",
        "loaded_at": T0,
        "active": True,
    }
    with pytest.raises(IntegrityError), dd.store.begin() as conn:
        conn.execute(insert(policy_versions).values(**row))
    with dd.store.begin() as conn:  # inactive rows are unlimited
        conn.execute(insert(policy_versions).values(**{**row, "active": None}))
        conn.execute(insert(policy_versions).values(**{**row, "active": None, "version": "forged-2"}))
    assert policies.active_policy(dd).version == "example-2025.1"


def test_the_door_records_and_raises_refusals_with_the_case(dd: DataDir) -> None:
    load(dd)
    auditor = person("ann.auditor", Role.AUDITOR, device=None)
    with pytest.raises(PermissionDeniedError):
        authorization.authorize(
            dd, auditor, [Action.PROPOSE], target="search:1", now=T0, case_number="2025/CID/000001"
        )
    allowed = authorization.authorize(dd, auditor, [Action.VIEW_CASE], target="search:1", now=T0)
    assert allowed.rule_id == "action.allowed"
    with dd.store.read() as conn:
        row = conn.execute(select(policy_decisions).where(policy_decisions.c.username == "ann.auditor")).one()
    assert (row.case_number, row.rule_id, row.allowed) == ("2025/CID/000001", "role.not_permitted", False)
