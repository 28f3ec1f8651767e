"""The face pipeline: decoded image -> every face with box, landmarks, quality and embedding.

A :class:`Pipeline` owns its models (loaded once, when it is built, never at import) and,
with dlib and flip averaging, a helper process that computes the mirrored descriptor pass
alongside this one (see :mod:`faceledger.adapters.models.dlib_flip_helper`). Close it when
done (or use it as a context manager) so that the helper exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from faceledger.config import DetectorSettings, ImageLimits, Settings
from faceledger.domain.models import (
    AnalyzedFace,
    DecodedImage,
    DetectedFace,
    ImageAnalysis,
    ModelRef,
    QualityReport,
)
from faceledger.errors import ImageError
from faceledger.pipeline.detect import check_settings, find_faces
from faceledger.pipeline.embed import embed_faces
from faceledger.pipeline.quality import DEFAULT_THRESHOLDS, QualityThresholds, assess_quality

if TYPE_CHECKING:
    import numpy.typing as npt

    from faceledger.ports import FaceAligner, FaceBoxDetector, FaceEmbedder, FaceLandmarker

    ImageArray = npt.NDArray[np.uint8]


@contextmanager
def _timed(timings: dict[str, float] | None, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0


def _check_pixels(pixels: ImageArray, source: str) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise ImageError(
            f"{source}: expected decoded H x W x 3 uint8 RGB pixels, got {pixels.shape} {pixels.dtype}"
        )


@dataclass(frozen=True, slots=True)
class AssessedFace:
    """A face found in an image, with its quality report, before it is embedded."""

    face: DetectedFace
    quality: QualityReport


class Pipeline:
    """Detect -> landmarks -> quality -> align -> embed, for every face of an image."""

    def __init__(
        self,
        *,
        detector: FaceBoxDetector,
        landmarker: FaceLandmarker,
        aligner: FaceAligner,
        embedder: FaceEmbedder,
        detector_settings: DetectorSettings | None = None,
        rescue: FaceBoxDetector | None = None,
        image_limits: ImageLimits | None = None,
        quality: QualityThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        self.detector = detector
        self.rescue = rescue
        self.landmarker = landmarker
        self.aligner = aligner
        self.embedder = embedder
        self.detector_settings = detector_settings or DetectorSettings()
        check_settings(self.detector_settings)
        self.image_limits = image_limits or ImageLimits()
        self.quality = quality
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, parallel_flip: bool | None = None) -> Pipeline:
        """Build the components that ``settings`` name (see ``faceledger.adapters.models``).

        ``parallel_flip``: see :func:`~faceledger.adapters.models.build_embedding`. When a
        helper process is used it is started now, in the background, so that its model
        load overlaps the caller's own start-up; until it is ready, both passes run here.
        """
        from faceledger.adapters.models import (
            build_box_detector,
            build_embedding,
            build_landmarker,
            build_rescue_detector,
        )

        check_settings(settings.detector)
        # The cheap components first, so that a wrong setting fails before the ResNet loads.
        detector = build_box_detector(settings.detector)
        rescue = build_rescue_detector(settings.detector)
        landmarker = build_landmarker(settings.detector)
        aligner, embedder = build_embedding(settings.embedder, parallel_flip=parallel_flip)
        pipeline = cls(
            detector=detector,
            landmarker=landmarker,
            aligner=aligner,
            embedder=embedder,
            detector_settings=settings.detector,
            rescue=rescue,
            image_limits=settings.image,
        )
        helper = getattr(embedder, "helper", None)
        if helper is not None:
            helper.start()
        return pipeline

    @property
    def model(self) -> ModelRef:
        return self.embedder.model

    def detect(self, pixels: ImageArray) -> list[DetectedFace]:
        """Every face in decoded RGB pixels, largest first (no quality, no embedding)."""
        _check_pixels(pixels, "image")
        return find_faces(pixels, self.detector, self.landmarker, self.detector_settings, self.rescue)

    def analyze(self, image: DecodedImage, *, timings: dict[str, float] | None = None) -> ImageAnalysis:
        """Every face of ``image``, largest first; no face gives an empty ``faces``.

        ``timings``, when given, receives milliseconds per stage (detect, quality, embed).
        """
        return self.embed(image, self.assess(image, timings=timings), timings=timings)

    def assess(self, image: DecodedImage, *, timings: dict[str, float] | None = None) -> list[AssessedFace]:
        """The first half of :meth:`analyze`: every face with its quality, not yet embedded.

        The embedding is most of the cost of a face; a caller that may turn the image down
        on what this finds (enrolment skips photos with several faces or poor quality)
        decides before paying for it, then calls :meth:`embed`.
        """
        pixels = image.pixels
        _check_pixels(pixels, image.source)
        with _timed(timings, "detect"):
            faces = find_faces(pixels, self.detector, self.landmarker, self.detector_settings, self.rescue)
        with _timed(timings, "quality"):
            return [AssessedFace(face, assess_quality(pixels, face, self.quality)) for face in faces]

    def embed(
        self,
        image: DecodedImage,
        assessed: Sequence[AssessedFace],
        *,
        timings: dict[str, float] | None = None,
    ) -> ImageAnalysis:
        """The second half of :meth:`analyze`: embed the faces :meth:`assess` found in ``image``."""
        with _timed(timings, "embed"):
            embeddings = embed_faces(image.pixels, [a.face for a in assessed], self.aligner, self.embedder)
        analyzed = tuple(
            AnalyzedFace(index=i, face=a.face, quality=a.quality, embedding=embedding)
            for i, (a, embedding) in enumerate(zip(assessed, embeddings, strict=True))
        )
        return ImageAnalysis(
            image_sha256=image.sha256,
            source=image.source,
            width=image.width,
            height=image.height,
            faces=analyzed,
        )

    def analyze_path(self, path: Path | str, *, timings: dict[str, float] | None = None) -> ImageAnalysis:
        """Read, decode (within the image limits) and analyze one image file."""
        from faceledger.pipeline.ingest import load_image

        with _timed(timings, "decode"):
            image = load_image(path, self.image_limits)
        return self.analyze(image, timings=timings)

    def close(self) -> None:
        """Stop the helper process, if any; the pipeline must not be used afterwards."""
        if self._closed:
            return
        self._closed = True
        close: Callable[[], Any] | None = getattr(self.embedder, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
