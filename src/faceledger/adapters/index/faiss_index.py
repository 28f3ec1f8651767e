"""The embedded vector index: exact faiss search for small galleries, HNSW above a size.

Policy (measured in bench/index_search.py, written up in docs/index.md):

* Up to ``settings.exact_max`` live vectors the index is an ``IndexFlatIP``: exact, and a few
  ms per query at that size. Growing past it converts the index to ``IndexHNSWFlat``
  (inner product) once, with ``settings.hnsw_*``.
* Shrinking converts back to exact only when the live count falls to ``exact_max // 2``; the
  gap keeps a gallery near the boundary from flipping (and rebuilding) on every change.
* ``remove`` erases: the vector's bytes are overwritten with zeros inside the faiss structure.
  Exact indexes are then compacted into a fresh copy. HNSW cannot drop graph nodes, so the
  zeroed node stays as a tombstone that searches skip (an ``IDSelectorBitmap`` of live
  entries) until tombstones exceed ``max_tombstone_fraction`` of the graph, which rebuilds it.
* Positions in the faiss structure map to face ids through ``labels`` (-1 for a tombstone),
  so ids are whatever int64 the metadata store assigns.

All public methods take one lock: faiss structures are not safe to search while they change.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from faceledger.adapters.index import persistence, structures
from faceledger.adapters.index.checks import check_ids, check_k, check_new_ids, check_vectors, preview
from faceledger.adapters.index.manifest import IndexManifest, checksum_sorted, read_manifest
from faceledger.config import IndexSettings
from faceledger.errors import VectorIndexError

if TYPE_CHECKING:
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]
    IdArray = npt.NDArray[np.int64]

MAX_TOMBSTONE_FRACTION = 0.10
_faiss: Any = faiss  # faiss's partial type stubs lack the HNSW search parameters


class PersistentIndex:
    """A :class:`faceledger.ports.VectorIndex` kept in one directory. Use :func:`open_index`."""

    def __init__(self, directory: Path, *, dim: int, settings: IndexSettings) -> None:
        if dim < 1:
            raise VectorIndexError(f"index dimension must be positive, got {dim}")
        structures.check_settings(settings)
        self._directory = Path(directory)
        self._dim = dim
        self._settings = settings
        self._lock = threading.RLock()
        #: OpenMP threads for a search; one is fastest for single probes on a shared machine.
        self.search_threads: int | None = 1
        #: OpenMP threads for building HNSW (None: one per core).
        self.build_threads: int | None = None
        self.max_tombstone_fraction = MAX_TOMBSTONE_FRACTION
        #: HNSW beam width per search (query-time only: changing it needs no rebuild).
        self.ef_search = settings.hnsw_ef_search
        self._manifest: IndexManifest | None = None
        self._dirty = False
        self._erased_since_save = False
        empty = np.zeros(0, dtype=np.int64)
        self._adopt(structures.new_structure(structures.EXACT, dim, settings), empty, {})

    # ------------------------------------------------------------------ state
    def _adopt(self, index: Any, labels: IdArray, params: dict[str, int]) -> None:
        """Make ``index`` current; ``labels[i]`` is the id at faiss position ``i`` (-1: removed)."""
        self._index = index
        self._kind = structures.kind_of(index)
        self._labels = labels
        self._params = params
        live_positions = np.flatnonzero(labels >= 0)
        order = np.argsort(labels[live_positions], kind="stable")
        self._sorted_ids = labels[live_positions][order]
        self._sorted_pos = live_positions[order].astype(np.int64)
        self._tombstones = len(labels) - len(live_positions)
        self._live_bitmap: npt.NDArray[np.uint8] | None = None
        self._selector: Any = None

    def _replace(self, kind: str, ids: IdArray, vectors: FloatArray) -> None:
        """Swap in a freshly built structure; zero the old one's vectors before it is freed."""
        params = structures.hnsw_params(self._settings) if kind == structures.HNSW else {}
        new_index = structures.build(kind, vectors, self._settings, self.build_threads)
        structures.stored_rows(self._index)[:] = 0
        self._adopt(new_index, ids.copy(), params)

    def _live(self) -> tuple[IdArray, FloatArray]:
        positions = np.flatnonzero(self._labels >= 0)
        return self._labels[positions], structures.stored_rows(self._index)[positions]

    def _find(self, ids: IdArray) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
        """For each id: whether it is present, and its slot in the sorted arrays."""
        slots = np.searchsorted(self._sorted_ids, ids)
        if not len(self._sorted_ids):
            return np.zeros(len(ids), dtype=bool), slots
        found = self._sorted_ids[np.minimum(slots, len(self._sorted_ids) - 1)] == ids
        return found & (slots < len(self._sorted_ids)), slots

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"hnsw"``."""
        assert self._kind is not None
        return self._kind

    @property
    def params(self) -> dict[str, int]:
        """HNSW build parameters of the current graph ({} when exact), plus the search ef."""
        with self._lock:
            if self._kind != structures.HNSW:
                return {}
            return {**self._params, "ef_search": self.ef_search}

    @property
    def tombstones(self) -> int:
        """Removed entries still occupying (zeroed) graph nodes."""
        return self._tombstones

    @property
    def manifest(self) -> IndexManifest | None:
        """The manifest of the last save or load of this directory (None: never saved)."""
        return self._manifest

    @property
    def dirty(self) -> bool:
        """True when there are changes that :meth:`save` has not written yet."""
        return self._dirty

    @property
    def ids_checksum(self) -> str:
        """:func:`faceledger.adapters.index.ids_checksum` of the live ids, for reconciliation."""
        with self._lock:
            return checksum_sorted(self._sorted_ids)

    def __len__(self) -> int:
        return len(self._sorted_ids)

    def __repr__(self) -> str:
        where = str(self._directory)
        return f"PersistentIndex({where!r}, kind={self._kind}, count={len(self)}, dim={self._dim})"

    def ids(self) -> IdArray:
        """Every live id, ascending."""
        with self._lock:
            return self._sorted_ids.copy()

    def memory_bytes(self) -> int:
        with self._lock:
            own = self._labels.nbytes + self._sorted_ids.nbytes + self._sorted_pos.nbytes
            bitmap = 0 if self._live_bitmap is None else self._live_bitmap.nbytes
            return structures.structure_bytes(self._index) + own + bitmap

    # ------------------------------------------------------------------ changes
    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Add unit vectors under new ids; converts to HNSW when the count passes exact_max."""
        array = check_vectors(vectors, self._dim, what="add")
        new_ids = check_new_ids(ids, len(array))
        if not len(new_ids):
            return
        with self._lock:
            found, _ = self._find(new_ids)
            if found.any():
                raise VectorIndexError(
                    f"add: ids already in the index at {self._directory}: {preview(new_ids[found])}; "
                    "remove them first to replace their vectors"
                )
            total = len(self) + len(new_ids)
            if (
                self._kind == structures.EXACT
                and structures.kind_for(total, self._settings) == structures.HNSW
            ):
                live_ids, live_vectors = self._live()
                self._replace(
                    structures.HNSW,
                    np.concatenate([live_ids, new_ids]),
                    np.concatenate([live_vectors, array]),
                )
            else:
                self._append(new_ids, array)
            self._dirty = True

    def _append(self, new_ids: IdArray, vectors: FloatArray) -> None:
        start = len(self._labels)
        with structures.omp_threads(self.build_threads):
            self._index.add(vectors)
        order = np.argsort(new_ids, kind="stable")
        at = np.searchsorted(self._sorted_ids, new_ids[order])
        self._sorted_ids = np.insert(self._sorted_ids, at, new_ids[order])
        self._sorted_pos = np.insert(self._sorted_pos, at, start + order.astype(np.int64))
        self._labels = np.concatenate([self._labels, new_ids])
        self._selector = self._live_bitmap = None

    def remove(self, ids: IdArray) -> int:
        """Erase these ids' vectors (zeroed in memory; gone from the next save). Unknown ids are ignored."""
        wanted = np.unique(check_ids(ids, what="remove"))
        with self._lock:
            found, slots = self._find(wanted)
            slots = slots[found]
            if not len(slots):
                return 0
            positions = self._sorted_pos[slots]
            structures.stored_rows(self._index)[positions] = 0
            self._labels[positions] = -1
            self._sorted_ids = np.delete(self._sorted_ids, slots)
            self._sorted_pos = np.delete(self._sorted_pos, slots)
            self._tombstones += len(positions)
            self._selector = self._live_bitmap = None
            self._dirty = self._erased_since_save = True
            self._after_removal()
            return len(positions)

    def _after_removal(self) -> None:
        if self._kind == structures.EXACT or len(self) <= self._settings.exact_max // 2:
            self._replace(structures.EXACT, *self._live())
        elif self._tombstones > self.max_tombstone_fraction * len(self._labels):
            self._replace(structures.HNSW, *self._live())

    def compact(self) -> bool:
        """Rebuild into the structure the settings choose now, dropping tombstones.

        Use after changing ``exact_max`` or the HNSW parameters. Returns whether it rebuilt.
        """
        with self._lock:
            kind = structures.kind_for(len(self), self._settings)
            current = kind == self._kind and self._tombstones == 0
            if current and (
                kind == structures.EXACT or self._params == structures.hnsw_params(self._settings)
            ):
                return False
            self._replace(kind, *self._live())
            self._dirty = True
            return True

    def rebuild(self, ids: IdArray, vectors: FloatArray) -> None:
        """Replace the whole content, e.g. from the metadata store after a failed reconciliation."""
        array = check_vectors(vectors, self._dim, what="rebuild")
        new_ids = check_new_ids(ids, len(array))
        with self._lock:
            self._replace(structures.kind_for(len(new_ids), self._settings), new_ids, array)
            self._dirty = self._erased_since_save = True

    # ------------------------------------------------------------------ search
    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k (scores, ids) per query, best first; empty slots have id -1 and score -inf."""
        array = check_vectors(queries, self._dim, what="search")
        k = check_k(k)
        scores = np.full((len(array), k), -np.inf, dtype=np.float32)
        found = np.full((len(array), k), -1, dtype=np.int64)
        with self._lock:
            reachable = min(k, len(self))
            if reachable == 0 or not len(array):
                return scores, found
            with structures.omp_threads(self.search_threads):
                raw_scores, positions = self._index.search(array, reachable, params=self._search_params(k))
            labels = np.where(positions >= 0, self._labels[np.maximum(positions, 0)], -1)
        hit = labels >= 0
        found[:, :reachable] = labels
        scores[:, :reachable] = np.where(hit, raw_scores, -np.inf)
        return scores, found

    def _search_params(self, k: int) -> Any:
        if self._kind != structures.HNSW:
            return None
        # HNSW returns at most efSearch results, so a large k widens the beam to k.
        ef = max(self.ef_search, k)
        if not self._tombstones:
            return _faiss.SearchParametersHNSW(efSearch=ef)
        if self._selector is None:
            self._live_bitmap = np.packbits(self._labels >= 0, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(len(self._live_bitmap), faiss.swig_ptr(self._live_bitmap))
        return _faiss.SearchParametersHNSW(efSearch=ef, sel=self._selector)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path | None = None) -> None:
        """Write atomically to ``path`` (default: the index's own directory)."""
        target = self._directory if path is None else Path(path)
        with self._lock:
            own = target.resolve() == self._directory.resolve()
            if (
                own
                and not self._dirty
                and self._manifest is not None
                and read_manifest(target) == self._manifest
            ):
                return
            manifest = persistence.save(
                target, self._index, self._labels, self._params, scrub_old=own and self._erased_since_save
            )
            if own:
                self._manifest = manifest
                self._dirty = self._erased_since_save = False

    @classmethod
    def load(cls, directory: Path, *, dim: int, settings: IndexSettings) -> PersistentIndex:
        """What is saved in ``directory``, or an empty exact index when nothing is."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise VectorIndexError(
                f"{directory}: exists but is not a directory; an index needs its own directory"
            )
        index = cls(directory, dim=dim, settings=settings)
        manifest = read_manifest(directory)
        if manifest is not None:
            loaded = persistence.load(directory, manifest, dim)
            params = dict(manifest.params) if manifest.kind == structures.HNSW else {}
            index._adopt(loaded.index, loaded.labels, params)
            index._manifest = manifest
        return index


def open_index(directory: Path, *, dim: int, settings: IndexSettings) -> PersistentIndex:
    """Open the index saved in ``directory`` or start an empty one there.

    Raises :class:`faceledger.errors.VectorIndexError` naming the file and the reason when what
    is saved there is corrupt, stale, of another dimension or not a faceledger index; the
    caller can then :meth:`PersistentIndex.rebuild` it from the metadata store.
    """
    return PersistentIndex.load(directory, dim=dim, settings=settings)
