"""Policies, cases, accountable searches, probes and their edits, and human review.

Registered on the shared :data:`faceledger.adapters.store.tables_base.metadata`; created by migration 0004.

People are recorded by username (what the policy and the review rules reason about) and,
where known, by account id. Neither is a foreign key: accounts are never deleted, and a
record of who did what must outlive any later change to the accounts tables. Gallery faces
named by candidates are not foreign keys either: a purge removes the face, never the
record that a person was shown it (face ids are never reused).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from faceledger.adapters.store.tables_base import (
    MODEL_KEY_LEN,
    NAME_LEN,
    SHA256_LEN,
    SUBJECT_LEN,
    Id,
    metadata,
)
from faceledger.domain.normalisation import MAX_KEY_CHARS

USER_LEN = 200
VERSION_LEN = 100
CASE_LEN = 100  # faceledger.domain.policy.MAX_CASE_NUMBER_CHARS
PURPOSE_LEN = 100
RULE_LEN = 64
STATE_LEN = 32
NORMALISATION_LEN = MAX_KEY_CHARS

TS = DateTime(timezone=True)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", String(VERSION_LEN), nullable=False),
    Column("sha256", String(SHA256_LEN), nullable=False),
    Column("organisation", String(USER_LEN), nullable=False),
    Column("text", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("loaded_by", String(USER_LEN), nullable=False),
    Column("loaded_by_user_id", Id, nullable=True),
    Column("loaded_at", TS, nullable=False),
    # True for the one policy in force, NULL for every other row: NULLs never collide in a
    # unique index (SQLite and PostgreSQL alike), so the database itself allows one active row.
    Column("active", Boolean, nullable=True),
    UniqueConstraint("active", name="uq_policy_versions_active"),
    Index("ix_policy_versions_version", "version"),
    sqlite_autoincrement=True,
)

cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_number", String(CASE_LEN), nullable=False, unique=True),
    Column("opened_at", TS, nullable=False),
    Column("opened_by", String(USER_LEN), nullable=False),
    sqlite_autoincrement=True,
)

probes = Table(
    "probes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha256", String(SHA256_LEN), nullable=False, unique=True),
    Column("format", String(16), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("byte_size", BigInteger, nullable=False),
    Column("first_seen_at", TS, nullable=False),
    # Set when retention removed the file; the row (and so the hash) stays as the record.
    Column("purged_at", TS, nullable=True),
    sqlite_autoincrement=True,
)

searches = Table(
    "searches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "search" (1:N) or "verify" (1:1)
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    Column("purpose", String(PURPOSE_LEN), nullable=False),
    Column("justification", Text, nullable=True),
    Column("on_behalf_of", String(USER_LEN), nullable=True),
    Column("agreement_ref", String(USER_LEN), nullable=True),
    Column("username", String(USER_LEN), nullable=False),
    Column("user_id", Id, nullable=True),
    Column("device_id", String(USER_LEN), nullable=True),
    # The searching person's unit: the search, its case entries, candidates, probe and review
    # belong to it (migration 0008; NULL only for a search whose account was unknown then).
    Column("unit", String(USER_LEN), nullable=True),
    Column("policy_id", Id, ForeignKey("policy_versions.id"), nullable=False),
    Column("policy_version", String(VERSION_LEN), nullable=False),
    Column("rule_ids", JSON, nullable=False),
    Column("probe_id", Id, ForeignKey("probes.id"), nullable=False),
    Column("searched_sha256", String(SHA256_LEN), nullable=False),  # pixels analysed (after edits)
    Column("second_probe_id", Id, ForeignKey("probes.id"), nullable=True),
    Column("model_key", String(MODEL_KEY_LEN), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("threshold_fmr", Float, nullable=True),
    Column("top_k", Integer, nullable=True),
    Column("galleries", JSON, nullable=False),
    Column("faces_found", Integer, nullable=False),
    Column("probe_face", JSON, nullable=True),
    Column("probe_quality", Float, nullable=True),
    Column("score", Float, nullable=True),
    Column("same_person", Boolean, nullable=True),
    # 1:1 only: how often two different people score this high (migration 0013; NULL before).
    Column("estimated_fmr", Float, nullable=True),
    # The key of the score normalisation that produced the scores (faceledger.domain.normalisation;
    # migration 0015: "none" for every row before it, and no default since, so each row names it).
    Column("score_normalisation", String(NORMALISATION_LEN), nullable=False),
    # Mean-template searches: {"<template size>": threshold} (migration 0016; NULL otherwise and before).
    Column("template_thresholds", JSON, nullable=True),
    Column("timings", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("probe_retain_until", TS, nullable=False),
    Column("review_state", String(STATE_LEN), nullable=True),
    Index("ix_searches_case_id", "case_id"),
    Index("ix_searches_username_created_at", "username", "created_at"),
    Index("ix_searches_probe_id", "probe_id"),
    Index("ix_searches_review_state", "review_state"),
    Index("ix_searches_unit", "unit"),
    sqlite_autoincrement=True,
)

probe_edits = Table(
    "probe_edits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("search_id", Id, ForeignKey("searches.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("params", JSON, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("sha256", String(SHA256_LEN), nullable=False),
    UniqueConstraint("search_id", "seq", name="uq_probe_edits_search_id_seq"),
    sqlite_autoincrement=True,
)

search_candidates = Table(
    "search_candidates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("search_id", Id, ForeignKey("searches.id"), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("subject_id", String(SUBJECT_LEN), nullable=False),
    Column("face_id", BigInteger, nullable=False),
    Column("gallery", String(NAME_LEN), nullable=False),
    Column("score", Float, nullable=False),
    Column("estimated_fmr", Float, nullable=True),
    Column("above_threshold", Boolean, nullable=False),
    # 1: the score compares with one image; n: with the subject's mean template of n (migration 0016).
    Column("template_images", Integer, nullable=False),
    UniqueConstraint("search_id", "face_id", name="uq_search_candidates_search_id_face_id"),
    sqlite_autoincrement=True,
)

review_steps = Table(
    "review_steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("search_id", Id, ForeignKey("searches.id"), nullable=False),
    # (search_id, seq) is unique: two people recording a step at once cannot fork a review.
    Column("seq", Integer, nullable=False),
    Column("event", String(STATE_LEN), nullable=False),
    Column("from_state", String(STATE_LEN), nullable=False),
    Column("to_state", String(STATE_LEN), nullable=False),
    Column("username", String(USER_LEN), nullable=False),
    Column("user_id", Id, nullable=True),
    Column("at", TS, nullable=False),
    Column("details", JSON, nullable=False),
    Column("policy_version", String(VERSION_LEN), nullable=False),
    UniqueConstraint("search_id", "seq", name="uq_review_steps_search_id_seq"),
    sqlite_autoincrement=True,
)

policy_decisions = Table(
    "policy_decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("username", String(USER_LEN), nullable=False),
    Column("user_id", Id, nullable=True),
    Column("action", String(32), nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("rule_id", String(RULE_LEN), nullable=False),
    Column("policy_version", String(VERSION_LEN), nullable=False),
    Column("reason", Text, nullable=False),
    # As asked (cut to CASE_LEN): a refused request may carry a malformed case number or none.
    Column("case_number", String(CASE_LEN), nullable=True),
    Column("search_id", Id, ForeignKey("searches.id"), nullable=True),
    Index("ix_policy_decisions_case_number", "case_number"),
    Index("ix_policy_decisions_search_id", "search_id"),
    # The day's searches of one person, counted under the daily-limit lock (migration 0010).
    Index("ix_policy_decisions_username_at", "username", "at"),
    sqlite_autoincrement=True,
)

candidate_views = Table(
    "candidate_views",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("search_id", Id, ForeignKey("searches.id"), nullable=False),
    Column("face_id", BigInteger, nullable=False),
    Column("username", String(USER_LEN), nullable=False),
    Column("user_id", Id, nullable=True),
    Column("at", TS, nullable=False),
    Index("ix_candidate_views_search_id", "search_id"),
    sqlite_autoincrement=True,
)
