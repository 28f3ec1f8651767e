"""An enrolled image keeps how its face was chosen (the documented rule in domain/face_choice.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

Nullable: images enrolled before it were enrolled only when they showed exactly one face.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("face_choice", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("face_choice")
