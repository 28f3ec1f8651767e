"""Units own galleries and searches: ``galleries.owner_unit`` and ``searches.unit``.

A gallery's owner unit is the unit of the gallery administrator who created it; a search's
unit is the searching person's unit when it was made. Existing searches take the unit their
account has now (the best record there is); existing galleries have no owner unit (NULL),
so until the policy names who administers them (``[[galleries]] admin_units``) any unit's
gallery administrators may (see docs/policy.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIT_LEN = 200


def upgrade() -> None:
    with op.batch_alter_table("galleries") as batch:
        batch.add_column(sa.Column("owner_unit", sa.String(UNIT_LEN), nullable=True))
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("unit", sa.String(UNIT_LEN), nullable=True))
    op.execute(
        "UPDATE searches SET unit = (SELECT users.unit FROM users WHERE users.id = searches.user_id) "
        "WHERE unit IS NULL"
    )
    op.create_index("ix_searches_unit", "searches", ["unit"])


def downgrade() -> None:
    op.drop_index("ix_searches_unit", table_name="searches")
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("unit")
    with op.batch_alter_table("galleries") as batch:
        batch.drop_column("owner_unit")
