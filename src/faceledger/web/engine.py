"""The face work of one app: the pipeline loaded once, and jobs run one at a time off the event loop.

Loading the models takes seconds and hundreds of megabytes, so it happens once per app, on
the first job that needs it (under a lock, so two first requests do not load it twice).

Everything that analyses faces or touches the vector indexes (search, verify, enrol,
purge, gallery creation) runs as a job on a small dedicated thread pool, never on the event
loop: dlib holds the GIL while it computes, so one worker gives the same throughput as
several, keeps the pipeline's models single-threaded, and serialises the data directory's
writers (:meth:`DataDir.writing` is per process, not per thread). Requests that only read
or write the database run on the ordinary request thread pool and are not held up by a
long job. When more than ``max_waiting`` jobs are queued, a new one is refused with 503
(``busy``) rather than waiting without bound.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from faceledger.config import Settings
from faceledger.domain.models import DecodedImage, ImageAnalysis, ModelRef
from faceledger.services.identification import Analyzer
from faceledger.web.errors import BusyError

if TYPE_CHECKING:
    from faceledger.pipeline.run import Pipeline

P = ParamSpec("P")
R = TypeVar("R")


class FaceEngine:
    """A lazily loaded analyzer (it is one itself) and the bounded pool face jobs run on."""

    def __init__(
        self, settings: Settings, analyzer: Analyzer | None = None, *, workers: int = 1, max_waiting: int = 32
    ) -> None:
        self._settings = settings
        self._analyzer = analyzer
        self._owned: Pipeline | None = None
        self._load_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._pending = 0
        self._max_pending = workers + max_waiting
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def _pipeline(self) -> Analyzer:
        """The pipeline, built on first use (from the data directory's settings)."""
        if self._analyzer is None:
            with self._load_lock:
                if self._analyzer is None:
                    from faceledger.pipeline.run import Pipeline

                    self._owned = Pipeline.from_settings(self._settings)
                    self._analyzer = self._owned
        return self._analyzer

    # The engine is itself the analyzer the services are given: the models load only when
    # a face is first analysed, so a request the policy refuses never loads them.
    @property
    def model(self) -> ModelRef:
        return self._pipeline().model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        return self._pipeline().analyze(image)

    @property
    def loaded(self) -> bool:
        return self._analyzer is not None

    async def run(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``func`` on the face pool and wait for it without blocking the event loop."""
        with self._count_lock:
            if self._pending >= self._max_pending:
                raise BusyError(
                    f"{self._pending} face jobs are already running or waiting; try again in a moment"
                )
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="faceledger-face")
            pool = self._pool
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, functools.partial(func, *args, **kwargs))
        finally:
            with self._count_lock:
                self._pending -= 1

    def close(self) -> None:
        """Finish the running job, drop the waiting ones, and stop the pipeline this engine built.

        The engine can be used again afterwards (a new pool and pipeline are made on demand).
        """
        with self._count_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self._owned is not None:
            self._owned.close()
            self._owned = None
            self._analyzer = None
