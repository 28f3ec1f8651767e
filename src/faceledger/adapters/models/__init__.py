"""Builds the face-model components that settings name; each backend imports its library lazily.

Detector backends: ``dlib-hog`` (default: HOG, fast on a CPU) and ``dlib-cnn`` (dlib's MMOD
CNN, more faces at odd angles, seconds per photo). Landmarks always come from dlib's
5-point model. Embedding backends: ``dlib`` (default: dlib's ResNet on dlib face chips)
and ``onnx`` (an operator-supplied model folder, aligned with its own template).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from faceledger.errors import ConfigError

if TYPE_CHECKING:
    from faceledger.config import DetectorSettings, EmbedderSettings
    from faceledger.ports import FaceAligner, FaceBoxDetector, FaceEmbedder, FaceLandmarker

DETECTOR_BACKENDS: Final = ("dlib-hog", "dlib-cnn")
EMBEDDER_BACKENDS: Final = ("dlib", "onnx")


def build_box_detector(settings: DetectorSettings) -> FaceBoxDetector:
    """The box detector ``settings.backend`` names."""
    from faceledger.adapters.models.dlib_backend import DlibCnnDetector, DlibHogDetector

    if settings.backend == "dlib-hog":
        return DlibHogDetector()
    if settings.backend == "dlib-cnn":
        return DlibCnnDetector()
    raise ConfigError(
        f"detector.backend {settings.backend!r} is unknown; choose one of {', '.join(DETECTOR_BACKENDS)}"
    )


def build_rescue_detector(settings: DetectorSettings) -> FaceBoxDetector | None:
    """The detector of the last-resort pass (``settings.rescue``), or None for none."""
    if settings.rescue in ("none", "", settings.backend):
        return None
    if settings.rescue not in DETECTOR_BACKENDS:
        choices = ", ".join(DETECTOR_BACKENDS)
        raise ConfigError(
            f"detector.rescue {settings.rescue!r} is unknown; choose one of {choices} or 'none'"
        )
    return build_box_detector(dataclasses.replace(settings, backend=settings.rescue))


def build_landmarker(settings: DetectorSettings) -> FaceLandmarker:
    """dlib's 5-point landmarker (the only landmark model with terms that allow any use)."""
    from faceledger.adapters.models.dlib_backend import DlibLandmarker

    return DlibLandmarker()


def build_embedding(
    settings: EmbedderSettings, *, parallel_flip: bool | None = None
) -> tuple[FaceAligner, FaceEmbedder]:
    """The aligner and embedder of ``settings.backend``.

    ``parallel_flip`` (dlib with ``flip`` only): compute the mirrored pass in a helper
    process. None chooses it where it helps: a POSIX machine with two or more cores. Pass
    False inside a pool that already keeps every core busy.
    """
    if settings.backend == "dlib":
        from faceledger.adapters.models.dlib_backend import (
            RESNET_FILE,
            DlibChipAligner,
            DlibEmbedder,
            weights_path,
        )
        from faceledger.adapters.models.dlib_flip_helper import DescriptorHelper, helper_supported

        use_helper = settings.flip and (helper_supported() if parallel_flip is None else parallel_flip)
        helper = DescriptorHelper(weights_path(RESNET_FILE)) if use_helper else None
        return DlibChipAligner(), DlibEmbedder(flip=settings.flip, helper=helper)
    if settings.backend == "onnx":
        from faceledger.adapters.models.onnx_backend import load_onnx_embedder

        embedder = load_onnx_embedder(settings)
        return embedder.aligner(), embedder
    raise ConfigError(
        f"embedder.backend {settings.backend!r} is unknown; choose one of {', '.join(EMBEDDER_BACKENDS)}"
    )
