from __future__ import annotations

import pytest

from faceledger.pipeline.search import Hit, rank


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
