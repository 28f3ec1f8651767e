"""An index for counting one person's decisions of a day (the daily limit, counted under its lock).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_policy_decisions_username_at", "policy_decisions", ["username", "at"])


def downgrade() -> None:
    op.drop_index("ix_policy_decisions_username_at", table_name="policy_decisions")
