"""The policy engine: what an agency's written policy allows, as pure decisions.

Every guarded request gets a :class:`Decision`: allowed or not, the id of the rule that
decided, the policy version in force and a sentence a person can read. Denials are
decisions, not exceptions, because a refused request is evidence too and is recorded like
any other. Exceptions here mean a programming or configuration error.

Checks run in a fixed, documented order (:data:`SEARCH_CHECK_ORDER`, docs/policy.md) and
the first failure decides. The order goes from the person to the request: an expired or
suspended account is refused before anything about its request is looked at, so a refusal
never tells someone without standing which of their case numbers or galleries would have
worked. Within the request, purpose comes before galleries because which galleries may be
reached depends on the purpose.

Nothing here reads the clock, the disk or the network: ``now`` is an argument, counts such
as today's searches are passed in, and the policy object is built by
:mod:`faceledger.adapters.policy_file`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from faceledger.domain import text
from faceledger.domain.roles import (
    FACE_IMAGE_ACTIONS,
    Action,
    Actor,
    permits,
    require_aware,
    requires_mfa,
    roles_permitting,
)
from faceledger.errors import ValidationError

#: The only policy file format this code reads.
FORMAT_VERSION = 1

#: Probe retention kinds: what happened to the search the probe was submitted for.
PROBE_RETENTION_KINDS: tuple[str, ...] = ("default", "denied", "no_lead", "rejected", "approved")

MAX_CASE_NUMBER_CHARS = 100

#: Actions refused from an unregistered device whatever ``[devices] required_for`` says:
#: fetching a face photo of the public puts it on the screen of the device that asked.
DEVICE_ALWAYS_REQUIRED: frozenset[Action] = frozenset({Action.VIEW_FACE_IMAGE})


class RuleId(StrEnum):
    """Stable ids of the rules a decision can cite; reports and audits group by these."""

    ACCOUNT_EXPIRED = "account.expired"
    ACCOUNT_SUSPENDED = "account.suspended"
    ACCOUNT_WRONG_ORGANISATION = "account.wrong_organisation"
    MFA_REQUIRED = "mfa.required"
    ROLE_NOT_PERMITTED = "role.not_permitted"
    DEVICE_UNREGISTERED = "device.unregistered"
    DEVICE_OTHER_UNIT = "device.other_unit"
    CASE_MISSING = "case.missing"
    CASE_MALFORMED = "case.malformed"
    PURPOSE_MISSING = "purpose.missing"
    PURPOSE_PROHIBITED = "purpose.prohibited"
    PURPOSE_NOT_ALLOWED = "purpose.not_allowed"
    JUSTIFICATION_MISSING = "justification.missing"
    JUSTIFICATION_TOO_LONG = "justification.too_long"
    GALLERY_MISSING = "gallery.missing"
    GALLERY_UNKNOWN = "gallery.unknown"
    GALLERY_NOT_FOR_PURPOSE = "gallery.not_for_purpose"
    GALLERY_UNIT_NOT_ALLOWED = "gallery.unit_not_allowed"
    GALLERY_ADMIN_UNIT_NOT_ALLOWED = "gallery.admin_unit_not_allowed"
    INTERAGENCY_NOT_ALLOWED = "interagency.not_allowed"
    INTERAGENCY_AGREEMENT_MISSING = "interagency.agreement_missing"
    INTERAGENCY_AGREEMENT_UNKNOWN = "interagency.agreement_unknown"
    INTERAGENCY_AGENCY_MISMATCH = "interagency.agency_mismatch"
    INTERAGENCY_AGREEMENT_NOT_IN_FORCE = "interagency.agreement_not_in_force"
    INTERAGENCY_PURPOSE_NOT_COVERED = "interagency.purpose_not_covered"
    INTERAGENCY_GALLERY_NOT_COVERED = "interagency.gallery_not_covered"
    LIMIT_DAILY = "limit.daily"
    TOKEN_DEVICE_REQUIRED = "token.device_required"  # noqa: S105 - a rule id, not a secret
    TOKEN_SERVER_NOT_ALLOWED = "token.server_not_allowed"  # noqa: S105 - a rule id
    PROBE_QUALITY_BELOW_FLOOR = "probe.quality_below_floor"
    # Rules that allow.
    ACTION_ALLOWED = "action.allowed"
    SEARCH_ALLOWED = "search.allowed"
    SEARCH_ALLOWED_PENDING_QUALITY = "search.allowed_pending_quality"
    VERIFY_ALLOWED = "verify.allowed"
    PROBE_QUALITY_OK = "probe.quality_ok"


ALLOW_RULES: frozenset[RuleId] = frozenset(
    {
        RuleId.ACTION_ALLOWED,
        RuleId.SEARCH_ALLOWED,
        RuleId.SEARCH_ALLOWED_PENDING_QUALITY,
        RuleId.VERIFY_ALLOWED,
        RuleId.PROBE_QUALITY_OK,
    }
)
DENY_RULES: frozenset[RuleId] = frozenset(RuleId) - ALLOW_RULES
#: Refusals decided outside a search's checks: administering a gallery of another unit, and
#: API tokens that would work away from a registered device.
NON_SEARCH_RULES: frozenset[RuleId] = frozenset(
    {RuleId.GALLERY_ADMIN_UNIT_NOT_ALLOWED, RuleId.TOKEN_DEVICE_REQUIRED, RuleId.TOKEN_SERVER_NOT_ALLOWED}
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one guarded request, complete enough to audit on its own."""

    allowed: bool
    rule_id: str
    policy_version: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "rule_id": self.rule_id,
            "policy_version": self.policy_version,
            "reason": self.reason,
        }


class PolicyValidationError(ValidationError):
    """A policy that contradicts itself; ``path`` names the offending key of the policy file.

    Paths use the key names of the file format (docs/policy.md) so that the file adapter
    can point at the line, e.g. ``("purposes", "allowed", 0, "galleries")``.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        self.problem = message
        super().__init__(f"{format_path(path)}: {message}")


def format_path(path: tuple[str | int, ...]) -> str:
    """``("purposes", "allowed", 0, "id")`` -> ``purposes.allowed[0].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
        out += f".{name}" if out else name
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --- the policy ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Purpose:
    """A purpose searches may be made for, and the galleries it may reach."""

    id: str
    description: str
    galleries: frozenset[str]
    justification_required: bool = False


@dataclass(frozen=True, slots=True)
class ProhibitedPurpose:
    """A purpose the agency has ruled out; named so a refusal can say so explicitly."""

    id: str
    description: str


@dataclass(frozen=True, slots=True)
class GalleryRule:
    """Which units may search a gallery, which may administer it, and how long its images are kept.

    ``units`` None means every unit of the organisation. ``admin_units`` are the units whose
    gallery administrators may create it, enrol into it and purge it; None leaves that to the
    gallery's owner unit (the creator's, as stored). Which *roles* may search or administer
    is not a per-gallery choice: only roles that permit :attr:`Action.SEARCH` (or
    :attr:`Action.ENROL`, ...) ever can (see :mod:`faceledger.domain.roles`).
    """

    name: str
    units: frozenset[str] | None = None
    retention_days: int | None = None
    admin_units: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Agreement:
    """A written agreement under which searches are made on behalf of another agency.

    ``galleries`` None means every gallery the purpose may reach.
    """

    reference: str
    agency: str
    purposes: frozenset[str]
    galleries: frozenset[str] | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now < self.valid_until


def _frozen_mapping(values: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class Policy:
    """One version of an agency's policy, as loaded from its file."""

    version: str
    organisation: str
    case_number_pattern: str
    case_number_example: str
    purposes: tuple[Purpose, ...]
    prohibited: tuple[ProhibitedPurpose, ...]
    galleries: tuple[GalleryRule, ...]
    probe_quality_floor: float
    daily_search_limit: int
    daily_limit_overrides: Mapping[str, int] = field(default_factory=lambda: _frozen_mapping({}))
    inter_agency_allowed: bool = False
    agreements: tuple[Agreement, ...] = ()
    device_required_for: frozenset[Action] = frozenset({Action.SEARCH, Action.VERIFY})
    devices_other_units: bool = False
    server_tokens: bool = False
    justification_max_chars: int = 2000
    probe_retention_days: Mapping[str, int] = field(default_factory=lambda: _frozen_mapping({"default": 30}))
    lead_notice: str = ""
    description: str = ""
    timezone: tzinfo = UTC
    source_sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "daily_limit_overrides", _frozen_mapping(self.daily_limit_overrides))
        object.__setattr__(self, "probe_retention_days", _frozen_mapping(self.probe_retention_days))
        _validate(self)

    # Lookups used by the checks and by services.
    def purpose(self, purpose_id: str) -> Purpose | None:
        return next((p for p in self.purposes if p.id == purpose_id), None)

    def prohibited_purpose(self, purpose_id: str) -> ProhibitedPurpose | None:
        return next((p for p in self.prohibited if p.id == purpose_id), None)

    def gallery(self, name: str) -> GalleryRule | None:
        return next((g for g in self.galleries if g.name == name), None)

    def agreement(self, reference: str) -> Agreement | None:
        return next((a for a in self.agreements if a.reference == reference), None)

    def daily_limit_for(self, username: str) -> int:
        return self.daily_limit_overrides.get(username, self.daily_search_limit)

    def probe_retention_for(self, kind: str) -> int:
        """Days to keep a probe image whose search ended as ``kind`` (see PROBE_RETENTION_KINDS)."""
        if kind not in PROBE_RETENTION_KINDS:
            raise ValidationError(f"unknown probe retention kind {kind!r} (known: {PROBE_RETENTION_KINDS})")
        return self.probe_retention_days.get(kind, self.probe_retention_days["default"])

    def gallery_retention_for(self, name: str) -> int | None:
        rule = self.gallery(name)
        return None if rule is None else rule.retention_days


# --- policy invariants -----------------------------------------------------------------


def _problem(path: tuple[str | int, ...], message: str) -> PolicyValidationError:
    return PolicyValidationError(path, message)


def _validate(policy: Policy) -> None:
    _validate_header(policy)
    _validate_galleries(policy)
    _validate_purposes(policy)
    _validate_limits(policy)
    _validate_agreements(policy)
    _validate_retention(policy)


def _validate_header(policy: Policy) -> None:
    if not policy.version.strip():
        raise _problem(("policy", "version"), "must not be empty")
    if not policy.organisation.strip():
        raise _problem(("policy", "organisation"), "must not be empty")
    try:
        compiled = _compiled(policy.case_number_pattern)
    except re.error as exc:
        raise _problem(("case_number", "pattern"), f"not a valid regular expression ({exc})") from None
    if compiled.fullmatch(policy.case_number_example) is None:
        raise _problem(
            ("case_number", "example"),
            f"{policy.case_number_example!r} does not match the pattern {policy.case_number_pattern!r}",
        )


def _check_unique(ids: list[str], path: tuple[str | int, ...], key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if not value.strip():
            raise _problem((*path, i, key), "must not be empty")
        if value in seen:
            raise _problem((*path, i, key), f"{value!r} is listed twice")
        seen.add(value)


def _validate_purposes(policy: Policy) -> None:
    _check_unique([p.id for p in policy.purposes], ("purposes", "allowed"), "id")
    _check_unique([p.id for p in policy.prohibited], ("purposes", "prohibited"), "id")
    if not policy.purposes:
        raise _problem(("purposes", "allowed"), "at least one allowed purpose is needed")
    known = {g.name for g in policy.galleries}
    for i, purpose in enumerate(policy.purposes):
        if policy.prohibited_purpose(purpose.id) is not None:
            raise _problem(
                ("purposes", "allowed", i, "id"), f"{purpose.id!r} is also listed as a prohibited purpose"
            )
        if not purpose.galleries:
            raise _problem(
                ("purposes", "allowed", i, "galleries"), f"purpose {purpose.id!r} reaches no gallery"
            )
        unknown = sorted(purpose.galleries - known)
        if unknown:
            raise _problem(
                ("purposes", "allowed", i, "galleries"),
                f"purpose {purpose.id!r} names gallery {unknown[0]!r}, not defined under [[galleries]]",
            )


def _validate_galleries(policy: Policy) -> None:
    _check_unique([g.name for g in policy.galleries], ("galleries",), "name")
    for i, rule in enumerate(policy.galleries):
        if rule.units is not None and not rule.units:
            raise _problem(
                ("galleries", i, "units"), "an empty unit list would let nobody search; omit it for all"
            )
        if rule.admin_units is not None and not rule.admin_units:
            raise _problem(
                ("galleries", i, "admin_units"),
                "an empty unit list would let nobody administer it; omit it for the owner unit",
            )
        if rule.retention_days is not None and rule.retention_days < 1:
            raise _problem(("galleries", i, "retention_days"), "must be at least 1 day")


def _validate_limits(policy: Policy) -> None:
    if not 0.0 <= policy.probe_quality_floor <= 100.0:
        raise _problem(("search", "probe_quality_floor"), "must be between 0 and 100")
    if policy.daily_search_limit < 1:
        raise _problem(("search", "daily_limit_per_user"), "must be at least 1")
    for user, limit in policy.daily_limit_overrides.items():
        if limit < 0:
            raise _problem(("search", "daily_limit_overrides", user), "must not be negative")
    if policy.justification_max_chars < 1:
        raise _problem(("search", "justification_max_chars"), "must be at least 1")


def _validate_agreements(policy: Policy) -> None:
    _check_unique([a.reference for a in policy.agreements], ("inter_agency", "agreements"), "reference")
    known_galleries = {g.name for g in policy.galleries}
    for i, agreement in enumerate(policy.agreements):
        path: tuple[str | int, ...] = ("inter_agency", "agreements", i)
        if not agreement.agency.strip():
            raise _problem((*path, "agency"), "must not be empty")
        if not agreement.purposes:
            raise _problem((*path, "purposes"), f"agreement {agreement.reference!r} covers no purpose")
        unknown_purposes = sorted(p for p in agreement.purposes if policy.purpose(p) is None)
        if unknown_purposes:
            raise _problem(
                (*path, "purposes"), f"{unknown_purposes[0]!r} is not an allowed purpose of this policy"
            )
        unknown_galleries = sorted((agreement.galleries or frozenset()) - known_galleries)
        if unknown_galleries:
            raise _problem(
                (*path, "galleries"), f"gallery {unknown_galleries[0]!r} is not defined under [[galleries]]"
            )
        for key, moment in (("valid_from", agreement.valid_from), ("valid_until", agreement.valid_until)):
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise _problem((*path, key), "must carry a time zone")
        if agreement.valid_from and agreement.valid_until and agreement.valid_until <= agreement.valid_from:
            raise _problem((*path, "valid_until"), "ends before it starts")


def _validate_retention(policy: Policy) -> None:
    days = policy.probe_retention_days
    if "default" not in days:
        raise _problem(("retention", "probe_days", "default"), "a default probe retention is required")
    for kind, value in days.items():
        if kind not in PROBE_RETENTION_KINDS:
            raise _problem(
                ("retention", "probe_days", kind), f"unknown kind (known: {', '.join(PROBE_RETENTION_KINDS)})"
            )
        if value < 0:
            raise _problem(("retention", "probe_days", kind), "must not be negative")


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    """A policy pattern, compiled with ``re.ASCII``: ``\\d`` means 0-9 and ``\\w`` ASCII word characters.

    Without it Python's ``\\d`` also matches Arabic-Indic, fullwidth and other scripts' digits,
    so ``２０２４-０１`` would pass a pattern written for ``2024-01`` and name a different case.
    """
    return re.compile(pattern, re.ASCII)


# --- requests --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """A 1:1 comparison of two probe images: bound to a case and purpose like a search."""

    actor: Actor
    case_number: str | None
    purpose: str | None
    justification: str | None = None
    on_behalf_of: str | None = None
    agreement_ref: str | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A 1:N search as asked for.

    ``searches_today`` is how many searches this person already made today (the service
    counts them between the bounds :func:`search_day` gives). ``probe_quality`` is the
    quality score of the probe face, or None before the probe has been analysed; see
    :func:`decide_search`.
    """

    actor: Actor
    case_number: str | None
    purpose: str | None
    galleries: tuple[str, ...]
    justification: str | None = None
    on_behalf_of: str | None = None
    agreement_ref: str | None = None
    searches_today: int = 0
    probe_quality: float | None = None


_Denial = tuple[RuleId, str]
_Request = SearchRequest | VerifyRequest


# --- actor checks ----------------------------------------------------------------------


def _fmt(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


def _check_account(policy: Policy, actor: Actor, action: Action, now: datetime) -> _Denial | None:
    if actor.is_expired(now):
        kind = "trial account" if actor.trial else "account"
        assert actor.expires_at is not None
        return RuleId.ACCOUNT_EXPIRED, f"{kind} {actor.username!r} expired at {_fmt(actor.expires_at)}"
    if actor.suspended:
        return RuleId.ACCOUNT_SUSPENDED, f"account {actor.username!r} is suspended"
    if actor.organisation != policy.organisation:
        return (
            RuleId.ACCOUNT_WRONG_ORGANISATION,
            f"account {actor.username!r} belongs to {actor.organisation!r}, "
            f"but this policy governs {policy.organisation!r}",
        )
    return None


def _check_mfa(policy: Policy, actor: Actor, action: Action, now: datetime) -> _Denial | None:
    if (requires_mfa(actor.roles) or action in FACE_IMAGE_ACTIONS) and not actor.mfa_verified:
        return (
            RuleId.MFA_REQUIRED,
            f"account {actor.username!r} holds a role that can see face images or administer and must "
            "sign in with its second factor first",
        )
    return None


def _check_role(policy: Policy, actor: Actor, action: Action, now: datetime) -> _Denial | None:
    if permits(actor.roles, action):
        return None
    needed = ", ".join(sorted(r.value for r in roles_permitting(action))) or "none"
    held = ", ".join(sorted(r.value for r in actor.roles)) or "none"
    return (
        RuleId.ROLE_NOT_PERMITTED,
        f"{action.value!r} needs one of the roles: {needed}; {actor.username!r} holds: {held}",
    )


def _check_device(policy: Policy, actor: Actor, action: Action, now: datetime) -> _Denial | None:
    if action in DEVICE_ALWAYS_REQUIRED and actor.device_id is None:
        return (
            RuleId.DEVICE_UNREGISTERED,
            f"face images are only shown on a device registered to {policy.organisation!r}; "
            "this request came from an unregistered device",
        )
    if action in policy.device_required_for and actor.device_id is None:
        return (
            RuleId.DEVICE_UNREGISTERED,
            f"{action.value!r} is only accepted from a device registered to {policy.organisation!r}; "
            "this request came from an unregistered device",
        )
    needs_device = action in DEVICE_ALWAYS_REQUIRED or action in policy.device_required_for
    other_unit = actor.device_unit is not None and actor.device_unit != actor.unit
    if needs_device and other_unit and not policy.devices_other_units:
        return (
            RuleId.DEVICE_OTHER_UNIT,
            f"device {actor.device_id!r} belongs to unit {actor.device_unit!r} and {actor.username!r} "
            f"to unit {actor.unit!r}; the policy does not let a person use another unit's device "
            "([devices] other_units = false)",
        )
    return None


_ActorCheck = Callable[[Policy, Actor, Action, datetime], "_Denial | None"]
_ACTOR_CHECKS: tuple[_ActorCheck, ...] = (_check_account, _check_mfa, _check_role, _check_device)


# --- request checks --------------------------------------------------------------------


def case_number_problem(policy: Policy, case: str | None) -> str | None:
    """Why ``case`` is not a case number in ``policy``'s format (the search rule's reason), or None.

    The same check a search's decision makes (rules ``case.missing`` and ``case.malformed``),
    for a form that says so while the number is typed.
    """
    denial = _case_denial(policy, case)
    return None if denial is None else denial[1]


def _check_case(policy: Policy, request: _Request, now: datetime) -> _Denial | None:
    return _case_denial(policy, request.case_number)


def _case_denial(policy: Policy, case: str | None) -> _Denial | None:
    if case is None or not text.visible(case):
        return RuleId.CASE_MISSING, "every search must carry a case number"
    if (
        len(case) > MAX_CASE_NUMBER_CHARS
        or text.first_hidden(case) is not None
        or case in text.DOT_IDS
        or _compiled(policy.case_number_pattern).fullmatch(case) is None
    ):
        return (
            RuleId.CASE_MALFORMED,
            f"case number {text.escape_control(case[:MAX_CASE_NUMBER_CHARS])!r} is not in the agency's "
            "format "
            f"(for example {policy.case_number_example!r})",
        )
    return None


def _check_purpose(policy: Policy, request: _Request, now: datetime) -> _Denial | None:
    purpose_id = request.purpose
    if purpose_id is None or not purpose_id.strip():
        return RuleId.PURPOSE_MISSING, "every search must state a purpose from the policy's list"
    prohibited = policy.prohibited_purpose(purpose_id)
    if prohibited is not None:
        return (
            RuleId.PURPOSE_PROHIBITED,
            f"purpose {purpose_id!r} is prohibited by policy: {prohibited.description}",
        )
    if policy.purpose(purpose_id) is None:
        allowed = ", ".join(p.id for p in policy.purposes)
        return (
            RuleId.PURPOSE_NOT_ALLOWED,
            f"purpose {purpose_id!r} is not an allowed purpose (allowed: {allowed})",
        )
    return None


def _check_justification(policy: Policy, request: _Request, now: datetime) -> _Denial | None:
    written = (request.justification or "").strip()
    purpose = policy.purpose(request.purpose or "")
    # Whitespace and format characters (a zero-width space) are not a justification.
    if purpose is not None and purpose.justification_required and not text.visible(written):
        return RuleId.JUSTIFICATION_MISSING, f"purpose {purpose.id!r} requires a written justification"
    if len(written) > policy.justification_max_chars:
        return (
            RuleId.JUSTIFICATION_TOO_LONG,
            f"the justification has {len(written)} characters; the limit is {policy.justification_max_chars}",
        )
    return None


def _check_galleries(policy: Policy, request: SearchRequest, now: datetime) -> _Denial | None:
    if not request.galleries:
        return RuleId.GALLERY_MISSING, "a search must name at least one gallery"
    purpose = policy.purpose(request.purpose or "")
    assert purpose is not None  # the purpose check ran first
    for name in request.galleries:
        if policy.gallery(name) is None:
            return RuleId.GALLERY_UNKNOWN, f"gallery {name!r} is not governed by this policy"
    for name in request.galleries:
        if name not in purpose.galleries:
            reach = ", ".join(sorted(purpose.galleries))
            return (
                RuleId.GALLERY_NOT_FOR_PURPOSE,
                f"purpose {purpose.id!r} may not reach gallery {name!r} (it may reach: {reach})",
            )
    return _check_gallery_access(policy, request)


def _check_gallery_access(policy: Policy, request: SearchRequest) -> _Denial | None:
    actor = request.actor
    for name in request.galleries:
        rule = policy.gallery(name)
        assert rule is not None
        if rule.units is not None and actor.unit not in rule.units:
            units = ", ".join(sorted(rule.units))
            return (
                RuleId.GALLERY_UNIT_NOT_ALLOWED,
                f"gallery {name!r} may only be searched from the units: {units}; "
                f"{actor.username!r} is in {actor.unit!r}",
            )
    return None


def _check_inter_agency(policy: Policy, request: _Request, now: datetime) -> _Denial | None:
    agency = request.on_behalf_of
    if agency is None or not text.visible(agency):
        return None  # blank is absent; a service stores it as None (SearchInput)
    if not policy.inter_agency_allowed:
        return (
            RuleId.INTERAGENCY_NOT_ALLOWED,
            "this policy does not allow searches on behalf of other agencies",
        )
    ref = request.agreement_ref
    if ref is None or not ref.strip():
        return (
            RuleId.INTERAGENCY_AGREEMENT_MISSING,
            f"a search on behalf of {agency!r} must cite the agreement it is made under",
        )
    agreement = policy.agreement(ref)
    if agreement is None:
        return RuleId.INTERAGENCY_AGREEMENT_UNKNOWN, f"agreement {ref!r} is not listed in the policy"
    return _check_agreement(agreement, request, now)


def _check_agreement(agreement: Agreement, request: _Request, now: datetime) -> _Denial | None:
    ref = agreement.reference
    if agreement.agency != request.on_behalf_of:
        return (
            RuleId.INTERAGENCY_AGENCY_MISMATCH,
            f"agreement {ref!r} is with {agreement.agency!r}, not {request.on_behalf_of!r}",
        )
    if not agreement.in_force(now):
        return RuleId.INTERAGENCY_AGREEMENT_NOT_IN_FORCE, f"agreement {ref!r} is not in force at {_fmt(now)}"
    if request.purpose not in agreement.purposes:
        return (
            RuleId.INTERAGENCY_PURPOSE_NOT_COVERED,
            f"agreement {ref!r} does not cover the purpose {request.purpose!r}",
        )
    if isinstance(request, SearchRequest) and agreement.galleries is not None:
        for name in request.galleries:
            if name not in agreement.galleries:
                return (
                    RuleId.INTERAGENCY_GALLERY_NOT_COVERED,
                    f"agreement {ref!r} does not cover searches of gallery {name!r}",
                )
    return None


def _check_daily_limit(policy: Policy, request: SearchRequest, now: datetime) -> _Denial | None:
    limit = policy.daily_limit_for(request.actor.username)
    if request.searches_today >= limit:
        return (
            RuleId.LIMIT_DAILY,
            f"{request.actor.username!r} made {request.searches_today} searches today; the limit is {limit}",
        )
    return None


def _quality_denial(policy: Policy, quality: float) -> _Denial | None:
    if quality < policy.probe_quality_floor:
        return (
            RuleId.PROBE_QUALITY_BELOW_FLOOR,
            f"probe quality {quality:.1f} is below the policy's floor of {policy.probe_quality_floor:.1f}",
        )
    return None


def _check_quality(policy: Policy, request: SearchRequest, now: datetime) -> _Denial | None:
    return None if request.probe_quality is None else _quality_denial(policy, request.probe_quality)


_CASE_CHECKS: tuple[Callable[[Policy, _Request, datetime], _Denial | None], ...] = (
    _check_case,
    _check_purpose,
    _check_justification,
)

#: Every rule a search can be denied by, in the order the checks run.
SEARCH_CHECK_ORDER: tuple[RuleId, ...] = (
    RuleId.ACCOUNT_EXPIRED,
    RuleId.ACCOUNT_SUSPENDED,
    RuleId.ACCOUNT_WRONG_ORGANISATION,
    RuleId.MFA_REQUIRED,
    RuleId.ROLE_NOT_PERMITTED,
    RuleId.DEVICE_UNREGISTERED,
    RuleId.DEVICE_OTHER_UNIT,
    RuleId.CASE_MISSING,
    RuleId.CASE_MALFORMED,
    RuleId.PURPOSE_MISSING,
    RuleId.PURPOSE_PROHIBITED,
    RuleId.PURPOSE_NOT_ALLOWED,
    RuleId.JUSTIFICATION_MISSING,
    RuleId.JUSTIFICATION_TOO_LONG,
    RuleId.GALLERY_MISSING,
    RuleId.GALLERY_UNKNOWN,
    RuleId.GALLERY_NOT_FOR_PURPOSE,
    RuleId.GALLERY_UNIT_NOT_ALLOWED,
    RuleId.INTERAGENCY_NOT_ALLOWED,
    RuleId.INTERAGENCY_AGREEMENT_MISSING,
    RuleId.INTERAGENCY_AGREEMENT_UNKNOWN,
    RuleId.INTERAGENCY_AGENCY_MISMATCH,
    RuleId.INTERAGENCY_AGREEMENT_NOT_IN_FORCE,
    RuleId.INTERAGENCY_PURPOSE_NOT_COVERED,
    RuleId.INTERAGENCY_GALLERY_NOT_COVERED,
    RuleId.LIMIT_DAILY,
    RuleId.PROBE_QUALITY_BELOW_FLOOR,
)


# --- decisions -------------------------------------------------------------------------


def _deny(policy: Policy, denial: _Denial) -> Decision:
    rule, reason = denial
    return Decision(False, rule.value, policy.version, reason)


def _allow(policy: Policy, rule: RuleId, reason: str) -> Decision:
    return Decision(True, rule.value, policy.version, reason)


def _first_actor_denial(policy: Policy, actor: Actor, action: Action, now: datetime) -> _Denial | None:
    for check in _ACTOR_CHECKS:
        denial = check(policy, actor, action, now)
        if denial is not None:
            return denial
    return None


def _first_case_denial(policy: Policy, request: _Request, now: datetime) -> _Denial | None:
    for check in _CASE_CHECKS:
        denial = check(policy, request, now)
        if denial is not None:
            return denial
    return None


def _require_now(now: datetime) -> None:
    require_aware(now, "the decision time 'now'")


def decide_action(policy: Policy, actor: Actor, action: Action, *, now: datetime) -> Decision:
    """May ``actor`` do ``action`` now? For anything but searches and verifications.

    Checks, in order: account (expired, suspended, organisation), second factor, role,
    device. Searches and verifications must go through :func:`decide_search` and
    :func:`decide_verify`, which also bind them to a case and purpose; asking this function
    about them is a programming error.
    """
    _require_now(now)
    if action in (Action.SEARCH, Action.VERIFY):
        raise ValidationError(
            f"use decide_search / decide_verify for {action.value!r}: it needs a case and purpose"
        )
    denial = _first_actor_denial(policy, actor, action, now)
    if denial is not None:
        return _deny(policy, denial)
    return _allow(policy, RuleId.ACTION_ALLOWED, f"{actor.username!r} may {action.value}")


def decide_verify(policy: Policy, request: VerifyRequest, *, now: datetime) -> Decision:
    """May this 1:1 comparison run? Actor checks, then case, purpose, justification, inter-agency."""
    _require_now(now)
    denial = (
        _first_actor_denial(policy, request.actor, Action.VERIFY, now)
        or _first_case_denial(policy, request, now)
        or _check_inter_agency(policy, request, now)
    )
    if denial is not None:
        return _deny(policy, denial)
    return _allow(policy, RuleId.VERIFY_ALLOWED, f"comparison for case {request.case_number!r} is allowed")


def decide_search(policy: Policy, request: SearchRequest, *, now: datetime) -> Decision:
    """May this search run? The first failing check in :data:`SEARCH_CHECK_ORDER` decides.

    When ``request.probe_quality`` is None the probe has not been analysed yet: every other
    rule is decided and an allowed answer cites ``search.allowed_pending_quality``; the
    caller must then analyse the probe and call :func:`decide_probe_quality` before
    searching. Deciding before analysis means a face is not even processed for a request
    the policy refuses.
    """
    _require_now(now)
    denial = (
        _first_actor_denial(policy, request.actor, Action.SEARCH, now)
        or _first_case_denial(policy, request, now)
        or _check_galleries(policy, request, now)
        or _check_inter_agency(policy, request, now)
        or _check_daily_limit(policy, request, now)
        or _check_quality(policy, request, now)
    )
    if denial is not None:
        return _deny(policy, denial)
    galleries = ", ".join(request.galleries)
    if request.probe_quality is None:
        return _allow(
            policy,
            RuleId.SEARCH_ALLOWED_PENDING_QUALITY,
            f"search of {galleries} for case {request.case_number!r} is allowed if the probe's quality "
            f"reaches {policy.probe_quality_floor:.1f}",
        )
    return _allow(
        policy, RuleId.SEARCH_ALLOWED, f"search of {galleries} for case {request.case_number!r} is allowed"
    )


def decide_probe_quality(policy: Policy, quality: float, *, why: str | None = None) -> Decision:
    """The last search check, for callers that decided before analysing the probe.

    ``why``: what lowered the score (the quality report's words), added to a refusal's reason.
    """
    denial = _quality_denial(policy, quality)
    if denial is not None:
        rule, reason = denial
        return _deny(policy, (rule, f"{reason}: {why}" if why else reason))
    return _allow(
        policy,
        RuleId.PROBE_QUALITY_OK,
        f"probe quality {quality:.1f} reaches the floor of {policy.probe_quality_floor:.1f}",
    )


def search_day(policy: Policy, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the policy-local day containing ``now``, for counting today's searches."""
    _require_now(now)
    local: date = now.astimezone(policy.timezone).date()
    start = datetime.combine(local, time(0), policy.timezone)
    end = datetime.combine(local + timedelta(days=1), time(0), policy.timezone)
    return start, end
