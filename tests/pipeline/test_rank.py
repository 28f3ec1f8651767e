from __future__ import annotations

import pytest

from faceledger.pipeline.search import Hit, SubjectScore, SubjectTemplates, rank


def _fmr(score: float) -> float:
    return round(1.0 - score, 6)


def test_candidates_are_best_first_and_subjects_keep_each_persons_best_face() -> None:
    hits = [
        Hit(face_id=1, subject_id="alice", gallery="g", score=0.91),
        Hit(face_id=2, subject_id="bob", gallery="g", score=0.97),
        Hit(face_id=3, subject_id="alice", gallery="g", score=0.95),
        Hit(face_id=4, subject_id="carol", gallery="g", score=0.80),
    ]
    faces, subjects = rank(hits, top_k=3, threshold=0.9, estimated_fmr=_fmr)
    assert [c.face_id for c in faces] == [2, 3, 1]
    assert [c.rank for c in faces] == [1, 2, 3]
    assert [(c.subject_id, c.face_id) for c in subjects] == [("bob", 2), ("alice", 3), ("carol", 4)]
    assert [c.above_threshold for c in subjects] == [True, True, False]
    assert subjects[2].estimated_fmr == pytest.approx(0.2)


def test_same_subject_id_in_two_galleries_is_two_people() -> None:
    hits = [
        Hit(face_id=1, subject_id="17", gallery="arrests", score=0.9),
        Hit(face_id=2, subject_id="17", gallery="missing", score=0.8),
    ]
    _, subjects = rank(hits, top_k=5, threshold=0.5, estimated_fmr=_fmr)
    assert [(c.gallery, c.subject_id) for c in subjects] == [("arrests", "17"), ("missing", "17")]


def test_padding_ids_and_duplicate_hits_are_dropped_and_ties_are_stable() -> None:
    hits = [
        Hit(face_id=-1, subject_id="", gallery="g", score=1.0),
        Hit(face_id=5, subject_id="x", gallery="g", score=0.5),
        Hit(face_id=4, subject_id="y", gallery="g", score=0.5),
        Hit(face_id=5, subject_id="x", gallery="g", score=0.6),
    ]
    faces, _ = rank(hits, top_k=10, threshold=0.9, estimated_fmr=_fmr)
    assert [(c.face_id, c.score) for c in faces] == [(5, 0.6), (4, 0.5)]


def test_top_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="top_k"):
        rank([], top_k=0, threshold=0.5, estimated_fmr=_fmr)


def _templates(scores: dict[str, tuple[float, int]]) -> SubjectTemplates:
    """Templates where a bigger template needs a higher score for the same FMR (as measured)."""
    return SubjectTemplates(
        scores={("g", name): SubjectScore(score, images) for name, (score, images) in scores.items()},
        threshold=lambda size: 0.90 + 0.01 * (size - 1),
        estimated_fmr=lambda size, score: round(1.0 - score + 0.02 * (size - 1), 6),
    )


def test_subjects_with_templates_are_ordered_by_estimated_fmr_on_their_own_size() -> None:
    hits = [
        Hit(face_id=1, subject_id="alice", gallery="g", score=0.93),
        Hit(face_id=2, subject_id="alice", gallery="g", score=0.90),
        Hit(face_id=3, subject_id="bob", gallery="g", score=0.94),
        Hit(face_id=4, subject_id="carol", gallery="g", score=0.70),
    ]
    # alice's template of 3 scores 0.95 (FMR 0.09); bob's single image 0.94 (FMR 0.06).
    templates = _templates({"alice": (0.95, 3), "bob": (0.94, 1), "carol": (0.905, 2)})
    faces, subjects = rank(hits, top_k=3, threshold=0.9, estimated_fmr=_fmr, templates=templates)
    assert [c.face_id for c in faces] == [3, 1, 2]  # the per-face list is untouched
    assert all(c.template_images == 1 for c in faces)
    assert [(c.subject_id, c.face_id) for c in subjects] == [("bob", 3), ("alice", 1), ("carol", 4)]
    assert [c.template_images for c in subjects] == [1, 3, 2]
    assert [c.score for c in subjects] == [0.94, 0.95, 0.905]
    assert [c.estimated_fmr for c in subjects] == [
        pytest.approx(0.06),
        pytest.approx(0.09),
        pytest.approx(0.115),
    ]
    # carol's 0.905 clears the one-image threshold 0.90 but not that of a template of two (0.91).
    assert [c.above_threshold for c in subjects] == [True, True, False]
    assert [c.rank for c in subjects] == [1, 2, 3]


def test_equal_fmrs_are_ordered_by_score_then_face_and_top_k_cuts_the_subject_list() -> None:
    hits = [Hit(face_id=i, subject_id=name, gallery="g", score=0.9) for i, name in enumerate("abc", start=1)]
    flat = SubjectTemplates(
        scores={
            ("g", "a"): SubjectScore(0.91, 2),
            ("g", "b"): SubjectScore(0.92, 2),
            ("g", "c"): SubjectScore(0.92, 2),
        },
        threshold=lambda _size: 0.5,
        estimated_fmr=lambda _size, _score: 1e-6,
    )
    _, subjects = rank(hits, top_k=2, threshold=0.5, estimated_fmr=_fmr, templates=flat)
    assert [c.subject_id for c in subjects] == ["b", "c"]


def test_a_subject_without_a_template_score_is_an_error_not_a_silent_gap() -> None:
    hits = [Hit(face_id=1, subject_id="alice", gallery="g", score=0.9)]
    with pytest.raises(ValueError, match="no template score for subject 'alice'"):
        rank(hits, top_k=1, threshold=0.5, estimated_fmr=_fmr, templates=_templates({}))
