"""The search and rank stages: index hits -> a ranked candidate list with calibrated scores.

Ranking is pure: it takes the hits the vector indexes returned (already resolved to the
subject and gallery they belong to) and turns them into two views an examiner needs:
``candidates`` (every gallery face, best first) and ``subjects`` (one entry per person, best
first), each candidate saying how often a different person would score that high
(``estimated_fmr``) and whether it clears the decision threshold. A candidate is only ever an
investigative lead; the threshold marks where leads become worth a human look.

A subject is scored by its best face, or, given :class:`SubjectTemplates`, by its mean
template (:mod:`faceledger.domain.templates`): then its score, estimated FMR and threshold
are those of its template's size, subjects are ordered by estimated FMR (then score), and the
entry's face is the subject's best-scoring face among the hits, the photo to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from faceledger.domain.models import Candidate


@dataclass(frozen=True, slots=True)
class Hit:
    """One vector-index result resolved to its gallery face."""

    face_id: int
    subject_id: str
    gallery: str
    score: float


@dataclass(frozen=True, slots=True)
class SubjectScore:
    """A probe against one subject's mean template of ``images`` faces."""

    score: float
    images: int


@dataclass(frozen=True, slots=True)
class SubjectTemplates:
    """The template score of each subject among the hits, and how a template's score is read."""

    scores: Mapping[tuple[str, str], SubjectScore]
    """(gallery, subject id) -> its template score."""
    threshold: Callable[[int], float]
    """Template size -> the decision threshold on that size's scale."""
    estimated_fmr: Callable[[int, float], float]
    """(template size, score) -> estimated FMR on that size's calibration."""


def rank(
    hits: Iterable[Hit],
    *,
    top_k: int,
    threshold: float,
    estimated_fmr: Callable[[float], float | None],
    templates: SubjectTemplates | None = None,
) -> tuple[tuple[Candidate, ...], tuple[Candidate, ...]]:
    """Per-face and per-subject candidate lists, each at most ``top_k`` long, best first.

    Ties are broken by face id so that the same search always gives the same order. With
    ``templates``, every subject among the hits must have a template score.
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    unique: dict[int, Hit] = {}
    for hit in hits:
        if hit.face_id < 0:
            continue
        kept = unique.get(hit.face_id)
        if kept is None or hit.score > kept.score:
            unique[hit.face_id] = hit
    ordered = sorted(unique.values(), key=lambda h: (-h.score, h.face_id))

    def candidate(position: int, hit: Hit) -> Candidate:
        return Candidate(
            rank=position,
            subject_id=hit.subject_id,
            face_id=hit.face_id,
            gallery=hit.gallery,
            score=float(hit.score),
            estimated_fmr=estimated_fmr(hit.score),
            above_threshold=hit.score >= threshold,
        )

    faces = tuple(candidate(i, h) for i, h in enumerate(ordered[:top_k], start=1))
    best_per_subject: dict[tuple[str, str], Hit] = {}
    for hit in ordered:
        best_per_subject.setdefault((hit.gallery, hit.subject_id), hit)
    if templates is None:
        chosen = list(best_per_subject.values())[:top_k]
        return faces, tuple(candidate(i, h) for i, h in enumerate(chosen, start=1))
    return faces, _by_template(best_per_subject, templates, top_k)


def _by_template(
    best: Mapping[tuple[str, str], Hit], templates: SubjectTemplates, top_k: int
) -> tuple[Candidate, ...]:
    scored: list[tuple[float, float, int, Hit, SubjectScore]] = []
    for key, hit in best.items():
        found = templates.scores.get(key)
        if found is None:
            raise ValueError(f"no template score for subject {key[1]!r} of gallery {key[0]!r}")
        fmr = templates.estimated_fmr(found.images, found.score)
        scored.append((fmr, -found.score, hit.face_id, hit, found))
    scored.sort(key=lambda row: row[:3])
    return tuple(
        Candidate(
            rank=position,
            subject_id=hit.subject_id,
            face_id=hit.face_id,
            gallery=hit.gallery,
            score=float(found.score),
            estimated_fmr=fmr,
            above_threshold=found.score >= templates.threshold(found.images),
            template_images=found.images,
        )
        for position, (fmr, _, _, hit, found) in enumerate(scored[:top_k], start=1)
    )
