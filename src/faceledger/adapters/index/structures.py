"""The two faiss structures the index switches between, and direct access to their vectors.

Both keep the raw float32 vectors in a flat array (IndexFlatIP itself, or the ``storage`` of
IndexHNSWFlat). :func:`stored_rows` gives a writable view of that array, which is how removed
vectors are overwritten with zeros in place: faiss's HNSW has no removal of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from faceledger.config import IndexSettings
from faceledger.errors import ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]

EXACT = "exact"
HNSW = "hnsw"


def check_settings(settings: IndexSettings) -> None:
    if settings.exact_max < 0:
        raise ConfigError(f"index.exact_max must be >= 0, got {settings.exact_max}")
    if settings.hnsw_m < 2:
        raise ConfigError(f"index.hnsw_m must be >= 2, got {settings.hnsw_m}")
    if settings.hnsw_ef_construction < 1 or settings.hnsw_ef_search < 1:
        raise ConfigError("index.hnsw_ef_construction and index.hnsw_ef_search must be >= 1")


def kind_for(count: int, settings: IndexSettings) -> str:
    return EXACT if count <= settings.exact_max else HNSW


def hnsw_params(settings: IndexSettings) -> dict[str, int]:
    return {"m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction}


@contextmanager
def omp_threads(count: int | None) -> Iterator[None]:
    """Run faiss with ``count`` OpenMP threads (None: faiss's default, one per core).

    On a busy machine two spinning OpenMP threads made a single query 5-7x slower than one,
    so searches run single-threaded; builds may use every core.
    """
    if count is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def new_structure(kind: str, dim: int, settings: IndexSettings) -> Any:
    if kind == EXACT:
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = settings.hnsw_ef_construction
    index.hnsw.efSearch = settings.hnsw_ef_search
    return index


def build(kind: str, vectors: FloatArray, settings: IndexSettings, threads: int | None) -> Any:
    index = new_structure(kind, vectors.shape[1], settings)
    if len(vectors):
        with omp_threads(threads):
            index.add(vectors)
    return index


def kind_of(index: Any) -> str | None:
    """Which of the two structures a loaded faiss index is (None: something else)."""
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None
    if isinstance(index, faiss.IndexHNSWFlat):
        return HNSW
    if type(index) in (faiss.IndexFlatIP, faiss.IndexFlat):
        return EXACT
    return None


def stored_rows(index: Any) -> FloatArray:
    """A writable (ntotal, d) view of the vectors faiss holds; writes go straight into the index."""
    flat: Any = index if kind_of(index) == EXACT else faiss.downcast_index(index.storage)
    count = int(flat.ntotal)
    if count == 0:
        return np.zeros((0, int(flat.d)), dtype=np.float32)
    view: FloatArray = faiss.rev_swig_ptr(flat.get_xb(), count * int(flat.d))
    return view.reshape(count, int(flat.d))


def structure_bytes(index: Any) -> int:
    """Bytes of the vectors plus, for HNSW, the graph (links, offsets, levels)."""
    size = int(index.ntotal) * int(index.d) * 4
    if kind_of(index) == HNSW:
        graph = index.hnsw
        size += int(graph.neighbors.size()) * 4 + int(graph.offsets.size()) * 8 + int(graph.levels.size()) * 4
    return size


def graph_params(index: Any) -> dict[str, int]:
    """M and efConstruction as built into a loaded HNSW graph."""
    graph = index.hnsw
    return {"m": int(graph.nb_neighbors(1)), "ef_construction": int(graph.efConstruction)}
