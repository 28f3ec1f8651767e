"""1:N search and 1:1 verification: a probe photo in, ranked and calibrated leads out.

The score of a 1:1 comparison, and of each face in a search's per-face list, is the cosine
similarity of two unit descriptors, with no normalisation
(:data:`faceledger.domain.normalisation.NONE`). What it means comes from the model's
calibration (``faceledger/data/calibration.json``): how often two *different* people score at
least that high (the estimated false match rate), and the default decision threshold. An
operator may set ``threshold`` in config.toml instead; a model that was never calibrated (an
operator's ONNX model) needs one.

A search's subject list scores each subject by its mean template
(:data:`~faceledger.domain.normalisation.MEAN_TEMPLATE`: the probe against the unit mean of up to
four of its faces, read on the calibration of that template size) when the model has a
calibration for every template size; otherwise by its best face (``none``). The result names
which. The vector index finds the faces; the templates of the subjects among those faces are
computed from the stored vectors at search time, so enrolment and purge change them at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from faceledger.adapters.store import repository
from faceledger.config import Settings
from faceledger.domain.calibration import Calibration, find_calibration, template_calibrations
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
from faceledger.domain.normalisation import IN_USE, MEAN_TEMPLATE, ScoreNormalisation
from faceledger.domain.templates import MAX_TEMPLATE_IMAGES, TemplateFace, template_members, unit_mean
from faceledger.errors import ConfigError, ConflictError, NoFaceError, ValidationError
from faceledger.pipeline.search import Hit, SubjectScore, SubjectTemplates, rank
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
    """The threshold in force, what it means, and the normalisation whose scale it is on.

    ``threshold``, ``threshold_fmr`` and ``calibration`` are of single images (1:1 comparisons and
    a search's per-face list). ``template_thresholds`` (template size -> threshold, from 1 to
    :data:`MAX_TEMPLATE_IMAGES`) and ``templates`` are set when subjects are scored by mean
    templates; every size's threshold is at the same estimated FMR as ``threshold``.
    """

    threshold: float
    threshold_fmr: float | None
    calibration: Calibration | None
    normalisation: ScoreNormalisation
    templates: dict[int, Calibration] | None = None
    template_thresholds: dict[int, float] | None = None

    def estimated_fmr(self, score: float) -> float | None:
        return None if self.calibration is None else self.calibration.estimated_fmr(score)

    def subject_templates(self, scores: dict[tuple[str, str], SubjectScore]) -> SubjectTemplates | None:
        """How :func:`rank` reads ``scores``; None when subjects are scored by their best face."""
        tables, thresholds = self.templates, self.template_thresholds
        if tables is None or thresholds is None:
            return None
        return SubjectTemplates(
            scores=scores,
            threshold=lambda size: thresholds[size],
            estimated_fmr=lambda size, score: tables[size].estimated_fmr(score),
        )


def decision_for(settings: Settings, model: ModelRef, *, searching: bool = False) -> Decision:
    """The threshold for ``model``: the operator's, or the calibrated default.

    ``searching``: also the template thresholds, when the model has every template size's
    calibration (a search's subjects are then scored by mean templates).
    """
    calibration = find_calibration(model.key, flip=settings.embedder.flip)
    if settings.threshold is not None:
        fmr = None if calibration is None else calibration.estimated_fmr(settings.threshold)
        decision = Decision(settings.threshold, fmr, calibration, IN_USE)
    elif calibration is None:
        raise ConfigError(
            f"model {model.key} has no calibration, so there is no default threshold: "
            "set `threshold = <cosine similarity>` in the data directory's config.toml"
        )
    else:
        decision = Decision(calibration.default_threshold, calibration.default_fmr, calibration, IN_USE)
    if not searching or decision.threshold_fmr is None:
        return decision
    tables = template_calibrations(model.key, flip=settings.embedder.flip, up_to=MAX_TEMPLATE_IMAGES)
    if tables is None:
        return decision
    return dataclasses.replace(
        decision,
        normalisation=MEAN_TEMPLATE,
        templates=tables,
        template_thresholds={
            size: decision.threshold if size == 1 else _threshold_at(table, decision.threshold_fmr)
            for size, table in tables.items()
        },
    )


def _threshold_at(table: Calibration, fmr: float) -> float:
    """The score of ``table`` at ``fmr``; its highest knot when ``fmr`` is below what it measured."""
    return table.threshold_for_fmr(max(fmr, table.fmrs[-1]))


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


def _template_scores(
    dd: DataDir, hits: Sequence[Hit], query: npt.NDArray[np.float32], model: ModelRef
) -> dict[tuple[str, str], SubjectScore]:
    """The probe against the mean template of each subject among ``hits``, from the stored vectors.

    A subject whose faces are all gone (purged since the index answered) has no entry; one whose
    vectors have no mean direction keeps its best hit's single-image score.
    """
    best: dict[tuple[str, str], Hit] = {}
    for hit in hits:
        key = (hit.gallery, hit.subject_id)
        if key not in best or hit.score > best[key].score:
            best[key] = hit
    if not best:
        return {}
    with dd.store.read() as conn:
        mates = repository.subject_faces(conn, [h.face_id for h in best.values()], model.key)
        members = {
            key: template_members([TemplateFace(i, q) for i, q in mates.get(hit.face_id, [])])
            for key, hit in best.items()
        }
        ids, vectors = repository.face_vectors(
            conn, sorted({i for m in members.values() for i in m}), model.dim
        )
    row = {int(face_id): n for n, face_id in enumerate(ids)}
    scores: dict[tuple[str, str], SubjectScore] = {}
    for key, ids_of in members.items():
        present = [row[i] for i in ids_of if i in row]
        if not present:
            continue
        try:
            template = unit_mean(vectors[present])
        except ValueError:
            scores[key] = SubjectScore(best[key].score, 1)
            continue
        scores[key] = SubjectScore(float(np.dot(template, query)), len(present))
    return scores


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
    decision = decision_for(settings, model, searching=True)
    chosen = _galleries(dd, galleries, model)
    indexes = [dd.index(gallery, model) for gallery in chosen]

    started = clock()
    analysis = analyzer.analyze(probe)
    analysed = clock()
    results: list[ProbeFaceResult] = []
    template_s = 0.0
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
        templates = None
        if decision.templates is not None:
            templated = clock()
            templates = decision.subject_templates(_template_scores(dd, hits, query[0], model))
            template_s += clock() - templated
        if templates is not None:  # a subject purged since the index answered has no template
            hits = [h for h in hits if (h.gallery, h.subject_id) in templates.scores]
        candidates, subjects = rank(
            hits,
            top_k=k,
            threshold=decision.threshold,
            estimated_fmr=decision.estimated_fmr,
            templates=templates,
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
        template_thresholds=None
        if decision.template_thresholds is None
        else dict(decision.template_thresholds),
        timings_ms={
            "analyse": round((analysed - started) * 1000, 2),
            "search": round((finished - analysed) * 1000, 2),
            "templates": round(template_s * 1000, 2),  # part of "search"
        },
    )
