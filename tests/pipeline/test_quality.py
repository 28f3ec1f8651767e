"""Quality measures move the right way when a real face photo is made worse."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFilter

from faceledger.adapters.models.dlib_backend import DlibHogDetector, DlibLandmarker
from faceledger.config import DetectorSettings
from faceledger.domain.models import Box, DetectedFace, Landmarks, Point, QualityReport
from faceledger.pipeline.detect import find_faces
from faceledger.pipeline.quality import (
    QualityThresholds,
    assess_quality,
    estimate_pose,
    face_patch,
    sharpness,
)

ImageArray = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def models() -> tuple[DlibHogDetector, DlibLandmarker]:
    return DlibHogDetector(), DlibLandmarker()


@pytest.fixture(scope="module")
def bush(lfw_images: Path) -> Image.Image:
    with Image.open(lfw_images / "George_W_Bush" / "George_W_Bush_0001.jpg") as image:
        return image.convert("RGB")


def only_face(image: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]) -> DetectedFace:
    faces = find_faces(np.asarray(image), *models, DetectorSettings())
    assert faces, "no face found"
    return faces[0]


def report(image: Image.Image, face: DetectedFace) -> QualityReport:
    return assess_quality(np.asarray(image), face)


def test_a_clear_frontal_photo_scores_well(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    q = report(bush, face)
    assert q.score > 70
    assert q.issues == ()
    assert q.face_size_px == pytest.approx((face.box.width + face.box.height) / 2)
    assert q.inter_eye_px == pytest.approx(face.landmarks.inter_eye_distance)
    assert abs(q.yaw_deg) < 20
    assert abs(q.roll_deg) < 10
    assert abs(q.pitch_deg) < 25
    assert 0 <= q.underexposed_fraction < 0.05
    assert 0 <= q.overexposed_fraction < 0.05


def test_blurring_lowers_sharpness_and_score(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    reports = [report(bush.filter(ImageFilter.GaussianBlur(r)) if r else bush, face) for r in (0, 1, 2, 3)]
    sharp = [q.sharpness for q in reports]
    scores = [q.score for q in reports]
    assert sharp == sorted(sharp, reverse=True)
    assert len(set(sharp)) == 4
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 4
    assert any(i.startswith("blurred") for i in reports[-1].issues)


def test_darkening_raises_underexposure(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    pixels = np.asarray(bush).astype(np.float64)
    reports = [
        assess_quality(np.clip(pixels * k - 40 * (1 - k), 0, 255).astype(np.uint8), face)
        for k in (1.0, 0.5, 0.25)
    ]
    under = [q.underexposed_fraction for q in reports]
    assert under[0] < under[1] < under[2]
    assert reports[0].brightness > reports[1].brightness > reports[2].brightness
    assert reports[0].score > reports[1].score > reports[2].score
    assert any(i.startswith("too dark") for i in reports[2].issues)


def test_rotating_the_photo_raises_roll(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    upright = report(bush, only_face(bush, models))
    # PIL turns counter-clockwise for positive angles; roll is positive clockwise.
    turned_image = bush.rotate(-15, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    turned = report(turned_image, only_face(turned_image, models))
    assert turned.roll_deg - upright.roll_deg == pytest.approx(15, abs=4)


def test_small_face_is_flagged(bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]) -> None:
    board = Image.new("RGB", (300, 300), (128, 128, 128))
    board.paste(bush.resize((80, 80), Image.Resampling.LANCZOS), (110, 110))
    faces = find_faces(np.asarray(board), *models, DetectorSettings(min_face_px=20))
    assert faces
    q = assess_quality(np.asarray(board), faces[0], QualityThresholds(min_face_px=40))
    assert q.face_size_px < 40
    assert any(i == f"face too small: {q.face_size_px:.0f} px < 40 px" for i in q.issues)
    assert q.score < report(bush, only_face(bush, models)).score


def frontal(nose_dx: float = 0.0, nose_dy: float = 0.571) -> Landmarks:
    re, le = Point(100.0, 100.0), Point(200.0, 100.0)
    nose = Point(150.0 + 100.0 * nose_dx, 100.0 + 100.0 * nose_dy)
    return Landmarks(re, le, nose, Point(109.0, 215.0), Point(191.0, 215.0))


def test_pose_of_an_average_frontal_face_is_zero() -> None:
    yaw, roll, pitch = estimate_pose(frontal())
    assert (yaw, roll, pitch) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)


def test_pose_signs_follow_the_nose() -> None:
    assert estimate_pose(frontal(nose_dx=0.2))[0] > 15
    assert estimate_pose(frontal(nose_dx=-0.2))[0] < -15
    assert estimate_pose(frontal(nose_dy=0.4))[2] > 10  # nose nearer the eyes: head tilted back
    assert estimate_pose(frontal(nose_dy=0.7))[2] < -10


def test_pitch_is_never_pinned_at_a_bound() -> None:
    """A nose further below the eyes than the old model's reach (0.76) read -41 degrees, whatever."""
    drops = [0.3, 0.45, 0.571, 0.7, 0.76, 0.8, 0.9, 1.0, 1.2]
    pitches = [estimate_pose(frontal(nose_dy=d))[2] for d in drops]
    assert all(a > b for a, b in itertools.pairwise(pitches))  # strictly falling
    assert pitches[drops.index(0.571)] == pytest.approx(0.0, abs=1e-9)
    assert -30 < pitches[drops.index(0.8)] < -20  # one ordinary face in twenty on LFW: not -41
    assert -90 < pitches[-1] < -41.3


@pytest.mark.parametrize("name", ["George_W_Bush_0001", "Colin_Powell_0001", "Tony_Blair_0001"])
def test_foreshortening_a_real_face_moves_pitch_the_right_way(
    lfw_images: Path, models: tuple[DlibHogDetector, DlibLandmarker], name: str
) -> None:
    """Squashing the photo vertically shortens the nose's drop, as tilting the head back does."""
    with Image.open(lfw_images / name.rsplit("_", 1)[0] / f"{name}.jpg") as opened:
        photo = opened.convert("RGB")
    pitches = []
    for k in (0.75, 0.9, 1.0, 1.1, 1.25):
        squashed = photo.resize((photo.width, round(photo.height * k)), Image.Resampling.BICUBIC)
        pitches.append(report(squashed, only_face(squashed, models)).pitch_deg)
    assert all(a > b for a, b in itertools.pairwise(pitches)), pitches
    assert pitches[0] - pitches[-1] > 10, pitches


def test_on_lfw_the_pitch_of_ordinary_photos_spreads_without_piling_up(
    lfw_images: Path, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    """Mostly frontal news photos: a spread about zero, and no value shared by many faces."""
    people = sorted(p for p in lfw_images.iterdir() if p.is_dir())[:120]
    pitches = []
    for folder in people:
        with Image.open(sorted(folder.glob("*.jpg"))[0]) as opened:
            photo = opened.convert("RGB")
        faces = find_faces(np.asarray(photo), *models, DetectorSettings())
        if faces:
            pitches.append(round(assess_quality(np.asarray(photo), faces[0]).pitch_deg, 3))
    assert len(pitches) > 100
    assert abs(float(np.median(pitches))) < 10
    most_common = max(pitches.count(p) for p in set(pitches))
    assert most_common <= 2, f"{most_common} faces share one pitch value (to 0.001 degrees)"
    assert sum(abs(p) > 30 for p in pitches) / len(pitches) < 0.05


def test_sharpness_ignores_the_size_of_the_photo(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    big = bush.resize((1000, 1000), Image.Resampling.LANCZOS)
    b = face.box
    big_box = Box(b.left * 4, b.top * 4, b.right * 4, b.bottom * 4)
    small_value = sharpness(face_patch(np.asarray(bush), b))
    big_value = sharpness(face_patch(np.asarray(big), big_box))
    assert big_value == pytest.approx(small_value, rel=0.25)


def test_face_partly_outside_the_image_is_flagged(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    shifted = Box(face.box.left - 200, face.box.top, face.box.right - 200, face.box.bottom)
    q = assess_quality(np.asarray(bush), DetectedFace(shifted, face.landmarks, face.score, face.detector))
    assert any(i.startswith("face cut off") for i in q.issues)


def test_the_score_is_the_product_of_its_factors(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    shifted = Box(face.box.left - 150, face.box.top, face.box.right - 150, face.box.bottom)
    for box in (face.box, shifted):
        q = assess_quality(np.asarray(bush), DetectedFace(box, face.landmarks, face.score, face.detector))
        factors = q.factors
        assert factors is not None
        assert all(0 < v <= 100 for v in factors.values())
        product = factors["size"] * factors["sharpness"] * factors["pose"] * factors["exposure"] / 100.0**3
        assert q.score == pytest.approx(product * (1 - q.outside_fraction))
    assert q.outside_fraction > 0


def test_a_worse_aspect_lowers_its_own_factor_and_the_explanation_names_it(
    bush: Image.Image, models: tuple[DlibHogDetector, DlibLandmarker]
) -> None:
    face = only_face(bush, models)
    blurred = [report(bush.filter(ImageFilter.GaussianBlur(r)) if r else bush, face) for r in (0, 1, 2, 4)]
    sharp = [q.sharpness_factor for q in blurred]
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(sharp)), sharp
    assert {q.pose_factor for q in blurred} == {blurred[0].pose_factor}  # the landmarks are the same
    assert blurred[-1].explanation().startswith(f"score {blurred[-1].score:.0f}: lowered most by sharpness")

    pixels = np.asarray(bush).astype(np.float64)
    dark = [
        assess_quality(np.clip(pixels * k - 40 * (1 - k), 0, 255).astype(np.uint8), face)
        for k in (1.0, 0.5, 0.2)
    ]
    light = [q.exposure_factor for q in dark]
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(light)), light
    assert "lowered most by exposure" in dark[-1].explanation()


def test_a_turned_face_lowers_the_pose_factor() -> None:
    pixels = np.full((300, 300, 3), 128, dtype=np.uint8)
    box = Box(50.0, 50.0, 250.0, 250.0)
    qualities = [
        assess_quality(pixels, DetectedFace(box, frontal(nose_dx=dx), 1.0, "test")) for dx in (0.0, 0.2, 0.4)
    ]
    pose = [q.pose_factor for q in qualities]
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(pose)), pose
    assert {q.size_factor for q in qualities} == {qualities[0].size_factor}
    assert "yaw +" in qualities[-1].explanation()
