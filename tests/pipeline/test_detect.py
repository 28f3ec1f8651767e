"""The detection cascade: pass planning, duplicate merging, and every face in real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from faceledger.adapters.models.dlib_backend import DlibCnnDetector, DlibHogDetector, DlibLandmarker
from faceledger.config import DetectorSettings
from faceledger.domain.models import Box
from faceledger.errors import ConfigError
from faceledger.pipeline.detect import (
    CascadeDetector,
    DetectionPass,
    find_boxes,
    find_faces,
    merge_duplicates,
    plan_passes,
    rescue_pass,
)
from faceledger.ports import FaceDetector

ImageArray = npt.NDArray[np.uint8]

PEOPLE = (("George_W_Bush", 1), ("Colin_Powell", 1), ("Tony_Blair", 2))


def photo(lfw_images: Path, name: str, number: int) -> Image.Image:
    with Image.open(lfw_images / name / f"{name}_{number:04d}.jpg") as image:
        return image.convert("RGB")


def canvas(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (128, 128, 128))


@pytest.fixture(scope="module")
def detector() -> DlibHogDetector:
    return DlibHogDetector()


@pytest.fixture(scope="module")
def landmarker() -> DlibLandmarker:
    return DlibLandmarker()


# --- planning ---------------------------------------------------------------------------


def test_large_image_starts_on_a_downscaled_copy() -> None:
    passes = plan_passes(1000, 1000, 80, DetectorSettings())
    assert passes == [DetectionPass(0.64, 0), DetectionPass(1.0, 0), DetectionPass(1.0, 1)]
    assert passes[0].smallest_face_px(80) == pytest.approx(125.0)
    assert passes[-1].smallest_face_px(80) == pytest.approx(40.0)


def test_small_image_is_scanned_at_full_size_then_upsampled() -> None:
    assert plan_passes(250, 250, 80, DetectorSettings()) == [DetectionPass(1.0, 0), DetectionPass(1.0, 1)]


def test_no_pass_looks_for_faces_smaller_than_asked() -> None:
    # Faces of 200 px or more need a scale of only 0.4: one pass, cheaper than the default first one.
    assert plan_passes(1000, 1000, 80, DetectorSettings(min_face_px=200)) == [DetectionPass(0.4, 0)]
    assert plan_passes(250, 250, 80, DetectorSettings(min_face_px=80)) == [DetectionPass(1.0, 0)]


def test_upsampling_stops_at_max_upsample() -> None:
    settings = DetectorSettings(min_face_px=10, max_upsample=1)
    assert plan_passes(4000, 3000, 80, settings)[-1] == DetectionPass(1.0, 1)
    scales = [p.scale for p in plan_passes(4000, 3000, 80, settings)]
    assert scales == sorted(scales)
    assert scales[0] == pytest.approx(0.16)
    assert plan_passes(250, 250, 80, DetectorSettings(max_upsample=0)) == [DetectionPass(1.0, 0)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min_face_px": 4}, "min_face_px"),
        ({"first_pass_max_side": 10}, "first_pass_max_side"),
        ({"max_upsample": 5}, "max_upsample"),
    ],
)
def test_unusable_settings_are_config_errors(change: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_passes(500, 500, 80, DetectorSettings(**change))  # type: ignore[arg-type]


def test_duplicates_merge_to_the_best_box() -> None:
    a, b = Box(0, 0, 100, 100), Box(5, 5, 105, 105)
    inner, apart = Box(20, 20, 70, 70), Box(300, 0, 400, 100)
    merged = merge_duplicates([(a, 1.0), (b, 2.0), (inner, 0.5), (apart, 0.1)])
    assert merged == [(b, 2.0), (apart, 0.1)]


# --- real photos ------------------------------------------------------------------------


def test_finds_every_face_in_a_composite(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker
) -> None:
    board = canvas(750, 250)
    for i, (name, number) in enumerate(PEOPLE):
        board.paste(photo(lfw_images, name, number), (250 * i, 0))
    faces = find_faces(np.asarray(board), detector, landmarker, DetectorSettings())
    tiles = sorted(int(f.box.center.x // 250) for f in faces)
    assert tiles == [0, 1, 2]
    areas = [f.box.width * f.box.height for f in faces]
    assert areas == sorted(areas, reverse=True)
    for face in faces:
        assert face.detector == f"dlib-hog@{640 / 750:.3g}x"  # first pass, longer side 640
        tile = face.box.center.x // 250
        assert all(tile == p.x // 250 for p in face.landmarks.points())


def test_downscaled_pass_maps_boxes_back(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker
) -> None:
    small = photo(lfw_images, "George_W_Bush", 1)
    big = small.resize((1000, 1000), Image.Resampling.BICUBIC)
    (face_small,) = find_faces(np.asarray(small), detector, landmarker, DetectorSettings())
    (face_big,) = find_faces(np.asarray(big), detector, landmarker, DetectorSettings())
    assert face_big.detector == "dlib-hog@0.64x"
    assert face_big.box.center.x == pytest.approx(4 * face_small.box.center.x, abs=20)
    assert face_big.box.center.y == pytest.approx(4 * face_small.box.center.y, abs=20)
    assert face_big.box.width == pytest.approx(4 * face_small.box.width, rel=0.25)
    # Landmarks come from the full-resolution pixels, so they scale with the photo.
    assert face_big.landmarks.inter_eye_distance == pytest.approx(
        4 * face_small.landmarks.inter_eye_distance, rel=0.1
    )


def test_min_face_px_decides_whether_small_faces_are_looked_for(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker
) -> None:
    board = canvas(400, 400)
    board.paste(
        photo(lfw_images, "George_W_Bush", 1).resize((125, 125), Image.Resampling.LANCZOS), (140, 140)
    )
    pixels = np.asarray(board)
    (found,) = find_faces(pixels, detector, landmarker, DetectorSettings(min_face_px=30))
    assert 30 <= found.box.width < 80  # only the upsampled pass can see it
    assert found.detector == "dlib-hog@2x"
    assert find_faces(pixels, detector, landmarker, DetectorSettings(min_face_px=60)) == []
    assert find_faces(pixels, detector, landmarker, DetectorSettings(min_face_px=30, max_upsample=0)) == []


def test_blank_image_has_no_faces(detector: DlibHogDetector) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    assert find_boxes(noise, detector, DetectorSettings()) == []


def test_cascade_is_a_face_detector(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker
) -> None:
    cascade = CascadeDetector(detector, landmarker, DetectorSettings(max_upsample=0, min_face_px=30))
    assert isinstance(cascade, FaceDetector)
    board = canvas(400, 400)
    board.paste(photo(lfw_images, "Colin_Powell", 1).resize((125, 125), Image.Resampling.LANCZOS), (140, 140))
    pixels = np.asarray(board)
    assert cascade.detect(pixels) == []
    assert len(cascade.detect(pixels, upsample=1)) == 1


def test_rescue_pass_is_one_capped_pass() -> None:
    assert rescue_pass(1000, 800, DetectorSettings()) == DetectionPass(0.4, 0)
    assert rescue_pass(250, 250, DetectorSettings()) == DetectionPass(1.0, 0)


def test_rescue_detector_finds_the_face_hog_misses(
    lfw_images: Path, detector: DlibHogDetector, landmarker: DlibLandmarker
) -> None:
    # A face HOG's frontal templates do not fire on (LFW DevTrain has 22 such photos).
    pixels = np.asarray(photo(lfw_images, "Colin_Montgomerie", 4))
    assert find_faces(pixels, detector, landmarker, DetectorSettings()) == []
    (face,) = find_faces(pixels, detector, landmarker, DetectorSettings(), DlibCnnDetector())
    assert face.detector == "dlib-cnn@1x"
    assert 60 < face.box.center.x < 190
    assert face.box.width > 80
    assert face.box.left < face.landmarks.right_eye.x < face.landmarks.left_eye.x < face.box.right
