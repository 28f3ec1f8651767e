"""The one byte form of every audit entry, so that a hash computed today matches one computed in ten years.

Canonical JSON here means: object keys sorted by code point, no whitespace, UTF-8 (non-ASCII
characters written as themselves), and only values that have exactly one text form: null,
true/false, strings, integers within +/-(2**53 - 1) (what every JSON reader keeps exact),
arrays and objects with string keys. Floats are refused outright, NaN and infinity with
them: a score goes in as a decimal string. Every byte string that is hashed or signed starts
with a domain tag naming what it is, so an entry can never be passed off as a checkpoint or
a signature over one thing reused for another.

The standalone verifier (``verify.py``) carries its own copy of these rules on purpose: an
auditor must not have to trust the code whose output they are checking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from faceledger.audit.events import AuditEntry, JsonValue
from faceledger.errors import ValidationError

ENTRY_DOMAIN = b"faceledger.audit.entry/v1\n"
ENTRY_SIGNATURE_DOMAIN = b"faceledger.audit.entry-signature/v1\n"
MAX_SAFE_INTEGER = 2**53 - 1
ENTRY_KEYS = frozenset({"seq", "ts", "actor", "action", "object", "details"})

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_LOG_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def canonical_json(value: JsonValue) -> bytes:
    """``value`` in canonical JSON; refuses anything without a single exact text form."""
    plain = _plain(value, "$")
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _plain(value: Any, path: str) -> Any:
    """``value`` rebuilt from plain dicts and lists, checked on the way."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValidationError(
                f"audit value at {path}: integer {value} is too large to keep exact; use a string"
            )
        return int(value)
    if isinstance(value, float):
        raise ValidationError(
            f"audit value at {path}: {value!r} is a float, which has no single canonical text; "
            "record it as a decimal string (faceledger.audit.events.decimal_string)"
        )
    if isinstance(value, str):
        return _check_text(value, path)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"audit value at {path}: object key {key!r} is not a string")
            out[_check_text(key, path)] = _plain(item, f"{path}.{key}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_plain(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise ValidationError(f"audit value at {path}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, path: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"audit value at {path}: text {text!r} is not valid Unicode") from None
    return str(text)


def format_timestamp(moment: datetime) -> str:
    """A timezone-aware moment as the log writes it: UTC, microseconds, ``Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(f"audit timestamps need a time zone, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """The moment a log timestamp names; refuses any other spelling of it."""
    if not isinstance(text, str) or not _TIMESTAMP.match(text):
        raise ValidationError(f"audit timestamp {text!r} is not of the form 2024-01-31T12:00:00.000000Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError(f"audit timestamp {text!r} is not a real date and time") from None


def check_log_id(log_id: str) -> str:
    """A log id is one line of plain characters, so it can sit in a checkpoint's text form."""
    if not isinstance(log_id, str) or not _LOG_ID.match(log_id):
        raise ValidationError(f"audit log id {log_id!r} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return log_id


def entry_json(entry: AuditEntry) -> dict[str, JsonValue]:
    """The entry as the JSON object that is serialised, exported and hashed."""
    parse_timestamp(entry.timestamp)
    return {
        "seq": entry.seq,
        "ts": entry.timestamp,
        "actor": entry.actor,
        "action": entry.action,
        "object": entry.object,
        "details": dict(entry.details),
    }


def entry_bytes(entry: AuditEntry) -> bytes:
    """The canonical JSON of an entry."""
    return canonical_json(entry_json(entry))


def entry_leaf_data(entry: AuditEntry) -> bytes:
    """What the Merkle tree hashes for an entry: the domain tag, then its canonical JSON."""
    return ENTRY_DOMAIN + entry_bytes(entry)


def entry_from_json(value: Any, *, where: str) -> AuditEntry:
    """An entry from its JSON object, refusing missing, extra or mistyped fields."""
    if not isinstance(value, Mapping) or set(value) != ENTRY_KEYS:
        keys = sorted(value) if isinstance(value, Mapping) else type(value).__name__
        raise ValidationError(
            f"{where}: an audit entry has exactly the fields {sorted(ENTRY_KEYS)}, got {keys}"
        )
    for name in ("ts", "actor", "action", "object"):
        if not isinstance(value[name], str):
            raise ValidationError(f"{where}: field {name!r} must be a string")
    if not isinstance(value["details"], Mapping):
        raise ValidationError(f"{where}: field 'details' must be an object")
    _plain(value["details"], f"{where}.details")
    parse_timestamp(value["ts"])
    return AuditEntry(
        value["seq"], value["ts"], value["actor"], value["action"], value["object"], value["details"]
    )


def entry_signature_message(log_id: str, leaf_hash: bytes) -> bytes:
    """What the log key signs for each entry: which log, and the entry's leaf hash."""
    check_log_id(log_id)
    if len(leaf_hash) != 32:
        raise ValidationError(f"a leaf hash is 32 bytes, got {len(leaf_hash)}")
    return ENTRY_SIGNATURE_DOMAIN + f"{log_id}\n{leaf_hash.hex()}\n".encode()
