"""Generic template alignment: map a face's five landmarks onto the points a model was trained on.

An embedding network only gives comparable vectors for crops made the way its training crops
were made: eyes, nose and mouth at fixed places in a fixed-size chip. Any such recipe reduces
to a *template* (five points in chip pixels) and a chip size, so one aligner serves every
model; the model's manifest says which template.

The transform is a similarity (rotation, uniform scale, translation): it keeps the face's
proportions, which carry identity, and only undoes where the face happened to sit in the
photo. It is the weighted least-squares fit of Umeyama (1991), solved with an SVD.

Coordinates follow the usual landmark convention: pixel ``(i, j)`` has its centre at
``x = i, y = j``. Templates use the same convention.

Points flagged ``estimated`` in :class:`~faceledger.domain.models.Landmarks` (guessed from
face geometry rather than located by a landmark model) are left out of the fit whenever at
least ``min_measured`` (default 3) points were measured: a guess would only pull the fit
away from the points that were actually seen. With fewer measured points every point is
used with equal weight, since a two-point fit has no redundancy to absorb a bad point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.errors import AlignmentError

if TYPE_CHECKING:
    from faceledger.domain.models import DetectedFace, Landmarks

Matrix = npt.NDArray[np.float64]
ImageArray = npt.NDArray[np.uint8]

LANDMARK_NAMES: Final = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")

# Smallest RMS spread (pixels) of the landmarks around their centroid that still defines a
# scale and rotation; anything below is a detector failure, not a face.
MIN_SPREAD_PX: Final = 1e-3


@dataclass(frozen=True, slots=True)
class Template:
    """Where the five landmarks sit in a model's chip (order of ``Landmarks.points()``)."""

    points: tuple[tuple[float, float], ...]
    width: int
    height: int
    name: str = "custom"


# The reference points that the ArcFace family of models (InsightFace and derivatives) was
# trained with, for 112 x 112 chips; a published constant of that method.
ARCFACE_112: Final = Template(
    points=(
        (38.2946, 51.6963),
        (73.5318, 51.5014),
        (56.0252, 71.7366),
        (41.5493, 92.3655),
        (70.7299, 92.2041),
    ),
    width=112,
    height=112,
    name="arcface-112",
)

PRESETS: Final[dict[str, Template]] = {ARCFACE_112.name: ARCFACE_112}


def estimate_similarity(
    src: npt.ArrayLike,
    dst: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> Matrix:
    """The 2 x 3 similarity matrix ``M`` minimising ``sum w_i |M [src_i, 1] - dst_i|^2``.

    Reflections are excluded (a mirrored face is another face). Raises AlignmentError when
    the points cannot define a transform: fewer than two weighted points, non-finite
    coordinates, or points that all coincide.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape:
        raise AlignmentError(
            f"need two equally long lists of (x, y) points; got shapes {s.shape} and {d.shape}"
        )
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    _check_inputs(s, d, w)
    w = w / w.sum()
    mu_s = w @ s
    mu_d = w @ d
    sc = s - mu_s
    dc = d - mu_d
    var_s = float(w @ (sc**2).sum(axis=1))
    var_d = float(w @ (dc**2).sum(axis=1))
    if math.sqrt(var_s) < MIN_SPREAD_PX or math.sqrt(var_d) < MIN_SPREAD_PX:
        raise AlignmentError(
            "landmarks are degenerate: the weighted points all coincide, so they define no "
            f"scale or rotation (spread {math.sqrt(var_s):.2g} px -> {math.sqrt(var_d):.2g} px)"
        )
    cov = (dc * w[:, None]).T @ sc
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float(sigma @ sign) / var_s
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]])


def _check_inputs(s: Matrix, d: Matrix, w: Matrix) -> None:
    if w.shape != (len(s),):
        raise AlignmentError(f"need one weight per point: {len(s)} points, weights of shape {w.shape}")
    if not (np.isfinite(s).all() and np.isfinite(d).all() and np.isfinite(w).all()):
        raise AlignmentError("landmarks contain non-finite coordinates (NaN or infinity)")
    if (w < 0).any():
        raise AlignmentError("point weights must not be negative")
    if int((w > 0).sum()) < 2:
        raise AlignmentError(
            f"a similarity transform needs at least 2 weighted points, got {int((w > 0).sum())}"
        )


def transform_points(matrix: Matrix, points: npt.ArrayLike) -> Matrix:
    """Apply a 2 x 3 affine matrix to an (n, 2) array of points."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def warp_affine(pixels: ImageArray, matrix: Matrix, size: tuple[int, int]) -> ImageArray:
    """Resample ``pixels`` so that image point ``p`` lands at ``matrix @ [p, 1]`` in a chip of ``size``.

    Only the part of the photo under the chip is touched, so a face in a 12-megapixel photo
    costs about what one in a thumbnail does. Pillow's bilinear transform does not filter when
    shrinking, so a large face is first box-reduced by an integer factor; otherwise the chip
    would alias on high-resolution photos.
    """
    _check_pixels(pixels)
    width, height = size
    linear, translation = matrix[:, :2], matrix[:, 2]
    det = float(np.linalg.det(linear)) if np.isfinite(matrix).all() else 0.0
    if abs(det) < 1e-12:
        raise AlignmentError(f"the alignment transform is singular or not finite: {matrix.tolist()}")
    inverse = np.linalg.inv(linear).astype(np.float64)
    factor = max(1, int(1.0 / math.sqrt(abs(det))))
    x0, y0, x1, y1 = _footprint(inverse, translation, size, pixels.shape, margin=factor + 2)
    if x0 >= x1 or y0 >= y1:
        return np.zeros((height, width, 3), dtype=np.uint8)
    image = Image.fromarray(np.ascontiguousarray(pixels[y0:y1, x0:x1]))
    if factor > 1:
        image = image.reduce(factor)
    # Pillow puts pixel centres at +0.5: map chip -> photo in that convention, then into the crop.
    offset = -inverse @ (translation + 0.5) + 0.5 - np.array([x0, y0])
    coeffs = np.hstack([inverse, offset[:, None]]) / factor
    chip = image.transform(
        (width, height),
        Image.Transform.AFFINE,
        tuple(float(c) for c in coeffs.ravel()),
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )
    return np.asarray(chip, dtype=np.uint8)


def _footprint(
    inverse: Matrix, translation: Matrix, size: tuple[int, int], shape: tuple[int, ...], margin: int
) -> tuple[int, int, int, int]:
    """The photo's pixel rectangle (x0, y0, x1, y1) that the chip samples from, clipped to the photo."""
    width, height = size
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    photo = (corners - translation) @ inverse.T
    low = np.floor(photo.min(axis=0)) - margin
    high = np.ceil(photo.max(axis=0)) + margin
    x0, y0 = (int(max(0.0, v)) for v in low)
    x1 = int(min(float(shape[1]), high[0]))
    y1 = int(min(float(shape[0]), high[1]))
    return x0, y0, x1, y1


def _check_pixels(pixels: ImageArray) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise AlignmentError(
            f"expected an H x W x 3 uint8 RGB image, got shape {pixels.shape} of {pixels.dtype}"
        )
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise AlignmentError(f"cannot align a face in an empty image of shape {pixels.shape}")


def _as_template_points(template: Sequence[Sequence[float]] | npt.ArrayLike) -> Matrix:
    points = np.asarray(template, dtype=np.float64)
    if points.shape != (5, 2):
        raise AlignmentError(
            f"an alignment template needs 5 (x, y) points, got an array of shape {points.shape}"
        )
    if not np.isfinite(points).all():
        raise AlignmentError("alignment template has non-finite coordinates")
    return points


class SimilarityAligner:
    """Cuts chips whose landmarks sit on ``template``: implements ``ports.FaceAligner``."""

    def __init__(
        self,
        template: Sequence[Sequence[float]] | npt.ArrayLike,
        size: int | tuple[int, int],
        *,
        min_measured: int = 3,
    ) -> None:
        self.template = _as_template_points(template)
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if self.size[0] < 1 or self.size[1] < 1:
            raise AlignmentError(f"chip size must be positive, got {self.size[0]} x {self.size[1]}")
        if not 2 <= min_measured <= 5:
            raise AlignmentError(f"min_measured must be between 2 and 5, got {min_measured}")
        self.min_measured = min_measured
        # Fails now, not on the first face, when the template itself is degenerate.
        estimate_similarity(self.template, self.template)

    @classmethod
    def from_template(cls, template: Template, *, min_measured: int = 3) -> SimilarityAligner:
        return cls(template.points, (template.width, template.height), min_measured=min_measured)

    def weights(self, landmarks: Landmarks) -> Matrix:
        """1 for measured points, 0 for estimated ones when enough points were measured."""
        unknown = set(landmarks.estimated) - set(LANDMARK_NAMES)
        if unknown:
            raise AlignmentError(f"landmarks flag unknown points as estimated: {sorted(unknown)}")
        measured = np.array([name not in landmarks.estimated for name in LANDMARK_NAMES], dtype=np.float64)
        if measured.sum() >= self.min_measured:
            return measured
        return np.ones(len(LANDMARK_NAMES))

    def transform_for(self, landmarks: Landmarks) -> Matrix:
        """The image -> chip matrix for these landmarks (also useful to report the fit's residual)."""
        source = np.array([(p.x, p.y) for p in landmarks.points()], dtype=np.float64)
        return estimate_similarity(source, self.template, self.weights(landmarks))

    def align(self, pixels: ImageArray, face: DetectedFace) -> ImageArray:
        """The aligned chip (height x width x 3, uint8 RGB); areas outside the photo are black."""
        return warp_affine(pixels, self.transform_for(face.landmarks), self.size)
