"""Galleries: create, inspect, and purge (a subject, a whole gallery, or what has expired).

A gallery is the unit of lawful holding: it names the legal basis it is held under, where
its images come from, and how long they may be kept. A purge really removes: database rows
(SQLite overwrites freed pages: ``secure_delete``), vectors (the index erases their
values), and image files no other gallery still references.

Order of a purge, chosen so that a crash at any point leaves nothing a search could find:
the rows are deleted in one transaction first; the vectors and files follow. A crash
between the two leaves vectors whose face rows are gone (dropped when the index is next
opened) and files no row names (swept by the next writer's recovery).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from faceledger.adapters.store import repository
from faceledger.adapters.store.repository import DeletedRows, GalleryCounts, SubjectSummary
from faceledger.audit import events as audit_events
from faceledger.domain.models import Gallery
from faceledger.errors import ConflictError, NotFoundError, ValidationError
from faceledger.services import audit
from faceledger.services.datadir import INDEX_DIR, DataDir

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

NAME_MAX = 64
SUBJECT_ID_MAX = 200
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9_-])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PROVENANCE_FIELDS = ("source", "collected_on", "enrolled_by", "record_id", "retention_until")
DEFAULT_REQUIRED = ("source", "collected_on")


@dataclass(frozen=True, slots=True)
class GalleryInfo:
    gallery: Gallery
    counts: GalleryCounts


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """How much a purge removed: rows, vectors erased from indexes, and image files deleted."""

    galleries: int = 0
    subjects: int = 0
    images: int = 0
    faces: int = 0
    vectors: int = 0
    files: int = 0
    skip_records: int = 0


# --- validation ------------------------------------------------------------------------


def validate_gallery_name(name: str) -> str:
    """A gallery name is also a folder name: lowercase, no separators, no dot tricks."""
    if not isinstance(name, str) or not name:
        raise ValidationError("a gallery needs a name")
    if len(name) > NAME_MAX:
        raise ValidationError(f"gallery name {name[:20]!r}… is {len(name)} characters; at most {NAME_MAX}")
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"gallery name {name!r} is not allowed: use lowercase letters, digits, '-', '_' and '.', "
            "starting with a letter or digit and not ending with '.'"
        )
    return name


def validate_subject_id(subject_id: str) -> str:
    """Subject ids come from systems of record: most characters are fine, blanks and control codes not."""
    cleaned = subject_id.strip() if isinstance(subject_id, str) else ""
    if not cleaned:
        raise ValidationError("a subject id must not be empty")
    if len(cleaned) > SUBJECT_ID_MAX:
        raise ValidationError(f"subject id {cleaned[:20]!r}… is longer than {SUBJECT_ID_MAX} characters")
    if _CONTROL.search(cleaned):
        raise ValidationError(f"subject id {cleaned!r} contains control characters")
    return cleaned


def _validate_text(label: str, value: str) -> str:
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        raise ValidationError(f"a gallery needs a {label} (it is recorded with every search of it)")
    return cleaned


def _validate_required(fields: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [f for f in fields if f not in PROVENANCE_FIELDS]
    if unknown:
        raise ValidationError(
            f"unknown provenance field(s) {', '.join(unknown)}; known: {', '.join(PROVENANCE_FIELDS)}"
        )
    return tuple(dict.fromkeys(fields))


def retention_until(gallery: Gallery, *, collected_on: date | None, enrolled_on: date) -> date | None:
    """The gallery's rule applied to one image: counted from collection, else from enrolment."""
    if gallery.retention_days is None:
        return None
    return (collected_on or enrolled_on) + timedelta(days=gallery.retention_days)


# --- create / read ---------------------------------------------------------------------


def create_gallery(
    dd: DataDir,
    name: str,
    *,
    legal_basis: str,
    source_description: str,
    retention_days: int | None = None,
    required_provenance: tuple[str, ...] = DEFAULT_REQUIRED,
    actor: str = audit_events.SYSTEM_ACTOR,
) -> Gallery:
    """Create a gallery; ConflictError when the name is taken.

    ``actor`` (who set the gallery's terms) is recorded in the audit log in the same
    transaction as the gallery, so neither exists without the other.
    """
    if retention_days is not None and (isinstance(retention_days, bool) or retention_days < 1):
        raise ValidationError(f"retention days must be a positive number of days, not {retention_days!r}")
    gallery = Gallery(
        name=validate_gallery_name(name),
        legal_basis=_validate_text("legal basis", legal_basis),
        source_description=_validate_text("source description", source_description),
        retention_days=retention_days,
        required_provenance=_validate_required(tuple(required_provenance)),
    )
    with dd.store.read() as conn:
        if repository.find_gallery(conn, gallery.name) is not None:
            raise ConflictError(f"gallery {gallery.name!r} already exists")
    with dd.writing(), dd.store.begin() as conn:
        created = repository.insert_gallery(conn, gallery)
        event = audit_events.gallery_created(
            actor,
            gallery=created.name,
            legal_basis=created.legal_basis,
            source_description=created.source_description,
            retention_days=created.retention_days,
            required_provenance=created.required_provenance,
        )
        audit.record(dd, conn, event)
        return created


def get_gallery(dd: DataDir, name: str) -> Gallery:
    with dd.store.read() as conn:
        return repository.get_gallery(conn, name)


def list_galleries(dd: DataDir) -> list[GalleryInfo]:
    with dd.store.read() as conn:
        return [
            GalleryInfo(g, repository.gallery_counts(conn, g.id or 0))
            for g in repository.list_galleries(conn)
        ]


def gallery_info(dd: DataDir, name: str) -> GalleryInfo:
    with dd.store.read() as conn:
        gallery = repository.get_gallery(conn, name)
        return GalleryInfo(gallery, repository.gallery_counts(conn, gallery.id or 0))


def list_subjects(dd: DataDir, gallery_name: str) -> list[SubjectSummary]:
    with dd.store.read() as conn:
        gallery = repository.get_gallery(conn, gallery_name)
        return repository.list_subjects(conn, gallery.id or 0)


# --- purge -----------------------------------------------------------------------------


def _galleries_by_id(dd: DataDir) -> dict[int, Gallery]:
    with dd.store.read() as conn:
        return {g.id or 0: g for g in repository.list_galleries(conn)}


def _open_indexes(dd: DataDir, galleries: list[Gallery]) -> None:
    """Open (and so reconcile) the indexes before rows go, so the removal can be counted."""
    for gallery in galleries:
        dd.indexes(gallery)


def _remove_vectors(dd: DataDir, galleries: dict[int, Gallery], rows: DeletedRows) -> int:
    removed = 0
    with dd.store.read() as conn:
        for (gallery_id, model_key), ids in sorted(rows.face_ids.items()):
            gallery = galleries[gallery_id]
            index = dd.index(gallery, repository.get_model(conn, model_key))
            removed += int(index.remove(np.asarray(ids, dtype=np.int64)))
            dd.mark_changed(gallery, model_key)
    dd.save_indexes()
    return removed


def _remove_files(dd: DataDir, rows: DeletedRows) -> int:
    with dd.store.read() as conn:
        still_used = repository.sha256s_in_use(conn, rows.sha256s)
    files = dd.images.delete_many(sorted(rows.sha256s - still_used))
    dd.store.checkpoint()
    return files


def _record_purge(
    dd: DataDir,
    conn: Connection,
    galleries: dict[int, Gallery],
    rows: DeletedRows,
    *,
    actor: str,
    reason: str,
    target: Gallery | None = None,
) -> None:
    """One purge entry per gallery touched (``target`` even when empty), naming every face removed.

    Recorded in the deleting transaction, so the purge and its record commit together.
    """
    by_gallery: dict[int, list[int]] = {} if target is None else {target.id or 0: []}
    for (gallery_id, _model), ids in rows.face_ids.items():
        by_gallery.setdefault(gallery_id, []).extend(int(i) for i in ids)
    for gallery_id, face_ids in sorted(by_gallery.items()):
        event = audit_events.purged(
            actor, gallery=galleries[gallery_id].name, face_ids=sorted(face_ids), reason=reason
        )
        audit.record(dd, conn, event)


def _report(rows: DeletedRows, vectors: int, files: int, galleries: int = 0) -> PurgeReport:
    return PurgeReport(
        galleries=galleries,
        subjects=rows.subjects,
        images=rows.images,
        faces=rows.faces,
        vectors=vectors,
        files=files,
        skip_records=rows.skip_records,
    )


def purge_subject(
    dd: DataDir, gallery_name: str, subject_id: str, *, actor: str = audit_events.SYSTEM_ACTOR
) -> PurgeReport:
    """Remove one subject from one gallery: rows, vectors, and image files no one else uses."""
    gallery = get_gallery(dd, gallery_name)  # errors about the request come before any change
    with dd.store.read() as conn:
        if repository.find_subject(conn, gallery.id or 0, subject_id) is None:
            raise NotFoundError(f"no subject {subject_id!r} in gallery {gallery_name!r}")
    with dd.writing():
        galleries = _galleries_by_id(dd)
        _open_indexes(dd, [gallery])
        with dd.store.begin() as conn:
            found = repository.find_subject(conn, gallery.id or 0, subject_id)
            rows = repository.delete_subject(conn, gallery, subject_id)
            # The log outlives the purge: it names the subject by internal id, never the external one.
            reason = f"subject:{found.id if found else '?'} removed"
            _record_purge(dd, conn, galleries, rows, actor=actor, reason=reason, target=gallery)
        vectors = _remove_vectors(dd, galleries, rows)
        return _report(rows, vectors, _remove_files(dd, rows))


def purge_gallery(dd: DataDir, name: str, *, actor: str = audit_events.SYSTEM_ACTOR) -> PurgeReport:
    """Remove a gallery and everything in it; its index folder goes too."""
    gallery = get_gallery(dd, name)
    with dd.writing():
        galleries = _galleries_by_id(dd)
        _open_indexes(dd, [gallery])
        with dd.store.begin() as conn:
            rows = repository.delete_gallery(conn, gallery)
            _record_purge(dd, conn, galleries, rows, actor=actor, reason="gallery removed", target=gallery)
        vectors = _remove_vectors(dd, galleries, rows)
        for _gid, model_key in rows.face_ids:
            dd.forget_index(gallery, model_key)
        shutil.rmtree(dd.path / INDEX_DIR / gallery.name, ignore_errors=True)
        return _report(rows, vectors, _remove_files(dd, rows), galleries=1)


def purge_expired(
    dd: DataDir, *, today: date | None = None, actor: str = audit_events.SYSTEM_ACTOR
) -> PurgeReport:
    """Remove every image whose retention date has passed (kept through that day, gone after)."""
    day = today or date.today()
    with dd.writing():
        galleries = _galleries_by_id(dd)
        with dd.store.read() as conn:
            expired = repository.expired_images(conn, day)
        _open_indexes(dd, [galleries[i] for i in sorted({row.gallery_id for row in expired})])
        with dd.store.begin() as conn:
            rows = repository.delete_images(conn, [row.id for row in expired])
            _record_purge(
                dd, conn, galleries, rows, actor=actor, reason=f"retention expired before {day.isoformat()}"
            )
        vectors = _remove_vectors(dd, galleries, rows)
        return _report(rows, vectors, _remove_files(dd, rows))
