"""Every search and 1:1 comparison names the score normalisation that produced its scores.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

Searches and comparisons recorded before it were all scored as the raw cosine similarity of
unit embeddings, so they get ``none`` (faceledger.domain.normalisation). The default only
fills those rows and is then dropped: every new row must name its normalisation, so a
writer that forgets cannot pass a later normalisation's scores off as ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = sa.String(32)  # faceledger.domain.normalisation.MAX_KEY_CHARS


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(
            sa.Column("score_normalisation", _KEY, nullable=False, server_default=sa.text("'none'"))
        )
    with op.batch_alter_table("searches", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column(
            "score_normalisation", existing_type=_KEY, existing_nullable=False, server_default=None
        )


def downgrade() -> None:
    with op.batch_alter_table("searches", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("score_normalisation")
