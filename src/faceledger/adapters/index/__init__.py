"""The embedded vector index (faiss), behind :class:`faceledger.ports.VectorIndex`.

Exact inner-product search up to ``IndexSettings.exact_max`` faces, HNSW above; saved
atomically to a directory with a manifest the metadata store can check cheaply against its
own ids (:func:`read_manifest` + :func:`ids_checksum`). See docs/index.md.
"""

from faceledger.adapters.index.faiss_index import MAX_TOMBSTONE_FRACTION, PersistentIndex, open_index
from faceledger.adapters.index.manifest import IndexManifest, ids_checksum, read_manifest

__all__ = [
    "MAX_TOMBSTONE_FRACTION",
    "IndexManifest",
    "PersistentIndex",
    "ids_checksum",
    "open_index",
    "read_manifest",
]
