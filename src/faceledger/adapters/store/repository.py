"""Queries over the schema in :mod:`tables`, one small function per question.

Every function takes an open :class:`~sqlalchemy.engine.Connection`; the service that
calls it owns the transaction, so a unit of work (one image with its faces) commits or
vanishes as a whole. Rows come back as plain frozen records, never as ORM objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.store import tables as t
from faceledger.domain.models import (
    FaceInfo,
    Gallery,
    GalleryCounts,
    ModelRef,
    Provenance,
    SubjectSummary,
    TurnedDownImage,
)
from faceledger.errors import ConflictError, NotFoundError, StoreError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]
    IdArray = npt.NDArray[np.int64]

#: Little-endian float32: how an embedding is stored (a dtype string, so importing this costs no numpy).
EMBEDDING_DTYPE = "<f4"
_CHUNK = 500  # ids per IN (...) clause: well under every backend's parameter limit


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here was written as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield [int(i) for i in ids[start : start + _CHUNK]]


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise StoreError("the database did not return the id of a new row")
    return int(key[0])


def encode_embedding(vector: FloatArray, dim: int) -> bytes:
    import numpy as np

    array = np.asarray(vector, dtype=EMBEDDING_DTYPE).reshape(-1)
    if array.shape[0] != dim:
        raise StoreError(f"embedding has {array.shape[0]} values but its model says {dim}")
    return array.tobytes()


def decode_embedding(blob: bytes) -> FloatArray:
    import numpy as np

    return np.frombuffer(blob, dtype=EMBEDDING_DTYPE).astype(np.float32)


# --- records ---------------------------------------------------------------------------
# The rows below are the store's own. What the services hand on (SubjectSummary, GalleryCounts,
# FaceInfo) are domain records, imported above and built here.


@dataclass(frozen=True, slots=True)
class SubjectRow:
    id: int
    gallery_id: int
    external_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewImage:
    gallery_id: int
    subject_id: int
    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    provenance: Provenance
    run_id: int | None = None
    face_choice: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: int
    gallery_id: int
    subject_id: int
    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    provenance: Provenance
    enrolled_at: datetime
    run_id: int | None
    #: How enrolment chose the face; None for images enrolled before migration 0014.
    face_choice: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class NewFace:
    """A face ready to store; ``box``/``landmarks``/``quality`` are the records' ``to_dict()``."""

    face_index: int
    box: dict[str, Any]
    landmarks: dict[str, Any]
    quality: dict[str, Any]
    quality_score: float
    detector: str
    detector_score: float
    model: ModelRef
    embedding: FloatArray


@dataclass(frozen=True, slots=True)
class DeletedRows:
    """What a purge removed from the database, and what must follow it out of the files."""

    subjects: int = 0
    images: int = 0
    faces: int = 0
    skip_records: int = 0
    face_ids: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    """Deleted face ids by (gallery id, model key): the vectors to take out of each index."""
    sha256s: frozenset[str] = frozenset()


# --- galleries -------------------------------------------------------------------------


def _gallery(row: Row[Any]) -> Gallery:
    return Gallery(
        name=row.name,
        legal_basis=row.legal_basis,
        source_description=row.source_description,
        retention_days=row.retention_days,
        required_provenance=tuple(row.required_provenance),
        id=int(row.id),
        created_at=_aware(row.created_at).isoformat(),
        owner_unit=row.owner_unit,
    )


def insert_gallery(conn: Connection, gallery: Gallery) -> Gallery:
    if find_gallery(conn, gallery.name) is not None:
        raise ConflictError(f"gallery {gallery.name!r} already exists")
    result = conn.execute(
        insert(t.galleries).values(
            name=gallery.name,
            legal_basis=gallery.legal_basis,
            source_description=gallery.source_description,
            retention_days=gallery.retention_days,
            required_provenance=list(gallery.required_provenance),
            created_at=utcnow(),
            owner_unit=gallery.owner_unit,
        )
    )
    gallery_id = _new_id(result)
    row = conn.execute(select(t.galleries).where(t.galleries.c.id == gallery_id)).one()
    return _gallery(row)


def find_gallery(conn: Connection, name: str) -> Gallery | None:
    row = conn.execute(select(t.galleries).where(t.galleries.c.name == name)).one_or_none()
    return None if row is None else _gallery(row)


def get_gallery(conn: Connection, name: str) -> Gallery:
    gallery = find_gallery(conn, name)
    if gallery is None:
        known = ", ".join(g.name for g in list_galleries(conn)) or "none yet"
        raise NotFoundError(f"no gallery named {name!r} (galleries: {known})")
    return gallery


def list_galleries(conn: Connection) -> list[Gallery]:
    rows = conn.execute(select(t.galleries).order_by(t.galleries.c.name)).all()
    return [_gallery(row) for row in rows]


def gallery_counts(conn: Connection, gallery_id: int) -> GalleryCounts:
    def count(table: Any) -> int:
        stmt = select(func.count()).select_from(table).where(table.c.gallery_id == gallery_id)
        return int(conn.execute(stmt).scalar_one())

    return GalleryCounts(subjects=count(t.subjects), images=count(t.images), faces=count(t.faces))


# --- models ----------------------------------------------------------------------------


def ensure_model(conn: Connection, model: ModelRef) -> None:
    """Record a model's full identity once, and refuse a key that now means something else."""
    row = conn.execute(select(t.models).where(t.models.c.key == model.key)).one_or_none()
    if row is None:
        conn.execute(insert(t.models).values(key=model.key, **model.to_dict()))
        return
    stored = ModelRef(row.backend, row.name, row.version, row.weights_sha256, row.dim)
    if stored != model:
        raise StoreError(f"model key {model.key!r} is already recorded as {stored}, not {model}")


def get_model(conn: Connection, key: str) -> ModelRef:
    row = conn.execute(select(t.models).where(t.models.c.key == key)).one_or_none()
    if row is None:
        raise NotFoundError(f"no model recorded under key {key!r}")
    return ModelRef(row.backend, row.name, row.version, row.weights_sha256, row.dim)


def all_models(conn: Connection) -> list[ModelRef]:
    rows = conn.execute(select(t.models).order_by(t.models.c.key)).all()
    return [ModelRef(row.backend, row.name, row.version, row.weights_sha256, row.dim) for row in rows]


def model_keys(conn: Connection, gallery_id: int | None = None) -> list[str]:
    """The models a gallery's faces (or all faces) were made with, sorted.

    For one gallery this walks the (gallery_id, model_key) index one key at a time: a
    ``SELECT DISTINCT`` would read every face's index entry, tens of milliseconds per search
    at a million faces, where each ``min()`` here is one index lookup.
    """
    if gallery_id is None:
        return sorted(conn.execute(select(t.faces.c.model_key).distinct()).scalars())
    keys: list[str] = []
    while True:
        stmt = select(func.min(t.faces.c.model_key)).where(t.faces.c.gallery_id == gallery_id)
        if keys:
            stmt = stmt.where(t.faces.c.model_key > keys[-1])
        key = conn.execute(stmt).scalar()
        if key is None:
            return keys
        keys.append(str(key))


# --- subjects --------------------------------------------------------------------------


def find_subject(conn: Connection, gallery_id: int, external_id: str) -> SubjectRow | None:
    stmt = select(t.subjects).where(
        t.subjects.c.gallery_id == gallery_id, t.subjects.c.external_id == external_id
    )
    row = conn.execute(stmt).one_or_none()
    if row is None:
        return None
    return SubjectRow(int(row.id), int(row.gallery_id), row.external_id, _aware(row.created_at))


def get_or_create_subject(conn: Connection, gallery_id: int, external_id: str) -> int:
    found = find_subject(conn, gallery_id, external_id)
    if found is not None:
        return found.id
    result = conn.execute(
        insert(t.subjects).values(gallery_id=gallery_id, external_id=external_id, created_at=utcnow())
    )
    return _new_id(result)


def list_subjects(conn: Connection, gallery_id: int) -> list[SubjectSummary]:
    images = select(t.images.c.subject_id, func.count().label("n")).group_by(t.images.c.subject_id).subquery()
    faces = select(t.faces.c.subject_id, func.count().label("n")).group_by(t.faces.c.subject_id).subquery()
    stmt = (
        select(
            t.subjects.c.external_id,
            func.coalesce(images.c.n, 0),
            func.coalesce(faces.c.n, 0),
        )
        .select_from(t.subjects)
        .outerjoin(images, images.c.subject_id == t.subjects.c.id)
        .outerjoin(faces, faces.c.subject_id == t.subjects.c.id)
        .where(t.subjects.c.gallery_id == gallery_id)
        .order_by(t.subjects.c.external_id)
    )
    return [SubjectSummary(row[0], int(row[1]), int(row[2])) for row in conn.execute(stmt)]


# --- images ----------------------------------------------------------------------------


def _image(row: Row[Any]) -> ImageRow:
    provenance = Provenance(
        source=row.source,
        collected_on=row.collected_on,
        enrolled_by=row.enrolled_by,
        retention_until=row.retention_until,
        record_id=row.record_id,
    )
    return ImageRow(
        id=int(row.id),
        gallery_id=int(row.gallery_id),
        subject_id=int(row.subject_id),
        sha256=row.sha256,
        format=row.format,
        width=int(row.width),
        height=int(row.height),
        byte_size=int(row.byte_size),
        provenance=provenance,
        enrolled_at=_aware(row.enrolled_at),
        run_id=None if row.run_id is None else int(row.run_id),
        face_choice=row.face_choice,
    )


def find_image(conn: Connection, gallery_id: int, sha256: str) -> ImageRow | None:
    stmt = select(t.images).where(t.images.c.gallery_id == gallery_id, t.images.c.sha256 == sha256)
    row = conn.execute(stmt).one_or_none()
    return None if row is None else _image(row)


def images_of_subject(conn: Connection, subject_id: int) -> list[ImageRow]:
    stmt = select(t.images).where(t.images.c.subject_id == subject_id).order_by(t.images.c.id)
    return [_image(row) for row in conn.execute(stmt)]


def insert_image(conn: Connection, image: NewImage) -> int:
    p = image.provenance
    try:
        result = conn.execute(
            insert(t.images).values(
                gallery_id=image.gallery_id,
                subject_id=image.subject_id,
                run_id=image.run_id,
                sha256=image.sha256,
                format=image.format,
                width=image.width,
                height=image.height,
                byte_size=image.byte_size,
                source=p.source,
                record_id=p.record_id,
                collected_on=p.collected_on,
                enrolled_by=p.enrolled_by,
                enrolled_at=utcnow(),
                retention_until=p.retention_until,
                face_choice=image.face_choice,
            )
        )
    except IntegrityError as exc:
        raise ConflictError(f"image {image.sha256[:12]}… is already enrolled in this gallery") from exc
    return _new_id(result)


def sha256s_in_use(conn: Connection, candidates: Iterable[str] | None = None) -> set[str]:
    """Which image hashes some gallery still references (all of them when ``candidates`` is None)."""
    if candidates is None:
        return set(conn.execute(select(t.images.c.sha256).distinct()).scalars())
    wanted = sorted(set(candidates))
    used: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        stmt = select(t.images.c.sha256).where(t.images.c.sha256.in_(chunk)).distinct()
        used.update(conn.execute(stmt).scalars())
    return used


def expired_images(conn: Connection, today: date) -> list[ImageRow]:
    stmt = select(t.images).where(t.images.c.retention_until < today).order_by(t.images.c.id)
    return [_image(row) for row in conn.execute(stmt)]


# --- faces -----------------------------------------------------------------------------


def bump_faces_version(conn: Connection, gallery_ids: Iterable[int]) -> None:
    """Mark the galleries' faces as changed (see ``galleries.faces_version``)."""
    for gallery_id in sorted(set(gallery_ids)):
        conn.execute(
            update(t.galleries)
            .where(t.galleries.c.id == gallery_id)
            .values(faces_version=t.galleries.c.faces_version + 1)
        )


def faces_version(conn: Connection, gallery_id: int) -> int:
    """How many times the gallery's faces have changed; 0 when the gallery is gone."""
    value = conn.execute(select(t.galleries.c.faces_version).where(t.galleries.c.id == gallery_id)).scalar()
    return int(value or 0)


def insert_face(conn: Connection, *, image_id: int, subject_id: int, gallery_id: int, face: NewFace) -> int:
    ensure_model(conn, face.model)
    bump_faces_version(conn, [gallery_id])
    result = conn.execute(
        insert(t.faces).values(
            image_id=image_id,
            subject_id=subject_id,
            gallery_id=gallery_id,
            face_index=face.face_index,
            box=face.box,
            landmarks=face.landmarks,
            quality=face.quality,
            quality_score=float(face.quality_score),
            detector=face.detector,
            detector_score=float(face.detector_score),
            model_key=face.model.key,
            embedding=encode_embedding(face.embedding, face.model.dim),
            created_at=utcnow(),
        )
    )
    return _new_id(result)


def face_ids(conn: Connection, gallery_id: int, model_key: str) -> IdArray:
    import numpy as np

    stmt = (
        select(t.faces.c.id)
        .where(t.faces.c.gallery_id == gallery_id, t.faces.c.model_key == model_key)
        .order_by(t.faces.c.id)
    )
    return np.fromiter(conn.execute(stmt).scalars(), dtype=np.int64)


def face_vectors(conn: Connection, ids: Sequence[int], dim: int) -> tuple[IdArray, FloatArray]:
    """Stored embeddings of these faces (ids that do not exist are left out), sorted by id."""
    import numpy as np

    found: list[int] = []
    vectors: list[FloatArray] = []
    for chunk in _chunks(ids):
        stmt = select(t.faces.c.id, t.faces.c.embedding).where(t.faces.c.id.in_(chunk))
        for face_id, blob in conn.execute(stmt):
            found.append(int(face_id))
            vectors.append(decode_embedding(blob))
    order = np.argsort(np.asarray(found, dtype=np.int64), kind="stable")
    id_array = np.asarray(found, dtype=np.int64)[order]
    matrix = np.stack(vectors)[order] if vectors else np.zeros((0, dim), dtype=np.float32)
    return id_array, matrix.astype(np.float32, copy=False)


def subject_faces(conn: Connection, ids: Sequence[int], model_key: str) -> dict[int, list[tuple[int, float]]]:
    """For each of these faces: (face id, quality) of every face of its subject of ``model_key``.

    The face itself is among them when it is of that model; faces that do not exist are left out.
    """
    own = t.faces.alias("own")
    mates = t.faces.alias("mates")
    out: dict[int, list[tuple[int, float]]] = {}
    for chunk in _chunks(ids):
        stmt = (
            select(own.c.id.label("asked"), mates.c.id, mates.c.quality_score)
            .join(mates, mates.c.subject_id == own.c.subject_id)
            .where(own.c.id.in_(chunk), mates.c.model_key == model_key)
            .order_by(own.c.id, mates.c.id)
        )
        for row in conn.execute(stmt):
            out.setdefault(int(row.asked), []).append((int(row.id), float(row.quality_score)))
    return out


def describe_faces(conn: Connection, ids: Sequence[int]) -> dict[int, FaceInfo]:
    out: dict[int, FaceInfo] = {}
    for chunk in _chunks(ids):
        stmt = (
            select(
                t.faces.c.id,
                t.galleries.c.name,
                t.subjects.c.external_id,
                t.images.c.id.label("image_id"),
                t.images.c.sha256,
                t.images.c.source,
                t.faces.c.quality_score,
                t.faces.c.model_key,
            )
            .join(t.images, t.images.c.id == t.faces.c.image_id)
            .join(t.subjects, t.subjects.c.id == t.faces.c.subject_id)
            .join(t.galleries, t.galleries.c.id == t.faces.c.gallery_id)
            .where(t.faces.c.id.in_(chunk))
        )
        for row in conn.execute(stmt):
            out[int(row.id)] = FaceInfo(
                face_id=int(row.id),
                gallery=row.name,
                subject_id=row.external_id,
                image_id=int(row.image_id),
                image_sha256=row.sha256,
                source=row.source,
                quality_score=float(row.quality_score),
                model_key=row.model_key,
            )
    return out


# --- enrolment runs --------------------------------------------------------------------

RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_INTERRUPTED = "interrupted"
RUN_FAILED = "failed"  # stopped by an error (the message went to the caller)
RUN_ABORTED = "aborted"  # found still "running" after its process died


def start_run(
    conn: Connection, *, gallery_id: int, source: str, enrolled_by: str, settings: dict[str, Any]
) -> int:
    result = conn.execute(
        insert(t.enrolment_runs).values(
            gallery_id=gallery_id,
            source=source,
            enrolled_by=enrolled_by,
            settings=settings,
            status=RUN_RUNNING,
            started_at=utcnow(),
            enrolled=0,
            skipped=0,
        )
    )
    return _new_id(result)


def update_run(
    conn: Connection,
    run_id: int,
    *,
    enrolled: int,
    skipped: int,
    status: str | None = None,
    model_key: str | None = None,
) -> None:
    values: dict[str, Any] = {"enrolled": enrolled, "skipped": skipped}
    if status is not None:
        values["status"] = status
        if status != RUN_RUNNING:
            values["finished_at"] = utcnow()
    if model_key is not None:
        values["model_key"] = model_key
    conn.execute(update(t.enrolment_runs).where(t.enrolment_runs.c.id == run_id).values(**values))


def abort_stale_runs(conn: Connection) -> int:
    """Mark runs whose process died mid-way; only call while holding the writer lock."""
    stmt = (
        update(t.enrolment_runs)
        .where(t.enrolment_runs.c.status == RUN_RUNNING)
        .values(status=RUN_ABORTED, finished_at=utcnow())
    )
    return int(conn.execute(stmt).rowcount)


def run_status(conn: Connection, run_id: int) -> str:
    stmt = select(t.enrolment_runs.c.status).where(t.enrolment_runs.c.id == run_id)
    status = conn.execute(stmt).scalar_one_or_none()
    if status is None:
        raise NotFoundError(f"no enrolment run {run_id}")
    return str(status)


def record_skip(
    conn: Connection,
    run_id: int,
    *,
    source: str,
    reason: str,
    detail: str,
    subject_external_id: str | None = None,
    sha256: str | None = None,
) -> None:
    conn.execute(
        insert(t.enrolment_skips).values(
            run_id=run_id,
            source=source,
            subject_external_id=subject_external_id,
            sha256=sha256,
            reason=reason,
            detail=detail,
        )
    )


def turned_down_images(
    conn: Connection, gallery_id: int, *, leave_out: Sequence[str] = ()
) -> list[TurnedDownImage]:
    """The latest turn-down of each source of this gallery's runs, unless it is enrolled since.

    Enrolled since: the gallery holds an image with the same bytes, or one read from the
    same source (a file fixed in place and enrolled again). Reasons in ``leave_out`` are not
    listed. A source turned down again in a later run is listed once, with the later reason.
    """
    runs, skips = t.enrolment_runs, t.enrolment_skips
    held = t.images.c.gallery_id == gallery_id
    same_bytes = select(t.images.c.sha256).where(held)
    same_source = select(t.images.c.source).where(held)
    stmt = (
        select(skips, runs.c.started_at)
        .join(runs, runs.c.id == skips.c.run_id)
        .where(runs.c.gallery_id == gallery_id)
        .where(or_(skips.c.sha256.is_(None), skips.c.sha256.not_in(same_bytes)))
        .where(skips.c.source.not_in(same_source))
        .order_by(skips.c.id)
    )
    if leave_out:
        stmt = stmt.where(skips.c.reason.not_in(list(leave_out)))
    latest: dict[str, TurnedDownImage] = {}
    for row in conn.execute(stmt):
        latest.pop(row.source, None)  # keep the order of the latest turn-down
        latest[row.source] = TurnedDownImage(
            source=row.source,
            subject_id=row.subject_external_id,
            reason=row.reason,
            detail=row.detail,
            run_id=int(row.run_id),
            when=_aware(row.started_at),
        )
    return list(latest.values())


# --- purge -----------------------------------------------------------------------------


def _face_ids_by_index(conn: Connection, where: Any) -> dict[tuple[int, str], list[int]]:
    grouped: dict[tuple[int, str], list[int]] = defaultdict(list)
    stmt = select(t.faces.c.id, t.faces.c.gallery_id, t.faces.c.model_key).where(where)
    for face_id, gallery_id, key in conn.execute(stmt):
        grouped[(int(gallery_id), key)].append(int(face_id))
    return dict(grouped)


def _delete_skips(conn: Connection, gallery_id: int, external_id: str | None) -> int:
    runs = select(t.enrolment_runs.c.id).where(t.enrolment_runs.c.gallery_id == gallery_id)
    stmt = delete(t.enrolment_skips).where(t.enrolment_skips.c.run_id.in_(runs))
    if external_id is not None:
        stmt = stmt.where(t.enrolment_skips.c.subject_external_id == external_id)
    return int(conn.execute(stmt).rowcount)


def delete_images(conn: Connection, image_ids: Sequence[int]) -> DeletedRows:
    """Delete these images and their faces; subjects left with no image go too."""
    ids = [int(i) for i in image_ids]
    grouped: dict[tuple[int, str], list[int]] = defaultdict(list)
    shas: set[str] = set()
    subject_ids: set[int] = set()
    n_faces = 0
    for chunk in _chunks(ids):
        for key, fids in _face_ids_by_index(conn, t.faces.c.image_id.in_(chunk)).items():
            grouped[key].extend(fids)
        rows = conn.execute(select(t.images.c.sha256, t.images.c.subject_id).where(t.images.c.id.in_(chunk)))
        for sha, subject_id in rows:
            shas.add(sha)
            subject_ids.add(int(subject_id))
        gallery_ids = conn.execute(select(t.images.c.gallery_id).where(t.images.c.id.in_(chunk))).scalars()
        bump_faces_version(conn, [int(g) for g in gallery_ids])
        n_faces += int(conn.execute(delete(t.faces).where(t.faces.c.image_id.in_(chunk))).rowcount)
        conn.execute(delete(t.images).where(t.images.c.id.in_(chunk)))
    empty = select(t.images.c.id).where(t.images.c.subject_id == t.subjects.c.id).exists()
    n_subjects = 0
    for chunk in _chunks(sorted(subject_ids)):
        stmt = delete(t.subjects).where(t.subjects.c.id.in_(chunk), ~empty)
        n_subjects += int(conn.execute(stmt).rowcount)
    return DeletedRows(
        subjects=n_subjects,
        images=len(ids),
        faces=n_faces,
        face_ids=dict(grouped),
        sha256s=frozenset(shas),
    )


def _gallery_id(gallery: Gallery) -> int:
    if gallery.id is None:
        raise StoreError(f"gallery {gallery.name!r} has not been stored yet")
    return gallery.id


def delete_subject(conn: Connection, gallery: Gallery, external_id: str) -> DeletedRows:
    gid = _gallery_id(gallery)
    subject = find_subject(conn, gid, external_id)
    if subject is None:
        raise NotFoundError(f"no subject {external_id!r} in gallery {gallery.name!r}")
    image_ids = [row.id for row in images_of_subject(conn, subject.id)]
    rows = delete_images(conn, image_ids)
    n_subjects = int(conn.execute(delete(t.subjects).where(t.subjects.c.id == subject.id)).rowcount)
    skips = _delete_skips(conn, gid, external_id)
    return DeletedRows(
        subjects=rows.subjects + n_subjects,
        images=rows.images,
        faces=rows.faces,
        skip_records=skips,
        face_ids=rows.face_ids,
        sha256s=rows.sha256s,
    )


def delete_gallery(conn: Connection, gallery: Gallery) -> DeletedRows:
    gid = _gallery_id(gallery)
    grouped = _face_ids_by_index(conn, t.faces.c.gallery_id == gid)
    shas = frozenset(conn.execute(select(t.images.c.sha256).where(t.images.c.gallery_id == gid)).scalars())
    n_faces = int(conn.execute(delete(t.faces).where(t.faces.c.gallery_id == gid)).rowcount)
    n_images = int(conn.execute(delete(t.images).where(t.images.c.gallery_id == gid)).rowcount)
    n_subjects = int(conn.execute(delete(t.subjects).where(t.subjects.c.gallery_id == gid)).rowcount)
    n_skips = _delete_skips(conn, gid, None)
    conn.execute(delete(t.enrolment_runs).where(t.enrolment_runs.c.gallery_id == gid))
    conn.execute(delete(t.galleries).where(t.galleries.c.id == gid))
    return DeletedRows(
        subjects=n_subjects,
        images=n_images,
        faces=n_faces,
        skip_records=n_skips,
        face_ids=grouped,
        sha256s=shas,
    )
