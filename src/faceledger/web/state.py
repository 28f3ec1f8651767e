"""What every request of one app shares: the data directory, the face engine, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from faceledger.services.datadir import DataDir
from faceledger.web.engine import FaceEngine

#: The most items one page of any list may hold.
MAX_PAGE = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AppState:
    """One app's shared objects; stored on ``app.state.faceledger``.

    ``clock`` is the only source of "now" for the services (which take it as an argument):
    tests pass a fixed one, so that expiries, TOTP codes and daily limits are reproducible.
    """

    dd: DataDir
    engine: FaceEngine
    clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        return self.clock()
