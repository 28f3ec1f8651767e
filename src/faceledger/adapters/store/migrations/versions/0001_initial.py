"""Initial schema: galleries, models, subjects, enrolment runs and skips, images, faces.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand, frozen: later schema changes go in new revisions, never here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, *, ondelete: str = "CASCADE", nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, ID, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "galleries",
        _id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("source_description", sa.Text(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("required_provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name", name="uq_galleries_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "models",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
    )
    op.create_table(
        "subjects",
        _id(),
        _fk("gallery_id", "galleries.id"),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("gallery_id", "external_id", name="uq_subjects_gallery_id_external_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "enrolment_runs",
        _id(),
        _fk("gallery_id", "galleries.id"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("enrolled_by", sa.String(200), nullable=False),
        sa.Column("model_key", sa.String(200), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_enrolment_runs_gallery_id", "enrolment_runs", ["gallery_id"])
    op.create_table(
        "images",
        _id(),
        _fk("gallery_id", "galleries.id"),
        _fk("subject_id", "subjects.id"),
        _fk("run_id", "enrolment_runs.id", ondelete="SET NULL", nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("byte_size", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("record_id", sa.String(200), nullable=True),
        sa.Column("collected_on", sa.Date(), nullable=True),
        sa.Column("enrolled_by", sa.String(200), nullable=False),
        sa.Column("enrolled_at", TS, nullable=False),
        sa.Column("retention_until", sa.Date(), nullable=True),
        sa.UniqueConstraint("gallery_id", "sha256", name="uq_images_gallery_id_sha256"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])
    op.create_index("ix_images_subject_id", "images", ["subject_id"])
    op.create_index("ix_images_retention_until", "images", ["retention_until"])
    op.create_table(
        "faces",
        _id(),
        _fk("image_id", "images.id"),
        _fk("subject_id", "subjects.id"),
        _fk("gallery_id", "galleries.id"),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("landmarks", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("detector_score", sa.Float(), nullable=False),
        sa.Column("model_key", sa.String(200), sa.ForeignKey("models.key"), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_faces_gallery_id_model_key", "faces", ["gallery_id", "model_key"])
    op.create_index("ix_faces_image_id", "faces", ["image_id"])
    op.create_index("ix_faces_subject_id", "faces", ["subject_id"])
    op.create_table(
        "enrolment_skips",
        _id(),
        _fk("run_id", "enrolment_runs.id"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("subject_external_id", sa.String(200), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_enrolment_skips_run_id", "enrolment_skips", ["run_id"])


def downgrade() -> None:
    for table in ("enrolment_skips", "faces", "images", "enrolment_runs", "subjects", "models", "galleries"):
        op.drop_table(table)
