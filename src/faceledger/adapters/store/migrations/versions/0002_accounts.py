"""Accounts, roles, API tokens, sessions and registered devices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Written by hand, frozen once released: later changes go in new revisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
HASH = sa.String(64)
NAME = sa.String(64)
LABEL = sa.String(200)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def _user_fk() -> sa.Column[int]:
    return sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("username", NAME, nullable=False),
        sa.Column("display_name", LABEL, nullable=False),
        sa.Column("organisation", LABEL, nullable=False),
        sa.Column("unit", LABEL, nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("suspended_reason", sa.Text(), nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("trial", sa.Boolean(), nullable=False),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "user_roles",
        _user_fk(),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("granted_by", NAME, nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "role", name="pk_user_roles"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", LABEL, nullable=False),
        sa.Column("unit", LABEL, nullable=False),
        sa.Column("credential_hash", HASH, nullable=False),
        sa.Column("registered_by", NAME, nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_by", NAME, nullable=True),
    )
    op.create_table(
        "sessions",
        _id(),
        _user_fk(),
        sa.Column("token_hash", HASH, nullable=False),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=True),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_device_id", "sessions", ["device_id"])
    op.create_table(
        "api_tokens",
        _id(),
        _user_fk(),
        sa.Column("name", LABEL, nullable=False),
        sa.Column("token_hash", HASH, nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_by", NAME, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "bootstrap_secrets",
        _id(),
        sa.Column("secret_hash", HASH, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("used_by", NAME, nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_bootstrap_secrets_secret_hash"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    for table in ("bootstrap_secrets", "api_tokens", "sessions", "devices", "user_roles", "users"):
        op.drop_table(table)
