"""The append-only audit log and its signed checkpoints.

Registered on the shared :data:`faceledger.adapters.store.tables_base.metadata`; created by migration 0003.

Entries are stored exactly as they were signed: the timestamp in its one text form and the
details as their canonical JSON text, so an entry read back hashes to the same bytes (and
an entry changed in the database does not). ``audit_log`` is a one-row head: every append
updates its ``size`` first, which takes the write lock on SQLite and a row lock on
PostgreSQL, so concurrent appends queue instead of forking the log; the primary key on
``seq`` is the last line of defence.

Each checkpoint row also keeps the Merkle frontier of the tree it signed, so that the next
checkpoint folds in only the entries after it (see :mod:`faceledger.services.audit`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, String, Table, Text

from faceledger.adapters.store.tables_base import Id, metadata

LOG_ID_LEN = 128
TIMESTAMP_LEN = 27  # 2024-01-31T12:00:00.000000Z
FINGERPRINT_LEN = 71  # sha256: + 64 hex digits
HASH_HEX_LEN = 64
SIGNATURE_B64_LEN = 88  # base64 of a 64-byte Ed25519 signature
ACTION_LEN = 64

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("log_id", String(LOG_ID_LEN), nullable=False),
    Column("key_fingerprint", String(FINGERPRINT_LEN), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("ts", String(TIMESTAMP_LEN), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(ACTION_LEN), nullable=False),
    Column("object", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("leaf_hash", String(HASH_HEX_LEN), nullable=False),
    Column("signature", String(SIGNATURE_B64_LEN), nullable=False),
    Index("ix_audit_entries_ts", "ts"),
    Index("ix_audit_entries_action_ts", "action", "ts"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("log_id", String(LOG_ID_LEN), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", String(HASH_HEX_LEN), nullable=False),
    Column("timestamp", String(TIMESTAMP_LEN), nullable=False),
    Column("key_fingerprint", String(FINGERPRINT_LEN), nullable=False),
    Column("signature", String(SIGNATURE_B64_LEN), nullable=False),
    # The Merkle frontier at tree_size (migration 0011): the roots of its perfect subtrees as hex,
    # largest first, comma-separated ("" for the empty tree). NULL on rows from before 0011. Not
    # covered by the signature: it is used only when it folds to the signed root_hash.
    Column("frontier", Text, nullable=True),
    Index("ix_audit_checkpoints_tree_size", "tree_size"),
    sqlite_autoincrement=True,
)
