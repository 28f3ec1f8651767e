"""Enrolment: images with provenance in, subjects with faces and vectors out.

Work is split so that a crash at any instant leaves a consistent data directory:

* worker processes (one per CPU core, each with its own :class:`Pipeline`) decode and
  analyse images; they never touch the database or the index;
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

import csv
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import date
from enum import StrEnum
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from faceledger.adapters.images import sha256_hex
from faceledger.adapters.store import repository
from faceledger.config import Settings
from faceledger.domain.models import AnalyzedFace, DecodedImage, Gallery, ImageAnalysis, ModelRef, Provenance
from faceledger.errors import (
    ConflictError,
    FaceLedgerError,
    ImageError,
    ModelError,
    NoFaceError,
    ProvenanceError,
    ValidationError,
)
from faceledger.services.datadir import DataDir, RecoveryReport
from faceledger.services.galleries import retention_until, validate_subject_id

if TYPE_CHECKING:
    from faceledger.adapters.index import PersistentIndex


class Analyzer(Protocol):
    """What enrolment needs of :class:`faceledger.pipeline.run.Pipeline`."""

    @property
    def model(self) -> ModelRef: ...

    def analyze(self, image: DecodedImage) -> ImageAnalysis: ...


# --- records ---------------------------------------------------------------------------


class SkipReason(StrEnum):
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    LOW_QUALITY = "low_quality"
    UNREADABLE = "unreadable_image"
    ANALYSIS_FAILED = "analysis_failed"
    DUPLICATE = "duplicate"
    ALREADY_ENROLLED = "already_enrolled"
    MISSING_PROVENANCE = "missing_provenance"
    BAD_ROW = "bad_row"


@dataclass(frozen=True, slots=True)
class EnrolItem:
    """One image to enrol. Unset provenance fields fall back to :class:`EnrolOptions`."""

    subject_id: str
    path: Path
    source: str | None = None
    record_id: str | None = None
    collected_on: date | None = None
    enrolled_by: str | None = None
    retention_until: date | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class EnrolOptions:
    """How to enrol. ``enrolled_by`` names the person responsible and is always recorded."""

    enrolled_by: str
    collected_on: date | None = None
    quality_floor: float | None = None  # None: settings.quality_floor
    workers: int | None = None  # None: settings.workers; 0: one per CPU core; 1: in this process
    save_every: int = 100


@dataclass(frozen=True, slots=True)
class Skipped:
    source: str
    reason: SkipReason
    detail: str
    subject_id: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class EnrolledImage:
    subject_id: str
    source: str
    sha256: str
    image_id: int
    face_id: int
    quality_score: float


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    done: int
    enrolled: int
    skipped: int
    current: str


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class EnrolmentResult:
    gallery: str
    run_id: int
    model_key: str | None
    total: int
    enrolled: tuple[EnrolledImage, ...]
    skipped: tuple[Skipped, ...]
    seconds: float
    interrupted: bool = False
    recovery: RecoveryReport | None = None

    def skipped_by_reason(self) -> dict[SkipReason, int]:
        return dict(Counter(s.reason for s in self.skipped))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gallery": self.gallery,
            "run_id": self.run_id,
            "model": self.model_key,
            "total": self.total,
            "enrolled": len(self.enrolled),
            "skipped": {str(k): v for k, v in sorted(self.skipped_by_reason().items())},
            "skipped_items": [
                {"source": s.source, "reason": str(s.reason), "detail": s.detail, "subject_id": s.subject_id}
                for s in self.skipped
            ],
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }


class EnrolmentInterrupted(KeyboardInterrupt):
    """Ctrl-C during an enrolment: what was committed stays; rerun to continue."""

    def __init__(self, result: EnrolmentResult) -> None:
        super().__init__(
            f"enrolment into {result.gallery!r} interrupted after {len(result.enrolled)} images; "
            "rerun the same command to continue"
        )
        self.result = result


# --- sources ---------------------------------------------------------------------------

MANIFEST_COLUMNS: dict[str, str] = {
    "subject_id": "required: the subject's id, unique within the gallery",
    "path": "required: image file; a relative path is relative to the CSV file's folder",
    "source": "where the image came from (default: the image file's path)",
    "record_id": "id of the image in its system of record",
    "collected_on": "date the image was collected, YYYY-MM-DD",
    "enrolled_by": "person responsible for this row (default: the enrolment's operator)",
    "retention_until": "keep until this date, YYYY-MM-DD (default: the gallery's retention rule)",
}
_REQUIRED_COLUMNS = ("subject_id", "path")
_IGNORED_FILES = {"thumbs.db", "desktop.ini"}


def _parse_date(value: str, column: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationError(f"{column} {value!r} is not a date in the form YYYY-MM-DD") from exc


def read_folder(folder: Path | str) -> tuple[list[EnrolItem], list[Skipped]]:
    """Items from ``<folder>/<subject id>/<image files>``; stray files are reported, not enrolled."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValidationError(f"{root} is not a folder of subject folders")
    items: list[EnrolItem] = []
    problems: list[Skipped] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name.lower() in _IGNORED_FILES:
            continue
        if not entry.is_dir():
            problems.append(Skipped(str(entry), SkipReason.BAD_ROW, "not inside a subject folder"))
            continue
        files = [p for p in sorted(entry.rglob("*")) if p.is_file() and not _hidden(p, entry)]
        try:
            subject = validate_subject_id(entry.name)
        except ValidationError as exc:
            problems += [Skipped(str(p), SkipReason.BAD_ROW, str(exc)) for p in files]
            continue
        items += [EnrolItem(subject_id=subject, path=p, origin=str(p)) for p in files]
    return items, problems


def _hidden(path: Path, base: Path) -> bool:
    parts = path.relative_to(base).parts
    return any(part.startswith(".") for part in parts) or path.name.lower() in _IGNORED_FILES


def read_manifest(csv_path: Path | str) -> tuple[list[EnrolItem], list[Skipped]]:
    """Items from a CSV manifest (columns: :data:`MANIFEST_COLUMNS`); bad rows are reported."""
    path = Path(csv_path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ValidationError(f"manifest {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise ValidationError(f"manifest {path} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ValidationError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(text.splitlines())
    _check_header(path, reader.fieldnames)
    items: list[EnrolItem] = []
    problems: list[Skipped] = []
    try:
        for row in reader:
            origin = f"{path}:{reader.line_num}"
            try:
                items.append(_manifest_item(row, path.parent, origin))
            except ValidationError as exc:
                problems.append(
                    Skipped(origin, SkipReason.BAD_ROW, str(exc), subject_id=row.get("subject_id"))
                )
    except csv.Error as exc:
        raise ValidationError(f"manifest {path} line {reader.line_num}: {exc}") from exc
    return items, problems


def _check_header(path: Path, fieldnames: Sequence[str] | None) -> None:
    columns = [c.strip() for c in (fieldnames or [])]
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in MANIFEST_COLUMNS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        raise ValidationError(
            f"manifest {path}: {'; '.join(problems)}. Columns: {', '.join(MANIFEST_COLUMNS)}"
        )


def _manifest_item(row: dict[str | Any, Any], base: Path, origin: str) -> EnrolItem:
    if None in row:
        raise ValidationError("more fields than the header has columns")
    values = {str(k).strip(): (v or "").strip() for k, v in row.items()}
    if not values.get("path"):
        raise ValidationError("the path is empty")
    path = Path(values["path"]).expanduser()
    return EnrolItem(
        subject_id=validate_subject_id(values.get("subject_id", "")),
        path=path if path.is_absolute() else base / path,
        source=values.get("source") or None,
        record_id=values.get("record_id") or None,
        collected_on=_parse_date(values.get("collected_on", ""), "collected_on"),
        enrolled_by=values.get("enrolled_by") or None,
        retention_until=_parse_date(values.get("retention_until", ""), "retention_until"),
        origin=origin,
    )


# --- worker side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Outcome:
    """A worker's answer for one image: an analysis, or why there is none."""

    analysis: ImageAnalysis | None
    image_format: str = ""
    error: str | None = None
    error_kind: str | None = None  # "image" | "analysis" | "model"


_worker_settings: Settings | None = None
_worker_pipeline: Analyzer | None = None


def _init_worker(settings: Settings) -> None:
    """Ctrl-C is the main process's to handle: it stops handing out work and finishes cleanly."""
    global _worker_settings
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_settings = settings


def _make_pipeline(settings: Settings, *, in_worker: bool) -> Analyzer:
    """In a worker the cores are already shared out between workers: no flip helper process."""
    from faceledger.pipeline.run import Pipeline

    pipeline: Analyzer = Pipeline.from_settings(settings, parallel_flip=False if in_worker else None)
    return pipeline


def _analyse_in_worker(data: bytes, source: str) -> _Outcome:
    global _worker_pipeline
    settings = _worker_settings or Settings()
    if _worker_pipeline is None:
        try:
            _worker_pipeline = _make_pipeline(settings, in_worker=True)
        except FaceLedgerError as exc:
            return _Outcome(None, error=str(exc), error_kind="model")
    return analyse(_worker_pipeline, data, source, settings)


def analyse(pipeline: Analyzer, data: bytes, source: str, settings: Settings) -> _Outcome:
    from faceledger.pipeline.ingest import decode_image

    try:
        image = decode_image(data, source=source, limits=settings.image)
    except ImageError as exc:
        return _Outcome(None, error=str(exc), error_kind="image")
    try:
        return _Outcome(pipeline.analyze(image), image_format=image.format)
    except ModelError as exc:
        return _Outcome(None, error=str(exc), error_kind="model")
    except FaceLedgerError as exc:
        return _Outcome(None, error=str(exc), error_kind="analysis")


class _InlineExecutor(Executor):
    """Runs the analysis in this process, building the pipeline only when first needed."""

    def __init__(self, settings: Settings, pipeline: Analyzer | None = None) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._owned = pipeline is None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        data, source = args
        try:
            if self._pipeline is None:
                self._pipeline = _make_pipeline(self._settings, in_worker=False)
            future.set_result(analyse(self._pipeline, data, source, self._settings))
        except Exception as exc:  # surfaces from .result(), as it would from a pool
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        close = getattr(self._pipeline, "close", None)
        if self._owned and callable(close):
            close()
        self._pipeline = None


# --- main side -------------------------------------------------------------------------


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


class _Enrolment:
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
        duplicate = self.duplicate(item, sha)
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

    # results: classify, then write

    def classify(self, prepared: _Prepared, outcome: _Outcome) -> AnalyzedFace | Skipped:
        item, sha = prepared.item, prepared.sha256
        if outcome.error_kind == "model":
            raise ModelError(outcome.error or "the face model could not be used")
        if outcome.analysis is None:
            reason = SkipReason.UNREADABLE if outcome.error_kind == "image" else SkipReason.ANALYSIS_FAILED
            return _skip(item, reason, outcome.error or "unknown error", sha)
        faces = outcome.analysis.faces
        if not faces:
            return _skip(item, SkipReason.NO_FACE, "no face found", sha)
        if len(faces) > 1:
            detail = f"{len(faces)} faces found; enrol a crop that shows only the subject"
            return _skip(item, SkipReason.SEVERAL_FACES, detail, sha)
        quality = faces[0].quality
        if quality.score < self.floor:
            issues = f" ({', '.join(quality.issues)})" if quality.issues else ""
            detail = f"quality {quality.score:.1f} below the floor {self.floor:g}{issues}"
            return _skip(item, SkipReason.LOW_QUALITY, detail, sha)
        return faces[0]

    def finish(self, prepared: _Prepared, outcome: _Outcome) -> None:
        verdict = self.classify(prepared, outcome)
        if isinstance(verdict, Skipped):
            self.skip(verdict)
        else:
            self.write(prepared, outcome, verdict)
        self.report(str(prepared.item.path))

    def write(self, prepared: _Prepared, outcome: _Outcome, face: AnalyzedFace) -> None:
        model = face.embedding.model
        index = self.index_for(model)
        self.dd.images.put(prepared.data, prepared.sha256)  # before the commit: see module docstring
        analysis = outcome.analysis
        assert analysis is not None  # classify() returned a face
        with self.dd.store.begin() as conn:
            subject = repository.get_or_create_subject(conn, self.gid, prepared.item.subject_id)
            image_id = repository.insert_image(conn, self.new_image(prepared, outcome, subject))
            face_id = repository.insert_face(
                conn, image_id=image_id, subject_id=subject, gallery_id=self.gid, face=_new_face(face)
            )
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
            )
        )
        self.tally.since_save += 1
        if self.tally.since_save >= self.options.save_every:
            self.checkpoint()

    def new_image(self, prepared: _Prepared, outcome: _Outcome, subject_id: int) -> repository.NewImage:
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
        pending: dict[Future[_Outcome], _Prepared] = {}
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
                pending[executor.submit(_analyse_in_worker, prepared.data, str(prepared.item.path))] = (
                    prepared
                )
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


def _worker_count(options: EnrolOptions, settings: Settings, items: int) -> int:
    wanted = settings.workers if options.workers is None else options.workers
    if wanted <= 0:
        wanted = os.cpu_count() or 1
    return max(1, min(wanted, items))


def _settings_snapshot(settings: Settings, floor: float) -> dict[str, Any]:
    return {
        "detector": asdict(settings.detector),
        "embedder": asdict(settings.embedder),
        "image": asdict(settings.image),
        "quality_floor": floor,
    }


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
    started = time.monotonic()
    with dd.writing():
        with dd.store.read() as conn:
            gallery = repository.get_gallery(conn, gallery_name)
        _check_required_defaults(gallery, items, options)
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


def _start(dd: DataDir, gallery: Gallery, options: EnrolOptions, source: str, total: int) -> _Enrolment:
    floor = dd.settings.quality_floor if options.quality_floor is None else options.quality_floor
    with dd.store.begin() as conn:
        run_id = repository.start_run(
            conn,
            gallery_id=gallery.id or 0,
            source=source,
            enrolled_by=options.enrolled_by,
            settings=_settings_snapshot(dd.settings, floor),
        )
    return _Enrolment(dd, gallery, options, run_id, total)


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
    job: _Enrolment, dd: DataDir, items: Sequence[EnrolItem], options: EnrolOptions, pipeline: Analyzer | None
) -> None:
    workers = _worker_count(options, dd.settings, len(items))
    executor: Executor
    if pipeline is not None or workers == 1:
        executor = _InlineExecutor(dd.settings, pipeline)
    else:
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
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


def iter_skips(result: EnrolmentResult, reason: SkipReason) -> Iterator[Skipped]:
    return (s for s in result.skipped if s.reason == reason)
