"""One-time account activation and the vouch of a second person (columns on ``users``).

An account made by an administrator (or reset by one) holds a one-time activation code,
stored only as its SHA-256, until its owner activates it with their own password; it is
usable only once a supervisor of its unit, other than whoever issued the code, has also
vouched for it (see docs/accounts.md). Accounts that exist already count as activated and
vouched for: ``activated_at`` and ``vouched_at`` take their last change, ``vouched_by``
says that the vouch predates the rule.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHA256_LEN = 64
USERNAME_LEN = 64
BEFORE_THE_RULE = "(before activation)"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("activation_hash", sa.String(SHA256_LEN), nullable=True))
        batch.add_column(sa.Column("activation_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("activation_issued_by", sa.String(USERNAME_LEN), nullable=True))
        batch.add_column(sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("vouched_by", sa.String(USERNAME_LEN), nullable=True))
        batch.add_column(sa.Column("vouched_at", sa.DateTime(timezone=True), nullable=True))
    users = sa.table(
        "users",
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("activated_at", sa.DateTime(timezone=True)),
        sa.column("vouched_by", sa.String(USERNAME_LEN)),
        sa.column("vouched_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        users.update().values(
            activated_at=users.c.updated_at, vouched_by=BEFORE_THE_RULE, vouched_at=users.c.updated_at
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        for name in (
            "vouched_at",
            "vouched_by",
            "activated_at",
            "activation_issued_by",
            "activation_expires_at",
            "activation_hash",
        ):
            batch.drop_column(name)
