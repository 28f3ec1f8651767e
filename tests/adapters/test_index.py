"""The faiss adapter's own promises: exact/HNSW switching, erasure, atomic saves, refusals."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from faceledger.adapters.index import (
    PersistentIndex,
    ids_checksum,
    open_index,
    read_manifest,
)
from faceledger.adapters.index.structures import stored_rows
from faceledger.config import IndexSettings
from faceledger.errors import ConfigError, VectorIndexError

DIM = 32
SMALL = IndexSettings(exact_max=100, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)


def cone(n: int, seed: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    """Unit vectors around one direction, like face descriptors (unrelated pairs at cosine ~0.8)."""
    rng = np.random.default_rng(seed)
    axis = np.zeros(dim)
    axis[0] = 1.0
    raw = axis + 0.5 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    unit: npt.NDArray[np.float32] = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    return unit


def ids(start: int, n: int) -> npt.NDArray[np.int64]:
    return np.arange(start, start + n, dtype=np.int64)


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "gallery-index"


def test_new_index_is_exact_and_writes_nothing_until_saved(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    assert index.kind == "exact"
    assert index.manifest is None
    assert not index_dir.exists()
    index.save()
    assert read_manifest(index_dir) == index.manifest
    assert not index.dirty


def test_switches_to_hnsw_past_exact_max_and_keeps_answers(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    vectors = cone(130, seed=1)
    index.add(ids(0, 100), vectors[:100])
    assert index.kind == "exact"
    _, before = index.search(vectors[:10], 1)
    index.add(ids(100, 30), vectors[100:])
    assert index.kind == "hnsw"
    assert index.params == {"m": 16, "ef_construction": 64, "ef_search": 64}
    assert len(index) == 130
    _, after = index.search(vectors[:10], 1)
    np.testing.assert_array_equal(before, after)


def test_goes_back_to_exact_only_at_half_exact_max(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 120), cone(120, seed=2))
    index.remove(ids(0, 60))  # 60 left: below exact_max, above exact_max // 2
    assert index.kind == "hnsw"
    index.remove(ids(60, 10))  # 50 left
    assert index.kind == "exact"
    assert index.tombstones == 0
    assert len(index) == 50


def test_hnsw_remove_zeroes_the_vector_in_memory_and_skips_it(index_dir: Path) -> None:
    settings = IndexSettings(exact_max=0, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)
    index = open_index(index_dir, dim=DIM, settings=settings)
    vectors = cone(200, seed=3)
    index.add(ids(0, 200), vectors)
    rows = stored_rows(index._index)
    assert any(np.array_equal(row, vectors[7]) for row in rows)
    assert index.remove(np.array([7])) == 1
    assert index.tombstones == 1
    rows = stored_rows(index._index)
    assert not any(np.allclose(row, vectors[7]) for row in rows)
    assert int((np.abs(rows).sum(axis=1) == 0).sum()) == 1
    _, found = index.search(vectors[[7]], 200)
    assert 7 not in found.tolist()[0]
    assert sorted(x for x in found.tolist()[0] if x >= 0) == [i for i in range(200) if i != 7]


def test_exact_remove_compacts_and_leaves_no_copy(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    vectors = cone(50, seed=4)
    index.add(ids(0, 50), vectors)
    old = index._index  # kept alive here so its memory can be inspected after the swap
    index.remove(np.array([3, 30]))
    rows = stored_rows(index._index)
    assert rows.shape == (48, DIM)
    assert not any(np.allclose(row, vectors[3]) or np.allclose(row, vectors[30]) for row in rows)
    assert not stored_rows(old).any()  # the replaced structure is wiped before it is dropped
    assert index.tombstones == 0


def test_many_removals_rebuild_the_graph(index_dir: Path) -> None:
    settings = IndexSettings(exact_max=10, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)
    index = open_index(index_dir, dim=DIM, settings=settings)
    index.add(ids(0, 200), cone(200, seed=5))
    index.remove(ids(0, 20))
    assert index.tombstones == 20
    assert stored_rows(index._index).shape[0] == 200
    index.remove(np.array([20]))  # 21 > 10% of 200 slots
    assert index.tombstones == 0
    assert stored_rows(index._index).shape[0] == 179
    assert index.kind == "hnsw"


def test_tombstones_survive_save_and_load(index_dir: Path) -> None:
    settings = IndexSettings(exact_max=0, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)
    index = open_index(index_dir, dim=DIM, settings=settings)
    vectors = cone(100, seed=6)
    index.add(ids(0, 100), vectors)
    index.remove(np.array([4, 5]))
    index.save()
    reopened = open_index(index_dir, dim=DIM, settings=settings)
    assert reopened.tombstones == 2
    assert reopened.manifest is not None
    assert (reopened.manifest.count, reopened.manifest.slots) == (98, 100)
    _, found = reopened.search(vectors[[4]], 100)
    assert not {4, 5} & set(found.ravel().tolist())


def test_manifest_describes_the_index(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(np.array([9, 3, 7000000000]), cone(3, seed=7))
    index.save()
    raw = json.loads((index_dir / "manifest.json").read_text())
    assert raw["kind"] == "exact"
    assert raw["dim"] == DIM
    assert raw["count"] == 3
    assert raw["faiss_version"] == faiss.__version__
    assert raw["ids_sha256"] == ids_checksum(np.array([7000000000, 9, 3])) == index.ids_checksum
    assert index.ids().tolist() == [3, 9, 7000000000]
    assert ids_checksum(np.array([1, 2])) != ids_checksum(np.array([1, 3]))


def test_save_keeps_one_generation_and_no_temp_files(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 10), cone(10, seed=8))
    index.save()
    first = read_manifest(index_dir)
    index.add(ids(10, 5), cone(5, seed=9))
    index.save()
    second = read_manifest(index_dir)
    assert first is not None
    assert second is not None
    assert first.index_file != second.index_file
    names = sorted(p.name for p in index_dir.iterdir())
    assert names == sorted(["manifest.json", second.index_file, second.labels_file])


def test_save_after_removal_overwrites_the_old_file_before_deleting_it(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    vectors = cone(20, seed=10)
    index.add(ids(0, 20), vectors)
    index.save()
    manifest = read_manifest(index_dir)
    assert manifest is not None
    with (index_dir / manifest.index_file).open("rb") as old:
        assert vectors[0].tobytes() in old.read()
        index.remove(np.array([0]))
        index.save()
        old.seek(0)
        leftover = old.read()  # the unlinked file, still readable through the open handle
    assert leftover
    assert not any(leftover)


def test_save_to_another_directory_is_a_copy(index_dir: Path, tmp_path: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 5), cone(5, seed=11))
    index.save(tmp_path / "copy")
    assert index.dirty
    assert open_index(tmp_path / "copy", dim=DIM, settings=SMALL).ids().tolist() == list(range(5))


def _saved(index_dir: Path) -> tuple[Path, dict[str, object]]:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 30), cone(30, seed=12))
    index.save()
    path = index_dir / "manifest.json"
    return path, json.loads(path.read_text())


def test_a_corrupted_data_file_is_refused(index_dir: Path) -> None:
    _, manifest = _saved(index_dir)
    data = index_dir / str(manifest["index_file"])
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(VectorIndexError, match=r"checksum .* does not match"):
        open_index(index_dir, dim=DIM, settings=SMALL)


def test_a_missing_data_file_is_refused(index_dir: Path) -> None:
    _, manifest = _saved(index_dir)
    (index_dir / str(manifest["labels_file"])).unlink()
    with pytest.raises(VectorIndexError, match="missing"):
        open_index(index_dir, dim=DIM, settings=SMALL)


def test_a_stale_manifest_is_refused(index_dir: Path) -> None:
    path, manifest = _saved(index_dir)
    manifest["ids_sha256"] = ids_checksum(ids(0, 30)[:-1])
    path.write_text(json.dumps(manifest))
    with pytest.raises(VectorIndexError, match="id checksum differs"):
        open_index(index_dir, dim=DIM, settings=SMALL)


def test_a_foreign_faiss_file_is_refused(index_dir: Path) -> None:
    path, manifest = _saved(index_dir)
    foreign = faiss.IndexFlatL2(DIM)
    foreign.add(cone(30, seed=13))
    data = index_dir / str(manifest["index_file"])
    faiss.write_index(foreign, str(data))
    from faceledger.adapters.index.manifest import file_sha256

    manifest["index_sha256"] = file_sha256(data)
    path.write_text(json.dumps(manifest))
    with pytest.raises(VectorIndexError, match="holds a IndexFlatL2 index"):
        open_index(index_dir, dim=DIM, settings=SMALL)


def test_an_unreadable_faiss_file_is_refused(index_dir: Path) -> None:
    path, manifest = _saved(index_dir)
    data = index_dir / str(manifest["index_file"])
    data.write_bytes(b"not faiss at all" * 10)
    from faceledger.adapters.index.manifest import file_sha256

    manifest["index_sha256"] = file_sha256(data)
    path.write_text(json.dumps(manifest))
    with pytest.raises(VectorIndexError, match="not a readable faiss index"):
        open_index(index_dir, dim=DIM, settings=SMALL)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something-else/2"}', "not a faceledger index manifest"),
        ('{"format": "faceledger-index/1", "kind": "exact"}', "fields do not match"),
    ],
)
def test_a_foreign_manifest_is_refused(index_dir: Path, text: str, reason: str) -> None:
    index_dir.mkdir()
    (index_dir / "manifest.json").write_text(text)
    with pytest.raises(VectorIndexError, match=reason):
        open_index(index_dir, dim=DIM, settings=SMALL)


def test_a_manifest_pointing_outside_its_directory_is_refused(index_dir: Path) -> None:
    path, manifest = _saved(index_dir)
    manifest["index_file"] = "../elsewhere.faiss"
    path.write_text(json.dumps(manifest))
    with pytest.raises(VectorIndexError, match="must not contain a directory"):
        open_index(index_dir, dim=DIM, settings=SMALL)


def test_an_index_of_another_dimension_is_refused(index_dir: Path) -> None:
    _saved(index_dir)
    with pytest.raises(VectorIndexError, match="another embedding model"):
        open_index(index_dir, dim=DIM * 2, settings=SMALL)


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index").write_text("x")
    with pytest.raises(VectorIndexError, match="not a directory"):
        open_index(tmp_path / "index", dim=DIM, settings=SMALL)


def test_bad_settings_are_a_config_error(index_dir: Path) -> None:
    with pytest.raises(ConfigError, match="hnsw_m"):
        open_index(index_dir, dim=DIM, settings=IndexSettings(hnsw_m=1))


def test_rebuild_replaces_contents_and_picks_the_kind(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 10), cone(10, seed=14))
    index.rebuild(ids(500, 150), cone(150, seed=15))
    assert index.kind == "hnsw"
    assert index.ids().tolist() == list(range(500, 650))
    index.rebuild(ids(0, 3), cone(3, seed=16))
    assert index.kind == "exact"
    assert len(index) == 3


def test_compact_applies_changed_settings(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 150), cone(150, seed=17))
    index.save()
    roomy = IndexSettings(exact_max=1000)
    reopened = open_index(index_dir, dim=DIM, settings=roomy)
    assert reopened.kind == "hnsw"
    assert reopened.compact()
    assert reopened.kind == "exact"
    assert not reopened.compact()
    assert reopened.dirty


def test_reconciliation_needs_only_the_manifest(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    store_ids = np.array([42, 7, 19])
    index.add(store_ids, cone(3, seed=18))
    index.save()
    manifest = read_manifest(index_dir)
    assert manifest is not None
    assert manifest.ids_sha256 == ids_checksum(store_ids[::-1])
    assert manifest.ids_sha256 != ids_checksum(np.array([42, 7]))
    assert read_manifest(index_dir / "nowhere") is None


def test_search_runs_single_threaded_and_restores_the_setting(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    index.add(ids(0, 10), cone(10, seed=19))
    before = faiss.omp_get_max_threads()
    index.search(cone(2, seed=20), 3)
    assert faiss.omp_get_max_threads() == before
    assert index.search_threads == 1


def test_concurrent_search_and_add(index_dir: Path) -> None:
    index = open_index(index_dir, dim=DIM, settings=SMALL)
    vectors = cone(300, seed=21)
    index.add(ids(0, 50), vectors[:50])
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for _ in range(100):
                _, found = index.search(vectors[:5], 3)
                assert found[:, 0].tolist() == [0, 1, 2, 3, 4]
        except BaseException as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for start in range(50, 300, 25):
        index.add(ids(start, 25), vectors[start : start + 25])
    for thread in threads:
        thread.join()
    assert not errors
    assert index.kind == "hnsw"
    assert len(index) == 300


def test_hnsw_recall_on_face_like_vectors(index_dir: Path) -> None:
    settings = IndexSettings(exact_max=0, hnsw_m=32, hnsw_ef_construction=80, hnsw_ef_search=128)
    index = open_index(index_dir, dim=128, settings=settings)
    vectors = cone(3000, seed=22, dim=128)
    index.add(ids(0, 3000), vectors)
    queries = cone(100, seed=23, dim=128)
    _, found = index.search(queries, 50)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :50]
    recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.99


@pytest.mark.faces
def test_real_face_descriptors_find_their_mates(lfw_images: Path, index_dir: Path) -> None:
    """dlib descriptors of real photos: the other photo of the same person ranks first."""
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def describe(path: Path) -> npt.NDArray[np.float32]:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        face = max(detector(pixels, 0), key=lambda r: r.area())
        vector = np.asarray(net.compute_face_descriptor(pixels, shapes(pixels, face)), dtype=np.float32)
        return vector / np.linalg.norm(vector)

    people = ["Colin_Powell", "Tony_Blair", "Hugo_Chavez", "Jean_Chretien"]
    gallery = np.stack([describe(lfw_images / p / f"{p}_0001.jpg") for p in people])
    probes = np.stack([describe(lfw_images / p / f"{p}_0002.jpg") for p in people])
    for settings in (SMALL, IndexSettings(exact_max=0, hnsw_m=16)):
        index = PersistentIndex.load(index_dir / settings.__repr__()[:40], dim=128, settings=settings)
        index.add(ids(0, len(people)), gallery)
        index.add(ids(100, 300), cone(300, seed=24, dim=128))
        scores, found = index.search(probes, 3)
        assert found[:, 0].tolist() == [0, 1, 2, 3]
        assert (scores[:, 0] > 0.9).all()
