"""Input checks at the index seam, so bad arrays fail with a reason instead of a faiss abort.

faiss trusts its inputs: a wrong width or dtype can read past a buffer. Every array that
reaches it passes through here first and comes out C-contiguous float32 / int64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from faceledger.errors import VectorIndexError

if TYPE_CHECKING:
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]
    IdArray = npt.NDArray[np.int64]

# float32 descriptors normalised by the embedder are within ~1e-6 of unit length; the slack
# only has to catch vectors that were never normalised (dlib's raw norms are ~1.4-1.6).
NORM_TOLERANCE = 1e-3


def preview(values: Any, limit: int = 5) -> str:
    items = [str(v) for v in list(values)[:limit]]
    more = ", ..." if len(values) > limit else ""
    return ", ".join(items) + more


def check_vectors(vectors: Any, dim: int, *, what: str) -> FloatArray:
    """An (n, dim) C-contiguous float32 array of finite unit vectors, or VectorIndexError."""
    array = np.asarray(vectors)
    if array.dtype.kind != "f":
        raise VectorIndexError(f"{what}: expected a float array, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != dim:
        raise VectorIndexError(
            f"{what}: expected shape (n, {dim}), got {array.shape}; "
            f"the index holds {dim}-d vectors (a single vector must be passed as vector[None, :])"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise VectorIndexError(f"{what}: contains NaN or infinite values")
    if len(array):
        norms = np.linalg.norm(array, axis=1)
        bad = np.abs(norms - 1.0) > NORM_TOLERANCE
        if bad.any():
            raise VectorIndexError(
                f"{what}: vectors must be L2-normalised (found norms {norms[bad].min():.4g}.."
                f"{norms[bad].max():.4g} in {int(bad.sum())} rows); divide by np.linalg.norm first"
            )
    return array


def check_ids(ids: Any, *, what: str) -> IdArray:
    """A 1-D int64 array of non-negative ids (-1 is the 'no result' marker)."""
    array = np.asarray(ids)
    if array.dtype.kind not in "iu":
        raise VectorIndexError(f"{what}: ids must be integers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise VectorIndexError(f"{what}: ids must be a 1-D array, got shape {array.shape}")
    if array.dtype.kind == "u" and len(array) and int(array.max()) > np.iinfo(np.int64).max:
        raise VectorIndexError(f"{what}: ids must fit in int64")
    array = np.ascontiguousarray(array, dtype=np.int64)
    negative = array[array < 0]
    if len(negative):
        raise VectorIndexError(f"{what}: ids must be >= 0, got {preview(negative)}")
    return array


def check_new_ids(ids: Any, count: int) -> IdArray:
    """Ids for ``count`` new vectors: one each, none repeated within the batch."""
    array = check_ids(ids, what="add")
    if len(array) != count:
        raise VectorIndexError(f"add: {len(array)} ids for {count} vectors; give exactly one id per vector")
    unique, counts = np.unique(array, return_counts=True)
    if len(unique) != len(array):
        raise VectorIndexError(f"add: ids repeated within the batch: {preview(unique[counts > 1])}")
    return array


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise VectorIndexError(f"search: k must be a positive integer, got {k!r}")
    return int(k)
