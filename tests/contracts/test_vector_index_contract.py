"""The behaviour every ports.VectorIndex adapter must have, run against each implementation.

To add an adapter (e.g. a distributed engine), add an entry to ``IMPLEMENTATIONS``: a name
and a function that opens (or reopens) the index persisted at a path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from faceledger.adapters.index import open_index
from faceledger.config import IndexSettings
from faceledger.errors import VectorIndexError
from faceledger.ports import VectorIndex

DIM = 32
Opener = Callable[[Path], VectorIndex]


def _faiss(settings: IndexSettings) -> Opener:
    return lambda path: open_index(path, dim=DIM, settings=settings)


IMPLEMENTATIONS: dict[str, Opener] = {
    "faiss-exact": _faiss(IndexSettings(exact_max=1_000_000)),
    "faiss-hnsw": _faiss(IndexSettings(exact_max=0, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def opener(request: pytest.FixtureRequest) -> Opener:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


def cone(n: int, seed: int, spread: float = 0.5) -> npt.NDArray[np.float32]:
    """Unit vectors around one direction, like face descriptors (unrelated pairs at cosine ~0.8)."""
    rng = np.random.default_rng(seed)
    axis = np.zeros(DIM)
    axis[0] = 1.0
    raw = axis + spread * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    unit: npt.NDArray[np.float32] = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    return unit


def filled(opener: Opener, path: Path, n: int = 200) -> tuple[VectorIndex, npt.NDArray[np.float32]]:
    index = opener(path)
    vectors = cone(n, seed=1)
    index.add(np.arange(100, 100 + n, dtype=np.int64), vectors)
    return index, vectors


def test_implements_the_port_and_starts_empty(opener: Opener, index_dir: Path) -> None:
    index = opener(index_dir)
    assert isinstance(index, VectorIndex)
    assert index.dim == DIM
    assert len(index) == 0
    assert index.ids().tolist() == []


def test_search_on_empty_index_pads(opener: Opener, index_dir: Path) -> None:
    scores, ids = opener(index_dir).search(cone(3, seed=2), 4)
    assert ids.shape == scores.shape == (3, 4)
    assert (ids == -1).all()
    assert np.isneginf(scores).all()


def test_finds_each_vector_first_and_ranks_best_first(opener: Opener, index_dir: Path) -> None:
    index, vectors = filled(opener, index_dir)
    scores, ids = index.search(vectors[:20], 10)
    assert ids[:, 0].tolist() == list(range(100, 120))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert ids.dtype == np.int64
    assert scores.dtype == np.float32


def test_agrees_with_brute_force(opener: Opener, index_dir: Path) -> None:
    index, vectors = filled(opener, index_dir, n=500)
    queries = cone(50, seed=3)
    _, ids = index.search(queries, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 100
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.97


def test_k_beyond_size_pads_with_minus_one(opener: Opener, index_dir: Path) -> None:
    index, _ = filled(opener, index_dir, n=5)
    scores, ids = index.search(cone(2, seed=4), 8)
    assert ids.shape == (2, 8)
    for row, row_scores in zip(ids, scores, strict=True):
        assert sorted(row[:5].tolist()) == list(range(100, 105))
        assert (row[5:] == -1).all()
        assert np.isneginf(row_scores[5:]).all()


def test_ids_and_length_track_contents(opener: Opener, index_dir: Path) -> None:
    index, _ = filled(opener, index_dir, n=50)
    assert len(index) == 50
    assert sorted(index.ids().tolist()) == list(range(100, 150))


def test_adding_an_id_twice_is_an_error(opener: Opener, index_dir: Path) -> None:
    index, vectors = filled(opener, index_dir, n=10)
    with pytest.raises(VectorIndexError, match="already in the index"):
        index.add(np.array([5, 104], dtype=np.int64), vectors[:2])
    with pytest.raises(VectorIndexError, match="repeated within the batch"):
        index.add(np.array([7, 7], dtype=np.int64), vectors[:2])
    assert len(index) == 10
    assert 5 not in index.ids().tolist()


@pytest.mark.parametrize(
    ("vectors", "reason"),
    [
        (np.zeros((1, DIM + 1), dtype=np.float32), "shape"),
        (np.ones((1, DIM), dtype=np.int32), "float"),
        (cone(1, seed=5)[0], "shape"),
        (2 * cone(1, seed=5), "L2-normalised"),
        (np.full((1, DIM), np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_bad_vectors_are_refused_with_a_reason(
    opener: Opener, index_dir: Path, vectors: npt.NDArray[np.float32], reason: str
) -> None:
    index, _ = filled(opener, index_dir, n=3)
    with pytest.raises(VectorIndexError, match=reason):
        index.search(vectors, 1)
    with pytest.raises(VectorIndexError, match=reason):
        index.add(np.array([1], dtype=np.int64), vectors)
    assert len(index) == 3


def test_bad_ids_and_k_are_refused(opener: Opener, index_dir: Path) -> None:
    index, vectors = filled(opener, index_dir, n=3)
    with pytest.raises(VectorIndexError, match="one id per vector"):
        index.add(np.array([1, 2], dtype=np.int64), vectors[:1])
    with pytest.raises(VectorIndexError, match="integers"):
        index.add(np.array([1.0]), vectors[:1])
    with pytest.raises(VectorIndexError, match=">= 0"):
        index.add(np.array([-1], dtype=np.int64), vectors[:1])
    with pytest.raises(VectorIndexError, match="positive integer"):
        index.search(vectors, 0)


def test_float64_vectors_are_accepted(opener: Opener, index_dir: Path) -> None:
    index = opener(index_dir)
    vectors = cone(4, seed=6).astype(np.float64)
    index.add(np.arange(4, dtype=np.int64), vectors)  # type: ignore[arg-type]
    _, ids = index.search(vectors[:1], 1)  # type: ignore[arg-type]
    assert ids[0, 0] == 0


def test_removed_ids_are_never_returned(opener: Opener, index_dir: Path) -> None:
    index, vectors = filled(opener, index_dir, n=100)
    removed = np.array([100, 150, 199], dtype=np.int64)
    assert index.remove(np.concatenate([removed, [100, 5000]])) == 3
    assert len(index) == 97
    assert not set(removed.tolist()) & set(index.ids().tolist())
    _, ids = index.search(vectors[[0, 50, 99]], 100)
    assert not set(removed.tolist()) & set(ids.ravel().tolist())
    assert index.remove(removed) == 0


def test_a_removed_id_can_be_added_again(opener: Opener, index_dir: Path) -> None:
    index, _vectors = filled(opener, index_dir, n=20)
    index.remove(np.array([105], dtype=np.int64))
    replacement = cone(1, seed=7)
    index.add(np.array([105], dtype=np.int64), replacement)
    _, ids = index.search(replacement, 1)
    assert ids[0, 0] == 105
    assert len(index) == 20


def _saved_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def test_removed_vectors_are_gone_from_the_saved_files(opener: Opener, index_dir: Path) -> None:
    index, vectors = filled(opener, index_dir, n=100)
    index.save(index_dir)
    assert vectors[10].tobytes() in _saved_bytes(index_dir)  # the check can see vectors at all
    index.remove(np.array([110], dtype=np.int64))
    index.save(index_dir)
    saved = _saved_bytes(index_dir)
    assert vectors[10].tobytes() not in saved
    assert vectors[11].tobytes() in saved


def test_save_and_reopen_keeps_everything(opener: Opener, index_dir: Path) -> None:
    index, _vectors = filled(opener, index_dir, n=120)
    index.remove(np.array([101], dtype=np.int64))
    index.save(index_dir)
    reopened = opener(index_dir)
    assert reopened.ids().tolist() == index.ids().tolist()
    queries = cone(10, seed=8)
    np.testing.assert_array_equal(reopened.search(queries, 5)[1], index.search(queries, 5)[1])
    np.testing.assert_allclose(reopened.search(queries, 5)[0], index.search(queries, 5)[0])


def test_memory_grows_with_contents(opener: Opener, index_dir: Path) -> None:
    index, _ = filled(opener, index_dir, n=10)
    small = index.memory_bytes()
    index.add(np.arange(1000, 1300, dtype=np.int64), cone(300, seed=9))
    assert small >= 10 * DIM * 4
    assert index.memory_bytes() >= small + 300 * DIM * 4
