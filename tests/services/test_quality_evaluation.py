"""``eval quality``'s service: EDC curves and floors from a pairs file, with its caches.

Most tests use a stand-in face finder whose scores and qualities are set per file, so the
curves can be worked out by hand (below); the last test runs the real pipeline on a few
real LFW photos and skips without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceledger.domain.models import (
    AnalyzedFace,
    Box,
    DetectedFace,
    Embedding,
    Landmarks,
    ModelRef,
    Point,
    QualityReport,
)
from faceledger.errors import EvaluationError
from faceledger.services.evaluation import (
    Embedder,
    EmbedderSpec,
    EmbeddingCache,
    lfw_image_path,
    parse_pairs,
    protocol_images,
)
from faceledger.services.quality_evaluation import (
    MEASURES,
    QualityCache,
    QualitySpec,
    evaluate_quality,
    evaluate_quality_with,
)

MODEL = ModelRef(backend="fake", name="table", version="1", weights_sha256="3" * 64, dim=4)
E = np.eye(4, dtype=np.float32)
# Genuine pairs P0..P3 (images 1 and 2). At threshold 0.5:
#   P0: same vector (score 1), qualities 90 / 80              -> right, pair quality 80
#   P1: orthogonal vectors (score 0), qualities 20 / 70       -> error, pair quality 20
#   P2: no face in image 2, quality 60 / none                 -> error (failure to acquire), quality 0
#   P3: same vector, qualities 50 / 95, but a low pose factor -> right, pair quality 50
# FNMR 2/4. Discarding 25% (one pair) removes P2: 1/3; 50% removes P2 and P1: 0/2.
# The pose factor is 100 except for P3's images (40): its pair qualities are P0 100, P1 100, P2 0,
# P3 40, so discarding 50% by pose removes P2 and P3 and leaves FNMR 1/2.
FILES: dict[str, tuple[np.ndarray, float, float] | None] = {
    "P0_0001.jpg": (E[0], 90.0, 100.0),
    "P0_0002.jpg": (E[0], 80.0, 100.0),
    "P1_0001.jpg": (E[1], 20.0, 100.0),
    "P1_0002.jpg": (E[2], 70.0, 100.0),
    "P2_0001.jpg": (E[2], 60.0, 100.0),
    "P2_0002.jpg": None,
    "P3_0001.jpg": (E[3], 50.0, 40.0),
    "P3_0002.jpg": (E[3], 95.0, 40.0),
}
PAIRS = ["4", "P0\t1\t2", "P1\t1\t2", "P2\t1\t2", "P3\t1\t2"]
PAIRS += ["P0\t1\tP1\t1", "P1\t2\tP2\t1", "P2\t2\tP3\t1", "P3\t2\tP0\t2"]


def _quality(score: float, pose: float) -> QualityReport:
    """``score`` as the overall score and the sharpness factor; ``pose`` as the pose factor."""
    return QualityReport(
        100.0, 40.0, 0.3, 0.0, 0.0, 0.0, 120.0, 50.0, 0.0, 0.0,
        score=score,
        size_factor=100.0,
        sharpness_factor=score,
        pose_factor=pose,
        exposure_factor=100.0,
    )  # fmt: skip


class TableFinder:
    """The face of each file from :data:`FILES` (None: no face found)."""

    def face(self, path: Path) -> AnalyzedFace | None:
        entry = FILES[path.name]
        if entry is None:
            return None
        vector, score, pose = entry
        p = Point(0.0, 0.0)
        return AnalyzedFace(
            index=0,
            face=DetectedFace(Box(0, 0, 10, 10), Landmarks(p, p, p, p, p), 1.0, "test"),
            quality=_quality(score, pose),
            embedding=Embedding(vector=vector, model=MODEL),
        )


def table_embedder() -> Embedder:
    """The same table as an embedder (what ``eval lfw`` would compute for these files)."""
    finder = TableFinder()

    def embed(path: Path) -> Embedding | None:
        face = finder.face(path)
        return face.embedding if face is not None else None

    return embed


SPEC = QualitySpec(
    embedding=EmbedderSpec(model=MODEL, settings={"fake": True}, factory=table_embedder),
    factory=TableFinder,
)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    for name in FILES:
        person, number = name.removesuffix(".jpg").split("_")
        path = lfw_image_path(images, person, int(number))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(PAIRS) + "\n")
    return images, pairs


def test_curves_match_the_hand_worked_example(layout: tuple[Path, Path]) -> None:
    result = evaluate_quality_with(
        parse_pairs(layout[1]), layout[0], SPEC, threshold=0.5, threshold_source="test",
        fractions=(0.0, 0.25, 0.5), floors=(30.0, 60.0),
    )  # fmt: skip
    assert (result.n_images, result.n_images_failed, result.n_genuine, result.n_genuine_failed) == (
        8,
        1,
        4,
        1,
    )
    assert list(result.curves) == list(MEASURES)
    score = [p.fnmr for p in result.curves["score"]]
    assert score == pytest.approx([0.5, 1 / 3, 0.0])
    assert [p.fnmr for p in result.curves["sharpness"]] == score  # the same numbers by construction
    assert [p.fnmr for p in result.curves["pose"]] == pytest.approx([0.5, 1 / 3, 0.5])
    # Size and exposure are 100 everywhere but for the failure (0): only it can be discarded.
    assert [p.discarded for p in result.curves["size"]] == [0.0, 0.25, 0.25]
    assert [p.random_fnmr for p in result.curves["score"]] == [0.5, 0.5, 0.5]


def test_floors_count_images_below_and_the_fnmr_of_the_pairs_kept(layout: tuple[Path, Path]) -> None:
    result = evaluate_quality_with(
        parse_pairs(layout[1]), layout[0], SPEC, threshold=0.5, threshold_source="test", floors=(30.0, 60.0)
    )
    # Floor 30: below are P1_0001 (20) and P2_0002 (no face); P0 and P3 are kept, both right.
    # Floor 60: P3_0001 (50) also falls below; only P0 is kept.
    rows = [
        (r.floor, r.images_below, r.images_below_share, r.genuine_kept, r.fnmr_kept) for r in result.floors
    ]
    assert rows == [(30.0, 2, 0.25, 2, 0.0), (60.0, 3, 0.375, 1, 0.0)]
    data = result.to_dict()
    assert data["floors"][0]["genuine_kept_share"] == 0.5
    assert data["edc"]["score"][0]["fnmr"] == 0.5
    assert data["threshold"] == {"value": 0.5, "source": "test"}


def test_reports_and_vectors_are_cached_beside_each_other(layout: tuple[Path, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = evaluate_quality_with(
        parse_pairs(layout[1]), layout[0], SPEC, threshold=0.5, threshold_source="test", cache_dir=cache
    )
    again = evaluate_quality_with(
        parse_pairs(layout[1]), layout[0], SPEC, threshold=0.5, threshold_source="test", cache_dir=cache
    )
    assert (first.n_images_computed, first.n_images_cached) == (8, 0)
    assert (again.n_images_computed, again.n_images_cached) == (0, 8)
    assert again.to_dict()["edc"] == first.to_dict()["edc"]
    # The vectors sit in the embedding cache `eval lfw` reads; the reports in a file of their own.
    vectors = EmbeddingCache(cache, SPEC.embedding).load()
    reports = QualityCache(cache, SPEC).load()
    assert len(vectors) == len(reports) == 8
    assert sum(r is None for r in reports.values()) == 1
    assert next(r for r in reports.values() if r is not None).factors is not None


def test_worker_processes_give_the_same_figures(layout: tuple[Path, Path]) -> None:
    def figures(workers: int) -> dict[str, object]:
        result = evaluate_quality_with(
            parse_pairs(layout[1]), layout[0], SPEC, threshold=0.5, threshold_source="test", workers=workers
        )
        return {k: v for k, v in result.to_dict().items() if k != "seconds"}

    assert figures(2) == figures(1)


def test_a_corrupt_quality_cache_is_reported(layout: tuple[Path, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    QualityCache(cache, SPEC).path.write_bytes(b"not an npz")
    with pytest.raises(EvaluationError, match="unreadable quality cache"):
        evaluate_quality_with(
            parse_pairs(layout[1]), layout[0], SPEC, threshold=0.5, threshold_source="test", cache_dir=cache
        )


def test_bad_input_is_an_evaluation_error(layout: tuple[Path, Path], tmp_path: Path) -> None:
    from faceledger.config import Settings

    with pytest.raises(EvaluationError, match="images folder not found"):
        evaluate_quality(tmp_path / "nowhere", layout[1], Settings())
    bad = tmp_path / "bad.txt"
    bad.write_text("two\n")
    with pytest.raises(EvaluationError, match="expected a header"):
        evaluate_quality(layout[0], bad, Settings())


@pytest.mark.faces
@pytest.mark.slow
def test_real_pipeline_on_a_few_devtrain_pairs(lfw_dir: Path, tmp_path: Path) -> None:
    from faceledger.config import Settings

    lines = (lfw_dir / "pairsDevTrain.txt").read_text().splitlines()
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(["3", *lines[1:4], *lines[1101:1104]]) + "\n")
    images = lfw_dir / "images"
    result = evaluate_quality(images, pairs, Settings(), cache_dir=tmp_path / "cache", workers=1)
    assert result.n_images == len(protocol_images(parse_pairs(pairs), images))
    assert (result.n_genuine, result.n_images_failed) == (3, 0)
    assert result.threshold_source.startswith("calibrated default")
    assert result.curves["score"][0].fnmr == 0.0  # three clear LFW pairs: all match at the default
    assert all(0.0 <= row.images_below_share <= 1.0 for row in result.floors)
    assert [r.images_below for r in result.floors] == sorted(r.images_below for r in result.floors)
    again = evaluate_quality(images, pairs, Settings(), cache_dir=tmp_path / "cache", workers=1)
    assert (again.n_images_computed, again.n_images_cached) == (0, result.n_images)
