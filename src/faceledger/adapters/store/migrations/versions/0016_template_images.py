"""Each stored candidate says how many of its subject's images its score compares with.

A search also keeps the threshold of each template size it applied (``template_thresholds``,
JSON ``{"<size>": threshold}``); NULL for searches that scored subjects by their best face.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

A search scored with mean templates (score normalisation ``mean-template``) gives each subject
the score of its template of n images, read on the calibration of size n. Every candidate stored
before it compared with one image (normalisation ``none``: the subject's best face), so old rows
get 1. The default only fills those rows and is then dropped: a writer must say n.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("searches", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("template_thresholds", sa.JSON(), nullable=True))
    with op.batch_alter_table("search_candidates") as batch:
        batch.add_column(
            sa.Column("template_images", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
    with op.batch_alter_table("search_candidates", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column(
            "template_images", existing_type=sa.Integer(), existing_nullable=False, server_default=None
        )


def downgrade() -> None:
    with op.batch_alter_table("search_candidates", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("template_images")
    with op.batch_alter_table("searches", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("template_thresholds")
