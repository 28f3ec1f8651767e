"""1:N search and 1:1 verification: a probe photo in, ranked and calibrated leads out.

The score of a comparison is the cosine similarity of two unit descriptors, with no
normalisation (:data:`faceledger.domain.normalisation.NONE`, named in every result). What it means
comes from the model's calibration (``faceledger/data/calibration.json``): how often two
*different* people score at least that high (the estimated false match rate), and the
default decision threshold. An operator may set ``threshold`` in config.toml instead; a
model that was never calibrated (an operator's ONNX model) needs one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faceledger.adapters.store import repository
from faceledger.config import Settings
from faceledger.domain.calibration import Calibration, find_calibration
from faceledger.domain.models import (
    AnalyzedFace,
    DecodedImage,
    Gallery,
    ImageAnalysis,
    ModelRef,
    ProbeFaceResult,
    SearchResult,
    VerificationResult,
)
from faceledger.domain.normalisation import IN_USE, ScoreNormalisation
from faceledger.errors import ConfigError, ConflictError, NoFaceError, ValidationError
from faceledger.pipeline.search import Hit, rank
from faceledger.services.datadir import DataDir

# Faces fetched from an index per subject wanted: a person may have several enrolled faces,
# and the subject view needs ``top_k`` different people.
_FETCH_FACTOR = 4
MAX_TOP_K = 1000


class Analyzer(Protocol):
    """What identification needs from the pipeline (faceledger.pipeline.run.Pipeline)."""

    @property
    def model(self) -> ModelRef: ...

    def analyze(self, image: DecodedImage) -> ImageAnalysis: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The threshold in force, what it means, and the normalisation whose scale it is on."""

    threshold: float
    threshold_fmr: float | None
    calibration: Calibration | None
    normalisation: ScoreNormalisation

    def estimated_fmr(self, score: float) -> float | None:
        return None if self.calibration is None else self.calibration.estimated_fmr(score)


def decision_for(settings: Settings, model: ModelRef) -> Decision:
    """The threshold for ``model``: the operator's, or the calibrated default."""
    calibration = find_calibration(model.key, flip=settings.embedder.flip)
    if settings.threshold is not None:
        fmr = None if calibration is None else calibration.estimated_fmr(settings.threshold)
        return Decision(settings.threshold, fmr, calibration, IN_USE)
    if calibration is None:
        raise ConfigError(
            f"model {model.key} has no calibration, so there is no default threshold: "
            "set `threshold = <cosine similarity>` in the data directory's config.toml"
        )
    return Decision(calibration.default_threshold, calibration.default_fmr, calibration, IN_USE)


def best_face(analysis: ImageAnalysis, what: str) -> AnalyzedFace:
    """The largest face of an image (faces come largest first); no face is an error."""
    if not analysis.faces:
        raise NoFaceError(f"{what}: no face found in {analysis.source}")
    return analysis.faces[0]


def verify(
    analyzer: Analyzer, settings: Settings, first: DecodedImage, second: DecodedImage
) -> VerificationResult:
    """Compare the largest face of each image."""
    decision = decision_for(settings, analyzer.model)
    a = best_face(analyzer.analyze(first), "first image")
    b = best_face(analyzer.analyze(second), "second image")
    score = float(np.dot(a.embedding.vector, b.embedding.vector))
    return VerificationResult(
        score=score,
        threshold=decision.threshold,
        estimated_fmr=decision.estimated_fmr(score),
        same_person=score >= decision.threshold,
        model=analyzer.model,
        score_normalisation=decision.normalisation,
    )


def _galleries(dd: DataDir, names: Sequence[str], model: ModelRef) -> list[Gallery]:
    if not names:
        raise ValidationError("name at least one gallery to search")
    chosen: list[Gallery] = []
    with dd.store.read() as conn:
        for name in dict.fromkeys(names):
            gallery = repository.get_gallery(conn, name)
            assert gallery.id is not None
            keys = repository.model_keys(conn, gallery.id)
            if keys and model.key not in keys:
                raise ConflictError(
                    f"gallery {name!r} was enrolled with model {', '.join(keys)}, "
                    f"but this search uses {model.key}: re-enrol the gallery or configure that model"
                )
            chosen.append(gallery)
    return chosen


def search(
    dd: DataDir,
    analyzer: Analyzer,
    probe: DecodedImage,
    galleries: Sequence[str],
    *,
    top_k: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> SearchResult:
    """Every face of ``probe`` against ``galleries``: ranked candidates per face and per subject."""
    settings = dd.settings
    k = settings.top_k if top_k is None else top_k
    if not 1 <= k <= MAX_TOP_K:
        raise ValidationError(f"top_k must be between 1 and {MAX_TOP_K}, got {k}")
    model = analyzer.model
    decision = decision_for(settings, model)
    chosen = _galleries(dd, galleries, model)
    indexes = [dd.index(gallery, model) for gallery in chosen]

    started = clock()
    analysis = analyzer.analyze(probe)
    analysed = clock()
    results: list[ProbeFaceResult] = []
    for face in analysis.faces:
        query = face.embedding.vector.reshape(1, -1).astype(np.float32, copy=False)
        found: list[tuple[int, float]] = []
        for index in indexes:
            scores, ids = index.search(query, k * _FETCH_FACTOR)
            found.extend((int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0)
        with dd.store.read() as conn:
            described = repository.describe_faces(conn, [face_id for face_id, _ in found])
        hits = [
            Hit(face_id, described[face_id].subject_id, described[face_id].gallery, score)
            for face_id, score in found
            if face_id in described
        ]
        candidates, subjects = rank(
            hits, top_k=k, threshold=decision.threshold, estimated_fmr=decision.estimated_fmr
        )
        results.append(
            ProbeFaceResult(
                probe=face,
                candidates=candidates,
                subjects=subjects,
                below_quality_floor=face.quality.score < settings.quality_floor,
            )
        )
    finished = clock()
    return SearchResult(
        probe_sha256=probe.sha256,
        source=probe.source,
        galleries=tuple(g.name for g in chosen),
        model=model,
        threshold=decision.threshold,
        threshold_fmr=decision.threshold_fmr,
        quality_floor=settings.quality_floor,
        faces=tuple(results),
        score_normalisation=decision.normalisation,
        timings_ms={
            "analyse": round((analysed - started) * 1000, 2),
            "search": round((finished - analysed) * 1000, 2),
        },
    )
