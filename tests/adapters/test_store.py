"""The metadata store: migrations, SQLite settings, portability, and the repository queries.

Records are built by hand here; tests/services exercise the store with the real pipeline.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

import postgres_db
from faceledger.adapters.store import Store, repository
from faceledger.adapters.store import tables as t
from faceledger.adapters.store.engine import alembic_config, current_revision, head_revision
from faceledger.domain.models import Gallery, GalleryCounts, ModelRef, Provenance, SubjectSummary
from faceledger.errors import ConflictError, NotFoundError, StoreError

MODEL = ModelRef("test", "hand-made", "1", "ab" * 32, 4)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open_sqlite(tmp_path / "test.db")
    yield opened
    opened.close()


def _gallery(store: Store, name: str = "custody") -> Gallery:
    with store.begin() as conn:
        return repository.insert_gallery(
            conn, Gallery(name=name, legal_basis="statute s.1", source_description="test", retention_days=30)
        )


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(MODEL.dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _face(seed: int, model: ModelRef = MODEL) -> repository.NewFace:
    return repository.NewFace(
        face_index=0,
        box={"left": 1.0, "top": 2.0, "right": 30.0, "bottom": 40.0},
        landmarks={"right_eye": [5.0, 6.0], "scheme": "5pt"},
        quality={"score": 80.0, "issues": []},
        quality_score=80.0,
        detector="hand",
        detector_score=0.9,
        model=model,
        embedding=_vector(seed),
    )


def _enrol(
    store: Store, gallery: Gallery, subject: str, seed: int, face: repository.NewFace | None = None
) -> tuple[int, int, str]:
    """One image with one face, as the enrolment service writes it."""
    sha = f"{seed:064x}"
    with store.begin() as conn:
        subject_id = repository.get_or_create_subject(conn, gallery.id or 0, subject)
        image_id = repository.insert_image(
            conn,
            repository.NewImage(
                gallery_id=gallery.id or 0,
                subject_id=subject_id,
                sha256=sha,
                format="JPEG",
                width=250,
                height=250,
                byte_size=1000,
                provenance=Provenance("cam-1", date(2024, 5, 1), "officer", date(2025, 5, 1), "REC-1"),
            ),
        )
        face_id = repository.insert_face(
            conn,
            image_id=image_id,
            subject_id=subject_id,
            gallery_id=gallery.id or 0,
            face=face or _face(seed),
        )
    return image_id, face_id, sha


# --- schema and migrations -------------------------------------------------------------


def test_open_applies_migrations_up_to_head_and_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "fl.db"
    first = Store.open_sqlite(path)
    assert current_revision(first.engine) == head_revision() == "0017"
    tables = set(inspect(first.engine).get_table_names())
    first.close()

    second = Store.open_sqlite(path)
    assert current_revision(second.engine) == "0017"
    assert set(inspect(second.engine).get_table_names()) == tables
    second.close()
    assert tables >= {
        "galleries",
        "subjects",
        "images",
        "faces",
        "models",
        "enrolment_runs",
        "enrolment_skips",
    }


def test_migrations_create_exactly_the_schema_the_code_declares(store: Store) -> None:
    with store.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, t.metadata) == []


def test_existing_accounts_count_as_activated_and_vouched_after_0007(tmp_path: Path) -> None:
    """Migration 0007: accounts from before activation keep signing in; downgrading drops the columns."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0006")
    store = Store.open_sqlite(tmp_path / "old.db")  # applies 0007 and later
    store.close()
    command.downgrade(alembic_config(url), "0006")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, display_name, organisation, unit, password_hash, "
                "totp_confirmed, failed_attempts, suspended, trial, created_by, created_at, updated_at) "
                "VALUES ('old.timer', 'Old', 'Org', 'Unit', 'x', 0, 0, 0, 0, 'bootstrap', "
                "'2026-01-01 09:00:00', '2026-02-01 09:00:00')"
            )
        )
    engine.dispose()
    store = Store.open_sqlite(tmp_path / "old.db")
    try:
        with store.read() as conn:
            row = conn.execute(text("SELECT * FROM users WHERE username = 'old.timer'")).mappings().one()
        assert row["activation_hash"] is None
        assert row["vouched_by"] == "(before activation)"
        assert str(row["activated_at"]).startswith("2026-02-01 09:00:00")
        assert str(row["vouched_at"]).startswith("2026-02-01 09:00:00")
    finally:
        store.close()


def test_sqlite_runs_with_foreign_keys_wal_full_sync_and_secure_delete(store: Store) -> None:
    with store.read() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL
        assert conn.execute(text("PRAGMA secure_delete")).scalar_one() == 1


def test_foreign_keys_are_enforced(store: Store) -> None:
    gallery = _gallery(store)
    with pytest.raises(IntegrityError), store.begin() as conn:
        repository.insert_face(conn, image_id=999, subject_id=999, gallery_id=gallery.id or 0, face=_face(1))


def test_the_migration_renders_for_postgresql_without_sqlite_only_sql() -> None:
    """Offline mode renders the DDL a PostgreSQL server would run."""
    config = alembic_config("postgresql://user@localhost/faceledger")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    ddl = buffer.getvalue()

    assert "CREATE TABLE faces" in ddl
    assert "id BIGSERIAL NOT NULL" in ddl
    assert "BYTEA" in ddl
    assert "JSON" in ddl
    assert "AUTOINCREMENT" not in ddl.upper()
    assert "PRAGMA" not in ddl.upper()


def test_declared_tables_compile_for_postgresql() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in t.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        assert "AUTOINCREMENT" not in ddl.upper(), table.name


def test_a_database_from_a_newer_faceledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fl.db"
    Store.open_sqlite(path).close()
    newer = Store.open_sqlite(path)
    with newer.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    newer.close()

    with pytest.raises(StoreError, match="newer than this faceledger understands"):
        Store.open_sqlite(path)


def test_an_unusable_database_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        Store.open_sqlite(tmp_path / "missing-folder" / "fl.db")


# --- galleries, subjects, images, faces ------------------------------------------------


def test_gallery_round_trip_and_conflict(store: Store) -> None:
    gallery = _gallery(store)
    assert gallery.id is not None
    assert gallery.required_provenance == ("source", "collected_on")
    assert gallery.created_at is not None
    assert gallery.created_at.endswith("+00:00")

    with store.read() as conn:
        assert repository.get_gallery(conn, "custody") == gallery
        assert repository.list_galleries(conn) == [gallery]
    with pytest.raises(ConflictError, match="already exists"), store.begin() as conn:
        repository.insert_gallery(conn, Gallery("custody", "x", "y", None))


def test_missing_gallery_error_lists_the_known_ones(store: Store) -> None:
    _gallery(store, "custody")
    _gallery(store, "wanted")
    with pytest.raises(NotFoundError, match=r"'nope'.*custody, wanted"), store.read() as conn:
        repository.get_gallery(conn, "nope")


def test_faces_keep_everything_needed_to_rebuild_the_index(store: Store) -> None:
    gallery = _gallery(store)
    image_id, face_id, sha = _enrol(store, gallery, "S-1", seed=7)

    with store.read() as conn:
        ids = repository.face_ids(conn, gallery.id or 0, MODEL.key)
        found, vectors = repository.face_vectors(conn, list(ids), MODEL.dim)
        row = conn.execute(select(t.faces).where(t.faces.c.id == face_id)).one()
        image = repository.find_image(conn, gallery.id or 0, sha)
        assert repository.get_model(conn, MODEL.key) == MODEL

    assert ids.tolist() == [face_id]
    assert found.tolist() == [face_id]
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[0], _vector(7))
    assert row.box == {"left": 1.0, "top": 2.0, "right": 30.0, "bottom": 40.0}
    assert row.landmarks["scheme"] == "5pt"
    assert row.quality["score"] == 80.0
    assert row.detector_score == pytest.approx(0.9)
    assert row.model_key == MODEL.key
    assert image is not None
    assert image.id == image_id
    assert image.provenance == Provenance("cam-1", date(2024, 5, 1), "officer", date(2025, 5, 1), "REC-1")


def test_describe_faces_resolves_subject_gallery_and_image(store: Store) -> None:
    gallery = _gallery(store)
    _, first, sha = _enrol(store, gallery, "S-1", seed=1)
    _, second, _ = _enrol(store, gallery, "S-2", seed=2)

    with store.read() as conn:
        described = repository.describe_faces(conn, [first, second, 12345])

    assert set(described) == {first, second}
    assert described[first].subject_id == "S-1"
    assert described[first].gallery == "custody"
    assert described[first].image_sha256 == sha
    assert described[first].source == "cam-1"


def test_the_same_image_twice_in_one_gallery_is_a_conflict(store: Store) -> None:
    gallery = _gallery(store)
    _enrol(store, gallery, "S-1", seed=3)
    with pytest.raises(ConflictError, match="already enrolled"):
        _enrol(store, gallery, "S-2", seed=3)
    with store.read() as conn:
        assert repository.gallery_counts(conn, gallery.id or 0) == GalleryCounts(1, 1, 1)


def test_a_failed_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    """Image + face go in one transaction: a face that cannot be stored takes its image with it."""
    gallery = _gallery(store)
    bad = dataclasses.replace(_face(1), embedding=np.ones(3, dtype=np.float32))
    with pytest.raises(StoreError, match="3 values but its model says 4"):
        _enrol(store, gallery, "S-1", seed=1, face=bad)
    with store.read() as conn:
        assert repository.gallery_counts(conn, gallery.id or 0) == GalleryCounts(0, 0, 0)


def test_model_keys_lists_each_gallerys_models_once(store: Store) -> None:
    custody, other = _gallery(store), _gallery(store, "other")
    second = ModelRef("test", "hand-made", "2", "cd" * 32, 4)
    third = ModelRef("test", "hand-made", "3", "ef" * 32, 4)
    for seed, model in ((1, MODEL), (2, second), (3, MODEL), (4, second)):
        _enrol(store, custody, f"S-{seed}", seed=seed, face=_face(seed, model))
    _enrol(store, other, "S-9", seed=9, face=_face(9, third))
    empty = _gallery(store, "empty")

    with store.read() as conn:
        assert repository.model_keys(conn, custody.id) == sorted([MODEL.key, second.key])
        assert repository.model_keys(conn, other.id) == [third.key]
        assert repository.model_keys(conn, empty.id) == []
        assert repository.model_keys(conn) == sorted([MODEL.key, second.key, third.key])
        # Each step is one lookup in the (gallery_id, model_key) index, not a scan of the faces.
        step = "SELECT min(model_key) FROM faces WHERE gallery_id = 1 AND model_key > 'a'"
        plan = conn.execute(text(f"EXPLAIN QUERY PLAN {step}")).all()
    assert "ix_faces_gallery_id_model_key" in " ".join(str(row) for row in plan)


def test_a_model_key_cannot_change_meaning(store: Store) -> None:
    with store.begin() as conn:
        repository.ensure_model(conn, MODEL)
        repository.ensure_model(conn, MODEL)
    impostor = ModelRef(MODEL.backend, MODEL.name, MODEL.version, MODEL.weights_sha256, 8)
    with pytest.raises(StoreError, match="already recorded"), store.begin() as conn:
        repository.ensure_model(conn, impostor)


def test_list_subjects_counts_images_and_faces(store: Store) -> None:
    gallery = _gallery(store)
    _enrol(store, gallery, "S-1", seed=1)
    _enrol(store, gallery, "S-1", seed=2)
    _enrol(store, gallery, "S-2", seed=3)

    with store.read() as conn:
        subjects = repository.list_subjects(conn, gallery.id or 0)

    assert subjects == [SubjectSummary("S-1", 2, 2), SubjectSummary("S-2", 1, 1)]


# --- deletion --------------------------------------------------------------------------


def test_delete_subject_removes_its_rows_and_reports_what_to_erase(store: Store) -> None:
    gallery = _gallery(store)
    _, f1, sha1 = _enrol(store, gallery, "S-1", seed=1)
    _, f2, sha2 = _enrol(store, gallery, "S-1", seed=2)
    _, keep, _ = _enrol(store, gallery, "S-2", seed=3)

    with store.begin() as conn:
        run = repository.start_run(
            conn, gallery_id=gallery.id or 0, source="x", enrolled_by="me", settings={}
        )
        repository.record_skip(
            conn, run, source="a.jpg", reason="no_face", detail="-", subject_external_id="S-1"
        )
        repository.record_skip(
            conn, run, source="b.jpg", reason="no_face", detail="-", subject_external_id="S-2"
        )
        rows = repository.delete_subject(conn, gallery, "S-1")

    assert (rows.subjects, rows.images, rows.faces, rows.skip_records) == (1, 2, 2, 1)
    assert rows.face_ids == {(gallery.id, MODEL.key): [f1, f2]}
    assert rows.sha256s == {sha1, sha2}
    with store.read() as conn:
        assert repository.face_ids(conn, gallery.id or 0, MODEL.key).tolist() == [keep]
        assert repository.find_subject(conn, gallery.id or 0, "S-1") is None
        assert conn.execute(select(t.enrolment_skips.c.source)).scalars().all() == ["b.jpg"]
    with pytest.raises(NotFoundError, match="no subject 'S-1'"), store.begin() as conn:
        repository.delete_subject(conn, gallery, "S-1")


def test_delete_gallery_leaves_other_galleries_alone(store: Store) -> None:
    custody = _gallery(store, "custody")
    wanted = _gallery(store, "wanted")
    _enrol(store, custody, "S-1", seed=1)
    _, other, _ = _enrol(store, wanted, "S-1", seed=1)  # the same image in another gallery

    with store.begin() as conn:
        rows = repository.delete_gallery(conn, custody)
    with store.read() as conn:
        names = [g.name for g in repository.list_galleries(conn)]
        still_used = repository.sha256s_in_use(conn, rows.sha256s)

    assert (rows.subjects, rows.images, rows.faces) == (1, 1, 1)
    assert names == ["wanted"]
    assert still_used == rows.sha256s  # the file must stay: "wanted" still names it
    with store.read() as conn:
        assert repository.face_ids(conn, wanted.id or 0, MODEL.key).tolist() == [other]


def test_ids_are_never_reused_after_a_delete(store: Store) -> None:
    gallery = _gallery(store)
    _, first, _ = _enrol(store, gallery, "S-1", seed=1)
    with store.begin() as conn:
        repository.delete_subject(conn, gallery, "S-1")
    _, second, _ = _enrol(store, gallery, "S-1", seed=2)
    assert second > first


def test_stale_runs_are_marked_aborted(store: Store) -> None:
    gallery = _gallery(store)
    with store.begin() as conn:
        run = repository.start_run(
            conn, gallery_id=gallery.id or 0, source="x", enrolled_by="me", settings={}
        )
        done = repository.start_run(
            conn, gallery_id=gallery.id or 0, source="y", enrolled_by="me", settings={}
        )
        repository.update_run(conn, done, enrolled=1, skipped=0, status=repository.RUN_DONE)
    with store.begin() as conn:
        assert repository.abort_stale_runs(conn) == 1
        assert repository.run_status(conn, run) == repository.RUN_ABORTED
        assert repository.run_status(conn, done) == repository.RUN_DONE


def test_expired_images_are_those_past_their_retention_date(store: Store) -> None:
    gallery = _gallery(store)
    _enrol(store, gallery, "S-1", seed=1)  # retention_until 2025-05-01
    with store.read() as conn:
        assert repository.expired_images(conn, date(2025, 5, 1)) == []
        assert [i.provenance.retention_until for i in repository.expired_images(conn, date(2025, 5, 2))] == [
            date(2025, 5, 1)
        ]


def test_raw_insert_through_tables_uses_portable_json(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(t.galleries).values(
                name="g",
                legal_basis="b",
                source_description="s",
                required_provenance=["source"],
                created_at=repository.utcnow(),
            )
        )
        assert conn.execute(select(t.galleries.c.required_provenance)).scalar_one() == ["source"]


# --- PostgreSQL ------------------------------------------------------------------------


FACE_ID_TYPE = """
    SELECT data_type FROM information_schema.columns WHERE table_name = 'faces' AND column_name = 'id'
"""


@pytest.fixture
def pg_store() -> Iterator[Store]:
    """A store in a fresh, throw-away database on a real PostgreSQL server."""
    with postgres_db.pg_database() as url:
        store = Store.open(url)
        try:
            yield store
        finally:
            store.close()


def test_the_schema_runs_on_postgresql(pg_store: Store) -> None:
    assert current_revision(pg_store.engine) == head_revision()
    with pg_store.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, t.metadata) == []
        face_id_type = conn.execute(text(FACE_ID_TYPE)).scalar_one()
    assert face_id_type == "bigint"


def test_enrol_read_and_purge_on_postgresql(pg_store: Store) -> None:
    gallery = _gallery(pg_store)
    _, first, sha = _enrol(pg_store, gallery, "S-1", seed=1)
    _, second, _ = _enrol(pg_store, gallery, "S-2", seed=2)
    with pytest.raises(ConflictError):
        _enrol(pg_store, gallery, "S-3", seed=1)

    with pg_store.read() as conn:
        found, vectors = repository.face_vectors(conn, [first, second], MODEL.dim)
        described = repository.describe_faces(conn, [first])
        assert repository.list_subjects(conn, gallery.id or 0)[0] == SubjectSummary("S-1", 1, 1)
        assert repository.model_keys(conn, gallery.id) == [MODEL.key]
    assert found.tolist() == [first, second]
    np.testing.assert_array_equal(vectors, np.stack([_vector(1), _vector(2)]))
    assert described[first].image_sha256 == sha
    with pg_store.begin() as conn:
        rows = repository.delete_gallery(conn, gallery)
    assert (rows.subjects, rows.images, rows.faces) == (2, 2, 2)
    pg_store.checkpoint()  # a no-op off SQLite
    with pg_store.read() as conn:
        assert repository.list_galleries(conn) == []
