"""The small interfaces that adapters implement.

The pipeline depends on these Protocols only: the face models (dlib in
``adapters/models/dlib_backend.py``, onnxruntime in ``adapters/models/onnx_backend.py``) and
the vector index (faiss, in the ``adapters/index`` package) are reached through them. A
contract test suite under ``tests/contracts`` runs against every adapter of a port.

The metadata store has no Protocol here. ``adapters/store`` owns the engine, the tables, the
migrations and the transactions (``Store.begin``/``Store.read``) and answers the gallery
questions in ``repository.py``; the service modules (``faceledger.services``) also use
SQLAlchemy Core directly, building their own statements over the store's tables on the
connection of the transaction the store opened, so that an action and its audit entry commit
together. SQLAlchemy is imported nowhere else: not by the domain, the pipeline, the audit
package, the web layer, the CLI or the library (``tests/test_layering.py`` checks this).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from faceledger.domain.models import Box, DetectedFace, Landmarks, ModelRef

    ImageArray = npt.NDArray[np.uint8]
    FloatArray = npt.NDArray[np.float32]
    IdArray = npt.NDArray[np.int64]


@runtime_checkable
class FaceDetector(Protocol):
    """Finds every face in an RGB image, with a box, five landmarks and a score."""

    name: str

    def detect(self, pixels: ImageArray, *, upsample: int = 0) -> list[DetectedFace]:
        """Faces in ``pixels`` (H x W x 3, uint8 RGB), in pixel coordinates of ``pixels``.

        ``upsample`` asks the detector to look for smaller faces by enlarging the image
        that many times (each doubles the linear size and roughly quadruples the cost).
        """
        ...


@runtime_checkable
class FaceBoxDetector(Protocol):
    """Finds face boxes only; a :class:`FaceLandmarker` then places landmarks at full resolution.

    Splitting the two lets the detector run on a small copy of a large photo (cheap) while
    the landmarks, which decide the alignment, come from the full-resolution pixels.
    """

    name: str
    #: Smallest face side (pixels) found at ``upsample=0``; each upsample halves it.
    window_px: int
    #: False when a grey (H x W) image is enough, which makes resizing and scanning cheaper.
    needs_color: bool

    def boxes(self, pixels: ImageArray, *, upsample: int = 0) -> list[tuple[Box, float]]:
        """(box, detector score) per face, in pixel coordinates of ``pixels``."""
        ...


@runtime_checkable
class FaceLandmarker(Protocol):
    """Places the five landmarks of the face inside ``box``."""

    name: str

    def landmarks(self, pixels: ImageArray, box: Box) -> Landmarks:
        """Landmarks in pixel coordinates of ``pixels`` (H x W x 3 uint8 RGB)."""
        ...


@runtime_checkable
class FaceAligner(Protocol):
    """Cuts a face out of an image into the fixed crop an embedder was trained on."""

    def align(self, pixels: ImageArray, face: DetectedFace) -> ImageArray:
        """The aligned face chip (size x size x 3, uint8 RGB)."""
        ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Turns aligned face chips into unit-length vectors."""

    model: ModelRef

    def embed(self, chips: Sequence[ImageArray]) -> FloatArray:
        """An (n, model.dim) float32 array of L2-normalised descriptors, one per chip."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest-neighbour search over unit vectors by inner product (cosine similarity).

    Ids are the face ids of the metadata store (int64). The index is derived data: the
    store holds every vector too, so an index can always be rebuilt from it.
    """

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Add vectors under the given ids (ids must not already be present)."""
        ...

    def remove(self, ids: IdArray) -> int:
        """Remove these ids; the vectors' values are erased, not just hidden. Returns how many."""
        ...

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k (scores, ids) per query, best first; missing slots have id -1."""
        ...

    def ids(self) -> IdArray:
        """Every id in the index."""
        ...

    def save(self, path: Path) -> None:
        """Persist atomically (write elsewhere, then rename)."""
        ...

    def memory_bytes(self) -> int:
        """Approximate resident size of the index."""
        ...
