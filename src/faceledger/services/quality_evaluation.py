"""Does the quality score predict recognition errors? The EDC of ISO/IEC 29794-1 on a pairs file.

Every image of the protocol goes through the real pipeline once (the face nearest the
centre, as the LFW evaluation takes it); its unit embedding and its quality report are
cached per image sha256, the vectors in the same cache ``faceledger eval lfw`` uses and
the reports beside them in a file of their own, whose name also depends on the source of
``pipeline/quality.py`` (a changed formula never reuses old reports).

The genuine (same-person) pairs then give the error-versus-discard characteristic: FNMR at
the calibrated default threshold as the lowest-quality pairs are discarded, a pair's
quality being the lower of its two images'. It is computed for the overall score and for
each of its four factors on its own, against random discard. An image in which no face
was found has quality 0 and its pairs count as false non-matches, so they are the first
discarded. Candidate quality floors are reported with the share of images below them and
the FNMR of the genuine pairs both of whose images reach the floor.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from faceledger.domain import metrics
from faceledger.domain.calibration import find_calibration
from faceledger.domain.models import QUALITY_ASPECTS, AnalyzedFace, ModelRef, QualityReport
from faceledger.errors import EvaluationError, FaceLedgerError
from faceledger.pipeline import quality as quality_module
from faceledger.services.evaluation import (
    EmbedderSpec,
    EmbeddingCache,
    PairsProtocol,
    Progress,
    existing_images_dir,
    file_sha256,
    lfw_image_path,
    map_images,
    parse_pairs,
    pending_images,
    pipeline_faces,
    pipeline_spec,
    protocol_images,
    unit_vector,
    write_npz_atomically,
)

if TYPE_CHECKING:
    from faceledger.config import Settings

FloatArray = npt.NDArray[np.float32]

#: Discard fractions of the EDC table (ISO/IEC 29794-1 looks at the low end of the curve).
DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.10, 0.15, 0.20)
#: Candidate quality floors (0-100) the table reports.
DEFAULT_FLOORS: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0)
#: What the EDC is computed for: the overall score, then each factor on its own.
MEASURES: tuple[str, ...] = ("score", *QUALITY_ASPECTS)


class FaceFinder(Protocol):
    """What each worker process runs: the evaluated face of an image file, or None."""

    def face(self, path: Path) -> AnalyzedFace | None: ...


@dataclass(frozen=True)
class QualitySpec:
    """How to build a :class:`FaceFinder` in a worker, and what its results depend on."""

    embedding: EmbedderSpec
    factory: Callable[[], FaceFinder]

    @property
    def model(self) -> ModelRef:
        return self.embedding.model

    @property
    def cache_id(self) -> str:
        source = hashlib.sha256(inspect.getsource(quality_module).encode()).hexdigest()
        text = json.dumps({"embedding": self.embedding.cache_id, "quality_source": source}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def pipeline_quality_spec(settings: Settings) -> QualitySpec:
    """The real pipeline under ``settings`` (loads the models once to learn their identity)."""
    return QualitySpec(embedding=pipeline_spec(settings), factory=functools.partial(pipeline_faces, settings))


def _report_record(report: QualityReport) -> str:
    return json.dumps(asdict(report))


def _report_from_record(text: str) -> QualityReport:
    data = json.loads(text)
    return QualityReport(**(data | {"issues": tuple(data["issues"])}))


class QualityCache:
    """Quality reports keyed by image sha256 (``""``: no face), one ``.npz`` per :class:`QualitySpec`.

    Written like :class:`EmbeddingCache` (atomically, merging what another run saved).
    """

    def __init__(self, directory: Path, spec: QualitySpec) -> None:
        self.path = directory / f"quality-{spec.cache_id}.npz"

    def load(self) -> dict[str, QualityReport | None]:
        if not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys = [str(k) for k in data["keys"]]
                records = [str(r) for r in data["records"]]
            return {k: (_report_from_record(r) if r else None) for k, r in zip(keys, records, strict=True)}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvaluationError(
                f"{self.path}: unreadable quality cache ({exc}); delete it to recompute"
            ) from exc

    def save(self, entries: Mapping[str, QualityReport | None]) -> None:
        try:
            merged = self.load()
        except EvaluationError:
            merged = {}  # unreadable: this write replaces it
        merged.update(entries)
        keys = sorted(merged)
        records = [_report_record(r) if (r := merged[k]) is not None else "" for k in keys]
        write_npz_atomically(self.path, keys=np.array(keys, dtype="U64"), records=np.array(records))


AssessedImage = tuple[FloatArray, QualityReport] | None
"""An image's unit vector and quality report; None when no face was found."""


def _assess_one(model: ModelRef, finder: FaceFinder, path: Path) -> AssessedImage:
    try:
        face = finder.face(path)
    except EvaluationError:
        raise
    except FaceLedgerError as exc:
        raise EvaluationError(f"{path}: {exc}") from exc
    if face is None:
        return None
    return unit_vector(path, face.embedding, model), face.quality


@dataclass(frozen=True)
class AssessedTable:
    """Each image's vector and quality report (None: no face found)."""

    images: dict[Path, AssessedImage]
    n_computed: int
    n_cached: int


def assess_images(
    paths: Sequence[Path],
    spec: QualitySpec,
    *,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    save_every: int = 128,
) -> AssessedTable:
    """Vector and quality of each of ``paths``, from the caches where both are there, else computed."""
    shas = {path: file_sha256(path) for path in paths}
    vector_cache = EmbeddingCache(cache_dir, spec.embedding) if cache_dir is not None else None
    quality_cache = QualityCache(cache_dir, spec) if cache_dir is not None else None
    vectors = vector_cache.load() if vector_cache is not None else {}
    reports = quality_cache.load() if quality_cache is not None else {}
    waiting, n_cached = pending_images(shas, lambda sha: sha in vectors and sha in reports)
    total = len(shas)
    done = n_cached
    if progress is not None:
        progress(done, total)
    todo = [(sha, same[0]) for sha, same in waiting.items()]
    task = functools.partial(_assess_one, spec.model)
    for computed, (sha, result) in enumerate(map_images(todo, spec.factory, task, workers), start=1):
        vectors[sha], reports[sha] = (None, None) if result is None else result
        done += len(waiting[sha])
        if progress is not None:
            progress(done, total)
        if vector_cache is not None and quality_cache is not None and computed % save_every == 0:
            vector_cache.save(vectors)
            quality_cache.save(reports)
    if vector_cache is not None and quality_cache is not None and todo:
        vector_cache.save(vectors)
        quality_cache.save(reports)
    images: dict[Path, AssessedImage] = {}
    for path, sha in shas.items():
        vector, report = vectors[sha], reports[sha]
        images[path] = None if vector is None or report is None else (vector, report)
    return AssessedTable(images=images, n_computed=len(todo), n_cached=n_cached)


def measure_of(report: QualityReport | None, measure: str) -> float:
    """The overall score or one factor (0-100) of an image; 0 where no face was found."""
    if report is None:
        return 0.0
    if measure == "score":
        return report.score
    factors = report.factors
    if factors is None:
        raise EvaluationError("a quality report without its factors (made before they were recorded)")
    return factors[measure]


@dataclass(frozen=True, slots=True)
class FloorRow:
    """What a quality floor would turn down, and the FNMR of the genuine pairs it keeps."""

    floor: float
    images_below: int
    images_below_share: float
    genuine_kept: int
    genuine_kept_share: float
    fnmr_kept: float

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: _json_number(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class QualityEvaluation:
    """EDC curves (score and each factor) and candidate floors, with what made them."""

    pairs_file: str
    images_dir: str
    model: ModelRef
    settings: Mapping[str, Any]
    threshold: float
    threshold_source: str
    n_images: int
    n_images_failed: int
    n_genuine: int
    n_genuine_failed: int
    curves: Mapping[str, tuple[metrics.EdcPoint, ...]]
    floors: tuple[FloorRow, ...]
    n_images_computed: int
    n_images_cached: int
    seconds: float
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": "edc-fnmr",
            "pairs_file": self.pairs_file,
            "images_dir": self.images_dir,
            "model": self.model.to_dict() | {"key": self.model.key},
            "settings": dict(self.settings),
            "threshold": {"value": round(self.threshold, 6), "source": self.threshold_source},
            "images": {
                "total": self.n_images,
                "failed_to_acquire": self.n_images_failed,
                "computed": self.n_images_computed,
                "cached": self.n_images_cached,
            },
            "genuine_pairs": {"total": self.n_genuine, "failed_to_acquire": self.n_genuine_failed},
            "edc": {name: [p.to_dict() for p in points] for name, points in self.curves.items()},
            "floors": [row.to_dict() for row in self.floors],
            "seconds": round(self.seconds, 1),
            "notes": list(self.notes),
        }


def _json_number(value: float | int) -> float | int | None:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def _similarity(a: AssessedImage, b: AssessedImage) -> float:
    return float(np.dot(a[0], b[0])) if a is not None and b is not None else float("nan")


def _report(image: AssessedImage) -> QualityReport | None:
    return image[1] if image is not None else None


def _pair_paths(protocol: PairsProtocol, images_dir: Path, *, same: bool) -> list[tuple[Path, Path]]:
    return [
        (lfw_image_path(images_dir, p.name_a, p.index_a), lfw_image_path(images_dir, p.name_b, p.index_b))
        for p in protocol.pairs
        if p.same == same
    ]


def _floor_rows(
    table: AssessedTable,
    genuine: list[tuple[Path, Path]],
    scores: npt.NDArray[np.float64],
    threshold: float,
    floors: Sequence[float],
) -> tuple[FloorRow, ...]:
    image_scores = {path: measure_of(_report(image), "score") for path, image in table.images.items()}
    rows = []
    for floor in floors:
        below = sum(score < floor for score in image_scores.values())
        keep = np.array(
            [image_scores[a] >= floor and image_scores[b] >= floor for a, b in genuine], dtype=bool
        )
        kept = scores[keep]
        rows.append(
            FloorRow(
                floor=float(floor),
                images_below=below,
                images_below_share=below / len(image_scores) if image_scores else float("nan"),
                genuine_kept=int(keep.sum()),
                genuine_kept_share=float(keep.mean()) if keep.size else float("nan"),
                fnmr_kept=metrics.false_reject_rate(kept, threshold) if kept.size else float("nan"),
            )
        )
    return tuple(rows)


def evaluate_quality_with(
    protocol: PairsProtocol,
    images_dir: Path,
    spec: QualitySpec,
    *,
    threshold: float,
    threshold_source: str,
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    floors: Sequence[float] = DEFAULT_FLOORS,
) -> QualityEvaluation:
    """The EDC of a parsed pairs protocol at ``threshold``, with any :class:`QualitySpec`."""
    started = time.perf_counter()
    paths = protocol_images(protocol, images_dir)
    table = assess_images(paths, spec, cache_dir=cache_dir, workers=workers, progress=progress)
    genuine = _pair_paths(protocol, images_dir, same=True)
    if not genuine:
        raise EvaluationError(f"{protocol.path}: no same-person pairs, so no FNMR to discard against")
    scores = np.array([_similarity(table.images[a], table.images[b]) for a, b in genuine])
    curves = {}
    for measure in MEASURES:
        qa = [measure_of(_report(table.images[a]), measure) for a, _ in genuine]
        qb = [measure_of(_report(table.images[b]), measure) for _, b in genuine]
        curves[measure] = metrics.edc(scores, metrics.pair_quality(qa, qb), threshold, fractions)
    notes = (
        "FNMR counts every genuine pair: a pair with an image where no face was found is a false "
        "non-match with quality 0 (failure to acquire)",
        "a pair's quality is the lower of its two images'; pairs of equal quality at the cut are kept "
        "together",
        "random discard: the exact expected FNMR (equal to the FNMR before discarding) and its standard "
        "deviation over random draws of the same size",
        "floors: images below are those with a score under the floor (no face: score 0); FNMR over the "
        "genuine pairs whose two images reach it",
    )
    return QualityEvaluation(
        pairs_file=str(protocol.path),
        images_dir=str(images_dir),
        model=spec.model,
        settings=spec.embedding.settings,
        threshold=threshold,
        threshold_source=threshold_source,
        n_images=len(paths),
        n_images_failed=sum(v is None for v in table.images.values()),
        n_genuine=len(genuine),
        n_genuine_failed=int(np.isnan(scores).sum()),
        curves=curves,
        floors=_floor_rows(table, genuine, scores, threshold, floors),
        n_images_computed=table.n_computed,
        n_images_cached=table.n_cached,
        seconds=time.perf_counter() - started,
        notes=notes,
    )


def read_protocol(images_dir: Path | str, pairs_file: Path | str) -> tuple[Path, PairsProtocol]:
    """The images folder and the parsed pairs file, every image of which must exist there.

    Cheap (no model is loaded), so a caller can check its input before starting the work.
    """
    directory = existing_images_dir(images_dir)
    protocol = parse_pairs(pairs_file)
    protocol_images(protocol, directory)
    return directory, protocol


def evaluate_quality(
    images_dir: Path | str,
    pairs_file: Path | str,
    settings: Settings,
    *,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> QualityEvaluation:
    """``faceledger eval quality``: the EDC on a pairs file with the real pipeline under ``settings``.

    The threshold is the calibrated default of the model and flip setting (as ``eval lfw``
    reports it); a model without a calibration is an error. ``workers`` None takes the
    ``workers`` setting (0: one per CPU core).
    """
    directory, protocol = read_protocol(images_dir, pairs_file)
    spec = pipeline_quality_spec(settings)
    calibration = find_calibration(spec.model.key, flip=settings.embedder.flip)
    if calibration is None:
        raise EvaluationError(
            f"no calibrated threshold for model {spec.model.key} with flip={settings.embedder.flip}; "
            "the EDC is measured at the calibrated default threshold"
        )
    count = settings.workers if workers is None else workers
    return evaluate_quality_with(
        protocol,
        directory,
        spec,
        threshold=calibration.default_threshold,
        threshold_source=f"calibrated default ({calibration.dataset})",
        cache_dir=cache_dir,
        workers=count if count > 0 else (os.cpu_count() or 1),
        progress=progress,
    )
