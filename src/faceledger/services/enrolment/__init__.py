"""Enrolment: images with provenance in, subjects with faces and vectors out.

Work is split so that a crash at any instant leaves a consistent data directory:

* worker processes (one per CPU core, each with its own :class:`Pipeline`; none for a
  small batch) decode and analyse images; they never touch the database or the index;
* the main process is the only writer. Per image it writes the image file (atomic, fsynced),
  then commits image row + face row + embedding in ONE transaction, then adds the vector to
  the in-memory index; the index is saved every ``save_every`` images and at the end.

A crash before the commit leaves at most an unreferenced image file (removed by the next
writer's recovery); after it, at most vectors missing from the saved index (added back
from the database when the index is next opened). Rerunning the same enrolment skips
every image already in the gallery (by sha256), so it continues where it stopped.

Sources are a folder with one sub-folder per subject, or a CSV manifest (see
:data:`MANIFEST_COLUMNS` and docs/data-directory.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from multiprocessing import get_context
from pathlib import Path

from faceledger.adapters.store import repository
from faceledger.domain import text
from faceledger.domain.models import Gallery
from faceledger.errors import (
    ConflictError,
    FaceLedgerError,
    ImageError,
    ModelError,
    NoFaceError,
    ProvenanceError,
    ValidationError,
)
from faceledger.services.datadir import DataDir
from faceledger.services.enrolment.job import Enrolment, settings_snapshot, worker_count
from faceledger.services.enrolment.records import (
    Analyzer,
    EnrolItem,
    EnrolledImage,
    EnrolmentInterrupted,
    EnrolmentResult,
    EnrolOptions,
    Progress,
    ProgressCallback,
    Skipped,
    SkipReason,
)
from faceledger.services.enrolment.sources import MANIFEST_COLUMNS, read_folder, read_manifest
from faceledger.services.enrolment.worker import InlineExecutor, init_worker
from faceledger.services.galleries import validate_subject_id

__all__ = [
    "MANIFEST_COLUMNS",
    "Analyzer",
    "EnrolItem",
    "EnrolOptions",
    "EnrolledImage",
    "EnrolmentInterrupted",
    "EnrolmentResult",
    "Progress",
    "ProgressCallback",
    "SkipReason",
    "Skipped",
    "enrol_folder",
    "enrol_image",
    "enrol_items",
    "enrol_manifest",
    "read_folder",
    "read_manifest",
]

# --- public API ------------------------------------------------------------------------


def enrol_items(
    dd: DataDir,
    gallery_name: str,
    items: Sequence[EnrolItem],
    options: EnrolOptions,
    *,
    source: str = "items",
    problems: Sequence[Skipped] = (),
    progress: ProgressCallback | None = None,
    pipeline: Analyzer | None = None,
) -> EnrolmentResult:
    """Enrol ``items`` into a gallery; ``problems`` (bad rows found while reading) are recorded as skips.

    ``pipeline``, when given, is used in this process (no workers are started).
    Raises :class:`EnrolmentInterrupted` on Ctrl-C, after saving what was committed.
    """
    if not options.enrolled_by.strip():
        raise ProvenanceError("an enrolment must name the person responsible (enrolled_by)")
    if options.re_enrol_purged is not None:
        why = text.optional_text(options.re_enrol_purged, "the reason to re-enrol purged images")
        if why is None:
            raise ValidationError("say why purged images may be enrolled again (--re-enrol-purged REASON)")
        options = dataclasses.replace(options, re_enrol_purged=why)
    started = time.monotonic()
    with dd.store.read() as conn:
        gallery = repository.get_gallery(conn, gallery_name)
    _check_required_defaults(gallery, items, options)
    with dd.writing():
        job = _start(dd, gallery, options, source, total=len(items) + len(problems))
        job.progress = progress
        status = repository.RUN_FAILED
        try:
            for problem in problems:
                job.skip(problem)
                job.report(problem.source)
            _execute(job, dd, items, options, pipeline)
            status = repository.RUN_DONE
        except KeyboardInterrupt:
            status = repository.RUN_INTERRUPTED
        finally:
            job.checkpoint(status=status)
    result = EnrolmentResult(
        gallery=gallery.name,
        run_id=job.run_id,
        model_key=job.tally.model.key if job.tally.model else None,
        total=job.total,
        enrolled=tuple(job.tally.enrolled),
        skipped=tuple(job.tally.skipped),
        seconds=time.monotonic() - started,
        interrupted=status == repository.RUN_INTERRUPTED,
        recovery=dd.last_recovery,
    )
    if result.interrupted:
        raise EnrolmentInterrupted(result)
    return result


def _start(dd: DataDir, gallery: Gallery, options: EnrolOptions, source: str, total: int) -> Enrolment:
    floor = dd.settings.quality_floor if options.quality_floor is None else options.quality_floor
    with dd.store.begin() as conn:
        run_id = repository.start_run(
            conn,
            gallery_id=gallery.id or 0,
            source=source,
            enrolled_by=options.enrolled_by,
            settings=settings_snapshot(dd.settings, floor),
        )
    return Enrolment(dd, gallery, options, run_id, total)


def _check_required_defaults(gallery: Gallery, items: Sequence[EnrolItem], options: EnrolOptions) -> None:
    """Fail before any work when no item could ever satisfy the gallery (e.g. no collection date at all)."""
    if not items:
        return
    for name in ("collected_on", "record_id"):
        needed = name in gallery.required_provenance and getattr(options, name, None) is None
        if needed and all(getattr(item, name) is None for item in items):
            raise ProvenanceError(
                f"gallery {gallery.name!r} requires {name} for every image and none was given: "
                f"add a {name} column to the manifest"
                + (" or pass collected_on" if name == "collected_on" else "")
            )


def _execute(
    job: Enrolment, dd: DataDir, items: Sequence[EnrolItem], options: EnrolOptions, pipeline: Analyzer | None
) -> None:
    workers = worker_count(options, dd.settings, len(items))
    executor: Executor
    if pipeline is not None or workers == 1:
        executor = InlineExecutor(dd.settings, pipeline)
    else:
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("spawn"),
            initializer=init_worker,
            initargs=(dd.settings,),
        )
    try:
        job.run(items, executor, window=1 if workers == 1 else workers * 2)
    except BrokenProcessPool as exc:
        raise ModelError(
            "the worker processes that analyse images stopped unexpectedly. If you call faceledger "
            "from your own script, put the call under `if __name__ == '__main__':` (worker processes "
            "import the script again), or enrol with workers=1"
        ) from exc
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def enrol_folder(
    dd: DataDir,
    gallery_name: str,
    folder: Path | str,
    options: EnrolOptions,
    *,
    progress: ProgressCallback | None = None,
    pipeline: Analyzer | None = None,
) -> EnrolmentResult:
    """Enrol ``<folder>/<subject id>/<images>``; each file's path is its provenance source."""
    items, problems = read_folder(folder)
    return enrol_items(
        dd,
        gallery_name,
        items,
        options,
        source=str(Path(folder).resolve()),
        problems=problems,
        progress=progress,
        pipeline=pipeline,
    )


def enrol_manifest(
    dd: DataDir,
    gallery_name: str,
    csv_path: Path | str,
    options: EnrolOptions,
    *,
    progress: ProgressCallback | None = None,
    pipeline: Analyzer | None = None,
) -> EnrolmentResult:
    """Enrol the rows of a CSV manifest (columns: :data:`MANIFEST_COLUMNS`)."""
    items, problems = read_manifest(csv_path)
    return enrol_items(
        dd,
        gallery_name,
        items,
        options,
        source=str(Path(csv_path).resolve()),
        problems=problems,
        progress=progress,
        pipeline=pipeline,
    )


_ERRORS: dict[SkipReason, type[FaceLedgerError]] = {
    SkipReason.NO_FACE: NoFaceError,
    SkipReason.UNREADABLE: ImageError,
    SkipReason.MISSING_PROVENANCE: ProvenanceError,
    SkipReason.DUPLICATE: ConflictError,
    SkipReason.ALREADY_ENROLLED: ConflictError,
    SkipReason.PURGED: ConflictError,
}


def enrol_image(
    dd: DataDir,
    gallery_name: str,
    subject_id: str,
    path: Path | str,
    options: EnrolOptions,
    *,
    pipeline: Analyzer,
    source: str | None = None,
    record_id: str | None = None,
    collected_on: date | None = None,
    retention_until: date | None = None,
) -> EnrolledImage:
    """Enrol one image, or raise why not (ProvenanceError, NoFaceError, ImageError, ConflictError,
    ValidationError for several faces or low quality)."""
    item = EnrolItem(
        subject_id=validate_subject_id(subject_id),
        path=Path(path),
        source=source,
        record_id=record_id,
        collected_on=collected_on,
        retention_until=retention_until,
        origin=str(path),
    )
    result = enrol_items(dd, gallery_name, [item], options, source=str(path), pipeline=pipeline)
    if result.enrolled:
        return result.enrolled[0]
    skipped = result.skipped[0]
    raise _ERRORS.get(skipped.reason, ValidationError)(f"{skipped.source}: {skipped.detail}")
