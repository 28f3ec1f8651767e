"""The search and rank stages: index hits -> a ranked candidate list with calibrated scores.

Ranking is pure: it takes the hits the vector indexes returned (already resolved to the
subject and gallery they belong to) and turns them into two views an examiner needs:
``candidates`` (every gallery face, best first) and ``subjects`` (the best face of each
person, best first), each candidate saying how often a different person would score that
high (``estimated_fmr``) and whether it clears the decision threshold. A candidate is only
ever an investigative lead; the threshold marks where leads become worth a human look.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from faceledger.domain.models import Candidate


@dataclass(frozen=True, slots=True)
class Hit:
    """One vector-index result resolved to its gallery face."""

    face_id: int
    subject_id: str
    gallery: str
    score: float


def rank(
    hits: Iterable[Hit],
    *,
    top_k: int,
    threshold: float,
    estimated_fmr: Callable[[float], float | None],
) -> tuple[tuple[Candidate, ...], tuple[Candidate, ...]]:
    """Per-face and per-subject candidate lists, each at most ``top_k`` long, best first.

    Ties are broken by face id so that the same search always gives the same order.
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
    best_per_subject: list[Hit] = []
    seen: set[tuple[str, str]] = set()
    for hit in ordered:
        key = (hit.gallery, hit.subject_id)
        if key in seen:
            continue
        seen.add(key)
        best_per_subject.append(hit)
        if len(best_per_subject) == top_k:
            break
    subjects = tuple(candidate(i, h) for i, h in enumerate(best_per_subject, start=1))
    return faces, subjects
