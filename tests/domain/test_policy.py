"""The policy engine: every rule denies when it should and allows when it should, in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceledger.domain.policy import (
    ALLOW_RULES,
    DENY_RULES,
    NON_SEARCH_RULES,
    PROBE_RETENTION_KINDS,
    SEARCH_CHECK_ORDER,
    Agreement,
    Decision,
    GalleryRule,
    Policy,
    PolicyValidationError,
    ProhibitedPurpose,
    Purpose,
    RuleId,
    SearchRequest,
    VerifyRequest,
    decide_action,
    decide_probe_quality,
    decide_search,
    decide_verify,
    format_path,
    search_day,
)
from faceledger.domain.roles import Action, Actor, Role, permits
from faceledger.errors import ValidationError

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ORG = "Example Constabulary"
CASE = "2025/CID/000123"


def make_policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "version": "test-7",
        "organisation": ORG,
        "case_number_pattern": r"\d{4}/[A-Z]{2,5}/\d{6}",
        "case_number_example": "2024/FIU/000001",
        "purposes": (
            Purpose("criminal_investigation", "Crime", frozenset({"custody", "parole"})),
            Purpose("missing_person", "Missing", frozenset({"custody"}), justification_required=True),
            Purpose("youth_justice", "Youth", frozenset({"juvenile"})),
        ),
        "prohibited": (
            ProhibitedPurpose("civil_immigration_enforcement", "Immigration enforcement is prohibited."),
            ProhibitedPurpose("protected_activity", "Lawful protest is not a reason to search."),
        ),
        "galleries": (
            GalleryRule("custody", retention_days=2190),
            GalleryRule("parole", units=frozenset({"fiu"})),
            GalleryRule("juvenile", units=frozenset({"youth"})),
        ),
        "probe_quality_floor": 40.0,
        "daily_search_limit": 3,
        "daily_limit_overrides": {"busy": 5, "barred": 0},
        "inter_agency_allowed": True,
        "agreements": (
            Agreement(
                "DSA-1",
                "Other Police",
                frozenset({"criminal_investigation"}),
                galleries=frozenset({"custody"}),
                valid_from=datetime(2025, 1, 1, tzinfo=UTC),
                valid_until=datetime(2026, 1, 1, tzinfo=UTC),
            ),
            Agreement("DSA-2", "Third Police", frozenset({"criminal_investigation"})),
            Agreement("DSA-3", "Fourth Police", frozenset({"missing_person"})),
            Agreement(
                "DSA-OLD",
                "Old Police",
                frozenset({"criminal_investigation"}),
                valid_until=datetime(2025, 1, 1, tzinfo=UTC),
            ),
        ),
        "device_required_for": frozenset({Action.SEARCH, Action.VERIFY, Action.ENROL}),
        "justification_max_chars": 50,
        "probe_retention_days": {"default": 30, "denied": 0, "approved": 2190},
    }
    values.update(overrides)
    return Policy(**values)


POLICY = make_policy()


def make_actor(**overrides: Any) -> Actor:
    values: dict[str, Any] = {
        "username": "e.one",
        "roles": frozenset({Role.EXAMINER}),
        "organisation": ORG,
        "unit": "fiu",
        "expires_at": None,
        "suspended": False,
        "mfa_verified": True,
        "device_id": "dev-17",
    }
    values.update(overrides)
    return Actor(**values)


def make_request(actor: Actor | None = None, **overrides: Any) -> SearchRequest:
    values: dict[str, Any] = {
        "actor": actor or make_actor(),
        "case_number": CASE,
        "purpose": "criminal_investigation",
        "galleries": ("custody", "parole"),
        "justification": None,
        "on_behalf_of": None,
        "agreement_ref": None,
        "searches_today": 0,
        "probe_quality": 80.0,
    }
    values.update(overrides)
    return SearchRequest(**values)


def _actor_change(**changes: Any) -> Callable[[SearchRequest], SearchRequest]:
    return lambda r: dataclasses.replace(r, actor=dataclasses.replace(r.actor, **changes))


def _request_change(**changes: Any) -> Callable[[SearchRequest], SearchRequest]:
    return lambda r: dataclasses.replace(r, **changes)


# --- the baseline ----------------------------------------------------------------------


def test_baseline_request_is_allowed_with_version_and_reason() -> None:
    decision = decide_search(POLICY, make_request(), now=NOW)
    assert decision == Decision(True, "search.allowed", "test-7", decision.reason)
    assert "custody, parole" in decision.reason
    assert CASE in decision.reason
    assert decision.to_dict() == {
        "allowed": True,
        "rule_id": "search.allowed",
        "policy_version": "test-7",
        "reason": decision.reason,
    }


# --- every deny rule, one at a time ------------------------------------------------------

DENIALS: list[tuple[RuleId, Callable[[SearchRequest], SearchRequest], str]] = [
    (RuleId.ACCOUNT_EXPIRED, _actor_change(expires_at=NOW), "expired at 2025-06-01T12:00"),
    (
        RuleId.ACCOUNT_EXPIRED,
        _actor_change(expires_at=NOW - timedelta(days=1), trial=True),
        "trial account 'e.one' expired",
    ),
    (RuleId.ACCOUNT_SUSPENDED, _actor_change(suspended=True), "is suspended"),
    (RuleId.ACCOUNT_WRONG_ORGANISATION, _actor_change(organisation="Elsewhere"), "belongs to 'Elsewhere'"),
    (RuleId.MFA_REQUIRED, _actor_change(mfa_verified=False), "second factor"),
    (
        RuleId.ROLE_NOT_PERMITTED,
        _actor_change(roles=frozenset({Role.AUDITOR})),
        "needs one of the roles: examiner",
    ),
    (RuleId.ROLE_NOT_PERMITTED, _actor_change(roles=frozenset({Role.SYSTEM_ADMIN})), "holds: system_admin"),
    (RuleId.ROLE_NOT_PERMITTED, _actor_change(roles=frozenset()), "holds: none"),
    (RuleId.DEVICE_UNREGISTERED, _actor_change(device_id=None), "unregistered device"),
    (RuleId.DEVICE_OTHER_UNIT, _actor_change(device_unit="Traffic"), "another unit's device"),
    (RuleId.CASE_MISSING, _request_change(case_number=None), "case number"),
    (RuleId.CASE_MISSING, _request_change(case_number="   "), "case number"),
    (RuleId.CASE_MALFORMED, _request_change(case_number="CASE-1"), "for example '2024/FIU/000001'"),
    (RuleId.CASE_MALFORMED, _request_change(case_number=f" {CASE}"), "not in the agency's format"),
    (RuleId.CASE_MALFORMED, _request_change(case_number=f"{CASE}\n"), "not in the agency's format"),
    (
        RuleId.CASE_MALFORMED,
        _request_change(case_number="2025/CID/" + "1" * 200),
        "not in the agency's format",
    ),
    (RuleId.PURPOSE_MISSING, _request_change(purpose=None), "purpose"),
    (RuleId.PURPOSE_MISSING, _request_change(purpose=""), "purpose"),
    (
        RuleId.PURPOSE_PROHIBITED,
        _request_change(purpose="civil_immigration_enforcement"),
        "prohibited by policy: Immigration enforcement is prohibited.",
    ),
    (RuleId.PURPOSE_PROHIBITED, _request_change(purpose="protected_activity"), "Lawful protest"),
    (RuleId.PURPOSE_NOT_ALLOWED, _request_change(purpose="curiosity"), "allowed: criminal_investigation"),
    (RuleId.PURPOSE_NOT_ALLOWED, _request_change(purpose="Criminal_Investigation"), "not an allowed purpose"),
    (
        RuleId.JUSTIFICATION_MISSING,
        _request_change(purpose="missing_person", galleries=("custody",), justification="  "),
        "requires a written justification",
    ),
    (
        RuleId.JUSTIFICATION_TOO_LONG,
        _request_change(justification="x" * 51),
        "51 characters; the limit is 50",
    ),
    (RuleId.GALLERY_MISSING, _request_change(galleries=()), "at least one gallery"),
    (RuleId.GALLERY_UNKNOWN, _request_change(galleries=("custody", "mugshots")), "'mugshots'"),
    (RuleId.GALLERY_NOT_FOR_PURPOSE, _request_change(galleries=("juvenile",)), "may reach: custody, parole"),
    (
        RuleId.GALLERY_NOT_FOR_PURPOSE,
        _request_change(purpose="missing_person", justification="at risk", galleries=("parole",)),
        "'missing_person' may not reach gallery 'parole'",
    ),
    (RuleId.GALLERY_UNIT_NOT_ALLOWED, _actor_change(unit="cid"), "units: fiu; 'e.one' is in 'cid'"),
    (
        RuleId.INTERAGENCY_AGREEMENT_MISSING,
        _request_change(on_behalf_of="Other Police"),
        "must cite the agreement",
    ),
    (
        RuleId.INTERAGENCY_AGREEMENT_UNKNOWN,
        _request_change(on_behalf_of="Other Police", agreement_ref="DSA-99"),
        "'DSA-99' is not listed",
    ),
    (
        RuleId.INTERAGENCY_AGENCY_MISMATCH,
        _request_change(on_behalf_of="Third Police", agreement_ref="DSA-1", galleries=("custody",)),
        "with 'Other Police', not 'Third Police'",
    ),
    (
        RuleId.INTERAGENCY_AGREEMENT_NOT_IN_FORCE,
        _request_change(on_behalf_of="Old Police", agreement_ref="DSA-OLD"),
        "not in force",
    ),
    (
        RuleId.INTERAGENCY_PURPOSE_NOT_COVERED,
        _request_change(on_behalf_of="Fourth Police", agreement_ref="DSA-3"),
        "does not cover the purpose 'criminal_investigation'",
    ),
    (
        RuleId.INTERAGENCY_GALLERY_NOT_COVERED,
        _request_change(on_behalf_of="Other Police", agreement_ref="DSA-1"),
        "gallery 'parole'",
    ),
    (RuleId.LIMIT_DAILY, _request_change(searches_today=3), "made 3 searches today; the limit is 3"),
    (RuleId.LIMIT_DAILY, _request_change(searches_today=99), "the limit is 3"),
    (
        RuleId.LIMIT_DAILY,
        lambda r: _actor_change(username="busy")(_request_change(searches_today=5)(r)),
        "the limit is 5",
    ),
    (RuleId.LIMIT_DAILY, _actor_change(username="barred"), "made 0 searches today; the limit is 0"),
    (
        RuleId.PROBE_QUALITY_BELOW_FLOOR,
        _request_change(probe_quality=39.99),
        "below the policy's floor of 40.0",
    ),
    (RuleId.PROBE_QUALITY_BELOW_FLOOR, _request_change(probe_quality=0.0), "below"),
]


@pytest.mark.parametrize(
    ("rule", "change", "reason"), DENIALS, ids=[f"{r.value}-{i}" for i, (r, _, _) in enumerate(DENIALS)]
)
def test_each_rule_denies(
    rule: RuleId, change: Callable[[SearchRequest], SearchRequest], reason: str
) -> None:
    decision = decide_search(POLICY, change(make_request()), now=NOW)
    assert not decision.allowed
    assert decision.rule_id == rule.value
    assert decision.policy_version == "test-7"
    assert reason in decision.reason


def test_every_deny_rule_has_a_denial_case() -> None:
    # interagency.not_allowed needs a different policy: see the test below.
    covered = {rule for rule, _, _ in DENIALS} | {RuleId.INTERAGENCY_NOT_ALLOWED}
    assert covered == set(SEARCH_CHECK_ORDER)


def test_check_order_lists_every_deny_rule_once() -> None:
    assert len(SEARCH_CHECK_ORDER) == len(set(SEARCH_CHECK_ORDER))
    assert set(SEARCH_CHECK_ORDER) == DENY_RULES - NON_SEARCH_RULES
    assert NON_SEARCH_RULES <= DENY_RULES
    assert not ALLOW_RULES & DENY_RULES


def test_interagency_not_allowed_needs_a_policy_that_forbids_it() -> None:
    policy = dataclasses.replace(POLICY, inter_agency_allowed=False)
    request = make_request(on_behalf_of="Other Police", agreement_ref="DSA-1", galleries=("custody",))
    decision = decide_search(policy, request, now=NOW)
    assert decision.rule_id == "interagency.not_allowed"
    assert decide_search(POLICY, request, now=NOW).allowed


# --- what is allowed -------------------------------------------------------------------

ALLOWED: list[tuple[str, Callable[[SearchRequest], SearchRequest]]] = [
    ("account expires later", _actor_change(expires_at=NOW + timedelta(seconds=1), trial=True)),
    ("several roles", _actor_change(roles=frozenset({Role.EXAMINER, Role.REVIEWER, Role.AUDITOR}))),
    (
        "gallery open to every unit",
        lambda r: _actor_change(unit="cid")(_request_change(galleries=("custody",))(r)),
    ),
    (
        "justification given",
        _request_change(purpose="missing_person", galleries=("custody",), justification="at risk"),
    ),
    ("justification exactly at the limit", _request_change(justification="x" * 50)),
    ("justification padded to the limit", _request_change(justification="  " + "x" * 50 + "  ")),
    (
        "agreement in force",
        _request_change(on_behalf_of="Other Police", agreement_ref="DSA-1", galleries=("custody",)),
    ),
    ("agreement without gallery limit", _request_change(on_behalf_of="Third Police", agreement_ref="DSA-2")),
    ("blank on-behalf means own agency", _request_change(on_behalf_of="  ")),
    ("one search under the limit", _request_change(searches_today=2)),
    ("personal limit", lambda r: _actor_change(username="busy")(_request_change(searches_today=4)(r))),
    ("quality exactly at the floor", _request_change(probe_quality=40.0)),
]


@pytest.mark.parametrize(("name", "change"), ALLOWED, ids=[name for name, _ in ALLOWED])
def test_allowed(name: str, change: Callable[[SearchRequest], SearchRequest]) -> None:
    decision = decide_search(POLICY, change(make_request()), now=NOW)
    assert decision.allowed, decision.reason
    assert decision.rule_id == "search.allowed"


def test_agreement_window_edges() -> None:
    request = make_request(on_behalf_of="Other Police", agreement_ref="DSA-1", galleries=("custody",))
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert decide_search(POLICY, request, now=start).allowed
    assert decide_search(POLICY, request, now=end - timedelta(microseconds=1)).allowed
    assert decide_search(POLICY, request, now=end).rule_id == "interagency.agreement_not_in_force"
    assert decide_search(POLICY, request, now=start - timedelta(seconds=1)).rule_id == (
        "interagency.agreement_not_in_force"
    )


def test_pending_quality_then_quality_decision() -> None:
    decision = decide_search(POLICY, make_request(probe_quality=None), now=NOW)
    assert decision.allowed
    assert decision.rule_id == "search.allowed_pending_quality"
    assert "40.0" in decision.reason
    low = decide_probe_quality(POLICY, 12.5)
    assert (low.allowed, low.rule_id) == (False, "probe.quality_below_floor")
    assert "12.5" in low.reason
    ok = decide_probe_quality(POLICY, 40.0)
    assert (ok.allowed, ok.rule_id, ok.policy_version) == (True, "probe.quality_ok", "test-7")
    explained = decide_probe_quality(POLICY, 12.5, why="lowered most by pose (factor 0.40, yaw +50 degrees)")
    assert explained.reason.endswith(
        "below the policy's floor of 40.0: lowered most by pose (factor 0.40, yaw +50 degrees)"
    )
    assert "lowered" not in decide_probe_quality(POLICY, 40.0, why="lowered most by pose").reason


def test_pending_quality_still_applies_every_other_rule() -> None:
    request = make_request(probe_quality=None, purpose="civil_immigration_enforcement")
    assert decide_search(POLICY, request, now=NOW).rule_id == "purpose.prohibited"


def test_device_requirement_follows_the_policy() -> None:
    lax = dataclasses.replace(POLICY, device_required_for=frozenset({Action.ENROL}))
    request = make_request(actor=make_actor(device_id=None))
    assert decide_search(lax, request, now=NOW).allowed
    assert decide_search(POLICY, request, now=NOW).rule_id == "device.unregistered"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        decide_search(POLICY, make_request(), now=datetime(2025, 6, 1))


# --- check order: the earliest failing check decides -------------------------------------

# Independent ways to break one check each, grouped by the field they touch: at most one
# per group is applied, so no breaker undoes another.
_Breaker = tuple[RuleId, Callable[[Policy, SearchRequest], tuple[Policy, SearchRequest]]]


def _on_request(
    change: Callable[[SearchRequest], SearchRequest],
) -> Callable[..., tuple[Policy, SearchRequest]]:
    return lambda p, r: (p, change(r))


def _require_justification(policy: Policy, request: SearchRequest) -> tuple[Policy, SearchRequest]:
    first = dataclasses.replace(policy.purposes[0], justification_required=True)
    return dataclasses.replace(policy, purposes=(first, *policy.purposes[1:])), request


BREAKERS: dict[str, list[_Breaker]] = {
    "expiry": [(RuleId.ACCOUNT_EXPIRED, _on_request(_actor_change(expires_at=NOW)))],
    "suspension": [(RuleId.ACCOUNT_SUSPENDED, _on_request(_actor_change(suspended=True)))],
    "organisation": [(RuleId.ACCOUNT_WRONG_ORGANISATION, _on_request(_actor_change(organisation="X")))],
    "mfa": [(RuleId.MFA_REQUIRED, _on_request(_actor_change(mfa_verified=False)))],
    "roles": [(RuleId.ROLE_NOT_PERMITTED, _on_request(_actor_change(roles=frozenset({Role.SUPERVISOR}))))],
    "device": [
        (RuleId.DEVICE_UNREGISTERED, _on_request(_actor_change(device_id=None))),
        (RuleId.DEVICE_OTHER_UNIT, _on_request(_actor_change(device_unit="traffic"))),
    ],
    "case": [
        (RuleId.CASE_MISSING, _on_request(_request_change(case_number=None))),
        (RuleId.CASE_MALFORMED, _on_request(_request_change(case_number="nope"))),
    ],
    "purpose": [
        (RuleId.PURPOSE_MISSING, _on_request(_request_change(purpose=None))),
        (RuleId.PURPOSE_PROHIBITED, _on_request(_request_change(purpose="civil_immigration_enforcement"))),
        (RuleId.PURPOSE_NOT_ALLOWED, _on_request(_request_change(purpose="fishing"))),
    ],
    "justification": [
        (RuleId.JUSTIFICATION_MISSING, _require_justification),
        (RuleId.JUSTIFICATION_TOO_LONG, _on_request(_request_change(justification="y" * 60))),
    ],
    "galleries": [
        (RuleId.GALLERY_MISSING, _on_request(_request_change(galleries=()))),
        (RuleId.GALLERY_UNKNOWN, _on_request(_request_change(galleries=("custody", "parole", "nope")))),
        (
            RuleId.GALLERY_NOT_FOR_PURPOSE,
            _on_request(_request_change(galleries=("custody", "parole", "juvenile"))),
        ),
    ],
    "unit": [(RuleId.GALLERY_UNIT_NOT_ALLOWED, _on_request(_actor_change(unit="cid")))],
    "interagency": [
        (RuleId.INTERAGENCY_NOT_ALLOWED, lambda p, r: _interagency_off(p, r)),
        (RuleId.INTERAGENCY_AGREEMENT_MISSING, _on_request(_request_change(on_behalf_of="Other Police"))),
        (
            RuleId.INTERAGENCY_AGREEMENT_UNKNOWN,
            _on_request(_request_change(on_behalf_of="Other Police", agreement_ref="?")),
        ),
        (
            RuleId.INTERAGENCY_AGENCY_MISMATCH,
            _on_request(_request_change(on_behalf_of="Fifth Police", agreement_ref="DSA-2")),
        ),
        (
            RuleId.INTERAGENCY_AGREEMENT_NOT_IN_FORCE,
            _on_request(_request_change(on_behalf_of="Old Police", agreement_ref="DSA-OLD")),
        ),
        (
            RuleId.INTERAGENCY_PURPOSE_NOT_COVERED,
            _on_request(_request_change(on_behalf_of="Fourth Police", agreement_ref="DSA-3")),
        ),
        (
            RuleId.INTERAGENCY_GALLERY_NOT_COVERED,
            _on_request(_request_change(on_behalf_of="Other Police", agreement_ref="DSA-1")),
        ),
    ],
    "limit": [(RuleId.LIMIT_DAILY, _on_request(_request_change(searches_today=3)))],
    "quality": [(RuleId.PROBE_QUALITY_BELOW_FLOOR, _on_request(_request_change(probe_quality=1.0)))],
}


def _interagency_off(policy: Policy, request: SearchRequest) -> tuple[Policy, SearchRequest]:
    changed = dataclasses.replace(request, on_behalf_of="Third Police", agreement_ref="DSA-2")
    return dataclasses.replace(policy, inter_agency_allowed=False), changed


def test_breakers_cover_every_rule() -> None:
    assert {rule for group in BREAKERS.values() for rule, _ in group} == set(SEARCH_CHECK_ORDER)


def _pairs() -> list[tuple[_Breaker, _Breaker]]:
    flat = [(group, breaker) for group, breakers in BREAKERS.items() for breaker in breakers]
    return [(b1, b2) for g1, b1 in flat for g2, b2 in flat if g1 != g2]


def test_of_any_two_broken_checks_the_earlier_decides() -> None:
    wrong = []
    for (rule1, break1), (rule2, break2) in _pairs():
        policy, request = break2(*break1(POLICY, make_request()))
        expected = min(rule1, rule2, key=SEARCH_CHECK_ORDER.index)
        decided = decide_search(policy, request, now=NOW).rule_id
        if decided != expected.value:
            wrong.append(f"{rule1.value} + {rule2.value} -> {decided}, expected {expected.value}")
    assert not wrong, "\n".join(wrong)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_earliest_failing_check_decides(data: st.DataObject) -> None:
    groups = data.draw(st.sets(st.sampled_from(sorted(BREAKERS)), max_size=5), label="groups")
    policy, request = POLICY, make_request()
    broken: list[RuleId] = []
    for group in sorted(groups):
        rule, breaker = data.draw(st.sampled_from(BREAKERS[group]), label=group)
        policy, request = breaker(policy, request)
        broken.append(rule)
    decision = decide_search(policy, request, now=NOW)
    if not broken:
        assert decision.allowed
    else:
        assert decision.rule_id == min(broken, key=SEARCH_CHECK_ORDER.index).value


# --- properties over arbitrary requests ----------------------------------------------------

_T = TypeVar("_T")
_text = st.text(max_size=30)
_purposes = st.sampled_from(
    [
        "criminal_investigation",
        "missing_person",
        "youth_justice",
        "civil_immigration_enforcement",
        "protected_activity",
    ]
)
_moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def _mostly(valid: _T, other: st.SearchStrategy[_T]) -> st.SearchStrategy[_T]:
    """``valid`` five times in six, so that allowed requests are common enough to test."""
    return st.integers(0, 5).flatmap(lambda n: other if n == 0 else st.just(valid))


@st.composite
def actors(draw: st.DrawFn) -> Actor:
    expires = draw(_mostly(None, _moments))
    return Actor(
        username=draw(_mostly("e.one", st.sampled_from(["busy", "barred", "x"]))),
        roles=draw(_mostly(frozenset({Role.EXAMINER}), st.frozensets(st.sampled_from(list(Role))))),
        organisation=draw(_mostly(ORG, st.just("Other"))),
        unit=draw(_mostly("fiu", st.sampled_from(["cid", "youth"]))),
        expires_at=expires,
        suspended=draw(_mostly(False, st.booleans())),
        mfa_verified=draw(_mostly(True, st.booleans())),
        device_id=draw(_mostly("dev-1", st.none())),
        trial=expires is not None and draw(st.booleans()),
    )


_ANY_PURPOSE: st.SearchStrategy[str | None] = _mostly("criminal_investigation", st.none() | _purposes | _text)
_ON_BEHALF = st.tuples(
    st.none() | st.sampled_from(["Other Police", "Third Police", "Old Police"]),
    st.none() | st.sampled_from(["DSA-1", "DSA-2", "DSA-OLD", "nope"]),
)
_GALLERIES = st.lists(st.sampled_from(["custody", "parole", "juvenile", "other"]), max_size=3).map(tuple)


@st.composite
def requests(draw: st.DrawFn, purposes: st.SearchStrategy[str | None] = _ANY_PURPOSE) -> SearchRequest:
    on_behalf_of, agreement_ref = draw(_mostly((None, None), _ON_BEHALF))
    return SearchRequest(
        actor=draw(actors()),
        case_number=draw(_mostly(CASE, st.none() | _text)),
        purpose=draw(purposes),
        galleries=draw(_mostly(("custody", "parole"), _GALLERIES)),
        justification=draw(_mostly(None, _text)),
        on_behalf_of=on_behalf_of,
        agreement_ref=agreement_ref,
        searches_today=draw(_mostly(0, st.integers(0, 10))),
        probe_quality=draw(_mostly(80.0, st.none() | st.floats(0, 100))),
    )


_prohibited = st.sampled_from(["civil_immigration_enforcement", "protected_activity"])


@settings(max_examples=100, deadline=None)
@given(requests(purposes=_prohibited), _moments, st.booleans())
def test_a_prohibited_purpose_is_never_allowed(request: SearchRequest, now: datetime, lax: bool) -> None:
    policy = dataclasses.replace(POLICY, device_required_for=frozenset()) if lax else POLICY
    assert not decide_search(policy, request, now=now).allowed
    verify = VerifyRequest(request.actor, request.case_number, request.purpose, request.justification)
    assert not decide_verify(policy, verify, now=now).allowed


@settings(max_examples=100, deadline=None)
@given(requests(), _moments)
def test_decisions_are_well_formed(request: SearchRequest, now: datetime) -> None:
    decision = decide_search(POLICY, request, now=now)
    assert RuleId(decision.rule_id) in (ALLOW_RULES if decision.allowed else DENY_RULES)
    assert decision.policy_version == POLICY.version
    assert decision.reason.strip()
    assert decide_search(POLICY, request, now=now) == decision


@settings(max_examples=100, deadline=None)
@given(requests(), _moments)
def test_an_allowed_search_met_every_condition(request: SearchRequest, now: datetime) -> None:
    decision = decide_search(POLICY, request, now=now)
    if not decision.allowed:
        return
    actor = request.actor
    assert not actor.is_expired(now)
    assert not actor.suspended
    assert actor.organisation == ORG
    assert actor.mfa_verified
    assert permits(actor.roles, Action.SEARCH)
    assert actor.device_id is not None
    assert request.case_number == CASE
    purpose = POLICY.purpose(request.purpose or "")
    assert purpose is not None
    assert request.galleries
    assert set(request.galleries) <= purpose.galleries
    assert request.searches_today < POLICY.daily_limit_for(actor.username)
    assert request.probe_quality is None or request.probe_quality >= 40.0


@settings(max_examples=100, deadline=None)
@given(actors(), st.sampled_from([a for a in Action if a not in (Action.SEARCH, Action.VERIFY)]), _moments)
def test_expired_or_suspended_accounts_can_do_nothing(actor: Actor, action: Action, now: datetime) -> None:
    if actor.is_expired(now) or actor.suspended:
        assert not decide_action(POLICY, actor, action, now=now).allowed


# --- decide_action -----------------------------------------------------------------------

ACTION_CASES: list[tuple[set[Role], Action, dict[str, Any], str]] = [
    ({Role.REVIEWER}, Action.PEER_REVIEW, {}, "action.allowed"),
    ({Role.REVIEWER}, Action.PEER_REVIEW, {"device_id": None}, "action.allowed"),
    ({Role.REVIEWER}, Action.PEER_REVIEW, {"mfa_verified": False}, "mfa.required"),
    ({Role.AUDITOR}, Action.EXPORT_AUDIT, {"mfa_verified": False}, "mfa.required"),
    ({Role.AUDITOR}, Action.ENROL, {}, "role.not_permitted"),
    ({Role.AUDITOR, Role.EXAMINER}, Action.READ_AUDIT, {"mfa_verified": False}, "mfa.required"),
    ({Role.SUPERVISOR}, Action.APPROVE, {}, "action.allowed"),
    ({Role.SUPERVISOR}, Action.APPROVE, {"mfa_verified": False}, "mfa.required"),
    ({Role.EXAMINER}, Action.APPROVE, {}, "role.not_permitted"),
    ({Role.GALLERY_ADMIN}, Action.ENROL, {}, "action.allowed"),
    ({Role.GALLERY_ADMIN}, Action.ENROL, {"device_id": None}, "device.unregistered"),
    ({Role.GALLERY_ADMIN}, Action.PURGE, {"device_id": None}, "action.allowed"),
    ({Role.SYSTEM_ADMIN}, Action.MANAGE_POLICY, {}, "action.allowed"),
    ({Role.SYSTEM_ADMIN}, Action.REGISTER_DEVICE, {"suspended": True}, "account.suspended"),
    ({Role.SYSTEM_ADMIN}, Action.MANAGE_ACCOUNTS, {"expires_at": NOW}, "account.expired"),
    ({Role.AUDITOR}, Action.READ_AUDIT, {"organisation": "Other"}, "account.wrong_organisation"),
]


@pytest.mark.parametrize(("roles", "action", "changes", "rule"), ACTION_CASES)
def test_decide_action(roles: set[Role], action: Action, changes: dict[str, Any], rule: str) -> None:
    actor = make_actor(roles=frozenset(roles), **changes)
    decision = decide_action(POLICY, actor, action, now=NOW)
    assert (decision.allowed, decision.rule_id) == (rule == "action.allowed", rule)
    assert decision.policy_version == "test-7"


@pytest.mark.parametrize("action", [Action.SEARCH, Action.VERIFY])
def test_decide_action_refuses_to_decide_searches(action: Action) -> None:
    with pytest.raises(ValidationError, match="decide_search"):
        decide_action(POLICY, make_actor(), action, now=NOW)


# --- decide_verify -----------------------------------------------------------------------


def _verify(**changes: Any) -> VerifyRequest:
    values: dict[str, Any] = {"actor": make_actor(), "case_number": CASE, "purpose": "criminal_investigation"}
    values.update(changes)
    return VerifyRequest(**values)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({}, "verify.allowed"),
        ({"actor": make_actor(roles=frozenset({Role.REVIEWER}))}, "role.not_permitted"),
        ({"actor": make_actor(device_id=None)}, "device.unregistered"),
        ({"case_number": None}, "case.missing"),
        ({"purpose": "civil_immigration_enforcement"}, "purpose.prohibited"),
        ({"purpose": "missing_person"}, "justification.missing"),
        ({"purpose": "missing_person", "justification": "at risk"}, "verify.allowed"),
        ({"on_behalf_of": "Fourth Police", "agreement_ref": "DSA-3"}, "interagency.purpose_not_covered"),
        ({"on_behalf_of": "Other Police", "agreement_ref": "DSA-1"}, "verify.allowed"),
    ],
)
def test_decide_verify(changes: dict[str, Any], rule: str) -> None:
    decision = decide_verify(POLICY, _verify(**changes), now=NOW)
    assert (decision.allowed, decision.rule_id) == (rule == "verify.allowed", rule)


# --- the policy's own invariants ---------------------------------------------------------

INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"version": " "}, "policy.version", "must not be empty"),
    ({"organisation": ""}, "policy.organisation", "must not be empty"),
    ({"case_number_pattern": "(unclosed"}, "case_number.pattern", "not a valid regular expression"),
    ({"case_number_example": "2024-FIU-1"}, "case_number.example", "does not match the pattern"),
    ({"purposes": ()}, "purposes.allowed", "at least one allowed purpose"),
    (
        {"purposes": (*POLICY.purposes, Purpose("criminal_investigation", "again", frozenset({"custody"})))},
        "purposes.allowed[3].id",
        "listed twice",
    ),
    (
        {"prohibited": (ProhibitedPurpose("missing_person", "no"),)},
        "purposes.allowed[1].id",
        "also listed as a prohibited purpose",
    ),
    ({"prohibited": (ProhibitedPurpose(" ", "no"),)}, "purposes.prohibited[0].id", "must not be empty"),
    ({"purposes": (Purpose("p", "d", frozenset()),)}, "purposes.allowed[0].galleries", "reaches no gallery"),
    (
        {"purposes": (Purpose("p", "d", frozenset({"custody", "mugshots"})),)},
        "purposes.allowed[0].galleries",
        "'mugshots', not defined",
    ),
    ({"galleries": (*POLICY.galleries, GalleryRule("custody"))}, "galleries[3].name", "listed twice"),
    (
        {"galleries": (GalleryRule("custody", units=frozenset()), *POLICY.galleries[1:])},
        "galleries[0].units",
        "let nobody search",
    ),
    (
        {"galleries": (GalleryRule("custody", retention_days=0), *POLICY.galleries[1:])},
        "galleries[0].retention_days",
        "at least 1 day",
    ),
    ({"probe_quality_floor": 100.5}, "search.probe_quality_floor", "between 0 and 100"),
    ({"daily_search_limit": 0}, "search.daily_limit_per_user", "at least 1"),
    ({"daily_limit_overrides": {"a.b": -1}}, 'search.daily_limit_overrides."a.b"', "must not be negative"),
    ({"justification_max_chars": 0}, "search.justification_max_chars", "at least 1"),
    (
        {"agreements": (Agreement("A", "B", frozenset({"civil_immigration_enforcement"})),)},
        "inter_agency.agreements[0].purposes",
        "not an allowed purpose",
    ),
    (
        {"agreements": (Agreement("A", " ", frozenset({"missing_person"})),)},
        "inter_agency.agreements[0].agency",
        "empty",
    ),
    (
        {"agreements": (Agreement("A", "B", frozenset()),)},
        "inter_agency.agreements[0].purposes",
        "covers no purpose",
    ),
    (
        {"agreements": (Agreement("A", "B", frozenset({"missing_person"}), galleries=frozenset({"x"})),)},
        "inter_agency.agreements[0].galleries",
        "'x' is not defined",
    ),
    (
        {
            "agreements": (
                Agreement("A", "B", frozenset({"missing_person"}), valid_until=datetime(2025, 1, 1)),
            )
        },
        "inter_agency.agreements[0].valid_until",
        "time zone",
    ),
    (
        {
            "agreements": (
                Agreement("A", "B", frozenset({"missing_person"}), valid_from=NOW, valid_until=NOW),
            )
        },
        "inter_agency.agreements[0].valid_until",
        "ends before it starts",
    ),
    (
        {"agreements": (Agreement("A", "B", frozenset({"missing_person"})),) * 2},
        "inter_agency.agreements[1].reference",
        "listed twice",
    ),
    ({"probe_retention_days": {"no_lead": 3}}, "retention.probe_days.default", "default probe retention"),
    ({"probe_retention_days": {"default": 3, "forever": 9}}, "retention.probe_days.forever", "unknown kind"),
    ({"probe_retention_days": {"default": -3}}, "retention.probe_days.default", "must not be negative"),
]


@pytest.mark.parametrize(("changes", "path", "message"), INVALID, ids=[p for _, p, _ in INVALID])
def test_invalid_policies_name_the_key(changes: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(PolicyValidationError) as caught:
        make_policy(**changes)
    assert format_path(caught.value.path) == path
    assert message in caught.value.problem
    assert str(caught.value).startswith(path + ": ")


def test_policy_is_frozen_and_its_mappings_are_read_only() -> None:
    with pytest.raises(AttributeError):
        POLICY.version = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        POLICY.daily_limit_overrides["busy"] = 100  # type: ignore[index]


def test_format_path() -> None:
    assert format_path(("purposes", "allowed", 0, "id")) == "purposes.allowed[0].id"
    assert (
        format_path(("search", "daily_limit_overrides", "j smith"))
        == 'search.daily_limit_overrides."j smith"'
    )
    assert format_path(()) == ""


# --- retention and days ------------------------------------------------------------------


def test_retention_lookups() -> None:
    assert POLICY.probe_retention_for("denied") == 0
    assert POLICY.probe_retention_for("approved") == 2190
    assert POLICY.probe_retention_for("no_lead") == 30  # falls back to the default
    assert set(PROBE_RETENTION_KINDS) >= {"default", "denied", "no_lead", "rejected", "approved"}
    with pytest.raises(ValidationError, match="unknown probe retention kind 'later'"):
        POLICY.probe_retention_for("later")
    assert POLICY.gallery_retention_for("custody") == 2190
    assert POLICY.gallery_retention_for("parole") is None
    assert POLICY.gallery_retention_for("nope") is None


def test_search_day_follows_the_policy_timezone_across_a_dst_change() -> None:
    london = dataclasses.replace(POLICY, timezone=ZoneInfo("Europe/London"))
    # 2025-03-30 lost an hour in London: that day is 23 hours long.
    start, end = search_day(london, datetime(2025, 3, 30, 12, 0, tzinfo=UTC))
    assert start == datetime(2025, 3, 30, 0, 0, tzinfo=UTC)
    assert end == datetime(2025, 3, 30, 23, 0, tzinfo=UTC)
    # 23:30 UTC on 31 March is already 1 April in London.
    start, _ = search_day(london, datetime(2025, 3, 31, 23, 30, tzinfo=UTC))
    assert start == datetime(2025, 3, 31, 23, 0, tzinfo=UTC)
    assert search_day(POLICY, NOW) == (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC))


# --- hostile text (issue 7): ASCII digits, invisible justifications, blank agencies ----------------


ARABIC_INDIC = "\u0662\u0660\u0662\u0665/CID/\u0660\u0660\u0660\u0661\u0662\u0663"


@pytest.mark.parametrize("case", ["２０２５/CID/０００１２３", ARABIC_INDIC])
def test_digit_classes_in_the_case_pattern_mean_ascii_digits(case: str) -> None:
    decision = decide_search(POLICY, make_request(case_number=case), now=NOW)
    assert decision.rule_id == RuleId.CASE_MALFORMED


@pytest.mark.parametrize("case", ["CASE\u200b1", "CASE\x1b1", "..", "."])
def test_a_permissive_case_pattern_still_refuses_hidden_characters_and_dot_ids(case: str) -> None:
    policy = make_policy(case_number_pattern=r".+", case_number_example="CASE-1")
    decision = decide_search(policy, make_request(case_number=case), now=NOW)
    assert decision.rule_id == RuleId.CASE_MALFORMED
    assert not any(c in decision.reason for c in "\u200b\x1b")


@pytest.mark.parametrize("justification", ["\u200b", " \u2060 ", "\ufeff\n"])
def test_a_required_justification_needs_visible_content(justification: str) -> None:
    request = make_request(purpose="missing_person", galleries=("custody",), justification=justification)
    assert decide_search(POLICY, request, now=NOW).rule_id == RuleId.JUSTIFICATION_MISSING


@pytest.mark.parametrize("blank", [" ", "\t", "\u200b"])
def test_a_blank_on_behalf_of_is_no_agency(blank: str) -> None:
    policy = make_policy(inter_agency_allowed=False)
    decision = decide_search(policy, make_request(on_behalf_of=blank), now=NOW)
    assert decision.allowed, decision
