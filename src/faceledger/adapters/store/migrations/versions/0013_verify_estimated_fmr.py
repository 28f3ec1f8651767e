"""A 1:1 comparison keeps the estimated false match rate at its score.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

Nullable: comparisons recorded before it (and 1:N searches, whose candidates carry their own)
have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("estimated_fmr", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("searches", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("estimated_fmr")
