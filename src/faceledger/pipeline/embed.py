"""Aligned chips to unit vectors, each tagged with the model that made it.

The check on what comes back is deliberate: a vector of the wrong size or length would
still "search", just meaninglessly, so a backend that breaks the contract fails loudly here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from faceledger.domain.models import DetectedFace, Embedding
from faceledger.errors import ModelError

if TYPE_CHECKING:
    from faceledger.ports import FaceAligner, FaceEmbedder

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

#: How far from length 1 a returned vector may be (float32 rounding, not a real deviation).
UNIT_TOLERANCE: Final = 1e-3


def check_vectors(vectors: FloatArray, count: int, embedder: FaceEmbedder) -> None:
    """ModelError unless there is one finite unit vector of the model's dimension per face."""
    name = embedder.model.key
    if vectors.shape != (count, embedder.model.dim):
        raise ModelError(
            f"{name}: expected {count} vectors of {embedder.model.dim} values, got shape {vectors.shape}"
        )
    if not np.isfinite(vectors).all():
        raise ModelError(f"{name}: produced non-finite values")
    norms = np.linalg.norm(vectors, axis=1)
    if count and np.abs(norms - 1.0).max() > UNIT_TOLERANCE:
        raise ModelError(
            f"{name}: vectors are not unit length (lengths {norms.min():.4f} to {norms.max():.4f})"
        )


@runtime_checkable
class MirrorAligner(Protocol):
    """An aligner that can also cut the chip of the mirror-image photo."""

    def align_mirrored(self, pixels: ImageArray, face: DetectedFace) -> ImageArray: ...


@runtime_checkable
class MirrorEmbedder(Protocol):
    """An embedder with flip averaging that takes the mirrored chips from the caller."""

    flip: bool

    def embed_with_mirrors(
        self, chips: Sequence[ImageArray], mirrored: Sequence[ImageArray] | None
    ) -> FloatArray: ...


def embed_faces(
    pixels: ImageArray,
    faces: Sequence[DetectedFace],
    aligner: FaceAligner,
    embedder: FaceEmbedder,
) -> list[Embedding]:
    """One embedding per face, in the order of ``faces`` (one network call for all).

    With an aligner and embedder that support it (dlib's), flip averaging uses the chip
    of the mirrored photo rather than the mirror image of the chip.
    """
    if not faces:
        return []
    chips = [aligner.align(pixels, face) for face in faces]
    if isinstance(embedder, MirrorEmbedder) and embedder.flip and isinstance(aligner, MirrorAligner):
        # The chip of the mirrored photo is aligned exactly; a mirrored chip only nearly.
        mirrored = [aligner.align_mirrored(pixels, face) for face in faces]
        raw = embedder.embed_with_mirrors(chips, mirrored)
    else:
        raw = embedder.embed(chips)
    vectors = np.asarray(raw, dtype=np.float32)
    check_vectors(vectors, len(faces), embedder)
    return [Embedding(vector=np.array(v, dtype=np.float32), model=embedder.model) for v in vectors]


def similarity(a: Embedding, b: Embedding) -> float:
    """Cosine similarity of two embeddings of the same model (their dot product)."""
    if a.model != b.model:
        raise ModelError(f"cannot compare embeddings of different models: {a.model.key} and {b.model.key}")
    return float(np.dot(a.vector, b.vector))
