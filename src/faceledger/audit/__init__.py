"""The tamper-evident audit log: canonical entries, an RFC 6962 Merkle tree, signed checkpoints.

Every action is appended as an :class:`AuditEntry` in the same database transaction as the
action itself, signed by the log key (:func:`seal_entry`); signed :class:`Checkpoint` s of
the tree are written periodically and on demand, to the database and to a file an operator
ships elsewhere. ``verify.py`` checks an export standalone (it is deliberately not imported
here, so that ``python -m faceledger.audit.verify`` runs it cleanly). See docs/audit.md.
"""

from __future__ import annotations

from faceledger.audit.canonical import (
    canonical_json,
    entry_bytes,
    entry_from_json,
    entry_json,
    entry_leaf_data,
    entry_signature_message,
    format_timestamp,
    parse_timestamp,
)
from faceledger.audit.checkpoint import (
    Checkpoint,
    Signer,
    Verifier,
    append_checkpoint,
    checkpoint_body,
    checkpoint_is_valid,
    read_checkpoints,
    sign_checkpoint,
)
from faceledger.audit.events import (
    SYSTEM_ACTOR,
    AuditAction,
    AuditEntry,
    AuditEvent,
    JsonValue,
    decimal_string,
)
from faceledger.audit.export import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    SealedEntry,
    build_export,
    entry_leaf_hash,
    export_text,
    seal_entry,
    write_export,
)
from faceledger.audit.merkle import (
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "SYSTEM_ACTOR",
    "AuditAction",
    "AuditEntry",
    "AuditEvent",
    "Checkpoint",
    "JsonValue",
    "MerkleAccumulator",
    "SealedEntry",
    "Signer",
    "Verifier",
    "append_checkpoint",
    "build_export",
    "canonical_json",
    "checkpoint_body",
    "checkpoint_is_valid",
    "consistency_proof",
    "decimal_string",
    "entry_bytes",
    "entry_from_json",
    "entry_json",
    "entry_leaf_data",
    "entry_leaf_hash",
    "entry_signature_message",
    "export_text",
    "format_timestamp",
    "inclusion_proof",
    "parse_timestamp",
    "read_checkpoints",
    "root_from_leaf_hashes",
    "seal_entry",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "write_export",
]
