"""Policies, cases, accountable searches, probes and their edits, and human review.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Written by hand, frozen: later schema changes go in new revisions, never here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
USER = 200
VERSION = 100
CASE = 100
STATE = 32


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, ID, sa.ForeignKey(target), nullable=nullable)


def _policy_and_cases() -> None:
    op.create_table(
        "policy_versions",
        _id(),
        sa.Column("version", sa.String(VERSION), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("organisation", sa.String(USER), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("loaded_by", sa.String(USER), nullable=False),
        sa.Column("loaded_by_user_id", ID, nullable=True),
        sa.Column("loaded_at", TS, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.UniqueConstraint("active", name="uq_policy_versions_active"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_policy_versions_version", "policy_versions", ["version"])
    op.create_table(
        "cases",
        _id(),
        sa.Column("case_number", sa.String(CASE), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("opened_by", sa.String(USER), nullable=False),
        sa.UniqueConstraint("case_number", name="uq_cases_case_number"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "probes",
        _id(),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("byte_size", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("purged_at", TS, nullable=True),
        sa.UniqueConstraint("sha256", name="uq_probes_sha256"),
        sqlite_autoincrement=True,
    )


def _searches() -> None:
    op.create_table(
        "searches",
        _id(),
        sa.Column("kind", sa.String(16), nullable=False),
        _fk("case_id", "cases.id"),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("on_behalf_of", sa.String(USER), nullable=True),
        sa.Column("agreement_ref", sa.String(USER), nullable=True),
        sa.Column("username", sa.String(USER), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("device_id", sa.String(USER), nullable=True),
        _fk("policy_id", "policy_versions.id"),
        sa.Column("policy_version", sa.String(VERSION), nullable=False),
        sa.Column("rule_ids", sa.JSON(), nullable=False),
        _fk("probe_id", "probes.id"),
        sa.Column("searched_sha256", sa.String(64), nullable=False),
        _fk("second_probe_id", "probes.id", nullable=True),
        sa.Column("model_key", sa.String(200), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("threshold_fmr", sa.Float(), nullable=True),
        sa.Column("top_k", sa.Integer(), nullable=True),
        sa.Column("galleries", sa.JSON(), nullable=False),
        sa.Column("faces_found", sa.Integer(), nullable=False),
        sa.Column("probe_face", sa.JSON(), nullable=True),
        sa.Column("probe_quality", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("same_person", sa.Boolean(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("probe_retain_until", TS, nullable=False),
        sa.Column("review_state", sa.String(STATE), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_searches_case_id", "searches", ["case_id"])
    op.create_index("ix_searches_username_created_at", "searches", ["username", "created_at"])
    op.create_index("ix_searches_probe_id", "searches", ["probe_id"])
    op.create_index("ix_searches_review_state", "searches", ["review_state"])
    op.create_table(
        "probe_edits",
        _id(),
        _fk("search_id", "searches.id"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("search_id", "seq", name="uq_probe_edits_search_id_seq"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "search_candidates",
        _id(),
        _fk("search_id", "searches.id"),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("face_id", sa.BigInteger(), nullable=False),
        sa.Column("gallery", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("estimated_fmr", sa.Float(), nullable=True),
        sa.Column("above_threshold", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("search_id", "face_id", name="uq_search_candidates_search_id_face_id"),
        sqlite_autoincrement=True,
    )


def _review_and_decisions() -> None:
    op.create_table(
        "review_steps",
        _id(),
        _fk("search_id", "searches.id"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(STATE), nullable=False),
        sa.Column("from_state", sa.String(STATE), nullable=False),
        sa.Column("to_state", sa.String(STATE), nullable=False),
        sa.Column("username", sa.String(USER), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(VERSION), nullable=False),
        sa.UniqueConstraint("search_id", "seq", name="uq_review_steps_search_id_seq"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "policy_decisions",
        _id(),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(USER), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(VERSION), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("case_number", sa.String(CASE), nullable=True),
        _fk("search_id", "searches.id", nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_policy_decisions_case_number", "policy_decisions", ["case_number"])
    op.create_index("ix_policy_decisions_search_id", "policy_decisions", ["search_id"])
    op.create_table(
        "candidate_views",
        _id(),
        _fk("search_id", "searches.id"),
        sa.Column("face_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(USER), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_candidate_views_search_id", "candidate_views", ["search_id"])


def upgrade() -> None:
    _policy_and_cases()
    _searches()
    _review_and_decisions()


def downgrade() -> None:
    for table in (
        "candidate_views",
        "policy_decisions",
        "review_steps",
        "search_candidates",
        "probe_edits",
        "searches",
        "probes",
        "cases",
        "policy_versions",
    ):
        op.drop_table(table)
