"""Browsers enrolled as registered devices with WebAuthn.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

``browser_enrolments``: the one-time codes a system administrator issues for a device (only the
code's SHA-256 is kept; each expires and is used at most once). ``browser_credentials``: the
WebAuthn public key, credential id and sign count a browser's authenticator made with one code.
``sessions.browser_credential_id``: the credential whose assertion bound a page session to its
device; sessions opened before this revision have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "browser_enrolments",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(64), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_browser_enrolments_device_id", "browser_enrolments", ["device_id"])
    op.create_table(
        "browser_credentials",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("enrolment_id", _ID, sa.ForeignKey("browser_enrolments.id"), nullable=False, unique=True),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("enrolled_by", sa.String(64), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_browser_credentials_device_id", "browser_credentials", ["device_id"])
    with op.batch_alter_table("sessions", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("browser_credential_id", _ID, nullable=True))


def downgrade() -> None:
    # SQLite rebuilds the table to drop the column: keep its AUTOINCREMENT (ids never reused).
    with op.batch_alter_table("sessions", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("browser_credential_id")
    op.drop_index("ix_browser_credentials_device_id", table_name="browser_credentials")
    op.drop_table("browser_credentials")
    op.drop_index("ix_browser_enrolments_device_id", table_name="browser_enrolments")
    op.drop_table("browser_enrolments")
