"""Accuracy evaluations on labelled face photos: LFW pair protocols and 1:N identification.

The figures this module produces are the evidence behind the product's thresholds, so
each result says which model, which settings and which data made it, and counts the
images where no face could be found (failure to acquire, ISO/IEC 19795-1) instead of
quietly dropping them. Embeddings are cached per (image sha256, model, settings), so a
second evaluation of the same photos costs seconds, and computed with one pipeline per CPU
core.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing
import multiprocessing.util
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from faceledger.domain import metrics
from faceledger.domain.calibration import Calibration, find_calibration
from faceledger.domain.models import AnalyzedFace, Embedding, ImageAnalysis, ModelRef
from faceledger.domain.templates import unit_mean
from faceledger.errors import EvaluationError, FaceLedgerError, NoFaceError

if TYPE_CHECKING:
    from faceledger.config import Settings

FloatArray = npt.NDArray[np.float32]
Embedder = Callable[[Path], Embedding | None]
"""Embeds the face an evaluation uses from one image file; None when no face is found."""
Progress = Callable[[int, int], None]
"""Called with (images done, images in all) while embedding."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

W = TypeVar("W")
T = TypeVar("T")


# --- protocol files -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    """One line of a pairs file: two images, and whether they show the same person."""

    name_a: str
    index_a: int
    name_b: str
    index_b: int
    same: bool
    fold: int
    line: int


@dataclass(frozen=True, slots=True)
class PairsProtocol:
    """A parsed pairs file. ``kind`` is "view2" (k folds) or "pairs" (one set, e.g. DevTrain)."""

    path: Path
    kind: Literal["view2", "pairs"]
    n_folds: int
    pairs: tuple[Pair, ...]


def lfw_image_path(images_dir: Path, name: str, index: int) -> Path:
    """LFW's layout: ``<dir>/<Name>/<Name>_<NNNN>.jpg``, NNNN the 1-based image number."""
    return images_dir / name / f"{name}_{index:04d}.jpg"


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read pairs file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from exc


def _header(path: Path, line: str) -> tuple[Literal["view2", "pairs"], int, int]:
    fields = line.split()
    if not fields or len(fields) > 2 or not all(f.isdigit() and int(f) > 0 for f in fields):
        raise EvaluationError(
            f"{path}:1: expected a header '<folds><TAB><pairs per fold>' (View 2 pairs.txt) or "
            f"'<pairs>' (pairsDevTrain.txt), got {line!r}"
        )
    if len(fields) == 2:
        return "view2", int(fields[0]), int(fields[1])
    return "pairs", 1, int(fields[0])


def _index(path: Path, number: int, text: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise EvaluationError(
            f"{path}:{number}: image number {value!r} is not a positive integer in {text!r}"
        )
    return int(value)


def _pair(path: Path, number: int, text: str, same: bool, fold: int) -> Pair:
    fields = text.split()
    if same:
        if len(fields) != 3:
            raise EvaluationError(
                f"{path}:{number}: expected a same-person pair 'Name<TAB>i<TAB>j', got {text!r}"
            )
        name, first, second = fields
        return Pair(
            name,
            _index(path, number, text, first),
            name,
            _index(path, number, text, second),
            True,
            fold,
            number,
        )
    if len(fields) != 4:
        raise EvaluationError(
            f"{path}:{number}: expected a different-person pair 'NameA<TAB>i<TAB>NameB<TAB>j', got {text!r}"
        )
    name_a, first, name_b, second = fields
    if name_a == name_b:
        raise EvaluationError(f"{path}:{number}: a different-person pair names {name_a} twice")
    return Pair(
        name_a,
        _index(path, number, text, first),
        name_b,
        _index(path, number, text, second),
        False,
        fold,
        number,
    )


def parse_pairs(path: Path | str) -> PairsProtocol:
    """Parse LFW View 2 ``pairs.txt`` or a single-set file like ``pairsDevTrain.txt``.

    Each fold (the single-set file has one) lists its same-person lines, then as many
    different-person lines. Blank lines are ignored; any other deviation is an
    :class:`EvaluationError` naming the line.
    """
    source = Path(path)
    numbered = [(n, text) for n, text in enumerate(_read_lines(source), start=1) if text.strip()]
    if not numbered:
        raise EvaluationError(f"{source}: the pairs file is empty")
    first_number, first_text = numbered[0]
    if first_number != 1:
        raise EvaluationError(f"{source}:1: the header must be the first line")
    kind, n_folds, per_fold = _header(source, first_text)
    body = numbered[1:]
    expected = n_folds * per_fold * 2
    if len(body) > expected:
        raise EvaluationError(
            f"{source}:{body[expected][0]}: more pair lines than the header announces "
            f"({n_folds} x {per_fold} same + {per_fold} different = {expected})"
        )
    if len(body) < expected:
        raise EvaluationError(
            f"{source}: ends after {len(body)} pair lines; the header announces {expected} "
            f"({n_folds} fold(s) of {per_fold} same + {per_fold} different)"
        )
    pairs = tuple(
        _pair(
            source, number, text, same=(position % (2 * per_fold)) < per_fold, fold=position // (2 * per_fold)
        )
        for position, (number, text) in enumerate(body)
    )
    return PairsProtocol(path=source, kind=kind, n_folds=n_folds, pairs=pairs)


def protocol_images(protocol: PairsProtocol, images_dir: Path) -> list[Path]:
    """Every image the protocol needs, in first-use order; all of them must exist."""
    needed: dict[Path, int] = {}
    for pair in protocol.pairs:
        for name, index in ((pair.name_a, pair.index_a), (pair.name_b, pair.index_b)):
            needed.setdefault(lfw_image_path(images_dir, name, index), pair.line)
    missing = [(p, line) for p, line in needed.items() if not p.is_file()]
    if missing:
        shown = "; ".join(f"{p} (line {line})" for p, line in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise EvaluationError(
            f"{len(missing)} image(s) named in {protocol.path} are missing under {images_dir}: {shown}{more}"
        )
    return list(needed)


# --- embedding, with a cache and one pipeline per core ---------------------------------


@dataclass(frozen=True)
class EmbedderSpec:
    """How to build an embedder in a worker process, and what its vectors depend on.

    ``factory`` must be picklable (a module-level function or a ``functools.partial`` of
    one) because workers are spawned. ``settings`` holds every setting that changes a
    vector; together with ``model.key`` it names the cache.
    """

    model: ModelRef
    settings: Mapping[str, Any]
    factory: Callable[[], Embedder]

    @property
    def cache_id(self) -> str:
        text = json.dumps({"model": self.model.key, "settings": self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EmbeddingTable:
    """Unit vectors of the images an evaluation needs (None: no face found)."""

    vectors: dict[Path, FloatArray | None]
    n_computed: int
    n_cached: int
    seconds: float

    @property
    def n_failed(self) -> int:
        return sum(v is None for v in self.vectors.values())


def nearest_centre_face(analysis: ImageAnalysis) -> AnalyzedFace | None:
    """The face nearest the image centre (the LFW convention), if any."""
    if not analysis.faces:
        return None
    cx, cy = analysis.width / 2.0, analysis.height / 2.0

    def distance(face: AnalyzedFace) -> float:
        centre = face.face.box.center
        return math.hypot(centre.x - cx, centre.y - cy)

    return min(analysis.faces, key=distance)


def nearest_centre(analysis: ImageAnalysis) -> Embedding | None:
    """The embedding of the face nearest the image centre (the LFW convention), if any."""
    face = nearest_centre_face(analysis)
    return face.embedding if face is not None else None


class _PipelineEmbedder:
    """The real pipeline as an :data:`Embedder`; one per process (dlib holds the GIL)."""

    def __init__(self, settings: Settings) -> None:
        from faceledger.pipeline.run import Pipeline

        # In a pool every core already runs a pipeline: a flip helper process would only compete.
        self._pipeline = Pipeline.from_settings(settings, parallel_flip=False if _IN_POOL else None)

    def face(self, path: Path) -> AnalyzedFace | None:
        """The face an evaluation uses (nearest the centre), with its quality and embedding."""
        try:
            return nearest_centre_face(self._pipeline.analyze_path(path))
        except NoFaceError:
            return None

    def __call__(self, path: Path) -> Embedding | None:
        face = self.face(path)
        return face.embedding if face is not None else None

    def close(self) -> None:
        self._pipeline.close()


def pipeline_embedder(settings: Settings) -> Embedder:
    """An embedder over the real pipeline (picklable through ``functools.partial``)."""
    return _PipelineEmbedder(settings)


def pipeline_faces(settings: Settings) -> _PipelineEmbedder:
    """The real pipeline, whose ``face(path)`` gives the evaluated face with its quality."""
    return _PipelineEmbedder(settings)


def _close(embedder: object) -> None:
    """Release what an embedder holds (the pipeline's helper process), if it can say so."""
    close = getattr(embedder, "close", None)
    if callable(close):
        close()


def embedding_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change an evaluation's vectors (recorded with every result)."""
    return {
        "detector": dataclasses.asdict(settings.detector),
        "embedder": dataclasses.asdict(settings.embedder),
        "image": dataclasses.asdict(settings.image),
        "face_choice": "nearest image centre",
    }


def component_fingerprint(component: object) -> dict[str, Any]:
    """A component's class and plain public attributes (a chip size, a padding, a flag).

    Constants that are not settings still change vectors; recording them keeps a cache
    made before such a change from being reused after it.
    """
    attributes = getattr(component, "__dict__", {})
    plain = {
        k: v
        for k, v in sorted(attributes.items())
        if not k.startswith("_") and isinstance(v, int | float | str)
    }
    return {"class": f"{type(component).__module__}.{type(component).__qualname__}", **plain}


def pipeline_spec(settings: Settings) -> EmbedderSpec:
    """The spec of the real pipeline under ``settings`` (loads the models once to learn their identity)."""
    from faceledger.pipeline.run import Pipeline

    pipeline = Pipeline.from_settings(settings, parallel_flip=False)
    try:
        model = pipeline.model
        parts = ("detector", "landmarker", "aligner", "embedder")
        components = {name: component_fingerprint(getattr(pipeline, name)) for name in parts}
    finally:
        pipeline.close()
    return EmbedderSpec(
        model=model,
        settings=embedding_settings(settings) | {"components": components},
        factory=functools.partial(pipeline_embedder, settings),
    )


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read image ({exc.strerror or exc})") from exc


class EmbeddingCache:
    """An ``.npz`` of vectors keyed by image sha256, one file per (model, settings).

    Written atomically (temporary file, then rename), so an interrupted run leaves the
    previous cache intact; a run saves as it goes, so it also resumes where it stopped, and
    each save merges what is on disk, so runs sharing a cache do not erase each other's work.
    """

    def __init__(self, directory: Path, spec: EmbedderSpec) -> None:
        self.path = directory / f"embeddings-{spec.cache_id}.npz"
        self._spec = spec

    def load(self) -> dict[str, FloatArray | None]:
        if not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                keys = [str(k) for k in data["keys"]]
                vectors = np.asarray(data["vectors"], dtype=np.float32)
                found = np.asarray(data["found"], dtype=bool)
        except (OSError, ValueError, KeyError) as exc:
            raise EvaluationError(
                f"{self.path}: unreadable embedding cache ({exc}); delete it to recompute"
            ) from exc
        if meta.get("model") != self._spec.model.key or vectors.shape[1:] != (self._spec.model.dim,):
            raise EvaluationError(
                f"{self.path}: cache made by another model ({meta.get('model')}); delete it"
            )
        return {k: (v if ok else None) for k, v, ok in zip(keys, vectors, found, strict=True)}

    def save(self, entries: Mapping[str, FloatArray | None]) -> None:
        """Write ``entries`` plus whatever another process saved here meanwhile (never drop vectors)."""
        try:
            merged = self.load()
        except EvaluationError:
            merged = {}  # unreadable: this write replaces it
        merged.update(entries)
        dim = self._spec.model.dim
        entries = merged
        keys = sorted(entries)
        vectors = np.zeros((len(keys), dim), dtype=np.float32)
        found = np.zeros(len(keys), dtype=bool)
        for row, key in enumerate(keys):
            vector = entries[key]
            if vector is not None:
                vectors[row], found[row] = vector, True
        meta = json.dumps({"model": self._spec.model.key, "settings": self._spec.settings}, default=str)
        write_npz_atomically(
            self.path, keys=np.array(keys, dtype="U64"), vectors=vectors, found=found, meta=np.array(meta)
        )


def write_npz_atomically(path: Path, **arrays: npt.NDArray[Any]) -> None:
    """Write an ``.npz`` through a temporary file and a rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with partial.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub wants a narrower mapping
    os.replace(partial, path)


_WORKER: Any = None
_WORKER_TASK: Callable[[Any, Path], Any] | None = None
_IN_POOL = False


def _start_worker(factory: Callable[[], Any], task: Callable[[Any, Path], Any]) -> None:
    global _WORKER, _WORKER_TASK, _IN_POOL  # one worker object per process, by design
    _IN_POOL = True
    _WORKER, _WORKER_TASK = factory(), task
    # Runs when the pool closes the worker normally, so its pipeline shuts down cleanly.
    multiprocessing.util.Finalize(None, _close, args=(_WORKER,), exitpriority=10)


def _embed_one(model: ModelRef, embedder: Embedder, path: Path) -> FloatArray | None:
    try:
        embedding = embedder(path)
    except EvaluationError:
        raise
    except FaceLedgerError as exc:
        raise EvaluationError(f"{path}: {exc}") from exc
    if embedding is None:
        return None
    return unit_vector(path, embedding, model)


def unit_vector(path: Path, embedding: Embedding, model: ModelRef) -> FloatArray:
    """``embedding`` as a float32 unit vector, checked to come from ``model`` with its dimension."""
    if embedding.model.key != model.key:
        raise EvaluationError(f"{path}: embedded by {embedding.model.key}, expected {model.key}")
    vector = np.asarray(embedding.vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    if vector.size != model.dim or not math.isfinite(norm) or norm == 0.0:
        raise EvaluationError(
            f"{path}: the embedder returned an invalid vector (dim {vector.size}, norm {norm})"
        )
    return vector / norm


def _worker_task(item: tuple[str, Path]) -> tuple[str, Any]:
    sha, path = item
    if _WORKER_TASK is None:  # pragma: no cover - the pool initializer always runs first
        raise EvaluationError("evaluation worker started without a task")
    return sha, _WORKER_TASK(_WORKER, path)


def map_images(
    todo: Sequence[tuple[str, Path]],
    factory: Callable[[], W],
    task: Callable[[W, Path], T],
    workers: int,
) -> Iterator[tuple[str, T]]:
    """``task(worker, path)`` for each (sha256, path), in any order, over ``workers`` processes.

    Each process builds one worker with ``factory`` (both must be picklable: module-level
    functions or ``functools.partial`` of them) and closes it at the end; with
    ``workers <= 1`` it all runs in this process.
    """
    if not todo:
        return
    if workers <= 1 or len(todo) < 2:
        worker = factory()
        try:
            for sha, path in todo:
                yield sha, task(worker, path)
        finally:
            _close(worker)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(todo)), initializer=_start_worker, initargs=(factory, task)) as pool:
        yield from pool.imap_unordered(_worker_task, list(todo), chunksize=4)
        pool.close()  # a normal exit (not terminate) runs each worker's finaliser
        pool.join()


def _compute(
    todo: Sequence[tuple[str, Path]], spec: EmbedderSpec, workers: int
) -> Iterator[tuple[str, FloatArray | None]]:
    return map_images(todo, spec.factory, functools.partial(_embed_one, spec.model), workers)


def pending_images(
    shas: Mapping[Path, str], known: Callable[[str], bool]
) -> tuple[dict[str, list[Path]], int]:
    """The images still to compute, grouped by sha256 (one computation serves every copy),
    and how many of ``shas`` are already known."""
    waiting: dict[str, list[Path]] = {}
    for path, sha in shas.items():
        if not known(sha):
            waiting.setdefault(sha, []).append(path)
    return waiting, len(shas) - sum(len(v) for v in waiting.values())


def embed_images(
    paths: Sequence[Path],
    spec: EmbedderSpec,
    *,
    cache_dir: Path | None = None,
    workers: int = 0,
    progress: Progress | None = None,
    save_every: int = 256,
) -> EmbeddingTable:
    """Vectors of ``paths``, from the cache where possible, else computed by ``workers`` processes.

    ``workers`` 0 means one per CPU core; 1 embeds in this process.
    """
    started = time.perf_counter()
    shas = {path: file_sha256(path) for path in paths}
    cache = EmbeddingCache(cache_dir, spec) if cache_dir is not None else None
    known = cache.load() if cache is not None else {}
    waiting, n_cached = pending_images(shas, lambda sha: sha in known)
    total = len(shas)
    done = n_cached
    if progress is not None:
        progress(done, total)
    todo = [(sha, same[0]) for sha, same in waiting.items()]
    count = workers if workers > 0 else (os.cpu_count() or 1)
    for computed, (sha, vector) in enumerate(_compute(todo, spec, count), start=1):
        known[sha] = vector
        done += len(waiting[sha])
        if progress is not None:
            progress(done, total)
        if cache is not None and computed % save_every == 0:
            cache.save(known)
    if cache is not None and todo:
        cache.save(known)
    return EmbeddingTable(
        vectors={path: known[sha] for path, sha in shas.items()},
        n_computed=len(todo),
        n_cached=n_cached,
        seconds=time.perf_counter() - started,
    )


# --- pair protocols -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Error rates at one threshold; FMR/FNMR over acquired pairs, FAR/FRR over all."""

    threshold: float
    source: str
    accuracy: float
    fmr: float
    fnmr: float
    false_accept_rate: float
    false_reject_rate: float

    @classmethod
    def measure(
        cls, genuine: FloatArray, impostor: FloatArray, threshold: float, source: str
    ) -> OperatingPoint:
        return cls(
            threshold=threshold,
            source=source,
            accuracy=metrics.accuracy_at(genuine, impostor, threshold),
            fmr=metrics.fmr_at(impostor, threshold),
            fnmr=metrics.fnmr_at(genuine, threshold),
            false_accept_rate=metrics.false_accept_rate(impostor, threshold),
            false_reject_rate=metrics.false_reject_rate(genuine, threshold),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in dataclasses.asdict(self).items()}


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}%"


def _point_line(point: OperatingPoint) -> str:
    return (
        f"threshold {point.threshold:.4f} [{point.source}]: accuracy {_percent(point.accuracy)}, "
        f"FMR {_percent(point.fmr)}, FNMR {_percent(point.fnmr)} (FRR incl. failures "
        f"{_percent(point.false_reject_rate)})"
    )


def _json_number(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


@dataclass(frozen=True)
class PairsEvaluation:
    """The result of a pairs protocol, with everything needed to reproduce it."""

    protocol: str
    pairs_file: str
    images_dir: str
    model: ModelRef
    settings: Mapping[str, Any]
    n_genuine: int
    n_impostor: int
    n_images: int
    n_images_failed: int
    n_pairs_failed: int
    best: OperatingPoint
    kfold: metrics.KFoldResult | None = None
    calibrated: OperatingPoint | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    n_images_computed: int = 0
    """Images run through the embedder in this evaluation (the others came from the cache)."""
    n_images_cached: int = 0
    """Images whose vector (or recorded failure) was read from the embedding cache."""

    @property
    def fta_rate(self) -> float:
        """Failure-to-acquire rate: images in which no face was found."""
        return self.n_images_failed / self.n_images if self.n_images else math.nan

    def summary(self) -> str:
        """A few lines a person can read; :meth:`to_dict` has everything."""
        lines = [
            f"{self.protocol}: {self.n_genuine:,} same-person + {self.n_impostor:,} different-person pairs "
            f"({self.pairs_file})",
            f"model {self.model.key}",
            f"failure to acquire: {self.n_images_failed} of {self.n_images:,} images "
            f"({_percent(self.fta_rate)}), {self.n_pairs_failed} pairs (counted as wrong)",
        ]
        if self.kfold is not None:
            k = len(self.kfold.accuracies)
            lines.append(
                f"{k}-fold accuracy {_percent(self.kfold.mean)} +/- {_percent(self.kfold.std)} (std; "
                f"standard error {_percent(self.kfold.standard_error)})"
            )
        for point in (self.best, self.calibrated):
            if point is not None:
                lines.append(_point_line(point))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "pairs_file": self.pairs_file,
            "images_dir": self.images_dir,
            "model": self.model.to_dict() | {"key": self.model.key},
            "settings": dict(self.settings),
            "pairs": {"genuine": self.n_genuine, "impostor": self.n_impostor, "failed": self.n_pairs_failed},
            "images": {
                "total": self.n_images,
                "failed_to_acquire": self.n_images_failed,
                "computed": self.n_images_computed,
                "cached": self.n_images_cached,
            },
            "fta_rate": _json_number(self.fta_rate),
            "best_threshold": self.best.to_dict(),
            "calibrated_threshold": self.calibrated.to_dict() if self.calibrated else None,
            "seconds": round(self.seconds, 1),
            "notes": list(self.notes),
        }
        if self.kfold is not None:
            out["kfold"] = {
                "mean_accuracy": round(self.kfold.mean, 6),
                "std": round(self.kfold.std, 6),
                "standard_error": round(self.kfold.standard_error, 6),
                "fold_accuracies": [round(a, 6) for a in self.kfold.accuracies],
                "fold_thresholds": [round(t, 6) for t in self.kfold.thresholds],
            }
        return out


def pair_scores(protocol: PairsProtocol, images_dir: Path, table: EmbeddingTable) -> FloatArray:
    """Cosine similarity of each pair; NaN where either image failed to acquire."""
    scores = np.full(len(protocol.pairs), np.nan, dtype=np.float32)
    for row, pair in enumerate(protocol.pairs):
        a = table.vectors[lfw_image_path(images_dir, pair.name_a, pair.index_a)]
        b = table.vectors[lfw_image_path(images_dir, pair.name_b, pair.index_b)]
        if a is not None and b is not None:
            scores[row] = float(np.dot(a, b))
    return scores


def evaluate_pairs_with(
    protocol: PairsProtocol,
    images_dir: Path,
    spec: EmbedderSpec,
    *,
    calibration: Calibration | None = None,
    cache_dir: Path | None = None,
    workers: int = 0,
    progress: Progress | None = None,
) -> PairsEvaluation:
    """Run a parsed pairs protocol with any embedder (the real pipeline or a test double)."""
    started = time.perf_counter()
    paths = protocol_images(protocol, images_dir)
    table = embed_images(paths, spec, cache_dir=cache_dir, workers=workers, progress=progress)
    scores = pair_scores(protocol, images_dir, table)
    same = np.array([p.same for p in protocol.pairs], dtype=bool)
    genuine, impostor = scores[same], scores[~same]
    notes = ["failed pairs (no face in an image) count as wrong decisions in accuracy and FRR"]
    kfold = None
    if protocol.kind == "view2":
        folds = np.array([p.fold for p in protocol.pairs])
        kfold = metrics.kfold_accuracy(scores, same, folds)
        notes.append("k-fold: each fold's threshold maximises accuracy on the other folds")
    best_source = "maximises accuracy over all these pairs (in-sample, optimistic)"
    best = OperatingPoint.measure(genuine, impostor, metrics.best_threshold(genuine, impostor), best_source)
    calibrated = None
    if calibration is not None:
        calibrated = OperatingPoint.measure(
            genuine, impostor, calibration.default_threshold, f"calibrated default ({calibration.dataset})"
        )
    return PairsEvaluation(
        protocol="lfw-view2-10fold" if protocol.kind == "view2" else "lfw-pairs",
        pairs_file=str(protocol.path),
        images_dir=str(images_dir),
        model=spec.model,
        settings=spec.settings,
        n_genuine=int(same.sum()),
        n_impostor=int((~same).sum()),
        n_images=len(paths),
        n_images_failed=table.n_failed,
        n_pairs_failed=int(np.isnan(scores).sum()),
        best=best,
        kfold=kfold,
        calibrated=calibrated,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
        n_images_computed=table.n_computed,
        n_images_cached=table.n_cached,
    )


def evaluate_pairs(
    images_dir: Path | str,
    pairs_file: Path | str,
    settings: Settings,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> PairsEvaluation:
    """``faceledger eval lfw``: the pairs protocol with the real pipeline under ``settings``."""
    directory = existing_images_dir(images_dir)
    protocol = parse_pairs(pairs_file)
    protocol_images(protocol, directory)  # fail on missing photos before loading any model
    spec = pipeline_spec(settings)
    return evaluate_pairs_with(
        protocol,
        directory,
        spec,
        calibration=find_calibration(spec.model.key, flip=settings.embedder.flip),
        cache_dir=cache_dir,
        workers=settings.workers,
        progress=progress,
    )


def existing_images_dir(path: Path | str) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise EvaluationError(
            f"{directory}: images folder not found (expected <dir>/<Name>/<Name>_<NNNN>.jpg)"
        )
    return directory


# --- identification -------------------------------------------------------------------


def scan_people(images_dir: Path | str) -> dict[str, list[Path]]:
    """Each person folder's images, in file-name order (LFW numbers them from 0001)."""
    directory = existing_images_dir(images_dir)
    people: dict[str, list[Path]] = {}
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if images:
            people[folder.name] = images
    if not people:
        raise EvaluationError(f"{directory}: no person folders with images (expected <dir>/<Name>/*.jpg)")
    return people


@dataclass(frozen=True)
class IdentificationEvaluation:
    """Closed- and open-set 1:N identification figures (ISO/IEC 19795-1 terms)."""

    images_dir: str
    model: ModelRef
    settings: Mapping[str, Any]
    enrolment: str
    gallery_size: int
    n_failed_to_enrol: int
    n_mated: int
    n_mated_failed: int
    n_nonmated: int
    n_nonmated_failed: int
    cmc: tuple[float, ...]
    target_fpir: float
    fnir_rank: int
    threshold: float
    fpir: float
    fnir: float
    calibrated: dict[str, float] | None = None
    seconds: float = 0.0

    def rank(self, r: int) -> float:
        """Rank-r identification rate (closed set): mated probes whose mate ranks <= r."""
        return self.cmc[r - 1]

    def summary(self) -> str:
        """A few lines a person can read; :meth:`to_dict` has everything."""
        ranks = ", ".join(f"rank-{r} {_percent(self.rank(r))}" for r in (1, 5, 10, 20) if r <= len(self.cmc))
        lines = [
            f"identification: gallery of {self.gallery_size:,} people ({self.enrolment}); "
            f"{self.n_failed_to_enrol} failed to enrol",
            f"model {self.model.key}",
            f"mated probes {self.n_mated:,} ({self.n_mated_failed} failed to acquire), "
            f"non-mated probes {self.n_nonmated:,} ({self.n_nonmated_failed} failed to acquire)",
            f"closed set: {ranks}",
            f"open set: FNIR {_percent(self.fnir)} at FPIR {_percent(self.fpir)} "
            f"(target {_percent(self.target_fpir)}, threshold {self.threshold:.4f}, mate at rank <= "
            f"{self.fnir_rank})",
        ]
        if self.calibrated is not None:
            lines.append(
                f"at the calibrated default threshold {self.calibrated['threshold']:.4f}: "
                f"FNIR {_percent(self.calibrated['fnir'])}, FPIR {_percent(self.calibrated['fpir'])}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": "identification",
            "images_dir": self.images_dir,
            "model": self.model.to_dict() | {"key": self.model.key},
            "settings": dict(self.settings),
            "enrolment": self.enrolment,
            "gallery_size": self.gallery_size,
            "failed_to_enrol": self.n_failed_to_enrol,
            "mated_probes": {"total": self.n_mated, "failed_to_acquire": self.n_mated_failed},
            "nonmated_probes": {"total": self.n_nonmated, "failed_to_acquire": self.n_nonmated_failed},
            "rank1": _json_number(self.rank(1)),
            "rank10": _json_number(self.rank(10)) if len(self.cmc) >= 10 else None,
            "cmc": [_json_number(v) for v in self.cmc],
            "open_set": {
                "target_fpir": self.target_fpir,
                "rank": self.fnir_rank,
                "threshold": _json_number(self.threshold),
                "fpir": _json_number(self.fpir),
                "fnir": _json_number(self.fnir),
            },
            "calibrated_threshold": (
                {k: _json_number(v) for k, v in self.calibrated.items()} if self.calibrated else None
            ),
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class _Searches:
    """Per-probe outcomes against the gallery."""

    mate_ranks: npt.NDArray[np.int64]
    mate_scores: npt.NDArray[np.float64]
    nonmated_top: npt.NDArray[np.float64]


def template_scores(
    vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], size: int
) -> tuple[FloatArray, FloatArray]:
    """(genuine, impostor) scores of mean templates of ``size`` images against single images.

    Each label with at least ``size`` vectors gets the unit mean of its first ``size`` vectors
    (in the order given; :func:`faceledger.domain.templates.unit_mean`). Impostor: every template
    against every vector of every other label. Genuine: every template against the vectors of its
    own label that it does not average.
    """
    if size < 1:
        raise ValueError("a template averages at least one vector")
    templates: list[FloatArray] = []
    owners: list[int] = []
    genuine: list[FloatArray] = []
    for label in np.unique(labels):
        own = vectors[labels == label]
        if len(own) < size:
            continue
        template = unit_mean(own[:size])
        templates.append(template)
        owners.append(int(label))
        genuine.append((own[size:] @ template).astype(np.float32))
    if not templates:
        raise EvaluationError(f"no label has {size} vectors to average")
    impostor: list[FloatArray] = []
    for template, owner in zip(templates, owners, strict=True):
        impostor.append((vectors[labels != owner] @ template).astype(np.float32))
    empty = np.zeros(0, dtype=np.float32)
    return np.concatenate([empty, *genuine]), np.concatenate(impostor)


def stack_rows(vectors: Sequence[npt.NDArray[Any] | None], dim: int) -> npt.NDArray[np.float64]:
    """One row per vector; a row of NaN where there is none (failure to acquire)."""
    out = np.full((len(vectors), dim), np.nan)
    for row, vector in enumerate(vectors):
        if vector is not None:
            out[row] = vector
    return out


def _search(
    gallery: npt.NDArray[np.float64],
    mated: npt.NDArray[np.float64],
    mate_columns: npt.NDArray[np.int64],
    nonmated: npt.NDArray[np.float64],
    chunk: int = 1024,
) -> _Searches:
    ranks, scores, tops = [], [], []
    for start in range(0, len(mated), chunk):
        similarity = mated[start : start + chunk] @ gallery.T
        columns = mate_columns[start : start + chunk]
        ranks.append(metrics.mate_ranks(similarity, columns))
        scores.append(similarity[np.arange(len(columns)), columns])
    for start in range(0, len(nonmated), chunk):
        similarity = nonmated[start : start + chunk] @ gallery.T
        tops.append(similarity.max(axis=1) if gallery.size else np.full(len(similarity), np.nan))
    empty_f, empty_i = np.zeros(0), np.zeros(0, dtype=np.int64)
    return _Searches(
        mate_ranks=np.concatenate(ranks) if ranks else empty_i,
        mate_scores=np.concatenate(scores) if scores else empty_f,
        nonmated_top=np.concatenate(tops) if tops else empty_f,
    )


def evaluate_identification_with(
    people: Mapping[str, Sequence[Path]],
    spec: EmbedderSpec,
    *,
    images_dir: Path,
    calibration: Calibration | None = None,
    cache_dir: Path | None = None,
    workers: int = 0,
    progress: Progress | None = None,
    max_rank: int = 20,
    target_fpir: float = 0.01,
    fnir_rank: int = 1,
) -> IdentificationEvaluation:
    """Enrol each person's first image with a face; search the rest (mated) and singletons (non-mated).

    A person none of whose images yields a face fails to enrol and is left out (counted).
    The open-set threshold is the lowest at which at most ``target_fpir`` of non-mated
    searches return a candidate; FNIR counts mated searches whose mate is not at rank
    ``<= fnir_rank`` above it.
    """
    started = time.perf_counter()
    paths = [p for images in people.values() for p in images]
    table = embed_images(paths, spec, cache_dir=cache_dir, workers=workers, progress=progress)
    gallery: list[FloatArray] = []
    mated: list[FloatArray | None] = []
    columns: list[int] = []
    nonmated: list[FloatArray | None] = []
    failed_to_enrol = 0
    for images in people.values():
        vectors = [table.vectors[p] for p in images]
        if len(images) == 1:
            nonmated.append(vectors[0])
            continue
        enrolled = next((i for i, v in enumerate(vectors) if v is not None), None)
        if enrolled is None:
            failed_to_enrol += 1
            continue
        gallery.append(vectors[enrolled])  # type: ignore[arg-type]  # checked not None just above
        mated.extend(v for i, v in enumerate(vectors) if i != enrolled)
        columns.extend([len(gallery) - 1] * (len(vectors) - 1))
    if not gallery or not mated:
        raise EvaluationError(
            f"{images_dir}: identification needs people with at least two images with faces"
        )
    dim = spec.model.dim
    searches = _search(
        stack_rows(gallery, dim),
        stack_rows(mated, dim),
        np.asarray(columns, dtype=np.int64),
        stack_rows(nonmated, dim),
    )
    threshold = metrics.threshold_at_fpir(searches.nonmated_top, target_fpir) if len(nonmated) else math.nan

    def open_set(at: float) -> tuple[float, float]:
        fpir = metrics.fpir_at(searches.nonmated_top, at) if len(nonmated) else math.nan
        return fpir, metrics.fnir_at(searches.mate_scores, searches.mate_ranks, at, fnir_rank)

    fpir, fnir = open_set(threshold) if len(nonmated) else (math.nan, math.nan)
    calibrated = None
    if calibration is not None:
        at_fpir, at_fnir = open_set(calibration.default_threshold)
        calibrated = {"threshold": calibration.default_threshold, "fpir": at_fpir, "fnir": at_fnir}
    return IdentificationEvaluation(
        images_dir=str(images_dir),
        model=spec.model,
        settings=spec.settings,
        enrolment="first image (in file-name order) in which a face is found",
        gallery_size=len(gallery),
        n_failed_to_enrol=failed_to_enrol,
        n_mated=len(mated),
        n_mated_failed=sum(v is None for v in mated),
        n_nonmated=len(nonmated),
        n_nonmated_failed=sum(v is None for v in nonmated),
        cmc=tuple(float(v) for v in metrics.cmc(searches.mate_ranks, max_rank)),
        target_fpir=target_fpir,
        fnir_rank=fnir_rank,
        threshold=threshold,
        fpir=fpir,
        fnir=fnir,
        calibrated=calibrated,
        seconds=time.perf_counter() - started,
    )


def evaluate_identification(
    images_dir: Path | str,
    settings: Settings,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    max_rank: int = 20,
    target_fpir: float = 0.01,
    fnir_rank: int = 1,
) -> IdentificationEvaluation:
    """``faceledger eval identify``: 1:N identification with the real pipeline under ``settings``."""
    directory = existing_images_dir(images_dir)
    people = scan_people(directory)
    spec = pipeline_spec(settings)
    return evaluate_identification_with(
        people,
        spec,
        images_dir=directory,
        calibration=find_calibration(spec.model.key, flip=settings.embedder.flip),
        cache_dir=cache_dir,
        workers=settings.workers,
        progress=progress,
        max_rank=max_rank,
        target_fpir=target_fpir,
        fnir_rank=fnir_rank,
    )
