"""One enrolment run in the main process: prepare items, classify analyses, write results.

The main process is the only writer: per image it writes the file, commits image + face
+ embedding in one transaction, then adds the vector to the index (see the package
docstring for why this order is crash-safe).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select, update

from faceledger.adapters.images import sha256_hex
from faceledger.adapters.store import repository
from faceledger.adapters.store.tables import purged_images, purges
from faceledger.audit import events as audit_events
from faceledger.config import Settings
from faceledger.domain.face_choice import FaceChoice
from faceledger.domain.models import AnalyzedFace, Gallery, ModelRef, Provenance
from faceledger.errors import ModelError
from faceledger.services import audit
from faceledger.services.datadir import DataDir
from faceledger.services.enrolment.records import (
    EnrolItem,
    EnrolledImage,
    EnrolOptions,
    Progress,
    ProgressCallback,
    Skipped,
    SkipReason,
    screen,
)
from faceledger.services.enrolment.worker import Outcome, analyse_in_worker
from faceledger.services.galleries import retention_until

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from faceledger.adapters.index import PersistentIndex


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    item: EnrolItem
    provenance: Provenance
    data: bytes
    sha256: str


@dataclass
class _Tally:
    enrolled: list[EnrolledImage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    model: ModelRef | None = None
    index: PersistentIndex | None = None
    since_save: int = 0


class Enrolment:
    """One run: prepares items, hands them to analysers, writes results. Main process only."""

    def __init__(self, dd: DataDir, gallery: Gallery, options: EnrolOptions, run_id: int, total: int) -> None:
        self.dd = dd
        self.gallery = gallery
        self.gid = gallery.id or 0
        self.options = options
        self.run_id = run_id
        self.total = total
        self.floor = dd.settings.quality_floor if options.quality_floor is None else options.quality_floor
        self.tally = _Tally()
        self.progress: ProgressCallback | None = None
        self.today = date.today()

    # preparation: provenance, bytes, duplicate check -- all before any analysis is spent

    def prepare(self, item: EnrolItem) -> _Prepared | Skipped:
        provenance = self.provenance(item)
        missing = provenance.missing(self.gallery.required_provenance)
        if missing:
            detail = f"missing provenance: {', '.join(missing)} (required by gallery {self.gallery.name!r})"
            return _skip(item, SkipReason.MISSING_PROVENANCE, detail)
        data = self.read(item)
        if isinstance(data, Skipped):
            return data
        sha = sha256_hex(data)
        duplicate = self.duplicate(item, sha) or self.purged(item, sha)
        if duplicate is not None:
            return duplicate
        self.tally.seen.add(sha)
        return _Prepared(item, provenance, data, sha)

    def provenance(self, item: EnrolItem) -> Provenance:
        collected = item.collected_on or self.options.collected_on
        keep = item.retention_until or retention_until(
            self.gallery, collected_on=collected, enrolled_on=self.today
        )
        return Provenance(
            source=item.source or str(item.path.resolve()),
            collected_on=collected,
            enrolled_by=item.enrolled_by or self.options.enrolled_by,
            retention_until=keep,
            record_id=item.record_id,
        )

    def read(self, item: EnrolItem) -> bytes | Skipped:
        limit = self.dd.settings.image.max_bytes
        try:
            size = item.path.stat().st_size
            if size > limit:
                return _skip(item, SkipReason.UNREADABLE, f"{size} bytes, over the {limit}-byte limit")
            return item.path.read_bytes()
        except OSError as exc:
            return _skip(item, SkipReason.UNREADABLE, f"cannot read the file: {exc.strerror or exc}")

    def duplicate(self, item: EnrolItem, sha: str) -> Skipped | None:
        if sha in self.tally.seen:
            detail = f"same image bytes as another file in this enrolment ({sha[:12]}…)"
            return _skip(item, SkipReason.DUPLICATE, detail, sha)
        with self.dd.store.read() as conn:
            existing = repository.find_image(conn, self.gid, sha)
            if existing is None:
                return None
            owner = repository.find_subject(conn, self.gid, item.subject_id)
        if owner is not None and owner.id == existing.subject_id:
            return _skip(item, SkipReason.ALREADY_ENROLLED, "already enrolled for this subject", sha)
        detail = f"the same image is already enrolled in {self.gallery.name!r} for another subject"
        return _skip(item, SkipReason.DUPLICATE, detail, sha)

    def purged(self, item: EnrolItem, sha: str) -> Skipped | None:
        """A skip for an image a purge removed from this gallery, unless re-enrolment was asked for."""
        if self.options.re_enrol_purged is not None:
            return None
        with self.dd.store.read() as conn:
            purge = conn.execute(
                select(purges.c.reason, purges.c.authority)
                .join(purged_images, purged_images.c.purge_id == purges.c.id)
                .where(
                    purged_images.c.gallery == self.gallery.name,
                    purged_images.c.sha256 == sha,
                    purged_images.c.re_enrolled_at.is_(None),
                )
                .order_by(purges.c.id.desc())
                .limit(1)
            ).first()
        if purge is None:
            return None
        detail = (
            f"this image was purged from {self.gallery.name!r} (reason {purge.reason}, "
            f"authority {purge.authority}); enrol it again only with --re-enrol-purged REASON"
        )
        return _skip(item, SkipReason.PURGED, detail, sha)

    # results: classify, then write

    def classify(self, prepared: _Prepared, outcome: Outcome) -> tuple[AnalyzedFace, FaceChoice] | Skipped:
        """The face to enrol and how it was chosen, or why the image is turned down."""
        item, sha = prepared.item, prepared.sha256
        if outcome.error_kind == "model":
            raise ModelError(outcome.error or "the face model could not be used")
        if outcome.turned_down is not None:  # by the worker, before the faces were embedded
            return _skip(item, *outcome.turned_down, sha)
        if outcome.analysis is None:
            reason = SkipReason.UNREADABLE if outcome.error_kind == "image" else SkipReason.ANALYSIS_FAILED
            return _skip(item, reason, outcome.error or "unknown error", sha)
        analysis = outcome.analysis
        if outcome.choice is not None:  # the worker chose, and embedded that face only
            return replace(analysis.faces[0], index=outcome.choice.index), outcome.choice
        faces = analysis.faces
        boxes, qualities = [f.face.box for f in faces], [f.quality for f in faces]
        verdict = screen(boxes, qualities, analysis.width, analysis.height, self.floor)
        if not isinstance(verdict, FaceChoice):
            return _skip(item, *verdict, sha)
        return faces[verdict.index], verdict

    def finish(self, prepared: _Prepared, outcome: Outcome) -> None:
        verdict = self.classify(prepared, outcome)
        if isinstance(verdict, Skipped):
            self.skip(verdict)
        else:
            self.write(prepared, outcome, *verdict)
        self.report(str(prepared.item.path))

    def write(self, prepared: _Prepared, outcome: Outcome, face: AnalyzedFace, choice: FaceChoice) -> None:
        model = face.embedding.model
        index = self.index_for(model)
        self.dd.images.put(prepared.data, prepared.sha256)  # before the commit: see module docstring
        with self.dd.store.begin() as conn:
            subject = repository.get_or_create_subject(conn, self.gid, prepared.item.subject_id)
            image_id = repository.insert_image(conn, self.new_image(prepared, outcome, subject, choice))
            face_id = repository.insert_face(
                conn, image_id=image_id, subject_id=subject, gallery_id=self.gid, face=_new_face(face)
            )
            re_enrolled = self.mark_re_enrolled(conn, prepared.sha256)
            event = self.enrol_event(prepared, subject, image_id, face_id, choice, re_enrolled=re_enrolled)
            audit.record(self.dd, conn, event)
        index.add(np.asarray([face_id], dtype=np.int64), face.embedding.vector.reshape(1, -1))
        self.dd.mark_changed(self.gallery, model.key)
        self.tally.enrolled.append(
            EnrolledImage(
                prepared.item.subject_id,
                prepared.provenance.source,
                prepared.sha256,
                image_id,
                face_id,
                float(face.quality.score),
                str(choice.rule),
            )
        )
        self.tally.since_save += 1
        if self.tally.since_save >= self.options.save_every:
            self.checkpoint()

    def mark_re_enrolled(self, conn: Connection, sha: str) -> bool:
        """Record on the purge rows of ``sha`` that it is enrolled again, and why; False if none."""
        if self.options.re_enrol_purged is None:
            return False
        marked = conn.execute(
            update(purged_images)
            .where(
                purged_images.c.gallery == self.gallery.name,
                purged_images.c.sha256 == sha,
                purged_images.c.re_enrolled_at.is_(None),
            )
            .values(
                re_enrolled_at=datetime.now(UTC),
                re_enrolled_by=self.options.enrolled_by,
                re_enrol_reason=self.options.re_enrol_purged,
            )
        )
        return bool(marked.rowcount)

    def enrol_event(
        self,
        prepared: _Prepared,
        subject_id: int,
        image_id: int,
        face_id: int,
        choice: FaceChoice,
        *,
        re_enrolled: bool = False,
    ) -> audit_events.AuditEvent:
        """The image's audit entry, committed with its face.

        The log is append-only and outlives a purge, so it names the subject by its internal
        id and leaves out the external id, file name and record id: those go with the purge.
        An image a purge had removed carries ``re_enrolled_after_purge``: the reason given.
        ``face_choice`` says which part of the face rule chose the face, of how many found.
        """
        prov = prepared.provenance
        extra: dict[str, audit_events.JsonValue] = (
            {"re_enrolled_after_purge": self.options.re_enrol_purged} if re_enrolled else {}
        )
        return audit_events.enrolled(
            self.options.enrolled_by,
            gallery=self.gallery.name,
            subject_id=f"subject:{subject_id}",
            face_ids=[face_id],
            image_sha256=prepared.sha256,
            provenance={
                "collected_on": prov.collected_on.isoformat() if prov.collected_on else None,
                "enrolled_by": prov.enrolled_by,
                "retention_until": prov.retention_until.isoformat() if prov.retention_until else None,
                "image_id": image_id,
                "run_id": self.run_id,
                "face_choice": {"rule": str(choice.rule), "faces_found": choice.faces_found},
                **extra,
            },
        )

    def new_image(
        self, prepared: _Prepared, outcome: Outcome, subject_id: int, choice: FaceChoice
    ) -> repository.NewImage:
        analysis = outcome.analysis
        return repository.NewImage(
            gallery_id=self.gid,
            subject_id=subject_id,
            sha256=prepared.sha256,
            format=outcome.image_format or "unknown",
            width=analysis.width if analysis else 0,
            height=analysis.height if analysis else 0,
            byte_size=len(prepared.data),
            provenance=prepared.provenance,
            run_id=self.run_id,
            face_choice=choice.to_dict(),
        )

    def index_for(self, model: ModelRef) -> PersistentIndex:
        if self.tally.model is None or self.tally.index is None:
            with self.dd.store.begin() as conn:
                repository.ensure_model(conn, model)
                repository.update_run(
                    conn,
                    self.run_id,
                    enrolled=len(self.tally.enrolled),
                    skipped=len(self.tally.skipped),
                    model_key=model.key,
                )
            self.tally.model, self.tally.index = model, self.dd.index(self.gallery, model)
        elif model != self.tally.model:
            raise ModelError(f"the pipeline switched models mid-run ({self.tally.model.key} -> {model.key})")
        return self.tally.index

    def skip(self, skipped: Skipped) -> None:
        self.tally.skipped.append(skipped)
        with self.dd.store.begin() as conn:
            repository.record_skip(
                conn,
                self.run_id,
                source=skipped.source,
                reason=str(skipped.reason),
                detail=skipped.detail,
                subject_external_id=skipped.subject_id,
                sha256=skipped.sha256,
            )

    def report(self, current: str) -> None:
        if self.progress is not None:
            done = len(self.tally.enrolled) + len(self.tally.skipped)
            self.progress(
                Progress(self.total, done, len(self.tally.enrolled), len(self.tally.skipped), current)
            )

    def checkpoint(self, status: str | None = None) -> None:
        self.dd.save_indexes()
        self.tally.since_save = 0
        with self.dd.store.begin() as conn:
            repository.update_run(
                conn,
                self.run_id,
                enrolled=len(self.tally.enrolled),
                skipped=len(self.tally.skipped),
                status=status,
            )

    # the loop

    def run(self, items: Iterable[EnrolItem], executor: Executor, window: int) -> None:
        pending: dict[Future[Outcome], _Prepared] = {}
        queue = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    break
                prepared = self.prepare(item)
                if isinstance(prepared, Skipped):
                    self.skip(prepared)
                    self.report(str(item.path))
                    continue
                job = executor.submit(analyse_in_worker, prepared.data, str(prepared.item.path), self.floor)
                pending[job] = prepared
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: str(pending[f].item.path)):
                self.finish(pending.pop(future), future.result())


def _skip(item: EnrolItem, reason: SkipReason, detail: str, sha: str | None = None) -> Skipped:
    """A skip names the image file; a manifest row's line is added so the row can be fixed."""
    where = f" [{item.origin}]" if item.origin and item.origin != str(item.path) else ""
    return Skipped(str(item.path), reason, detail + where, item.subject_id, sha)


def _new_face(face: AnalyzedFace) -> repository.NewFace:
    return repository.NewFace(
        face_index=face.index,
        box=face.face.box.to_dict(),
        landmarks=face.face.landmarks.to_dict(),
        quality=face.quality.to_dict(),
        quality_score=float(face.quality.score),
        detector=face.face.detector,
        detector_score=float(face.face.score),
        model=face.embedding.model,
        embedding=face.embedding.vector,
    )


SMALL_BATCH = 24
"""Below this many images, starting worker processes (each loads its models, ~2 s) costs more
than it saves, so an automatic worker count uses this process alone."""


def worker_count(options: EnrolOptions, settings: Settings, items: int) -> int:
    """Explicit counts are honoured; 0 (automatic) means one per CPU core, or one for a small batch."""
    wanted = settings.workers if options.workers is None else options.workers
    if wanted <= 0:
        wanted = 1 if items < SMALL_BATCH else os.cpu_count() or 1
    return max(1, min(wanted, items))


def settings_snapshot(settings: Settings, floor: float) -> dict[str, Any]:
    return {
        "detector": asdict(settings.detector),
        "embedder": asdict(settings.embedder),
        "image": asdict(settings.image),
        "quality_floor": floor,
    }
