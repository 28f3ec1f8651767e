"""The similarity aligner: the fit is least squares, and chips put the landmarks on the template."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from faceledger.domain.models import Box, DetectedFace, Landmarks, Point
from faceledger.errors import AlignmentError
from faceledger.pipeline.align import (
    ARCFACE_112,
    SimilarityAligner,
    estimate_similarity,
    transform_points,
    warp_affine,
)
from faceledger.ports import FaceAligner

F64 = npt.NDArray[np.float64]
TEMPLATE = np.array(ARCFACE_112.points)


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> F64:
    a = math.radians(angle_deg)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.hstack([rot, [[tx], [ty]]])


def invert(matrix: F64) -> F64:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def lstsq_similarity(src: F64, dst: F64, weights: F64) -> F64:
    """Independent reference: a similarity [[a, -b], [b, a]] + t is linear in (a, b, tx, ty)."""
    rows, rhs = [], []
    for (x, y), (u, v), w in zip(src, dst, weights, strict=True):
        sw = math.sqrt(w)
        rows += [[sw * x, -sw * y, sw, 0.0], [sw * y, sw * x, 0.0, sw]]
        rhs += [sw * u, sw * v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def face_from(points: F64, estimated: tuple[str, ...] = ()) -> DetectedFace:
    pts = [Point(float(x), float(y)) for x, y in points]
    landmarks = Landmarks(pts[0], pts[1], pts[2], pts[3], pts[4], estimated=estimated)
    xs, ys = points[:, 0], points[:, 1]
    return DetectedFace(Box(xs.min(), ys.min(), xs.max(), ys.max()), landmarks, 1.0, "test")


def marker_image(width: int, height: int, centres: F64, sigma: float) -> npt.NDArray[np.uint8]:
    """Red Gaussian blobs centred (pixel-centre convention) on the given points."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    red = np.zeros((height, width))
    for cx, cy in centres:
        red += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = np.clip(np.rint(255 * red), 0, 255).astype(np.uint8)
    return image


def blob_centroid(channel: npt.NDArray[np.uint8], near: F64, radius: int = 6) -> F64:
    x0, y0 = round(near[0]), round(near[1])
    window = channel[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(np.float64)
    yy, xx = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    total = window.sum()
    assert total > 0, f"no marker near {near}"
    return np.array([(window * xx).sum() / total, (window * yy).sum() / total])


# --- the estimator -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "angle", "tx", "ty"),
    [(1.0, 0.0, 0.0, 0.0), (0.37, 12.0, -40.5, 7.25), (2.6, -73.0, 120.0, -3.0), (1.1, 179.0, 5.0, 5.0)],
)
def test_known_similarity_is_recovered(scale: float, angle: float, tx: float, ty: float) -> None:
    src = np.random.default_rng(1).uniform(0, 250, size=(5, 2))
    truth = similarity(scale, angle, tx, ty)
    found = estimate_similarity(src, transform_points(truth, src))
    np.testing.assert_allclose(found, truth, atol=1e-6)


def test_noisy_fit_is_the_least_squares_similarity() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = transform_points(similarity(0.6, 20, 10, 30), src) + rng.normal(0, 3, size=(5, 2))
    weights = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    for w in (np.ones(5), weights):
        np.testing.assert_allclose(estimate_similarity(src, dst, w), lstsq_similarity(src, dst, w), atol=1e-9)
    # And it is the minimum: nudging any parameter raises the weighted error.
    best = estimate_similarity(src, dst, weights)

    def cost(m: F64) -> float:
        return float(weights @ ((transform_points(m, src) - dst) ** 2).sum(axis=1))

    for delta in (similarity(1.001, 0, 0, 0), similarity(1, 0.05, 0, 0)):
        nudged = delta[:, :2] @ best[:, :2], best[:, 2:]
        assert cost(np.hstack(nudged)) > cost(best)
    assert cost(best + np.array([[0, 0, 0.01], [0, 0, 0]])) > cost(best)


def test_zero_weight_points_are_ignored() -> None:
    truth = similarity(0.5, 5, 3, 4)
    dst = transform_points(truth, TEMPLATE)
    dst[3] += (40, -25)  # a wild guess of a mouth corner
    found = estimate_similarity(TEMPLATE, dst, [1, 1, 1, 0, 1])
    np.testing.assert_allclose(found, truth, atol=1e-9)


def test_mirrored_points_give_a_rotation_not_a_reflection() -> None:
    src = TEMPLATE
    mirrored = src * np.array([-1.0, 1.0])
    found = estimate_similarity(src, mirrored)
    assert np.linalg.det(found[:, :2]) > 0


@pytest.mark.parametrize(
    ("src", "dst", "weights", "reason"),
    [
        (np.full((5, 2), 40.0), TEMPLATE, None, "degenerate"),
        (TEMPLATE, np.full((5, 2), 7.0), None, "degenerate"),
        (np.where(np.eye(5, 2) > 0, np.nan, TEMPLATE), TEMPLATE, None, "non-finite"),
        (TEMPLATE, TEMPLATE, [1, 0, 0, 0, 0], "at least 2"),
        (TEMPLATE, TEMPLATE, [1, 1, -1, 1, 1], "negative"),
        (TEMPLATE, TEMPLATE, [1, 1], "one weight per point"),
        (TEMPLATE[:4], TEMPLATE, None, "equally long"),
        (TEMPLATE[:, :1], TEMPLATE[:, :1], None, "equally long"),
    ],
)
def test_unusable_points_raise(src: F64, dst: F64, weights: list[float] | None, reason: str) -> None:
    with pytest.raises(AlignmentError, match=reason):
        estimate_similarity(src, dst, weights)


# --- the aligner -----------------------------------------------------------------------


def test_is_a_face_aligner() -> None:
    assert isinstance(SimilarityAligner.from_template(ARCFACE_112), FaceAligner)


@pytest.mark.parametrize(
    ("scale", "angle"),
    [(1.7, 0.0), (0.9, 25.0), (0.45, -15.0), (0.2, 40.0)],
    ids=["enlarge", "rotate", "shrink-2x", "shrink-5x"],
)
def test_markers_at_landmarks_end_up_on_the_template(scale: float, angle: float) -> None:
    chip_to_image = invert(similarity(scale, angle, 0, 0))
    landmarks = transform_points(chip_to_image, TEMPLATE)
    landmarks += 40 - landmarks.min(axis=0)  # put the face inside the photo with a margin
    width, height = (np.ceil(landmarks.max(axis=0)) + 40).astype(int)
    image = marker_image(int(width), int(height), landmarks, sigma=1.5 / scale)

    chip = SimilarityAligner.from_template(ARCFACE_112).align(image, face_from(landmarks))

    assert chip.shape == (112, 112, 3)
    assert chip.dtype == np.uint8
    assert chip[..., 1:].max() == 0, "colour channels must not be mixed"
    for expected in TEMPLATE:
        found = blob_centroid(chip[..., 0], expected)
        assert np.hypot(*(found - expected)) < 0.15, (found, expected)


def test_estimated_points_do_not_pull_the_fit() -> None:
    landmarks = transform_points(invert(similarity(1.3, 8, -20, -30)), TEMPLATE)
    image = marker_image(220, 220, landmarks, sigma=1.5)
    guessed = landmarks.copy()
    guessed[3:] += ((-9, 12), (11, 10))  # mouth corners guessed badly
    aligner = SimilarityAligner.from_template(ARCFACE_112)

    chip = aligner.align(image, face_from(guessed, estimated=("mouth_right", "mouth_left")))
    for expected in TEMPLATE:
        assert np.hypot(*(blob_centroid(chip[..., 0], expected) - expected)) < 0.15

    # Without the flags the same guesses drag the eyes off their template positions.
    naive = aligner.align(image, face_from(guessed))
    assert np.hypot(*(blob_centroid(naive[..., 0], TEMPLATE[0]) - TEMPLATE[0])) > 1.0


def test_too_few_measured_points_uses_all_points() -> None:
    aligner = SimilarityAligner.from_template(ARCFACE_112)
    few = face_from(TEMPLATE, estimated=("nose", "mouth_right", "mouth_left")).landmarks
    enough = face_from(TEMPLATE, estimated=("mouth_right", "mouth_left")).landmarks
    np.testing.assert_array_equal(aligner.weights(few), np.ones(5))
    np.testing.assert_array_equal(aligner.weights(enough), [1, 1, 1, 0, 0])
    strict = SimilarityAligner.from_template(ARCFACE_112, min_measured=2)
    np.testing.assert_array_equal(strict.weights(few), [1, 1, 0, 0, 0])


def test_non_square_chip_and_black_outside_the_photo() -> None:
    template = TEMPLATE * np.array([96 / 112, 1.0])
    aligner = SimilarityAligner(template, (96, 112))
    # A face cut by the top-left corner of the photo: part of its chip lies outside the image.
    landmarks = template - (40, 60)
    image = np.full((200, 200, 3), 200, dtype=np.uint8)
    chip = aligner.align(image, face_from(landmarks))
    assert chip.shape == (112, 96, 3)
    assert chip[:50, :30].max() == 0
    assert chip[-10:, -10:].min() == 200


def test_unusable_faces_and_images_raise() -> None:
    aligner = SimilarityAligner.from_template(ARCFACE_112)
    with pytest.raises(AlignmentError, match="degenerate"):
        aligner.align(np.zeros((50, 50, 3), np.uint8), face_from(np.full((5, 2), 20.0)))
    with pytest.raises(AlignmentError, match="uint8 RGB"):
        aligner.align(np.zeros((50, 50), np.uint8), face_from(TEMPLATE))
    with pytest.raises(AlignmentError, match="uint8 RGB"):
        aligner.align(np.zeros((50, 50, 3), np.float32), face_from(TEMPLATE))
    bogus = Landmarks(*face_from(TEMPLATE).landmarks.points(), estimated=("chin",))
    with pytest.raises(AlignmentError, match="chin"):
        aligner.transform_for(bogus)


@pytest.mark.parametrize(
    ("template", "size", "reason"),
    [
        (TEMPLATE[:4], 112, "5 \\(x, y\\) points"),
        (np.full((5, 2), 50.0), 112, "degenerate"),
        (TEMPLATE, (0, 112), "positive"),
    ],
)
def test_bad_templates_raise(template: F64, size: int | tuple[int, int], reason: str) -> None:
    with pytest.raises(AlignmentError, match=reason):
        SimilarityAligner(template, size)


def test_warp_identity_keeps_pixels() -> None:
    image = np.random.default_rng(3).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    np.testing.assert_array_equal(warp_affine(image, identity, (40, 30)), image)


@pytest.mark.parametrize("scale", [1.3, 0.3], ids=["enlarge", "shrink"])
def test_chip_does_not_depend_on_where_the_face_sits_in_the_photo(scale: float) -> None:
    rng = np.random.default_rng(4)
    small = rng.integers(0, 256, size=(400, 400, 3), dtype=np.uint8)
    landmarks = transform_points(invert(similarity(scale, 10, 0, 0)), TEMPLATE)
    landmarks += 200 - landmarks.mean(axis=0)
    big = np.zeros((1500, 2000, 3), dtype=np.uint8)
    big[900:1300, 1200:1600] = small
    aligner = SimilarityAligner.from_template(ARCFACE_112)
    here = aligner.align(small, face_from(landmarks)).astype(int)
    there = aligner.align(big, face_from(np.add(landmarks, [1200, 900]))).astype(int)
    if scale > 1:
        np.testing.assert_array_equal(here, there)
    else:  # the box-reduction grid starts at a different pixel: allow a little resampling noise
        assert np.abs(here - there).mean() < 3


def test_warp_refuses_singular_transforms() -> None:
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(AlignmentError, match="singular"):
        warp_affine(image, np.zeros((2, 3)), (5, 5))
    with pytest.raises(AlignmentError, match="singular"):
        warp_affine(image, np.full((2, 3), np.nan), (5, 5))


def test_face_entirely_outside_the_photo_gives_a_black_chip() -> None:
    image = np.full((50, 50, 3), 255, dtype=np.uint8)
    far = np.array([[1.0, 0.0, -500.0], [0.0, 1.0, -500.0]])  # chip origin maps to photo (500, 500)
    chip = warp_affine(image, far, (20, 20))
    assert chip.shape == (20, 20, 3)
    assert chip.max() == 0


@pytest.mark.faces
def test_real_photo_gives_a_chip_with_the_eyes_on_the_template(lfw_images: Path) -> None:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    photo = lfw_images / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    with Image.open(photo) as img:
        pixels = np.asarray(img.convert("RGB"))
    rects = dlib.get_frontal_face_detector()(pixels, 0)
    assert len(rects) == 1
    shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())(pixels, rects[0])
    p = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)
    # dlib's 5-point model: eye corners (image-right eye first), then the base of the nose.
    right_eye, left_eye, nose = (p[2] + p[3]) / 2, (p[0] + p[1]) / 2, p[4]
    down = nose - (right_eye + left_eye) / 2
    across = (left_eye - right_eye) / 2.5
    mouth = nose + 0.6 * down
    points = np.array([right_eye, left_eye, nose, mouth - across, mouth + across])
    # The base of the nose is not the nose tip of the ArcFace template: fit on the eyes only.
    face = face_from(points, estimated=("nose", "mouth_right", "mouth_left"))

    aligner = SimilarityAligner.from_template(ARCFACE_112, min_measured=2)
    chip = aligner.align(pixels, face)

    assert chip.shape == (112, 112, 3)
    assert chip.dtype == np.uint8
    assert (chip.max(axis=2) == 0).mean() < 0.01, "the chip should be filled from the photo"
    assert chip.std() > 20, "the chip should hold a face, not a flat patch"
    mapped = transform_points(aligner.transform_for(face.landmarks), points)
    np.testing.assert_allclose(mapped[:2], TEMPLATE[:2], atol=1e-6)
    # The measured nose base sits below the template's nose tip, between nose and mouth.
    assert TEMPLATE[2, 1] < mapped[2, 1] < TEMPLATE[3, 1]
    assert abs(mapped[2, 0] - TEMPLATE[2, 0]) < 6
