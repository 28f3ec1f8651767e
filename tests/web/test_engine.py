"""The face engine: jobs run off the event loop, one at a time, with a bounded queue; models load lazily."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from faceledger.config import Settings
from faceledger.web.engine import FaceEngine
from faceledger.web.errors import BusyError


def test_the_event_loop_keeps_running_while_a_job_blocks() -> None:
    engine = FaceEngine(Settings())
    release = threading.Event()
    ticks: list[float] = []

    def slow_job() -> str:
        release.wait(timeout=10)
        return threading.current_thread().name

    async def main() -> str:
        names: list[str] = []
        async with anyio.create_task_group() as group:

            async def ticker() -> None:
                for _ in range(5):
                    ticks.append(time.monotonic())
                    await anyio.sleep(0.01)
                release.set()

            group.start_soon(ticker)
            names.append(await engine.run(slow_job))
        return names[0]

    try:
        worker = anyio.run(main)
    finally:
        engine.close()
    assert len(ticks) == 5  # the loop ran the ticker while the job was blocked
    assert worker.startswith("faceledger-face")
    assert worker != threading.current_thread().name


def test_jobs_beyond_the_queue_are_refused_as_busy() -> None:
    engine = FaceEngine(Settings(), max_waiting=0)
    started, release = threading.Event(), threading.Event()

    def blocking() -> int:
        started.set()
        release.wait(timeout=10)
        return 1

    async def main() -> tuple[int, str]:
        result: list[int] = []
        async with anyio.create_task_group() as group:

            async def first() -> None:
                result.append(await engine.run(blocking))

            group.start_soon(first)
            await anyio.to_thread.run_sync(started.wait)
            with pytest.raises(BusyError) as refused:
                await engine.run(lambda: 2)
            release.set()
        return result[0], str(refused.value)

    try:
        value, message = anyio.run(main)
    finally:
        engine.close()
    assert value == 1
    assert "try again" in message


def test_a_closed_engine_starts_again_on_the_next_job() -> None:
    engine = FaceEngine(Settings())

    async def job() -> int:
        return await engine.run(lambda: 41 + 1)

    assert anyio.run(job) == 42
    engine.close()
    assert anyio.run(job) == 42
    engine.close()


def test_models_are_not_loaded_until_a_face_is_analysed() -> None:
    engine = FaceEngine(Settings())
    assert engine.loaded is False
    engine.close()
    assert engine.loaded is False
