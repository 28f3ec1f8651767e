"""API tokens bound to the registered device they were made on, or marked for server use.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

Tokens made before this revision have neither: at use they are refused and must be made
again (from a session on a registered device, or as a server token where the policy allows).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("device_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("server", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # SQLite rebuilds the table to drop the columns: keep its AUTOINCREMENT (ids never reused).
    with op.batch_alter_table("api_tokens", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("server")
        batch.drop_column("device_id")
