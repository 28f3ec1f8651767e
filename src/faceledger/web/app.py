"""The HTTP service: :func:`create_app` builds the FastAPI app over one data directory.

::

    from faceledger.web import create_app
    app = create_app("~/faceledger-data")      # then: uvicorn, or `faceledger serve`

Every route calls the same services as the CLI, so a person is refused, recorded and
audited the same way whichever they use. The OpenAPI document is at ``/openapi.json``
(interactive: ``/docs``); docs/api.md describes the API and docs/running.md how to run it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI

from faceledger import __version__
from faceledger.config import Settings, load_settings
from faceledger.services.datadir import DataDir, open_data_dir
from faceledger.services.identification import Analyzer
from faceledger.web import errors
from faceledger.web.api import routers
from faceledger.web.api.galleries import sweep_uploads
from faceledger.web.engine import FaceEngine
from faceledger.web.limits import BodyLimitMiddleware, BodyLimits
from faceledger.web.state import AppState, utc_now

log = logging.getLogger("faceledger.web")

DESCRIPTION = """\
Accountable face identification over controlled, lawfully held galleries.

Sign in (`POST /api/v1/auth/login`) and send the session token as `Authorization: Bearer
<token>`, with the `X-Faceledger-Device` header from a registered agency device. Every
search carries a case number and a purpose and is decided by the agency's policy; every
request that changes anything, and every refusal, is written to a signed audit log.

**A candidate list is an investigative lead for trained examiners, never an identification.**

Errors are JSON: `{"error": {"code", "message", "rule_id"?, "policy_version"?}}`.
"""


def _open(data_dir: Path | str | None, settings: Settings | None) -> DataDir:
    chosen = settings if settings is not None else load_settings(data_dir)
    if data_dir is not None:
        chosen = chosen.with_overrides(data_dir=Path(data_dir).expanduser())
    return open_data_dir(chosen.data_dir, settings=chosen)


def create_app(
    data_dir: DataDir | Path | str | None = None,
    *,
    settings: Settings | None = None,
    analyzer: Analyzer | None = None,
    clock: Callable[[], datetime] = utc_now,
    body_limits: BodyLimits | None = None,
    max_waiting: int = 32,
) -> FastAPI:
    """The app over ``data_dir``: an opened :class:`DataDir` (the caller closes it), or a path.

    A path (default: ``$FACELEDGER_DATA_DIR`` or ``~/.local/share/faceledger``) is opened now
    and closed when the app shuts down. ``analyzer`` replaces the face pipeline the app
    would otherwise load on its first face job; ``clock`` is where "now" comes from.
    """
    owned = not isinstance(data_dir, DataDir)
    dd = _open(data_dir, settings) if not isinstance(data_dir, DataDir) else data_dir
    engine = FaceEngine(dd.settings, analyzer, max_waiting=max_waiting)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        swept = sweep_uploads(dd)
        if swept:
            log.info("removed %d upload folder(s) left by a stopped server", swept)
        try:
            yield
        finally:
            engine.close()
            if owned:
                dd.close()

    app = FastAPI(
        title="faceledger",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.faceledger = AppState(dd=dd, engine=engine, clock=clock)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, limits=body_limits or BodyLimits.for_images(dd.settings.image))
    for router in routers():
        app.include_router(router)
    return app
