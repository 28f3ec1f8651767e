"""Galleries: validation, creation, listing, and purges that really remove rows, vectors and files.

Faces are written by hand (as enrolment writes them) so that purge behaviour is tested in
seconds; tests/services/test_enrolment.py covers the same paths with the real pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from faceledger.adapters.store import repository
from faceledger.domain.models import Gallery, GalleryCounts, ModelRef, Provenance
from faceledger.errors import ConflictError, NotFoundError, ValidationError
from faceledger.services import galleries
from faceledger.services.datadir import DIRTY_FILE, DataDir, init_data_dir

MODEL = ModelRef("test", "hand-made", "1", "cd" * 32, 8)


@pytest.fixture
def dd(tmp_path: Path) -> Iterator[DataDir]:
    opened = init_data_dir(tmp_path / "data")
    yield opened
    opened.close()


@dataclass(frozen=True)
class Stored:
    face_id: int
    sha256: str


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(MODEL.dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _store_face(
    dd: DataDir, gallery: Gallery, subject: str, image: bytes, seed: int, keep: date | None
) -> Stored:
    """What enrolment does for one image: file first, then one transaction, then the index."""
    sha = dd.images.put(image)
    with dd.writing():
        index = dd.index(gallery, MODEL)  # opened (and reconciled) before the commit, as enrolment does
        with dd.store.begin() as conn:
            subject_id = repository.get_or_create_subject(conn, gallery.id or 0, subject)
            image_id = repository.insert_image(
                conn,
                repository.NewImage(
                    gallery.id or 0,
                    subject_id,
                    sha,
                    "JPEG",
                    10,
                    10,
                    len(image),
                    Provenance("f", None, "me", keep),
                ),
            )
            face = repository.NewFace(0, {}, {}, {}, 70.0, "hand", 1.0, MODEL, _vector(seed))
            face_id = repository.insert_face(
                conn, image_id=image_id, subject_id=subject_id, gallery_id=gallery.id or 0, face=face
            )
        index.add(np.asarray([face_id], dtype=np.int64), _vector(seed)[None, :])
        dd.mark_changed(gallery, MODEL.key)
    return Stored(face_id, sha)


def _create(dd: DataDir, name: str = "custody", retention_days: int | None = None) -> Gallery:
    return galleries.create_gallery(
        dd,
        name,
        legal_basis="Police Act s.1",
        source_description="custody suite",
        retention_days=retention_days,
    )


def _index_ids(dd: DataDir, gallery: Gallery) -> list[int]:
    """The ids saved on disk, read by a fresh process-like open (not this DataDir's cache)."""
    from faceledger.adapters.index import open_index

    directory = dd.index_dir(gallery.name, MODEL.key)
    return sorted(open_index(directory, dim=MODEL.dim, settings=dd.settings.index).ids().tolist())


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["custody", "wanted-2024", "a", "x_y.z", "0" * 64])
def test_good_gallery_names(name: str) -> None:
    assert galleries.validate_gallery_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        ".",
        "../etc",
        "a/b",
        "a\\b",
        "Custody",
        "with space",
        "-x",
        "x.",
        "0" * 65,
        "nul\x00",
        "ümlaut",
    ],
)
def test_names_that_could_escape_a_folder_or_collide_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="gallery"):
        galleries.validate_gallery_name(name)


@pytest.mark.parametrize("subject", ["", "   ", "a\nb", "x" * 201])
def test_bad_subject_ids_are_refused(subject: str) -> None:
    with pytest.raises(ValidationError, match="subject id"):
        galleries.validate_subject_id(subject)


def test_subject_ids_from_systems_of_record_are_kept_as_given() -> None:
    assert galleries.validate_subject_id(" PNC/12-345 Ö ") == "PNC/12-345 Ö"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"legal_basis": " "}, "legal basis"),
        ({"source_description": ""}, "source description"),
        ({"retention_days": 0}, "retention days"),
        ({"retention_days": -5}, "retention days"),
        ({"required_provenance": ("source", "colour")}, "unknown provenance field"),
    ],
)
def test_create_gallery_validates_its_rule(dd: DataDir, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"legal_basis": "s.1", "source_description": "desc", "retention_days": None}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=message):
        galleries.create_gallery(dd, "g", **args)  # type: ignore[arg-type]
    assert galleries.list_galleries(dd) == []


# --- create / read ---------------------------------------------------------------------


def test_create_and_list_galleries(dd: DataDir) -> None:
    custody = galleries.create_gallery(
        dd,
        "custody",
        legal_basis="PACE s.64A",
        source_description="custody images",
        retention_days=365,
        required_provenance=("source", "collected_on", "record_id", "source"),
    )
    wanted = _create(dd, "wanted")

    assert custody.required_provenance == ("source", "collected_on", "record_id")
    assert galleries.get_gallery(dd, "custody") == custody
    infos = galleries.list_galleries(dd)
    assert [i.gallery for i in infos] == [custody, wanted]
    assert infos[0].counts == GalleryCounts(0, 0, 0)
    with pytest.raises(ConflictError, match="'custody' already exists"):
        _create(dd, "custody")
    with pytest.raises(NotFoundError, match="no gallery named 'other'"):
        galleries.get_gallery(dd, "other")


def test_retention_is_counted_from_collection_else_from_enrolment() -> None:
    ruled = Gallery("g", "b", "s", retention_days=10)
    unruled = Gallery("g", "b", "s", retention_days=None)
    today = date(2024, 3, 1)

    assert galleries.retention_until(ruled, collected_on=date(2024, 1, 1), enrolled_on=today) == date(
        2024, 1, 11
    )
    assert galleries.retention_until(ruled, collected_on=None, enrolled_on=today) == date(2024, 3, 11)
    assert galleries.retention_until(unruled, collected_on=date(2024, 1, 1), enrolled_on=today) is None


# --- purge -----------------------------------------------------------------------------


def test_purge_subject_removes_rows_vectors_and_files(dd: DataDir) -> None:
    gallery = _create(dd)
    a1 = _store_face(dd, gallery, "A", b"image a1", seed=1, keep=None)
    a2 = _store_face(dd, gallery, "A", b"image a2", seed=2, keep=None)
    b1 = _store_face(dd, gallery, "B", b"image b1", seed=3, keep=None)
    assert _index_ids(dd, gallery) == [a1.face_id, a2.face_id, b1.face_id]

    report = galleries.purge_subject(dd, "custody", "A", reason="court_order", authority="Order 2026-123")

    assert report == galleries.PurgeReport(subjects=1, images=2, faces=2, vectors=2, files=2)
    assert _index_ids(dd, gallery) == [b1.face_id]
    assert not dd.images.exists(a1.sha256)
    assert not dd.images.exists(a2.sha256)
    assert dd.images.exists(b1.sha256)
    assert [s.external_id for s in galleries.list_subjects(dd, "custody")] == ["B"]
    _scores, ids = dd.index(gallery, MODEL).search(_vector(1)[None, :], 3)
    assert a1.face_id not in ids[0].tolist()


def test_purge_keeps_a_file_another_gallery_still_uses(dd: DataDir) -> None:
    custody = _create(dd, "custody")
    wanted = _create(dd, "wanted")
    shared = _store_face(dd, custody, "A", b"the same photo", seed=1, keep=None)
    other = _store_face(dd, wanted, "A", b"the same photo", seed=1, keep=None)
    assert shared.sha256 == other.sha256

    report = galleries.purge_subject(dd, "custody", "A", reason="court_order", authority="Order 2026-123")

    assert (report.images, report.vectors, report.files) == (1, 1, 0)
    assert dd.images.exists(shared.sha256)
    assert _index_ids(dd, wanted) == [other.face_id]


def test_purge_of_an_unknown_subject_or_gallery_names_it(dd: DataDir) -> None:
    _create(dd)
    with pytest.raises(NotFoundError, match="no subject 'ghost'"):
        galleries.purge_subject(dd, "custody", "ghost", reason="court_order", authority="Order 2026-123")
    with pytest.raises(NotFoundError, match="no gallery named 'nope'"):
        galleries.purge_gallery(dd, "nope", reason="court_order", authority="Order 2026-123")
    with pytest.raises(ConflictError):
        _create(dd)
    assert not (dd.path / DIRTY_FILE).exists()  # a refused request changed nothing: no recovery needed


def test_purge_gallery_removes_everything_of_it(dd: DataDir) -> None:
    custody = _create(dd, "custody")
    wanted = _create(dd, "wanted")
    a = _store_face(dd, custody, "A", b"photo a", seed=1, keep=None)
    _store_face(dd, custody, "B", b"photo b", seed=2, keep=None)
    w = _store_face(dd, wanted, "W", b"photo w", seed=3, keep=None)

    report = galleries.purge_gallery(dd, "custody", reason="court_order", authority="Order 2026-123")

    assert report == galleries.PurgeReport(galleries=1, subjects=2, images=2, faces=2, vectors=2, files=2)
    assert [i.gallery.name for i in galleries.list_galleries(dd)] == ["wanted"]
    assert not (dd.path / "index" / "custody").exists()
    assert not dd.images.exists(a.sha256)
    assert dd.images.exists(w.sha256)
    assert _index_ids(dd, wanted) == [w.face_id]
    # The name is free again, and a new gallery under it starts empty.
    again = _create(dd, "custody")
    assert len(dd.index(again, MODEL)) == 0


def test_purge_expired_removes_only_images_past_their_date(dd: DataDir) -> None:
    gallery = _create(dd, retention_days=30)
    old = _store_face(dd, gallery, "A", b"old photo", seed=1, keep=date(2024, 1, 31))
    fresh = _store_face(dd, gallery, "A", b"fresh photo", seed=2, keep=date(2024, 3, 1))
    forever = _store_face(dd, gallery, "B", b"kept photo", seed=3, keep=None)

    assert galleries.purge_expired(dd, today=date(2024, 1, 31)) == galleries.PurgeReport()
    report = galleries.purge_expired(dd, today=date(2024, 2, 1))

    assert report == galleries.PurgeReport(subjects=0, images=1, faces=1, vectors=1, files=1)
    assert _index_ids(dd, gallery) == [fresh.face_id, forever.face_id]
    assert not dd.images.exists(old.sha256)

    report = galleries.purge_expired(dd, today=date(2030, 1, 1))
    assert (report.subjects, report.images) == (1, 1)  # A had no image left
    assert [s.external_id for s in galleries.list_subjects(dd, "custody")] == ["B"]


def test_purged_rows_are_not_left_readable_in_the_database_file(dd: DataDir) -> None:
    """secure_delete + a WAL checkpoint: the purged subject id is gone from the bytes on disk."""
    gallery = _create(dd)
    _store_face(dd, gallery, "SECRET-SUBJECT-7731", b"photo", seed=1, keep=None)
    _store_face(dd, gallery, "B", b"photo b", seed=2, keep=None)
    dd.store.checkpoint()
    database = dd.path / "faceledger.db"
    assert b"SECRET-SUBJECT-7731" in database.read_bytes()

    galleries.purge_subject(
        dd, "custody", "SECRET-SUBJECT-7731", reason="court_order", authority="Order 2026-123"
    )

    for path in dd.path.glob("faceledger.db*"):
        assert b"SECRET-SUBJECT-7731" not in path.read_bytes(), path.name
