"""Every policy rule through the API: the refusal names the rule and version, and it is recorded.

The policy decides a search before its photo is decoded, so these requests carry bytes
that are not a photo at all: a request that got past the policy would fail on them with
``bad_image`` instead of the expected refusal, and nothing may be stored. (The probe
quality floor, decided after analysis, is tested with real photos in test_search_api.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    PAROLE,
    PASSWORD,
    PURPOSE,
    Agency,
    Session,
    audit_rows,
    error_of,
    running,
    template,
)

from faceledger.adapters.policy_file import example_policy_text
from faceledger.domain.policy import SEARCH_CHECK_ORDER, RuleId
from faceledger.services import galleries
from faceledger.services.devices import DEVICE_HEADER
from faceledger.services.probes import PROBES_DIR

__all__ = ["template"]  # fixtures

VERSION = "example-2025.1"
AGREEMENT = "DSA-2024-017"
PARTNER = "Neighbouring County Police"
NOT_A_PHOTO = b"not a photo"
BASE_FORM: dict[str, Any] = {
    "case_number": CASE,
    "purpose": PURPOSE,
    "galleries": [CUSTODY],
    "justification": "robbery at the post office",
}


def policy_text(**changes: str) -> str:
    """The shipped example policy with ``key = value`` lines replaced, and a new version."""
    lines = example_policy_text().splitlines()
    changes.setdefault("version", '"web-test-2"')
    for key, value in changes.items():
        hits = [i for i, line in enumerate(lines) if line.split("=")[0].strip().strip('"') == key]
        assert len(hits) == 1, f"the example policy has {len(hits)} '{key} =' lines"
        lines[hits[0]] = f"{key} = {value}"
    return "\n".join(lines) + "\n"


def search(agency: Agency, session: Session, **changes: Any) -> httpx2.Response:
    form = {k: v for k, v in {**BASE_FORM, **changes}.items() if v is not None}
    files = {"probe": ("probe.jpg", NOT_A_PHOTO, "image/jpeg")}
    return agency.client.post(f"{API}/searches", data=form, files=files, headers=session.headers)


def assert_refused(agency: Agency, answer: httpx2.Response, rule: str, version: str = VERSION) -> None:
    assert answer.status_code == 403, answer.text
    error = error_of(answer)
    assert error["code"] == "forbidden"
    assert (error["rule_id"], error["policy_version"]) == (rule, version)
    recorded = audit_rows(agency.dd, "policy_denied")[-1]["details"]
    assert recorded["decision"]["rule_id"] == rule
    assert recorded["attempted"] in {"search", "verify"}
    probes = agency.dd.path / PROBES_DIR
    assert not probes.exists() or not any(p.is_file() for p in probes.rglob("*")), "a refused probe was kept"


@dataclass
class Unit:
    """One installation under the example policy, with examiners in and out of the right unit."""

    agency: Agency
    people: dict[str, str] = field(default_factory=dict)

    def examiner(self, key: str = "eve", *, device: bool = True) -> Session:
        return self.agency.login(self.people[key], device=device)


def _govern(agency: Agency, text: str | None = None) -> Unit:
    admin = agency.admin()
    if text is None:
        agency.load_example_policy()
    else:
        loaded = agency.client.put(f"{API}/policy", json={"text": text}, headers=admin.headers)
        assert loaded.status_code == 200, loaded.text
    for name in (CUSTODY, PAROLE):
        galleries.create_gallery(agency.dd, name, legal_basis="PACE s.64A", source_description="LFW")
    unit = Unit(agency)
    agency.add("eve.examiner", "examiner")
    agency.add("far.examiner", "examiner", unit="traffic")
    agency.add("out.examiner", "examiner", organisation="Other Force")
    agency.add("rita.reviewer", "reviewer")
    unit.people = {
        "eve": "eve.examiner",
        "far": "far.examiner",
        "out": "out.examiner",
        "rita": "rita.reviewer",
    }
    return unit


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Unit]:
    with running(tmp_path_factory.mktemp("policy") / "data", template) as agency:
        yield _govern(agency)


@pytest.fixture
def fresh(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with running(tmp_path / "data", template) as agency:
        yield agency


# Rule -> (who asks, what the request changes). The person must pass every earlier check.
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    RuleId.ACCOUNT_WRONG_ORGANISATION: ("out", {}),
    RuleId.ROLE_NOT_PERMITTED: ("rita", {}),
    RuleId.CASE_MISSING: ("eve", {"case_number": None}),
    RuleId.CASE_MALFORMED: ("eve", {"case_number": "12345"}),
    RuleId.PURPOSE_MISSING: ("eve", {"purpose": None}),
    RuleId.PURPOSE_PROHIBITED: ("eve", {"purpose": "protected_activity"}),
    RuleId.PURPOSE_NOT_ALLOWED: ("eve", {"purpose": "curiosity"}),
    RuleId.JUSTIFICATION_MISSING: ("eve", {"purpose": "missing_person_at_risk", "justification": None}),
    RuleId.JUSTIFICATION_TOO_LONG: ("eve", {"justification": "x" * 2001}),
    RuleId.GALLERY_MISSING: ("eve", {"galleries": None}),
    RuleId.GALLERY_UNKNOWN: ("eve", {"galleries": ["family_photos"]}),
    RuleId.GALLERY_NOT_FOR_PURPOSE: ("eve", {"purpose": "deceased_or_incapacitated", "galleries": [PAROLE]}),
    RuleId.GALLERY_UNIT_NOT_ALLOWED: ("far", {}),
    RuleId.INTERAGENCY_AGREEMENT_MISSING: ("eve", {"on_behalf_of": PARTNER}),
    RuleId.INTERAGENCY_AGREEMENT_UNKNOWN: ("eve", {"on_behalf_of": PARTNER, "agreement_ref": "DSA-0000"}),
    RuleId.INTERAGENCY_AGENCY_MISMATCH: (
        "eve",
        {"on_behalf_of": "Far Away Police", "agreement_ref": AGREEMENT},
    ),
    RuleId.INTERAGENCY_PURPOSE_NOT_COVERED: (
        "eve",
        {"on_behalf_of": PARTNER, "agreement_ref": AGREEMENT, "purpose": "deceased_or_incapacitated"},
    ),
    RuleId.INTERAGENCY_GALLERY_NOT_COVERED: (
        "eve",
        {"on_behalf_of": PARTNER, "agreement_ref": AGREEMENT, "galleries": [PAROLE]},
    ),
}


@pytest.mark.parametrize("rule", sorted(REQUESTS))
def test_a_request_breaking_a_rule_is_refused_citing_it(unit: Unit, rule: str) -> None:
    who, changes = REQUESTS[rule]
    assert_refused(unit.agency, search(unit.agency, unit.examiner(who), **changes), rule)


def test_a_search_from_an_unregistered_device_is_refused(unit: Unit) -> None:
    answer = search(unit.agency, unit.examiner(device=False))
    assert_refused(unit.agency, answer, RuleId.DEVICE_UNREGISTERED)


def test_a_search_from_another_units_device_is_refused_unless_the_policy_allows_it(fresh: Agency) -> None:
    """far.examiner (traffic) on the facial identification unit's workstation: device.other_unit."""
    unit = _govern(fresh)
    borrowed = fresh.login("far.examiner", device=fresh.device)
    assert_refused(fresh, search(fresh, borrowed), RuleId.DEVICE_OTHER_UNIT)
    assert "belongs to unit 'facial-identification'" in error_of(search(fresh, borrowed))["message"]
    # On their own unit's device the device check passes, and the gallery's unit rule decides.
    assert_refused(fresh, search(fresh, unit.examiner("far")), RuleId.GALLERY_UNIT_NOT_ALLOWED)
    shared = policy_text(other_units="true", version='"web-test-shared"')
    loaded = fresh.client.put(f"{API}/policy", json={"text": shared}, headers=fresh.admin().headers)
    assert loaded.status_code == 200, loaded.text
    borrowed = fresh.login("far.examiner", device=fresh.device)
    assert_refused(fresh, search(fresh, borrowed), RuleId.GALLERY_UNIT_NOT_ALLOWED, "web-test-shared")


def test_every_role_needs_its_second_factor_to_sign_in(unit: Unit) -> None:
    """Reviewers and auditors included: a password alone opens no session, and the refusal is recorded."""
    agency = unit.agency
    for username, role in (("mo.reviewer", "reviewer"), ("al.auditor", "auditor")):
        agency.add(username, role)
        agency.clock.advance(seconds=31)
        refused = agency.client.post(
            f"{API}/auth/login",
            json={"username": username, "password": PASSWORD},
            headers={DEVICE_HEADER: agency.device},
        )
        assert refused.status_code == 401, refused.text
        assert "authenticator app (TOTP)" in refused.json()["error"]["message"]
        agency.login(username)  # with its code it signs in


def test_expired_and_suspended_accounts_are_refused_before_the_policy_is_asked(unit: Unit) -> None:
    """Their sessions end (expired or ended); their API tokens are refused, and that is recorded."""
    agency = unit.agency
    soon = (agency.clock.now + timedelta(minutes=5)).isoformat()
    agency.add("tim.trial", "examiner", expires_at=soon, trial=True)
    agency.add("sue.suspended", "examiner")
    sessions = {name: agency.login(name) for name in ("tim.trial", "sue.suspended")}
    tokens = {
        name: Session(name, _token(agency, session), session.device) for name, session in sessions.items()
    }
    agency.client.post(
        f"{API}/users/sue.suspended/suspend", json={"reason": "inquiry"}, headers=agency.admin().headers
    )
    agency.clock.advance(minutes=10)
    for name, word in (("tim.trial", "expired"), ("sue.suspended", "suspended")):
        on_session = search(agency, sessions[name])
        assert on_session.status_code == 401, on_session.text
        on_token = search(agency, tokens[name])
        assert on_token.status_code == 401, on_token.text
        assert word in error_of(on_token)["message"]
        recorded = audit_rows(agency.dd, "policy_denied")[-1]
        assert (recorded["actor"], recorded["details"]["attempted"]) == (name, "use_token")
        assert word in recorded["details"]["reason"]


def _token(agency: Agency, session: Session) -> str:
    made = agency.client.post(
        f"{API}/tokens", json={"name": "script", "scopes": ["examiner"], "days": 1}, headers=session.headers
    )
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


def test_verification_is_decided_by_the_same_rules(unit: Unit) -> None:
    files = {"first": ("a.jpg", NOT_A_PHOTO, "image/jpeg"), "second": ("b.jpg", NOT_A_PHOTO, "image/jpeg")}
    answer = unit.agency.client.post(
        f"{API}/verify", data={"purpose": PURPOSE}, files=files, headers=unit.examiner().headers
    )
    assert_refused(unit.agency, answer, RuleId.CASE_MISSING)


def test_a_request_the_policy_allows_reaches_the_photo(unit: Unit) -> None:
    answer = search(unit.agency, unit.examiner())
    assert answer.status_code == 422
    assert error_of(answer)["code"] == "bad_image"


def test_without_a_policy_every_search_is_refused(fresh: Agency) -> None:
    fresh.add("eve.examiner", "examiner")
    answer = search(fresh, fresh.login("eve.examiner"))
    assert_refused(fresh, answer, "policy.none", "none")


def test_searches_for_another_agency_need_the_policy_to_allow_them(fresh: Agency) -> None:
    unit = _govern(fresh, policy_text(allowed="false"))
    answer = search(fresh, unit.examiner(), on_behalf_of=PARTNER, agreement_ref=AGREEMENT)
    assert_refused(fresh, answer, RuleId.INTERAGENCY_NOT_ALLOWED, "web-test-2")


def test_an_agreement_is_only_used_while_in_force(fresh: Agency) -> None:
    unit = _govern(fresh)
    fresh.clock.now = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)  # the day after the agreement ended
    answer = search(fresh, unit.examiner(), on_behalf_of=PARTNER, agreement_ref=AGREEMENT)
    assert_refused(fresh, answer, RuleId.INTERAGENCY_AGREEMENT_NOT_IN_FORCE)


def test_the_daily_limit_is_per_person(fresh: Agency) -> None:
    limited = policy_text().replace('"fiu.trainer" = 40', '"fiu.trainer" = 40\n"eve.examiner" = 0')
    unit = _govern(fresh, limited)
    assert_refused(fresh, search(fresh, unit.examiner()), RuleId.LIMIT_DAILY, "web-test-2")


def test_every_search_rule_is_tested_here() -> None:
    """The table above, the tests after it and test_search_api (quality) cover SEARCH_CHECK_ORDER."""
    elsewhere = {
        RuleId.ACCOUNT_EXPIRED,  # refused before the policy: test_expired_and_suspended_...
        RuleId.ACCOUNT_SUSPENDED,
        RuleId.MFA_REQUIRED,
        RuleId.DEVICE_UNREGISTERED,
        RuleId.DEVICE_OTHER_UNIT,
        RuleId.INTERAGENCY_NOT_ALLOWED,
        RuleId.INTERAGENCY_AGREEMENT_NOT_IN_FORCE,
        RuleId.LIMIT_DAILY,
        RuleId.PROBE_QUALITY_BELOW_FLOOR,  # test_search_api (needs a real face)
    }
    assert set(SEARCH_CHECK_ORDER) == set(REQUESTS) | elsewhere


# --- the policy itself over the API -------------------------------------------------------------


def test_loading_a_policy_is_recorded_and_every_version_kept(fresh: Agency) -> None:
    admin = fresh.admin()
    assert fresh.client.get(f"{API}/policy", headers=admin.headers).status_code == 404
    fresh.load_example_policy()
    newer = policy_text(daily_limit_per_user="10")
    loaded = fresh.client.put(
        f"{API}/policy", json={"text": newer, "source": "FI-01 v2"}, headers=admin.headers
    )
    assert loaded.status_code == 200
    assert loaded.json()["version"] == "web-test-2"
    assert loaded.json()["rules"]["daily_search_limit"] == 10
    shown = fresh.client.get(f"{API}/policy?text=true", headers=admin.headers).json()
    assert shown["text"] == newer
    assert [p["id"] for p in shown["rules"]["purposes"]] == [
        PURPOSE,
        "deceased_or_incapacitated",
        "missing_person_at_risk",
    ]
    versions = fresh.client.get(f"{API}/policy/versions", headers=admin.headers).json()
    assert [(v["version"], v["active"]) for v in versions["items"]] == [
        (VERSION, False),
        ("web-test-2", True),
    ]
    changes = audit_rows(fresh.dd, "policy_changed")
    assert [c["details"]["version_after"] for c in changes] == [VERSION, "web-test-2"]


def test_a_bad_policy_file_is_refused_with_where_it_is_wrong(fresh: Agency) -> None:
    admin = fresh.admin()
    broken = fresh.client.put(f"{API}/policy", json={"text": "[policy\nversion = 1"}, headers=admin.headers)
    assert broken.status_code == 422
    assert error_of(broken)["code"] == "invalid_policy"
    contradictory = policy_text(daily_limit_per_user="0")
    answer = fresh.client.put(f"{API}/policy", json={"text": contradictory}, headers=admin.headers)
    assert answer.status_code == 422
    assert "daily_limit_per_user" in error_of(answer)["message"]
    fresh.load_example_policy()
    reused = policy_text(version=f'"{VERSION}"', daily_limit_per_user="5")
    clash = fresh.client.put(f"{API}/policy", json={"text": reused}, headers=admin.headers)
    assert clash.status_code == 409
    assert "already loaded with different text" in error_of(clash)["message"]
