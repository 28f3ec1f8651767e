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
from faceledger.pipeline.ingest import decode_image, load_image
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


def test_assess_then_embed_is_analyze(lfw_images: Path, pipeline: Pipeline) -> None:
    image = load_image(lfw_images.joinpath(*BUSH))
    assessed = pipeline.assess(image)
    whole = pipeline.analyze(image)
    assert [a.face for a in assessed] == [f.face for f in whole.faces]
    assert [a.quality for a in assessed] == [f.quality for f in whole.faces]
    halves = pipeline.embed(image, assessed)
    assert halves.image_sha256 == whole.image_sha256
    for mine, theirs in zip(halves.faces, whole.faces, strict=True):
        np.testing.assert_allclose(mine.embedding.vector, theirs.embedding.vector, atol=1e-6)
    assert pipeline.embed(image, []).faces == ()


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


def test_the_cnn_rescue_is_on_by_default_and_can_be_turned_off(lfw_images: Path) -> None:
    # Issue 8: no missed faces. The CNN pass runs only where the HOG passes find nothing.
    with Pipeline.from_settings(Settings(), parallel_flip=False) as default:
        assert default.rescue is not None
        assert default.rescue.name == "dlib-cnn"
    off = Settings(detector=DetectorSettings(rescue="none"))
    with Pipeline.from_settings(off, parallel_flip=False) as pipeline:
        assert pipeline.rescue is None


def test_unknown_backends_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="dlib-hog"):
        Pipeline.from_settings(Settings(detector=DetectorSettings(backend="viola-jones")))
    with pytest.raises(ConfigError, match="'none'"):
        Pipeline.from_settings(Settings(detector=DetectorSettings(rescue="haar")))
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


def test_landmarks_align_onto_the_arcface_template(lfw_images: Path, pipeline: Pipeline) -> None:
    """dlib's converted landmarks drive the generic aligner: the eyes land on the template's eyes."""
    from faceledger.pipeline.align import ARCFACE_112, SimilarityAligner

    with Image.open(lfw_images.joinpath(*BUSH)) as image:
        pixels = np.asarray(image.convert("RGB"))
    (face,) = pipeline.detect(pixels)
    chip = SimilarityAligner.from_template(ARCFACE_112).align(pixels, face)
    big = np.asarray(Image.fromarray(chip).resize((448, 448), Image.Resampling.BICUBIC))
    marks = pipeline.landmarker.landmarks(big, pipeline.detect(big)[0].box)
    for found, (tx, ty) in zip((marks.right_eye, marks.left_eye), ARCFACE_112.points[:2], strict=True):
        assert found.x / 4 == pytest.approx(tx, abs=3)
        assert found.y / 4 == pytest.approx(ty, abs=3)


def test_onnx_backend_runs_behind_the_same_pipeline(tmp_path: Path, lfw_images: Path) -> None:
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from faceledger.pipeline.align import ARCFACE_112

    weights = np.random.default_rng(3).normal(size=(3, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "k"], ["c"], strides=[4, 4]),
            helper.make_node("GlobalAveragePool", ["c"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"], axis=1),
            helper.make_node("MatMul", ["f", "m"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        initializer=[
            numpy_helper.from_array(
                np.random.default_rng(4).normal(size=(3, 3, 5, 5)).astype(np.float32), "k"
            ),
            numpy_helper.from_array(weights, "m"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(folder / "model.onnx"))
    manifest = {
        "format_version": 1,
        "name": "tiny",
        "version": "1",
        "input_size": [112, 112],
        "layout": "NCHW",
        "color_order": "RGB",
        "mean": [127.5, 127.5, 127.5],
        "std": [128.0, 128.0, 128.0],
        "output_dim": 8,
        "template": [list(p) for p in ARCFACE_112.points],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    settings = Settings(embedder=EmbedderSettings(backend="onnx", onnx_model=str(folder)))
    with Pipeline.from_settings(settings) as onnx_pipeline:
        (face,) = onnx_pipeline.analyze_path(lfw_images.joinpath(*BUSH)).faces
    assert face.embedding.model.backend == "onnx"
    assert face.embedding.vector.shape == (8,)
    assert float(np.linalg.norm(face.embedding.vector)) == pytest.approx(1.0, abs=1e-5)


def test_threads_sharing_a_pipeline_get_the_same_answers(lfw_images: Path, pipeline: Pipeline) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = [lfw_images / n / f"{n}_0001.jpg" for n in ("George_W_Bush", "Colin_Powell", "Tony_Blair")]
    alone = [pipeline.analyze_path(p).faces[0].embedding.vector for p in paths]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(lambda p: pipeline.analyze_path(p).faces[0].embedding.vector, paths))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)
