"""The database schema, in portable SQLAlchemy Core types.

Only types that mean the same on SQLite and PostgreSQL are used, so a deployment can move
to a server database by changing the URL. The Alembic migrations under ``migrations/``
create exactly this schema; a test compares the two.

Face ids double as vector ids in the index, so they are 64-bit on servers (on SQLite an
INTEGER PRIMARY KEY is already 64-bit and must stay spelled that way to alias the rowid).
Ids are never reused (AUTOINCREMENT on SQLite, sequences elsewhere): an audit record that
names face 1234 must never come to mean somebody else's face after a purge.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The shared metadata and column conventions live in tables_base, so that the other table modules
# (imported at the end of this one) need not import this module back.
from faceledger.adapters.store.tables_base import MODEL_KEY_LEN, NAME_LEN, SHA256_LEN, SUBJECT_LEN, Id
from faceledger.adapters.store.tables_base import metadata as metadata

galleries = Table(
    "galleries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    Column("legal_basis", Text, nullable=False),
    Column("source_description", Text, nullable=False),
    Column("retention_days", Integer, nullable=True),
    Column("required_provenance", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The unit of the gallery administrator who created it (migration 0008; NULL: created before).
    Column("owner_unit", String(200), nullable=True),
    # Bumped in the same transaction as every change to the gallery's faces, so that a long-running
    # process holding the gallery's vector index in memory knows when to reconcile it (migration 0005).
    Column("faces_version", BigInteger, nullable=False, server_default="0"),
    sqlite_autoincrement=True,
)

models = Table(
    "models",
    metadata,
    Column("key", String(MODEL_KEY_LEN), primary_key=True),
    Column("backend", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("weights_sha256", String(SHA256_LEN), nullable=False),
    Column("dim", Integer, nullable=False),
)

subjects = Table(
    "subjects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gallery_id", Id, ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", String(SUBJECT_LEN), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("gallery_id", "external_id", name="uq_subjects_gallery_id_external_id"),
    sqlite_autoincrement=True,
)

enrolment_runs = Table(
    "enrolment_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gallery_id", Id, ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
    Column("source", Text, nullable=False),
    Column("enrolled_by", String(200), nullable=False),
    Column("model_key", String(MODEL_KEY_LEN), nullable=True),
    Column("settings", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("enrolled", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Index("ix_enrolment_runs_gallery_id", "gallery_id"),
    sqlite_autoincrement=True,
)

images = Table(
    "images",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gallery_id", Id, ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
    Column("subject_id", Id, ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", Id, ForeignKey("enrolment_runs.id", ondelete="SET NULL"), nullable=True),
    Column("sha256", String(SHA256_LEN), nullable=False),
    Column("format", String(16), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("byte_size", BigInteger, nullable=False),
    # provenance
    Column("source", Text, nullable=False),
    Column("record_id", String(200), nullable=True),
    Column("collected_on", Date, nullable=True),
    Column("enrolled_by", String(200), nullable=False),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("retention_until", Date, nullable=True),
    # How enrolment chose the face (domain.face_choice.FaceChoice.to_dict; migration 0014).
    Column("face_choice", JSON, nullable=True),
    UniqueConstraint("gallery_id", "sha256", name="uq_images_gallery_id_sha256"),
    Index("ix_images_sha256", "sha256"),
    Index("ix_images_subject_id", "subject_id"),
    Index("ix_images_retention_until", "retention_until"),
    sqlite_autoincrement=True,
)

faces = Table(
    "faces",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("image_id", Id, ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    Column("subject_id", Id, ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("gallery_id", Id, ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
    Column("face_index", Integer, nullable=False),
    Column("box", JSON, nullable=False),
    Column("landmarks", JSON, nullable=False),
    Column("quality", JSON, nullable=False),
    Column("quality_score", Float, nullable=False),
    Column("detector", String(64), nullable=False),
    Column("detector_score", Float, nullable=False),
    Column("model_key", String(MODEL_KEY_LEN), ForeignKey("models.key"), nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_faces_gallery_id_model_key", "gallery_id", "model_key"),
    Index("ix_faces_image_id", "image_id"),
    Index("ix_faces_subject_id", "subject_id"),
    sqlite_autoincrement=True,
)

enrolment_skips = Table(
    "enrolment_skips",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("enrolment_runs.id", ondelete="CASCADE"), nullable=False),
    Column("source", Text, nullable=False),
    Column("subject_external_id", String(SUBJECT_LEN), nullable=True),
    Column("sha256", String(SHA256_LEN), nullable=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_enrolment_skips_run_id", "run_id"),
    sqlite_autoincrement=True,
)


# Why and on whose authority a gallery's images were purged (migration 0009). Rows name the gallery
# and the image hashes, never a subject's external id: like the audit log, they outlive the purge.
purges = Table(
    "purges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gallery", String(NAME_LEN), nullable=False),
    Column("scope", String(16), nullable=False),  # subject, gallery, expired
    Column("reason", String(32), nullable=False),  # court_order, retention, expungement
    Column("authority", Text, nullable=False),
    Column("actor", String(SUBJECT_LEN), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("faces", Integer, nullable=False),
    Index("ix_purges_gallery", "gallery"),
    sqlite_autoincrement=True,
)

# Each image hash a purge removed from a gallery; enrolment refuses the hash again in that gallery
# until a gallery administrator re-enrols it with a recorded reason (the re_enrolled_* columns).
purged_images = Table(
    "purged_images",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("purge_id", Id, ForeignKey("purges.id", ondelete="CASCADE"), nullable=False),
    Column("gallery", String(NAME_LEN), nullable=False),
    Column("sha256", String(SHA256_LEN), nullable=False),
    Column("re_enrolled_at", DateTime(timezone=True), nullable=True),
    Column("re_enrolled_by", String(SUBJECT_LEN), nullable=True),
    Column("re_enrol_reason", Text, nullable=True),
    Index("ix_purged_images_gallery_sha256", "gallery", "sha256"),
    Index("ix_purged_images_purge_id", "purge_id"),
    sqlite_autoincrement=True,
)


# The service's tables live in their own modules on the same metadata; importing them here makes
# ``tables.metadata`` the whole schema (migrations are compared against it in the tests).
from faceledger.adapters.store import tables_accounts, tables_audit, tables_cases  # noqa: E402, F401
