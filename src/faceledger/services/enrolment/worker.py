"""The analysis side: runs in worker processes (or inline), never touches the store or the index.

Each worker builds its own :class:`~faceledger.pipeline.run.Pipeline` on its first image
and ignores Ctrl-C, which is the main process's to handle: it stops handing out work and
finishes cleanly.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from faceledger.config import Settings
from faceledger.domain.face_choice import FaceChoice
from faceledger.domain.models import ImageAnalysis
from faceledger.errors import (
    FaceLedgerError,
    ImageError,
    ModelError,
)
from faceledger.services.enrolment.records import Analyzer, TurnedDown, screen


@dataclass(frozen=True, slots=True, eq=False)
class Outcome:
    """A worker's answer for one image: an analysis, or why there is none."""

    analysis: ImageAnalysis | None
    image_format: str = ""
    error: str | None = None
    error_kind: str | None = None  # "image" | "analysis" | "model"
    #: Why the image was turned down on its faces before they were embedded (see ``screen``).
    turned_down: TurnedDown | None = None
    #: The face ``screen`` chose, when the worker chose it: then ``analysis`` holds that face only.
    choice: FaceChoice | None = None


_worker_settings: Settings | None = None
_worker_pipeline: Analyzer | None = None


def init_worker(settings: Settings) -> None:
    """Ctrl-C is the main process's to handle: it stops handing out work and finishes cleanly."""
    global _worker_settings
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_settings = settings


def make_pipeline(settings: Settings, *, in_worker: bool) -> Analyzer:
    """In a worker the cores are already shared out between workers: no flip helper process."""
    from faceledger.pipeline.run import Pipeline

    pipeline: Analyzer = Pipeline.from_settings(settings, parallel_flip=False if in_worker else None)
    return pipeline


def analyse_in_worker(data: bytes, source: str, floor: float) -> Outcome:
    global _worker_pipeline
    settings = _worker_settings or Settings()
    if _worker_pipeline is None:
        try:
            _worker_pipeline = make_pipeline(settings, in_worker=True)
        except FaceLedgerError as exc:
            return Outcome(None, error=str(exc), error_kind="model")
    return analyse(_worker_pipeline, data, source, settings, floor)


def analyse(pipeline: Analyzer, data: bytes, source: str, settings: Settings, floor: float) -> Outcome:
    """Decode and analyse one image; a :class:`Pipeline` turns it down before embedding when it can.

    An image enrolment would skip anyway (no face, no face clearly the subject's, quality
    under ``floor``) costs no embedding, and of a photo with several faces only the chosen
    one is embedded: with flip averaging that is two ResNet passes per face saved.
    """
    from faceledger.pipeline.ingest import decode_image
    from faceledger.pipeline.run import Pipeline

    try:
        image = decode_image(data, source=source, limits=settings.image)
    except ImageError as exc:
        return Outcome(None, error=str(exc), error_kind="image")
    try:
        if not isinstance(pipeline, Pipeline):
            return Outcome(pipeline.analyze(image), image_format=image.format)
        assessed = pipeline.assess(image)
        verdict = screen(
            [a.face.box for a in assessed], [a.quality for a in assessed], image.width, image.height, floor
        )
        if not isinstance(verdict, FaceChoice):
            return Outcome(None, image_format=image.format, turned_down=verdict)
        analysis = pipeline.embed(image, [assessed[verdict.index]])
        return Outcome(analysis, image_format=image.format, choice=verdict)
    except ModelError as exc:
        return Outcome(None, error=str(exc), error_kind="model")
    except FaceLedgerError as exc:
        return Outcome(None, error=str(exc), error_kind="analysis")


class InlineExecutor(Executor):
    """Runs the analysis in this process, building the pipeline only when first needed."""

    def __init__(self, settings: Settings, pipeline: Analyzer | None = None) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._owned = pipeline is None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        data, source, floor = args
        try:
            if self._pipeline is None:
                self._pipeline = make_pipeline(self._settings, in_worker=False)
            future.set_result(analyse(self._pipeline, data, source, self._settings, floor))
        except Exception as exc:  # surfaces from .result(), as it would from a pool
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        close = getattr(self._pipeline, "close", None)
        if self._owned and callable(close):
            close()
        self._pipeline = None
