"""The whole pipeline from settings: every face analyzed, helper on or off, clean shutdown."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceledger.adapters.models.dlib_flip_helper import helper_supported
from faceledger.config import DetectorSettings, EmbedderSettings, Settings
from faceledger.domain.models import DecodedImage
from faceledger.errors import ConfigError, ImageError
from faceledger.pipeline.ingest import decode_image
from faceledger.pipeline.run import Pipeline

BUSH = ("George_W_Bush", "George_W_Bush_0001.jpg")


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    with Pipeline.from_settings(Settings(), parallel_flip=False) as made:
        yield made


def jpeg(image: Image.Image) -> DecodedImage:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return decode_image(buffer.getvalue(), source="composite.jpg")


def test_analyze_path_gives_every_measure_of_the_face(lfw_images: Path, pipeline: Pipeline) -> None:
    timings: dict[str, float] = {}
    analysis = pipeline.analyze_path(lfw_images.joinpath(*BUSH), timings=timings)
    assert (analysis.width, analysis.height) == (250, 250)
    assert analysis.source.endswith(BUSH[1])
    assert len(analysis.image_sha256) == 64
    (face,) = analysis.faces
    assert face.index == 0
    assert face.face.detector.startswith("dlib-hog@")
    assert face.quality.score > 50
    assert face.embedding.model == pipeline.model
    assert float(np.linalg.norm(face.embedding.vector)) == pytest.approx(1.0, abs=1e-5)
    assert set(timings) == {"decode", "detect", "quality", "embed"}
    assert all(ms > 0 for ms in timings.values())


def test_faces_come_largest_first(lfw_images: Path, pipeline: Pipeline) -> None:
    board = Image.new("RGB", (600, 300), (128, 128, 128))
    with Image.open(lfw_images / "Colin_Powell" / "Colin_Powell_0001.jpg") as small:
        board.paste(small.convert("RGB").resize((200, 200), Image.Resampling.LANCZOS), (0, 50))
    with Image.open(lfw_images.joinpath(*BUSH)) as big:
        board.paste(big.convert("RGB").resize((300, 300), Image.Resampling.LANCZOS), (300, 0))
    analysis = pipeline.analyze(jpeg(board))
    assert [f.index for f in analysis.faces] == [0, 1]
    assert analysis.faces[0].face.box.center.x > 300  # the bigger face is on the right
    assert analysis.faces[0].face.box.width > analysis.faces[1].face.box.width
    # Two different people: clearly less similar than one person to himself.
    a, b = (f.embedding.vector for f in analysis.faces)
    assert float(a @ b) < 0.9


def test_no_face_is_an_empty_analysis(pipeline: Pipeline) -> None:
    analysis = pipeline.analyze(jpeg(Image.new("RGB", (320, 240), (90, 140, 200))))
    assert analysis.faces == ()
    assert (analysis.width, analysis.height) == (320, 240)


def test_bad_input_is_an_image_error(tmp_path: Path, pipeline: Pipeline) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError, match=r"broken\.jpg"):
        pipeline.analyze_path(broken)
    grey = DecodedImage(np.zeros((10, 10), dtype=np.uint8), "0" * 64, "PNG", "grey.png", "L")
    with pytest.raises(ImageError, match=r"grey\.png"):
        pipeline.analyze(grey)


def test_unknown_backends_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="dlib-hog"):
        Pipeline.from_settings(Settings(detector=DetectorSettings(backend="viola-jones")))
    with pytest.raises(ConfigError, match="onnx"):
        Pipeline.from_settings(Settings(embedder=EmbedderSettings(backend="facenet")))


@pytest.mark.skipif(not helper_supported(), reason="the flip helper needs POSIX and two or more cores")
def test_helper_process_gives_the_same_vectors_and_stops_on_close(
    lfw_images: Path, pipeline: Pipeline
) -> None:
    expected = pipeline.analyze_path(lfw_images.joinpath(*BUSH)).faces[0].embedding.vector
    with Pipeline.from_settings(Settings(), parallel_flip=True) as parallel:
        helper = getattr(parallel.embedder, "helper", None)
        assert helper is not None
        assert helper.wait_ready(60)
        got = parallel.analyze_path(lfw_images.joinpath(*BUSH)).faces[0].embedding.vector
        process = helper._process
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert process is not None
    assert process.returncode is not None
    assert not helper.alive


def test_flip_off_gives_other_but_close_vectors(lfw_images: Path, pipeline: Pipeline) -> None:
    flipped = pipeline.analyze_path(lfw_images.joinpath(*BUSH)).faces[0].embedding
    with Pipeline.from_settings(Settings(embedder=EmbedderSettings(flip=False))) as plain_pipeline:
        assert getattr(plain_pipeline.embedder, "helper", None) is None
        plain = plain_pipeline.analyze_path(lfw_images.joinpath(*BUSH)).faces[0].embedding
    assert plain.model == flipped.model
    assert 0.95 < float(plain.vector @ flipped.vector) < 0.9999
