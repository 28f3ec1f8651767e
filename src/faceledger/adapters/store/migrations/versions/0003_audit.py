"""The append-only audit log and its signed checkpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Written by hand, frozen: later schema changes go in new revisions, never here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("log_id", sa.String(128), nullable=False),
        sa.Column("key_fingerprint", sa.String(71), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_log_single_row"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", ID, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(27), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(88), nullable=False),
    )
    op.create_index("ix_audit_entries_ts", "audit_entries", ["ts"])
    op.create_index("ix_audit_entries_action_ts", "audit_entries", ["action", "ts"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("log_id", sa.String(128), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.String(27), nullable=False),
        sa.Column("key_fingerprint", sa.String(71), nullable=False),
        sa.Column("signature", sa.String(88), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_checkpoints_tree_size", "audit_checkpoints", ["tree_size"])


def downgrade() -> None:
    op.drop_index("ix_audit_checkpoints_tree_size", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_entries_action_ts", table_name="audit_entries")
    op.drop_index("ix_audit_entries_ts", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("audit_log")
