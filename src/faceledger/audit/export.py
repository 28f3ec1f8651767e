"""Sealing entries as they are appended, and the self-contained export an auditor verifies.

Each entry is signed by the log key when it is appended (over its leaf hash and the log id),
as well as covered by the periodic signed checkpoints. The checkpoints alone would show
*that* a history was changed; the per-entry signature shows *which* entry: someone who can
edit the database but does not hold the key cannot make an altered or inserted entry carry
a valid signature, nor move a signed entry to another place (its sequence number is part
of what is signed).

:func:`build_export` writes out what it is given, tampered or not: refusing to export a
damaged log would hide the damage from the one person whose job is to find it. The format
is described in ``docs/audit.md``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faceledger.audit.canonical import (
    canonical_json,
    check_log_id,
    entry_json,
    entry_leaf_data,
    entry_signature_message,
    parse_timestamp,
)
from faceledger.audit.checkpoint import Checkpoint, Signer
from faceledger.audit.events import AuditEntry, JsonValue
from faceledger.audit.merkle import leaf_hash
from faceledger.errors import StoreError, ValidationError

EXPORT_FORMAT = "faceledger-audit-export"
EXPORT_VERSION = 1


def entry_leaf_hash(entry: AuditEntry) -> bytes:
    """The entry's Merkle leaf hash: SHA-256(0x00 || domain tag || canonical JSON)."""
    return leaf_hash(entry_leaf_data(entry))


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """An entry with the log key's signature over it, as stored and exported."""

    entry: AuditEntry
    signature: bytes

    @property
    def leaf_hash(self) -> bytes:
        return entry_leaf_hash(self.entry)


def seal_entry(entry: AuditEntry, *, log_id: str, signer: Signer) -> SealedEntry:
    """Sign ``entry`` for log ``log_id``; done once, when the entry is appended."""
    return SealedEntry(entry, signer.sign(entry_signature_message(log_id, entry_leaf_hash(entry))))


def build_export(
    *,
    log_id: str,
    key_fingerprint: str,
    entries: Sequence[SealedEntry],
    checkpoints: Sequence[Checkpoint],
    exported_at: str,
) -> dict[str, JsonValue]:
    """The export document: entries and checkpoints in storage order, exactly as given."""
    check_log_id(log_id)
    parse_timestamp(exported_at)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "log_id": log_id,
        "key_fingerprint": key_fingerprint,
        "exported_at": exported_at,
        "entries": [
            {"entry": entry_json(s.entry), "signature": base64.b64encode(s.signature).decode("ascii")}
            for s in entries
        ],
        "checkpoints": [c.to_json() for c in checkpoints],
    }


def export_text(export: Mapping[str, JsonValue]) -> str:
    """The export as JSON text, one entry or checkpoint per line so it reads and diffs well."""
    head = [
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in export.items() if k not in _LISTS
    ]
    tails = [f"{json.dumps(k)}: [\n" + ",\n".join(_lines(export, k)) + "\n]" for k in _LISTS]
    return "{\n" + ",\n".join(head + tails) + "\n}\n"


_LISTS = ("entries", "checkpoints")


def _lines(export: Mapping[str, JsonValue], key: str) -> list[str]:
    items = export.get(key, [])
    if not isinstance(items, list):
        raise ValidationError(f"audit export field {key!r} must be a list")
    return [canonical_json(item).decode("utf-8") for item in items]


def write_export(path: Path, export: Mapping[str, JsonValue]) -> None:
    """Write the export atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(export_text(export))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write the audit export {path}: {exc.strerror or exc}") from None
