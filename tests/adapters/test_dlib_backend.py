"""The dlib adapter on real LFW faces: boxes, 5-point landmarks, chips, unit descriptors, helper."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from faceledger.adapters.models.dlib_backend import (
    CHIP_SIZE,
    RESNET_FILE,
    DescriptorNet,
    DlibChipAligner,
    DlibEmbedder,
    DlibHogDetector,
    DlibLandmarker,
    file_sha256,
    landmarks_from_dlib5,
    mirror_chips,
    unit_rows,
    weights_path,
)
from faceledger.adapters.models.dlib_flip_helper import DescriptorHelper, helper_supported
from faceledger.domain.models import Box, DetectedFace, Landmarks, Point
from faceledger.errors import AlignmentError, ModelError
from faceledger.ports import FaceAligner, FaceBoxDetector, FaceEmbedder, FaceLandmarker

ImageArray = npt.NDArray[np.uint8]


def rgb(lfw_images: Path, name: str, number: int) -> ImageArray:
    with Image.open(lfw_images / name / f"{name}_{number:04d}.jpg") as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> DlibHogDetector:
    return DlibHogDetector()


@pytest.fixture(scope="module")
def landmarker() -> DlibLandmarker:
    return DlibLandmarker()


@pytest.fixture(scope="module")
def embedder() -> Iterator[DlibEmbedder]:
    made = DlibEmbedder(flip=False)
    yield made
    made.close()


@pytest.fixture(scope="module")
def bush(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker
) -> tuple[ImageArray, DetectedFace]:
    pixels = rgb(lfw_images, "George_W_Bush", 1)
    (box, score), *_ = detector.boxes(pixels)
    return pixels, DetectedFace(box, landmarker.landmarks(pixels, box), score, detector.name)


@pytest.fixture(scope="module")
def chip(bush: tuple[ImageArray, DetectedFace]) -> ImageArray:
    return DlibChipAligner().align(*bush)


# --- weights and identity ----------------------------------------------------------------


def test_model_ref_names_the_exact_weight_file(embedder: DlibEmbedder) -> None:
    path = weights_path(RESNET_FILE)
    assert embedder.model.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (embedder.model.backend, embedder.model.dim) == ("dlib", 128)
    assert embedder.model.key.startswith("dlib/dlib_face_recognition_resnet_model_v1/")


def test_missing_weights_are_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        weights_path("no_such_model.dat")
    with pytest.raises(ModelError, match="cannot read"):
        file_sha256(tmp_path / "absent.dat")


def test_corrupt_weights_are_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "resnet.dat"
    bad.write_bytes(b"not a dlib model")
    with pytest.raises(ModelError, match="cannot load"):
        DescriptorNet(bad)


def test_components_implement_the_ports(
    detector: DlibHogDetector, landmarker: DlibLandmarker, embedder: DlibEmbedder
) -> None:
    assert isinstance(detector, FaceBoxDetector)
    assert isinstance(landmarker, FaceLandmarker)
    assert isinstance(DlibChipAligner(), FaceAligner)
    assert isinstance(embedder, FaceEmbedder)


# --- landmarks -------------------------------------------------------------------------


def test_dlib5_points_become_eye_centres_nose_and_estimated_mouth() -> None:
    # A frontal face: subject's left eye corners on the image right (dlib points 0, 1).
    native = [(160.0, 100.0), (130.0, 100.0), (40.0, 100.0), (70.0, 100.0), (100.0, 177.1)]
    marks = landmarks_from_dlib5(native)
    assert (marks.right_eye, marks.left_eye) == (Point(55.0, 100.0), Point(145.0, 100.0))
    assert marks.inter_eye_distance == pytest.approx(90.0)
    # On an average face the nose tip sits between the eyes, above the nose base.
    assert marks.nose.x == pytest.approx(100.0)
    assert 100.0 < marks.nose.y < 177.1
    assert marks.mouth_right.x < 100.0 < marks.mouth_left.x
    assert marks.mouth_right.y == pytest.approx(marks.mouth_left.y)
    assert marks.mouth_right.y > 177.1
    assert marks.estimated == ("mouth_right", "mouth_left")
    assert [(p.x, p.y) for p in marks.native] == native
    assert marks.scheme == "dlib5"


def test_landmark_conversion_turns_with_the_face() -> None:
    native = [(160.0, 100.0), (130.0, 100.0), (40.0, 100.0), (70.0, 100.0), (100.0, 170.0)]
    upright = landmarks_from_dlib5(native)
    # The same face turned 90 degrees clockwise about the origin: (x, y) -> (-y, x).
    turned = landmarks_from_dlib5([(-y, x) for x, y in native])
    for a, b in zip(upright.points(), turned.points(), strict=True):
        assert (b.x, b.y) == pytest.approx((-a.y, a.x))


def test_coincident_eyes_are_rejected() -> None:
    with pytest.raises(AlignmentError, match="same place"):
        landmarks_from_dlib5([(50.0, 50.0)] * 4 + [(50.0, 80.0)])


def test_real_face_landmarks_sit_where_a_face_has_them(bush: tuple[ImageArray, DetectedFace]) -> None:
    _, face = bush
    box, marks = face.box, face.landmarks
    assert face.score > 0
    for p in marks.points():
        assert box.left <= p.x <= box.right
        assert box.top <= p.y <= box.bottom + 0.2 * box.height
    # The subject's right eye is on the image's left in an unmirrored photo.
    assert marks.right_eye.x < marks.nose.x < marks.left_eye.x
    assert marks.right_eye.y < marks.nose.y < marks.mouth_right.y
    assert 0.3 * box.width < marks.inter_eye_distance < 0.6 * box.width


# --- chips and descriptors -------------------------------------------------------------


def test_chip_is_dlibs_150px_crop(
    chip: ImageArray, bush: tuple[ImageArray, DetectedFace], embedder: DlibEmbedder
) -> None:
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
    assert chip.dtype == np.uint8
    # Cutting the chip ourselves gives exactly what dlib's own one-call path describes.
    import dlib

    pixels, face = bush
    parts = [dlib.point(round(p.x), round(p.y)) for p in face.landmarks.native]
    rect = dlib.rectangle(
        round(face.box.left), round(face.box.top), round(face.box.right) - 1, round(face.box.bottom) - 1
    )
    net = dlib.face_recognition_model_v1(str(weights_path(RESNET_FILE)))
    reference = np.asarray(net.compute_face_descriptor(pixels, dlib.full_object_detection(rect, parts), 0))
    np.testing.assert_allclose(embedder.embed([chip])[0], reference / np.linalg.norm(reference), atol=1e-6)


def mirrored_photo_chip(pixels: ImageArray, face: DetectedFace) -> ImageArray:
    """Reference: mirror the whole photo and its landmarks, then cut the chip."""
    width = pixels.shape[1]
    n = [Point(width - 1 - p.x, p.y) for p in face.landmarks.native]
    native = (n[2], n[3], n[0], n[1], n[4])  # the subject's eyes trade places in a mirror
    box = Box(width - face.box.right, face.box.top, width - face.box.left, face.box.bottom)
    mirrored = DetectedFace(
        box, dataclasses.replace(face.landmarks, native=native), face.score, face.detector
    )
    return DlibChipAligner().align(np.ascontiguousarray(pixels[:, ::-1]), mirrored)


@pytest.mark.parametrize("shift", [0, -90, 80])
def test_mirrored_chip_equals_the_chip_of_the_mirrored_photo(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker, shift: int
) -> None:
    # Shifted photos put the face against the image edge, where the crop is clipped.
    board = Image.new("RGB", (250, 250), (128, 128, 128))
    with Image.open(lfw_images / "George_W_Bush" / "George_W_Bush_0001.jpg") as image:
        board.paste(image.convert("RGB"), (shift, 0))
    pixels = np.asarray(board)
    (box, score), *_ = detector.boxes(pixels, upsample=1)
    face = DetectedFace(box, landmarker.landmarks(pixels, box), score, detector.name)
    chip = DlibChipAligner().align_mirrored(pixels, face)
    np.testing.assert_array_equal(chip, mirrored_photo_chip(pixels, face))
    # Close to, but not the same as, the mirror image of the chip: dlib's template is not symmetric.
    plain_mirror = DlibChipAligner().align(pixels, face)[:, ::-1]
    difference = np.abs(chip.astype(int) - plain_mirror).mean()
    assert 0 < difference < 40


def test_aligner_refuses_landmarks_without_dlib_points(bush: tuple[ImageArray, DetectedFace]) -> None:
    pixels, face = bush
    foreign = Landmarks(*face.landmarks.points(), scheme="5pt")
    with pytest.raises(AlignmentError, match="native points"):
        DlibChipAligner().align(pixels, DetectedFace(face.box, foreign, face.score, "other"))


def test_descriptors_are_unit_vectors(chip: ImageArray, embedder: DlibEmbedder) -> None:
    raw = DescriptorNet()([chip])
    assert 1.2 < float(np.linalg.norm(raw)) < 1.8  # dlib's own output is not unit length
    vectors = embedder.embed([chip, chip])
    assert vectors.shape == (2, 128)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 128)


def test_wrong_chip_is_a_model_error(embedder: DlibEmbedder) -> None:
    with pytest.raises(ModelError, match="150, 150, 3"):
        embedder.embed([np.zeros((112, 112, 3), dtype=np.uint8)])


def test_flip_averages_the_mirrored_pass(chip: ImageArray) -> None:
    net = DescriptorNet()
    plain, mirrored = unit_rows(net([chip])), unit_rows(net(mirror_chips([chip])))
    flipped = DlibEmbedder(flip=True).embed([chip])
    np.testing.assert_allclose(flipped, unit_rows(plain + mirrored), atol=1e-6)
    # A face and its mirror image are close but not the same description.
    assert 0.9 < float(plain[0] @ mirrored[0]) < 0.9999


# --- the helper process ----------------------------------------------------------------


@pytest.mark.skipif(not helper_supported(), reason="the flip helper needs POSIX and two or more cores")
def test_helper_gives_the_same_vectors_and_survives_its_own_death(chip: ImageArray) -> None:
    helper = DescriptorHelper(weights_path(RESNET_FILE))
    embedder = DlibEmbedder(flip=True, helper=helper)
    try:
        expected = DlibEmbedder(flip=True).embed([chip])
        assert helper.wait_ready(60), "helper process did not load its model within 60 s"
        assert helper.submit(mirror_chips([chip]))
        collected = helper.collect()
        assert collected is not None
        np.testing.assert_allclose(collected, DescriptorNet()(mirror_chips([chip])), atol=1e-9)
        np.testing.assert_allclose(embedder.embed([chip]), expected, atol=1e-6)
        process = helper._process
        assert process is not None
        process.kill()
        process.wait()
        # The next request finds it dead and both passes run here, with the same result.
        np.testing.assert_allclose(embedder.embed([chip]), expected, atol=1e-6)
        assert not helper.alive
        assert not helper.submit([chip])
    finally:
        embedder.close()


@pytest.mark.skipif(not helper_supported(), reason="the flip helper needs POSIX and two or more cores")
def test_hung_helper_is_given_up_after_its_deadline(chip: ImageArray) -> None:
    helper = DescriptorHelper(weights_path(RESNET_FILE), seconds_per_chip=0.1, fixed_seconds=0.5)
    embedder = DlibEmbedder(flip=True, helper=helper)
    try:
        assert helper.wait_ready(60), "helper process did not load its model within 60 s"
        process = helper._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        started = time.monotonic()
        np.testing.assert_allclose(embedder.embed([chip]), DlibEmbedder(flip=True).embed([chip]), atol=1e-6)
        assert time.monotonic() - started < 10
        assert not helper.alive
        assert process.returncode is not None  # killed, not left stopped
    finally:
        embedder.close()


@pytest.mark.skipif(not helper_supported(), reason="the flip helper needs POSIX and two or more cores")
def test_helper_process_exits_on_close() -> None:
    helper = DescriptorHelper(weights_path(RESNET_FILE))
    helper.start()
    process = helper._process
    assert process is not None
    helper.close()
    assert process.returncode is not None
    assert not helper.alive


def test_hog_detector_finds_nothing_in_a_blank_image(detector: DlibHogDetector) -> None:
    assert detector.boxes(np.full((200, 200), 128, dtype=np.uint8)) == []
    assert detector.boxes(np.full((200, 200, 3), 128, dtype=np.uint8), upsample=1) == []


def test_detector_rejects_non_image_arrays(detector: DlibHogDetector) -> None:
    with pytest.raises(ModelError, match="uint8"):
        detector.boxes(np.zeros((50, 50, 4), dtype=np.uint8))


def test_box_round_trip_through_dlib(
    bush: tuple[ImageArray, DetectedFace], landmarker: DlibLandmarker
) -> None:
    pixels, face = bush
    again = landmarker.landmarks(pixels, Box(face.box.left, face.box.top, face.box.right, face.box.bottom))
    assert again.native == face.landmarks.native
    assert math.isclose(again.inter_eye_distance, face.landmarks.inter_eye_distance)
