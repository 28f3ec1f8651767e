"""Reading policy files: the shipped example, defaults, and errors that name file, line and key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from faceledger.adapters.policy_file import (
    example_policy_text,
    load_example_policy,
    load_policy,
    parse_policy,
)
from faceledger.domain.policy import SearchRequest, decide_search
from faceledger.domain.roles import Action, Actor, Role
from faceledger.errors import ConfigError

LONDON = ZoneInfo("Europe/London")
EXAMPLE = example_policy_text()

MINIMAL = """\
[policy]
version = "v1"
organisation = "Org"

[case_number]
pattern = '[0-9]{6}'
example = "123456"

[search]
probe_quality_floor = 35
daily_limit_per_user = 10

[[purposes.allowed]]
id = "crime"
description = "Crime"
galleries = ["arrests"]

[[galleries]]
name = "arrests"
"""


def line_of(text: str, fragment: str, nth: int = 1) -> int:
    """1-based line number of the nth line containing ``fragment``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return hits[nth - 1]


def examiner(**changes: object) -> Actor:
    values: dict[str, object] = {
        "username": "fiu.one",
        "roles": frozenset({Role.EXAMINER}),
        "organisation": "Example Constabulary",
        "unit": "facial-identification",
        "mfa_verified": True,
        "device_id": "ws-04",
    }
    values.update(changes)
    return Actor(**values)  # type: ignore[arg-type]


# --- the shipped example -----------------------------------------------------------------


def test_example_policy_loads_with_its_declared_contents() -> None:
    policy = load_example_policy()
    assert policy.version == "example-2025.1"
    assert policy.organisation == "Example Constabulary"
    assert [p.id for p in policy.purposes] == [
        "criminal_investigation",
        "deceased_or_incapacitated",
        "missing_person_at_risk",
    ]
    assert policy.prohibited_purpose("civil_immigration_enforcement") is not None
    assert {g.name for g in policy.galleries} == {"custody_arrest_photos", "parole_photos"}
    assert "investigative lead only" in policy.lead_notice
    assert policy.timezone == LONDON
    assert policy.daily_limit_for("fiu.trainer") == 40
    assert policy.daily_limit_for("anyone") == 25
    assert Action.PEER_REVIEW in policy.device_required_for
    assert policy.probe_retention_for("denied") == 0
    assert policy.source_sha256 == hashlib.sha256(EXAMPLE.encode()).hexdigest()


def test_example_policy_refuses_immigration_enforcement() -> None:
    policy = load_example_policy()
    request = SearchRequest(
        actor=examiner(),
        case_number="2025/CID/004211",
        purpose="civil_immigration_enforcement",
        galleries=("custody_arrest_photos",),
        probe_quality=90.0,
    )
    decision = decide_search(policy, request, now=datetime(2025, 6, 1, tzinfo=UTC))
    assert (decision.allowed, decision.rule_id) == (False, "purpose.prohibited")
    assert decision.policy_version == "example-2025.1"
    assert "FI-01 s.4" in decision.reason


def test_example_policy_allows_a_proper_search() -> None:
    request = SearchRequest(
        actor=examiner(),
        case_number="2025/CID/004211",
        purpose="criminal_investigation",
        galleries=("custody_arrest_photos", "parole_photos"),
        probe_quality=90.0,
    )
    decision = decide_search(load_example_policy(), request, now=datetime(2025, 6, 1, tzinfo=UTC))
    assert decision.allowed, decision.reason


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (datetime(2024, 3, 31, 23, 59, tzinfo=UTC), True),  # 00:59 on 1 April in London (BST)
        (datetime(2024, 3, 31, 22, 59, tzinfo=UTC), False),  # still 31 March in London
        (datetime(2026, 3, 31, 22, 59, tzinfo=UTC), True),  # 23:59 on 31 March London, the last day
        (datetime(2026, 3, 31, 23, 0, tzinfo=UTC), False),  # midnight in London: expired
    ],
)
def test_agreement_dates_are_whole_days_in_the_policy_timezone(moment: datetime, allowed: bool) -> None:
    request = SearchRequest(
        actor=examiner(),
        case_number="2025/CID/004211",
        purpose="criminal_investigation",
        galleries=("custody_arrest_photos",),
        on_behalf_of="Neighbouring County Police",
        agreement_ref="DSA-2024-017",
        probe_quality=90.0,
    )
    decision = decide_search(load_example_policy(), request, now=moment)
    assert decision.allowed is allowed, decision.reason


# --- defaults and value forms -----------------------------------------------------------


def test_minimal_policy_gets_documented_defaults() -> None:
    policy = parse_policy(MINIMAL)
    assert policy.device_required_for == {Action.SEARCH, Action.VERIFY}
    assert dict(policy.probe_retention_days) == {"default": 30}
    assert policy.inter_agency_allowed is False
    assert policy.agreements == ()
    assert policy.prohibited == ()
    assert policy.timezone == ZoneInfo("UTC")
    assert policy.justification_max_chars == 2000
    assert policy.probe_quality_floor == 35.0
    assert policy.galleries[0].units is None
    assert policy.galleries[0].retention_days is None
    assert policy.lead_notice == ""


def test_datetimes_with_and_without_offsets() -> None:
    text = (
        MINIMAL.replace('organisation = "Org"', 'organisation = "Org"\ntimezone = "Europe/London"')
        + """
[inter_agency]
allowed = true

[[inter_agency.agreements]]
reference = "A-1"
agency = "B"
purposes = ["crime"]
valid_from = 2025-06-01T08:00:00
valid_until = 2025-07-01T00:00:00+02:00
"""
    )
    agreement = parse_policy(text).agreements[0]
    assert agreement.valid_from == datetime(2025, 6, 1, 7, 0, tzinfo=UTC)  # local time in London (BST)
    assert agreement.valid_until == datetime(2025, 6, 30, 22, 0, tzinfo=UTC)
    assert agreement.galleries is None


def test_inline_tables_and_dotted_keys_are_read() -> None:
    text = MINIMAL + "\n[retention]\nprobe_days = { default = 10, approved = 400 }\n"
    assert dict(parse_policy(text).probe_retention_days) == {"default": 10, "approved": 400}


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(MINIMAL, encoding="utf-8")
    assert load_policy(file).version == "v1"
    assert load_policy(str(file)).source_sha256 == hashlib.sha256(MINIMAL.encode()).hexdigest()


# --- errors ---------------------------------------------------------------------------------


def test_missing_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy file .*nope\.toml does not exist"):
        load_policy(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_policy(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(MINIMAL.replace("Org", "Orgé").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml is not UTF-8 text"):
        load_policy(bad)


def test_toml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.toml"
    file.write_text(MINIMAL.replace("daily_limit_per_user = 10", "daily_limit_per_user = "), encoding="utf-8")
    line = line_of(MINIMAL, "daily_limit_per_user")
    with pytest.raises(ConfigError, match=rf"broken\.toml: not valid TOML: .*line {line}"):
        load_policy(file)


# (replace this, with that, in the example) -> the key named and the line it is on.
ERRORS: list[tuple[str, str, str, str, str]] = [
    ("[[purposes.prohibited]]", "[[purposes.prohibted]]", "purposes.prohibted", "unknown key", "prohibted"),
    (
        "daily_limit_per_user = 25",
        'daily_limit_per_user = "25"',
        "search.daily_limit_per_user",
        "whole number, got a string",
        "daily_limit_per_user",
    ),
    (
        "probe_quality_floor = 30.0",
        "probe_quality_floor = true",
        "search.probe_quality_floor",
        "must be a number, got a boolean",
        "probe_quality_floor",
    ),
    ("allowed = true", "allowed = 1", "inter_agency.allowed", "must be true or false", "allowed = 1"),
    (
        '"parole_photos"]',
        '"mugshots"]',
        "purposes.allowed[0].galleries",
        "'mugshots', not defined under [[galleries]]",
        '"mugshots"]',
    ),
    (
        'id = "personal_use"',
        'id = "criminal_investigation"',
        "purposes.allowed[0].id",
        "also listed as a prohibited purpose",
        'id = "criminal_investigation"',
    ),
    (
        "pattern = '\\d{4}",
        "pattern = '(\\d{4}",
        "case_number.pattern",
        "not a valid regular expression",
        "pattern =",
    ),
    (
        'example = "2025/CID/004211"',
        'example = "25/CID/1"',
        "case_number.example",
        "does not match the pattern",
        "example = ",
    ),
    ("Europe/London", "Mars/Olympus", "policy.timezone", "unknown time zone 'Mars/Olympus'", "timezone"),
    (
        '"fiu.trainer" = 40',
        '"fiu.trainer" = -1',
        'search.daily_limit_overrides."fiu.trainer"',
        "must not be negative",
        '"fiu.trainer"',
    ),
    ("approved = 2190", "aproved = 2190", "retention.probe_days.aproved", "unknown kind", "aproved"),
    (
        '"missing_person_at_risk"]\ngalleries',
        '"immigration"]\ngalleries',
        "inter_agency.agreements[0].purposes",
        "'immigration' is not an allowed purpose",
        '"immigration"]',
    ),
    ('"purge"]', '"purgee"]', "devices.required_for[6]", "unknown action 'purgee'", "required_for"),
    (
        'units = ["facial-identification"]\nadmin_units = ["facial-identification"]\nretention_days = 1095',
        'units = []\nadmin_units = ["facial-identification"]\nretention_days = 1095',
        "galleries[1].units",
        "let nobody search",
        "units = []",
    ),
    (
        "other_units = false",
        'other_units = "no"',
        "devices.other_units",
        "must be true or false",
        "other_units =",
    ),
    (
        "server_tokens = false",
        "server_tokens = 1",
        "devices.server_tokens",
        "must be true or false",
        "server_tokens =",
    ),
    (
        'admin_units = ["facial-identification"]\nretention_days = 1095',
        "admin_units = []\nretention_days = 1095",
        "galleries[1].admin_units",
        "let nobody administer it",
        "admin_units = []",
    ),
    (
        'name = "parole_photos"',
        'name = "custody_arrest_photos"  # again',
        "galleries[1].name",
        "listed twice",
        "# again",
    ),
    ("format = 1", "format = 2", "policy.format", "format 2 is not supported", "format = 2"),
    ('version = "example-2025.1"\n', "", "policy.version", "required key is missing", "[policy]"),
    (
        "valid_until = 2026-03-31",
        "valid_until = 2023-03-31",
        "inter_agency.agreements[0].valid_until",
        "ends before it starts",
        "valid_until",
    ),
    (
        "valid_until = 2026-03-31",
        "valid_until = 10:00:00",
        "inter_agency.agreements[0].valid_until",
        "must be a date",
        "valid_until",
    ),
    ("[search]\n", "[search]\nroles = 3\n", "search.roles", "unknown key", "roles = 3"),
    (
        '[[galleries]]\nname = "parole_photos"',
        '[[galleries]]\nname = "parole_photos"\nroles = ["examiner"]',
        "galleries[1].roles",
        "unknown key",
        "roles =",
    ),
]


@pytest.mark.parametrize(("old", "new", "key", "problem", "where"), ERRORS, ids=[e[2] for e in ERRORS])
def test_errors_name_the_key_and_line(old: str, new: str, key: str, problem: str, where: str) -> None:
    assert old in EXAMPLE
    text = EXAMPLE.replace(old, new, 1)
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, source="agency.toml")
    message = str(caught.value)
    assert message.startswith(f"agency.toml, line {line_of(text, where)}: {key}: "), message
    assert problem in message


def test_unknown_top_level_section_is_named() -> None:
    text = MINIMAL + "\n[extras]\nx = 1\n"
    line = line_of(text, "[extras]")
    with pytest.raises(
        ConfigError, match=rf"line {line}: extras: unknown key \(known keys here: case_number"
    ):
        parse_policy(text, source="p.toml")


def test_wrong_shapes_are_named() -> None:
    with pytest.raises(ConfigError, match=r"galleries: must be an array of tables \(\[\[galleries\]\]\)"):
        parse_policy('galleries = "arrests"\n' + MINIMAL.split("[[galleries]]")[0])
    no_search = MINIMAL.replace("[search]\nprobe_quality_floor = 35\ndaily_limit_per_user = 10\n", "")
    with pytest.raises(ConfigError, match=r"line 1: search: must be a table \(\[search\]\)"):
        parse_policy('search = "x"\n' + no_search)
    with pytest.raises(
        ConfigError, match=r"purposes.allowed\[0\].galleries\[1\]: must be a string, got a number"
    ):
        parse_policy(MINIMAL.replace('galleries = ["arrests"]', 'galleries = ["arrests", 3]'))


def test_a_header_inside_a_multiline_string_does_not_mislead_the_line_finder() -> None:
    text = MINIMAL.replace(
        'organisation = "Org"', 'organisation = "Org"\ndescription = """\n[search]\nnot a table\n"""'
    ).replace("daily_limit_per_user = 10", "daily_limit_per_user = 0")
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, source="p.toml")
    assert str(caught.value).startswith(f"p.toml, line {line_of(text, 'daily_limit_per_user')}: ")


def test_the_documented_example_is_the_shipped_file() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    assert f"```toml\n{EXAMPLE}```" in docs
