"""Embedding stage: unit vectors tagged with their model; same person scores above different people."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from faceledger.adapters.models.dlib_backend import (
    DescriptorNet,
    DlibChipAligner,
    DlibEmbedder,
    DlibHogDetector,
    DlibLandmarker,
    unit_rows,
)
from faceledger.config import DetectorSettings
from faceledger.domain.models import Embedding, ModelRef
from faceledger.errors import ModelError
from faceledger.pipeline.detect import find_faces
from faceledger.pipeline.embed import embed_faces, similarity

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


class Models:
    def __init__(self) -> None:
        self.detector = DlibHogDetector()
        self.landmarker = DlibLandmarker()
        self.aligner = DlibChipAligner()
        self.embedder = DlibEmbedder(flip=False)

    def embed(self, lfw_images: Path, name: str, number: int) -> Embedding:
        with Image.open(lfw_images / name / f"{name}_{number:04d}.jpg") as image:
            pixels = np.asarray(image.convert("RGB"))
        faces = find_faces(pixels, self.detector, self.landmarker, DetectorSettings())
        (embedding,) = embed_faces(pixels, faces[:1], self.aligner, self.embedder)
        return embedding


@pytest.fixture(scope="module")
def models() -> Iterator[Models]:
    made = Models()
    yield made
    made.embedder.close()


def test_same_person_scores_higher_than_different_people(lfw_images: Path, models: Models) -> None:
    bush = [models.embed(lfw_images, "George_W_Bush", n) for n in (1, 2, 3)]
    others = [models.embed(lfw_images, "Colin_Powell", 1), models.embed(lfw_images, "Tony_Blair", 2)]
    same = [similarity(bush[i], bush[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    different = [similarity(b, o) for b in bush for o in others]
    assert min(same) > max(different)
    for e in bush + others:
        assert e.model == models.embedder.model
        assert float(np.linalg.norm(e.vector)) == pytest.approx(1.0, abs=1e-5)
        assert e.vector.dtype == np.float32


def test_flip_uses_the_chip_of_the_mirrored_photo(lfw_images: Path, models: Models) -> None:
    with Image.open(lfw_images / "Tony_Blair" / "Tony_Blair_0002.jpg") as image:
        pixels = np.asarray(image.convert("RGB"))
    (face,) = find_faces(pixels, models.detector, models.landmarker, DetectorSettings())
    flip = DlibEmbedder(flip=True)
    (embedding,) = embed_faces(pixels, [face], models.aligner, flip)
    net = DescriptorNet()
    direct = unit_rows(net([models.aligner.align(pixels, face)]))
    mirrored = unit_rows(net([models.aligner.align_mirrored(pixels, face)]))
    np.testing.assert_allclose(embedding.vector, unit_rows(direct + mirrored)[0], atol=1e-6)
    # The plain embedder interface (mirror image of the chip) gives a near but different vector.
    chip_mirror = flip.embed([models.aligner.align(pixels, face)])[0]
    assert 0.99 < float(chip_mirror @ embedding.vector) < 1.0


def test_no_faces_no_network_call(models: Models) -> None:
    pixels = np.zeros((100, 100, 3), dtype=np.uint8)
    assert embed_faces(pixels, [], models.aligner, models.embedder) == []


def test_similarity_refuses_to_compare_models(lfw_images: Path, models: Models) -> None:
    e = models.embed(lfw_images, "George_W_Bush", 1)
    other = Embedding(e.vector, dataclasses.replace(e.model, name="another"))
    with pytest.raises(ModelError, match="different models"):
        similarity(e, other)


class _Broken:
    """An embedder that breaks the port's contract in a chosen way."""

    def __init__(self, model: ModelRef, make: str) -> None:
        self.model = model
        self.make = make

    def embed(self, chips: Sequence[ImageArray]) -> FloatArray:
        n, dim = len(chips), self.model.dim
        if self.make == "long":
            return np.full((n, dim), 1.0, dtype=np.float32)
        if self.make == "nan":
            return np.full((n, dim), np.nan, dtype=np.float32)
        return np.full((n, dim - 1), 0.1, dtype=np.float32)


@pytest.mark.parametrize(
    ("make", "message"), [("long", "not unit length"), ("nan", "non-finite"), ("short", "127")]
)
def test_contract_breaking_embedder_fails_loudly(
    lfw_images: Path, models: Models, make: str, message: str
) -> None:
    with Image.open(lfw_images / "George_W_Bush" / "George_W_Bush_0001.jpg") as image:
        pixels = np.asarray(image.convert("RGB"))
    faces = find_faces(pixels, models.detector, models.landmarker, DetectorSettings())
    with pytest.raises(ModelError, match=message):
        embed_faces(pixels, faces, models.aligner, _Broken(models.embedder.model, make))
