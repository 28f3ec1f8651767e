"""The Merkle frontier of each audit checkpoint, so the next one reads only the entries after it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

A nullable text column: checkpoints signed before it have none, and the service then reads
the whole log once when it next signs (see faceledger.services.audit).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("frontier", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite rebuilds the table to drop a column: keep its AUTOINCREMENT (ids are never reused).
    with op.batch_alter_table("audit_checkpoints", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("frontier")
