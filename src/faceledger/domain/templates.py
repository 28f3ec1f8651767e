"""Subject templates: one vector for a person enrolled from several photos.

A subject's mean template is the unit-length mean of the embeddings of up to
:data:`MAX_TEMPLATE_IMAGES` of its enrolled faces, the best quality first (ties: the older face
first). On LFW DevTrain a probe scored against that template found its mate more often, at the
same false positive identification rate, than a probe scored against the subject's best single
image (``bench/templates.py``; docs/evaluation.md has the figures). Different people also score
higher against a mean template than against one image, and more so the more images it has, so
a template's score is turned into an estimated FMR by the calibration of its size
(:mod:`faceledger.domain.calibration`); that is why templates stop at the largest size that was
calibrated.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: The most faces a template averages; each template size from 1 to this has its own calibration.
MAX_TEMPLATE_IMAGES = 4


@dataclass(frozen=True, slots=True)
class TemplateFace:
    """One enrolled face a template may use."""

    face_id: int
    quality: float


def template_members(faces: Sequence[TemplateFace], limit: int = MAX_TEMPLATE_IMAGES) -> list[int]:
    """The face ids a subject's template averages: the ``limit`` best by quality, then by id."""
    if limit < 1:
        raise ValueError("a template uses at least one face")
    ordered = sorted(faces, key=lambda f: (-f.quality, f.face_id))
    return [f.face_id for f in ordered[:limit]]


def unit_mean(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The unit-length mean of unit vectors (one row each); ValueError when they cancel out."""
    rows = np.asarray(vectors, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError("a template needs at least one vector (an n x dim array)")
    mean = rows.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("these vectors have no mean direction")
    out: npt.NDArray[np.float32] = (mean / norm).astype(np.float32)
    return out
