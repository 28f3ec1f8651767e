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
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import insert, select

from faceledger.adapters.store import repository
from faceledger.adapters.store.repository import DeletedRows
from faceledger.adapters.store.tables import images as images_table
from faceledger.adapters.store.tables import purged_images, purges
from faceledger.audit import events as audit_events
from faceledger.domain import text
from faceledger.domain.models import DEFAULT_REQUIRED as DEFAULT_REQUIRED
from faceledger.domain.models import PROVENANCE_FIELDS as PROVENANCE_FIELDS
from faceledger.domain.models import Gallery, GalleryCounts, SubjectSummary, TurnedDownImage
from faceledger.domain.models import PurgeReason as PurgeReason
from faceledger.domain.roles import Action
from faceledger.errors import ConflictError, NotFoundError, ValidationError
from faceledger.services import audit
from faceledger.services.authorization import authorize
from faceledger.services.datadir import INDEX_DIR, DataDir

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import ColumnElement

    from faceledger.services.policies import Principal

NAME_MAX = 64
SUBJECT_ID_MAX = 200
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9_-])?", re.ASCII)


@dataclass(frozen=True, slots=True)
class GalleryInfo:
    gallery: Gallery
    counts: GalleryCounts


AUTHORITY_MAX = 500


@dataclass(frozen=True, slots=True)
class PurgeAuthority:
    """A purge's reason and the authority for it (an order's number, the retention rule)."""

    reason: PurgeReason
    authority: str


def purge_authority(reason: str | PurgeReason, authority: str) -> PurgeAuthority:
    """A checked reason and authority; errors list the valid reasons."""
    valid = ", ".join(r.value for r in PurgeReason)
    if not str(reason).strip():
        raise ValidationError(f"a purge must name its reason (valid reasons: {valid})")
    try:
        why = PurgeReason(reason)
    except ValueError:
        shown = text.escape_control(str(reason)[:40])
        raise ValidationError(f"unknown purge reason {shown!r} (valid reasons: {valid})") from None
    cleaned = text.optional_text(authority, "the authority for a purge")
    if cleaned is None:
        raise ValidationError(
            "a purge must name its authority (the court order or expungement reference, or the "
            "retention rule), e.g. --authority 'Order 2026-123'"
        )
    if len(cleaned) > AUTHORITY_MAX:
        raise ValidationError(
            f"the authority for a purge is {len(cleaned)} characters; at most {AUTHORITY_MAX}"
        )
    return PurgeAuthority(why, cleaned)


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
    hidden = text.first_hidden(name)
    if hidden is not None:
        raise ValidationError(
            f"gallery name {text.escape_control(name)!r} contains the invisible character "
            f"{text.describe(hidden)}"
        )
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"gallery name {name!r} is not allowed: use lowercase letters, digits, '-', '_' and '.', "
            "starting with a letter or digit and not ending with '.'"
        )
    return name


def validate_subject_id(subject_id: str) -> str:
    """Subject ids come from systems of record: most characters are fine, but not all.

    Stripped and NFC-normalised; blank ids, control and format characters (Cc, Cf: escapes,
    zero-width, bidi overrides), and "." and ".." (which an HTTP client turns into the
    gallery's own URL) are refused; see :func:`faceledger.domain.text.identifier`.
    """
    return text.identifier(subject_id, "subject id", max_chars=SUBJECT_ID_MAX)


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
    owner_unit: str | None = None,
) -> Gallery:
    """Create a gallery; ConflictError when the name is taken.

    ``actor`` (who set the gallery's terms) is recorded in the audit log in the same
    transaction as the gallery, so neither exists without the other. ``owner_unit`` (the
    creating administrator's unit) is the only unit whose gallery administrators may then
    enrol into it or purge it (:func:`faceledger.services.authorization.authorize`).
    """
    if retention_days is not None and (isinstance(retention_days, bool) or retention_days < 1):
        raise ValidationError(f"retention days must be a positive number of days, not {retention_days!r}")
    gallery = Gallery(
        name=validate_gallery_name(name),
        legal_basis=_validate_text("legal basis", legal_basis),
        source_description=_validate_text("source description", source_description),
        retention_days=retention_days,
        required_provenance=_validate_required(tuple(required_provenance)),
        owner_unit=owner_unit,
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
            owner_unit=created.owner_unit,
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
    """Every subject of a gallery, unchecked: for offline data directories and for :func:`subjects_for`."""
    with dd.store.read() as conn:
        gallery = repository.get_gallery(conn, gallery_name)
        return repository.list_subjects(conn, gallery.id or 0)


def subjects_for(
    dd: DataDir, principal: Principal, gallery_name: str, *, now: datetime
) -> list[SubjectSummary]:
    """The people in a gallery (their external ids), as ``principal`` may read them.

    Needs ``manage_galleries`` (for the gallery's owner unit) or ``read_audit``; a refusal
    is recorded. The CLI's ``gallery show --subjects`` and ``GET /galleries/{name}/subjects``
    both come here, so they give the same answer.
    """
    authorize(
        dd,
        principal,
        [Action.MANAGE_GALLERIES, Action.READ_AUDIT],
        target=f"gallery:{gallery_name}",
        now=now,
        gallery=gallery_name,
    )
    return list_subjects(dd, gallery_name)


#: The most subjects one call of :func:`subject_images_for` reads the images of (one page of a list).
SUBJECT_IMAGES_MAX = 200


def subject_images_for(
    dd: DataDir, principal: Principal, gallery_name: str, external_ids: Sequence[str], *, now: datetime
) -> dict[str, list[repository.ImageRow]]:
    """The images of some subjects of a gallery, each with its provenance, as :func:`subjects_for`
    lets ``principal`` read them (the same door, the same recorded refusal).

    Keyed by external id; an id not in the gallery maps to no images. At most
    :data:`SUBJECT_IMAGES_MAX` ids are read (a page of the subject list).
    """
    if len(external_ids) > SUBJECT_IMAGES_MAX:
        raise ValidationError(f"at most {SUBJECT_IMAGES_MAX} subjects at a time, not {len(external_ids)}")
    authorize(
        dd,
        principal,
        [Action.MANAGE_GALLERIES, Action.READ_AUDIT],
        target=f"gallery:{gallery_name}",
        now=now,
        gallery=gallery_name,
    )
    found: dict[str, list[repository.ImageRow]] = {}
    with dd.store.read() as conn:
        gallery = repository.get_gallery(conn, gallery_name)
        for external_id in external_ids:
            subject = repository.find_subject(conn, gallery.id or 0, external_id)
            found[external_id] = [] if subject is None else repository.images_of_subject(conn, subject.id)
    return found


#: Turn-downs with nothing to fix: the image is in the gallery already, for that subject.
_NOTHING_TO_FIX = ("already_enrolled",)


def turned_down_for(
    dd: DataDir, principal: Principal, gallery_name: str, *, now: datetime
) -> list[TurnedDownImage]:
    """The images enrolment turned down for a gallery, with the reason, so they can be fixed.

    Each source is listed once, with its latest reason, until the same bytes or an image from
    the same source are enrolled. Asks the door as :func:`subjects_for` does (the list names
    subjects): ``manage_galleries`` for the owner unit, or ``read_audit``; a refusal is recorded.
    """
    authorize(
        dd,
        principal,
        [Action.MANAGE_GALLERIES, Action.READ_AUDIT],
        target=f"gallery:{gallery_name}",
        now=now,
        gallery=gallery_name,
    )
    gallery = get_gallery(dd, gallery_name)
    with dd.store.read() as conn:
        return repository.turned_down_images(conn, gallery.id or 0, leave_out=_NOTHING_TO_FIX)


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


_Hashes = dict[int, set[str]]


def _image_hashes(conn: Connection, *clauses: ColumnElement[bool]) -> _Hashes:
    """The image hashes of each gallery matching ``clauses``, read before they are deleted."""
    found: _Hashes = {}
    query = select(images_table.c.gallery_id, images_table.c.sha256).where(*clauses)
    for gallery_id, sha in conn.execute(query):
        found.setdefault(int(gallery_id), set()).add(str(sha))
    return found


def _record_purge(
    dd: DataDir,
    conn: Connection,
    galleries: dict[int, Gallery],
    rows: DeletedRows,
    hashes: _Hashes,
    *,
    actor: str,
    why: PurgeAuthority,
    scope: str,
    target: Gallery | None = None,
) -> None:
    """One purge entry per gallery touched (``target`` even when empty), naming every face removed.

    Each also gets a ``purges`` row (reason, authority) and a ``purged_images`` row per image
    hash removed, which enrolment consults before taking that image into the gallery again.
    Recorded in the deleting transaction, so the purge and its record commit together.
    """
    by_gallery: dict[int, list[int]] = {} if target is None else {target.id or 0: []}
    for (gallery_id, _model), ids in rows.face_ids.items():
        by_gallery.setdefault(gallery_id, []).extend(int(i) for i in ids)
    for gallery_id in hashes:
        by_gallery.setdefault(gallery_id, [])
    at = datetime.now(UTC)
    for gallery_id, face_ids in sorted(by_gallery.items()):
        name = galleries[gallery_id].name
        values = {"gallery": name, "scope": scope.split(":")[0], "reason": why.reason.value}
        purge_id = conn.execute(
            insert(purges)
            .values(**values, authority=why.authority, actor=actor, at=at, faces=len(face_ids))
            .returning(purges.c.id)
        ).scalar_one()
        shas = sorted(hashes.get(gallery_id, ()))
        if shas:
            conn.execute(
                insert(purged_images),
                [{"purge_id": purge_id, "gallery": name, "sha256": sha} for sha in shas],
            )
        event = audit_events.purged(
            actor,
            gallery=name,
            face_ids=sorted(face_ids),
            reason=why.reason.value,
            authority=why.authority,
            scope=scope,
            purge_id=int(purge_id),
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
    dd: DataDir,
    gallery_name: str,
    subject_id: str,
    *,
    reason: str | PurgeReason,
    authority: str,
    actor: str = audit_events.SYSTEM_ACTOR,
) -> PurgeReport:
    """Remove one subject from one gallery: rows, vectors, and image files no one else uses.

    ``reason`` and ``authority`` (see :func:`purge_authority`) are recorded with the purge.
    """
    subject_id = validate_subject_id(subject_id)
    why = purge_authority(reason, authority)
    gallery = get_gallery(dd, gallery_name)  # errors about the request come before any change
    with dd.store.read() as conn:
        if repository.find_subject(conn, gallery.id or 0, subject_id) is None:
            raise NotFoundError(f"no subject {subject_id!r} in gallery {gallery_name!r}")
    with dd.writing():
        galleries = _galleries_by_id(dd)
        _open_indexes(dd, [gallery])
        with dd.store.begin() as conn:
            found = repository.find_subject(conn, gallery.id or 0, subject_id)
            hashes = {} if found is None else _image_hashes(conn, images_table.c.subject_id == found.id)
            rows = repository.delete_subject(conn, gallery, subject_id)
            # The log outlives the purge: it names the subject by internal id, never the external one.
            scope = f"subject:{found.id if found else '?'}"
            _record_purge(
                dd, conn, galleries, rows, hashes, actor=actor, why=why, scope=scope, target=gallery
            )
        vectors = _remove_vectors(dd, galleries, rows)
        return _report(rows, vectors, _remove_files(dd, rows))


def purge_gallery(
    dd: DataDir,
    name: str,
    *,
    reason: str | PurgeReason,
    authority: str,
    actor: str = audit_events.SYSTEM_ACTOR,
) -> PurgeReport:
    """Remove a gallery and everything in it; its index folder goes too.

    ``reason`` and ``authority`` (see :func:`purge_authority`) are recorded with the purge.
    """
    why = purge_authority(reason, authority)
    gallery = get_gallery(dd, name)
    with dd.writing():
        galleries = _galleries_by_id(dd)
        _open_indexes(dd, [gallery])
        with dd.store.begin() as conn:
            hashes = _image_hashes(conn, images_table.c.gallery_id == (gallery.id or 0))
            rows = repository.delete_gallery(conn, gallery)
            _record_purge(
                dd, conn, galleries, rows, hashes, actor=actor, why=why, scope="gallery", target=gallery
            )
        vectors = _remove_vectors(dd, galleries, rows)
        for _gid, model_key in rows.face_ids:
            dd.forget_index(gallery, model_key)
        shutil.rmtree(dd.path / INDEX_DIR / gallery.name, ignore_errors=True)
        return _report(rows, vectors, _remove_files(dd, rows), galleries=1)


def purge_expired(
    dd: DataDir, *, today: date | None = None, actor: str = audit_events.SYSTEM_ACTOR
) -> PurgeReport:
    """Remove every image whose retention date has passed (kept through that day, gone after).

    Recorded with reason ``retention`` and, as its authority, the galleries' retention rules.
    """
    day = today or date.today()
    with dd.writing():
        galleries = _galleries_by_id(dd)
        with dd.store.read() as conn:
            expired = repository.expired_images(conn, day)
        _open_indexes(dd, [galleries[i] for i in sorted({row.gallery_id for row in expired})])
        with dd.store.begin() as conn:
            ids = [row.id for row in expired]
            hashes = _image_hashes(conn, images_table.c.id.in_(ids)) if ids else {}
            rows = repository.delete_images(conn, ids)
            why = PurgeAuthority(
                PurgeReason.RETENTION, f"gallery retention rule: retention date before {day.isoformat()}"
            )
            _record_purge(dd, conn, galleries, rows, hashes, actor=actor, why=why, scope="expired")
        vectors = _remove_vectors(dd, galleries, rows)
        return _report(rows, vectors, _remove_files(dd, rows))


# --- acting for a person ---------------------------------------------------------------
#
# What the web API, the CLI and the library call: the one door decides (with the gallery,
# for its owner unit), then the function above does the work and records it as that person.
# The functions above take the actor to record, for offline data directories and tests.


def may_change(dd: DataDir, principal: Principal, action: Action, gallery: str, *, now: datetime) -> str:
    """The username to record for ``action`` on ``gallery``, once the one door let ``principal`` through."""
    validate_gallery_name(gallery)  # a malformed name is a typo, not an attempt
    authorize(dd, principal, [action], target=f"gallery:{gallery}", now=now, gallery=gallery)
    return principal.actor.username


def create_gallery_for(
    dd: DataDir,
    principal: Principal,
    name: str,
    *,
    legal_basis: str,
    source_description: str,
    retention_days: int | None = None,
    required_provenance: tuple[str, ...] = DEFAULT_REQUIRED,
    now: datetime,
) -> Gallery:
    """:func:`create_gallery` by ``principal`` (``manage_galleries``), owned by their unit."""
    actor = may_change(dd, principal, Action.MANAGE_GALLERIES, name, now=now)
    return create_gallery(
        dd,
        name,
        legal_basis=legal_basis,
        source_description=source_description,
        retention_days=retention_days,
        required_provenance=required_provenance,
        actor=actor,
        owner_unit=principal.actor.unit,
    )


def purge_for(
    dd: DataDir,
    principal: Principal,
    gallery: str,
    subject_id: str | None,
    *,
    reason: str | PurgeReason,
    authority: str,
    now: datetime,
) -> PurgeReport:
    """:func:`purge_subject` (without ``subject_id``: :func:`purge_gallery`) by ``principal`` (``purge``)."""
    why = purge_authority(reason, authority)
    actor = may_change(dd, principal, Action.PURGE, gallery, now=now)
    if subject_id is None:
        return purge_gallery(dd, gallery, reason=why.reason, authority=why.authority, actor=actor)
    return purge_subject(dd, gallery, subject_id, reason=why.reason, authority=why.authority, actor=actor)


def purge_expired_for(dd: DataDir, principal: Principal, *, now: datetime) -> PurgeReport:
    """:func:`purge_expired` by ``principal`` (``purge``): retention applies to every gallery."""
    authorize(dd, principal, [Action.PURGE], target="retention", now=now)
    return purge_expired(dd, actor=principal.actor.username)
