"""Why and on whose authority each purge was made, and the image hashes it removed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "purges",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("gallery", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("authority", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_purges_gallery", "purges", ["gallery"])
    op.create_table(
        "purged_images",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("purge_id", _Id, nullable=False),
        sa.Column("gallery", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("re_enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("re_enrolled_by", sa.String(200), nullable=True),
        sa.Column("re_enrol_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["purge_id"], ["purges.id"], name="fk_purged_images_purge_id_purges", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_purged_images_gallery_sha256", "purged_images", ["gallery", "sha256"])
    op.create_index("ix_purged_images_purge_id", "purged_images", ["purge_id"])


def downgrade() -> None:
    op.drop_index("ix_purged_images_purge_id", table_name="purged_images")
    op.drop_index("ix_purged_images_gallery_sha256", table_name="purged_images")
    op.drop_table("purged_images")
    op.drop_index("ix_purges_gallery", table_name="purges")
    op.drop_table("purges")
