"""Reading an agency's policy file (TOML) into a :class:`~faceledger.domain.policy.Policy`.

A policy file is written by a person and decides who may search whom, so it is read
strictly: an unknown key is an error, not something to ignore (a misspelt
``prohibited`` must not quietly allow a prohibited purpose), and every error names the file,
the line and the key. The format is documented in docs/policy.md; the shipped example is
``faceledger/data/example-policy.toml``.

Dates without a time (``valid_until = 2026-03-31``) are whole days in the policy's
``timezone``: an agreement valid until 31 March is valid through the end of that day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from faceledger.domain.policy import (
    FORMAT_VERSION,
    Agreement,
    GalleryRule,
    Policy,
    PolicyValidationError,
    ProhibitedPurpose,
    Purpose,
    format_path,
)
from faceledger.domain.roles import parse_action
from faceledger.errors import ConfigError, ValidationError

EXAMPLE_POLICY = "example-policy.toml"
#: A policy file (or text loaded over the API) is at most this large.
MAX_POLICY_BYTES = 1024 * 1024

_Path = tuple[str | int, ...]
_T = TypeVar("_T")
_MISSING: Any = object()
_SECTIONS = (
    "policy",
    "case_number",
    "search",
    "devices",
    "purposes",
    "galleries",
    "inter_agency",
    "retention",
)


# --- public API ------------------------------------------------------------------------


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """The policy in ``text``; :class:`ConfigError` naming ``source``, line and key if invalid."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        return _build(_Table(data, ()), digest)
    except PolicyValidationError as exc:
        line = _KeyLines(text).line_of(exc.path)
        where = f"{source}, line {line}" if line else source
        raise ConfigError(f"{where}: {format_path(exc.path) or 'policy'}: {exc.problem}") from None


def read_policy_file(path: Path | str) -> str:
    """The text of a policy file; :class:`ConfigError` naming the file if it cannot be read."""
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise ConfigError(
                f"policy file {file} is {size:,} bytes; a policy is at most {MAX_POLICY_BYTES:,}"
            )
        return file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"policy file {file} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"policy file {file} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"policy file {file} cannot be read: {exc.strerror or exc}") from None


def load_policy(path: Path | str) -> Policy:
    """Read and check a policy file."""
    file = Path(path).expanduser()
    return parse_policy(read_policy_file(file), source=str(file))


def example_policy_text() -> str:
    """The shipped example policy, as text (a starting point for an agency's own)."""
    return resources.files("faceledger.data").joinpath(EXAMPLE_POLICY).read_text(encoding="utf-8")


def load_example_policy() -> Policy:
    return parse_policy(example_policy_text(), source=f"faceledger/data/{EXAMPLE_POLICY}")


# --- a strict reader over one TOML table -----------------------------------------------


@dataclass
class _Table:
    """One TOML table, read key by key; keys never asked for are reported as unknown."""

    data: dict[str, Any]
    path: _Path
    asked: set[str] = field(default_factory=set)

    def _raw(self, key: str, default: Any) -> Any:
        self.asked.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise PolicyValidationError((*self.path, key), "required key is missing")
        return default

    def _fail(self, key: str | int, message: str) -> PolicyValidationError:
        return PolicyValidationError((*self.path, key), message)

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self._raw(key, default)
        if not isinstance(value, str):
            raise self._fail(key, f"must be a string, got {_kind(value)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {_kind(value)}")
        return value

    def integer(self, key: str, default: Any = _MISSING) -> int:
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be a whole number, got {_kind(value)}")
        return value

    def number(self, key: str, default: Any = _MISSING) -> float:
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"must be a number, got {_kind(value)}")
        return float(value)

    def texts(self, key: str, default: Any = _MISSING) -> list[str]:
        value = self._raw(key, default)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, f"must be a list of strings, got {_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise PolicyValidationError((*self.path, key, i), f"must be a string, got {_kind(item)}")
        return list(value)

    def has(self, key: str) -> bool:
        self.asked.add(key)
        return key in self.data

    def table(self, key: str, *, required: bool = True) -> _Table:
        value = self._raw(key, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self._fail(key, f"must be a table ([{format_path((*self.path, key))}]), got {_kind(value)}")
        return _Table(value, (*self.path, key))

    def tables(self, key: str, *, required: bool = True) -> list[_Table]:
        value = self._raw(key, _MISSING if required else [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._fail(key, f"must be an array of tables ([[{format_path((*self.path, key))}]])")
        return [_Table(v, (*self.path, key, i)) for i, v in enumerate(value)]

    def moment(self, key: str, zone: dt.tzinfo, *, end_of_day: bool) -> dt.datetime | None:
        value = self._raw(key, None)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=zone)
        if isinstance(value, dt.date):
            day = value + dt.timedelta(days=1) if end_of_day else value
            return dt.datetime.combine(day, dt.time(0), zone)
        raise self._fail(key, f"must be a date (2025-01-31) or date-time, got {_kind(value)}")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.asked)
        if unknown:
            known = ", ".join(sorted(self.asked)) or "none"
            raise self._fail(unknown[0], f"unknown key (known keys here: {known})")


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "a date/time"
    return names.get(type(value), type(value).__name__)


# --- sections --------------------------------------------------------------------------


def _build(root: _Table, digest: str) -> Policy:
    root.asked.update(_SECTIONS)
    root.finish()
    head = root.table("policy")
    zone = _zone(head)
    values: dict[str, Any] = {**_header(head), **_search(root.table("search"))}
    case = root.table("case_number")
    values["case_number_pattern"] = case.text("pattern")
    values["case_number_example"] = case.text("example")
    case.finish()
    purposes = root.table("purposes")
    values["purposes"] = tuple(_purpose(t) for t in purposes.tables("allowed"))
    values["prohibited"] = tuple(_prohibited(t) for t in purposes.tables("prohibited", required=False))
    purposes.finish()
    values["galleries"] = tuple(_gallery(t) for t in root.tables("galleries"))
    inter = root.table("inter_agency", required=False)
    values["inter_agency_allowed"] = inter.flag("allowed", False)
    values["agreements"] = tuple(_agreement(t, zone) for t in inter.tables("agreements", required=False))
    inter.finish()
    values.update(_devices(root.table("devices", required=False)))
    values["probe_retention_days"] = _retention(root.table("retention", required=False))
    return Policy(**values, timezone=zone, source_sha256=digest)


def _zone(head: _Table) -> dt.tzinfo:
    name = head.text("timezone", "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyValidationError(
            ("policy", "timezone"), f"unknown time zone {name!r} (use an IANA name such as 'Europe/London')"
        ) from None


def _header(head: _Table) -> dict[str, Any]:
    version = head.integer("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise PolicyValidationError(
            ("policy", "format"),
            f"format {version} is not supported (this version reads format {FORMAT_VERSION})",
        )
    values = {
        "version": head.text("version"),
        "organisation": head.text("organisation"),
        "description": head.text("description", ""),
        "lead_notice": head.text("lead_notice", ""),
    }
    head.finish()
    return values


def _search(table: _Table) -> dict[str, Any]:
    overrides = table.table("daily_limit_overrides", required=False)
    limits = {user: overrides.integer(user) for user in overrides.data}
    values = {
        "probe_quality_floor": table.number("probe_quality_floor"),
        "daily_search_limit": table.integer("daily_limit_per_user"),
        "justification_max_chars": table.integer("justification_max_chars", 2000),
        "daily_limit_overrides": limits,
    }
    table.finish()
    return values


def _purpose(table: _Table) -> Purpose:
    purpose = Purpose(
        id=table.text("id"),
        description=table.text("description"),
        galleries=frozenset(table.texts("galleries")),
        justification_required=table.flag("justification_required", False),
    )
    table.finish()
    return purpose


def _prohibited(table: _Table) -> ProhibitedPurpose:
    purpose = ProhibitedPurpose(id=table.text("id"), description=table.text("description"))
    table.finish()
    return purpose


def _gallery(table: _Table) -> GalleryRule:
    units = table.texts("units") if table.has("units") else None
    admins = table.texts("admin_units") if table.has("admin_units") else None
    rule = GalleryRule(
        name=table.text("name"),
        units=None if units is None else frozenset(units),
        admin_units=None if admins is None else frozenset(admins),
        retention_days=table.integer("retention_days") if table.has("retention_days") else None,
    )
    table.finish()
    return rule


def _parsed(table: _Table, key: str, parse: Callable[[str], _T]) -> list[_T]:
    out: list[_T] = []
    for i, name in enumerate(table.texts(key)):
        try:
            out.append(parse(name))
        except ValidationError as exc:
            raise PolicyValidationError((*table.path, key, i), str(exc)) from None
    return out


def _agreement(table: _Table, zone: dt.tzinfo) -> Agreement:
    galleries = table.texts("galleries") if table.has("galleries") else None
    agreement = Agreement(
        reference=table.text("reference"),
        agency=table.text("agency"),
        purposes=frozenset(table.texts("purposes")),
        galleries=None if galleries is None else frozenset(galleries),
        valid_from=table.moment("valid_from", zone, end_of_day=False),
        valid_until=table.moment("valid_until", zone, end_of_day=True),
    )
    table.finish()
    return agreement


def _devices(table: _Table) -> dict[str, Any]:
    values: dict[str, Any] = {
        "devices_other_units": table.flag("other_units", False),
        "server_tokens": table.flag("server_tokens", False),
    }
    if table.has("required_for"):
        values["device_required_for"] = frozenset(_parsed(table, "required_for", parse_action))
    table.finish()
    return values


def _retention(table: _Table) -> dict[str, int]:
    probes = table.table("probe_days", required=False)
    days = {kind: probes.integer(kind) for kind in probes.data} if probes.data else {"default": 30}
    table.finish()
    return days


# --- where a key is in the file --------------------------------------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]\s*(?:#.*)?$")
_TABLE_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(dotted))


class _KeyLines:
    """Line numbers of tables and keys, found by a light scan of conventionally written TOML.

    tomllib does not report where a value came from; this recovers it for the common
    layouts (headers, ``key = value``) and otherwise falls back to the nearest enclosing
    table, which is still the right place to look.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[_Path, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: _Path = ()
        in_string = False
        for number, line in enumerate(text.splitlines(), start=1):
            toggles = (line.count('"""') + line.count("'''")) % 2 == 1
            if in_string:
                in_string = not toggles
                continue
            table = self._scan(table, line, number, counts)
            in_string = toggles

    def _scan(self, table: _Path, line: str, number: int, counts: dict[tuple[str, ...], int]) -> _Path:
        array = _ARRAY_HEADER.match(line)
        if array:
            key = _parts(array.group(1))
            counts[key] = counts.get(key, -1) + 1
            table = (*key, counts[key])
            self._header(table, number)
            return table
        header = _TABLE_HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            self._header(table, number)
            return table
        self._assign(table, line, number)
        return table

    def _header(self, table: _Path, number: int) -> None:
        for end in range(1, len(table) + 1):
            self.lines.setdefault(table[:end], number)

    def _assign(self, table: _Path, line: str, number: int) -> None:
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            self.lines.setdefault((*table, *_parts(assignment.group(1))), number)

    def line_of(self, path: _Path) -> int | None:
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None
