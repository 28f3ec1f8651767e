"""The HTTP service: :func:`create_app` builds the FastAPI app over one data directory.

::

    from faceledger.web import create_app
    app = create_app("~/faceledger-data")      # then: uvicorn, or `faceledger serve`

Every route calls the same services as the CLI, so a person is refused, recorded and
audited the same way whichever they use. The OpenAPI document is at ``/openapi.json``
(interactive: ``/docs``, with Swagger UI's files served by the service itself); the pages for
people are at ``/`` (:mod:`faceledger.web.pages`, docs/web.md); every response
carries the headers of :mod:`faceledger.web.security_headers`; docs/api.md describes the API
and docs/running.md how to run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from faceledger import __version__
from faceledger.config import AccountSettings, Settings, load_settings
from faceledger.errors import FaceLedgerError
from faceledger.services import audit
from faceledger.services.datadir import DataDir, open_data_dir
from faceledger.services.identification import Analyzer
from faceledger.web import errors, pages
from faceledger.web.api import routers
from faceledger.web.api.galleries import sweep_uploads
from faceledger.web.deps import reject_unknown_query
from faceledger.web.engine import FaceEngine
from faceledger.web.limits import (
    THROTTLED_PATHS,
    BodyLimitMiddleware,
    BodyLimits,
    SignInLimits,
    SignInThrottleMiddleware,
)
from faceledger.web.models.accounts import SETTING_MARK
from faceledger.web.models.common import MAX_ID, NOT_BLANK
from faceledger.web.security_headers import DOCS_ASSETS, SecurityHeadersMiddleware, docs_page_policy
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
    sign_in_limits: SignInLimits | None = None,
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
        timer: asyncio.Task[None] | None = None
        try:
            # A log cut or rewritten while the service was down: refuse to start, saying why.
            await run_in_threadpool(audit.check_integrity, dd)
            swept = sweep_uploads(dd)
            if swept:
                log.info("removed %d upload folder(s) left by a stopped server", swept)
            timer = _start_checkpoint_timer(dd)
            yield
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            engine.close()
            if owned:
                dd.close()

    app = FastAPI(
        title="faceledger",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is served below from the service's own copy of Swagger UI; ReDoc (CDN only) is off.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.faceledger = AppState(dd=dd, engine=engine, clock=clock)
    errors.install(app)
    # Added last = outermost: the size limit applies before the throttle buffers a sign-in body.
    app.add_middleware(SignInThrottleMiddleware, limits=sign_in_limits or SignInLimits())
    app.add_middleware(BodyLimitMiddleware, limits=body_limits or BodyLimits.for_images(dd.settings.image))
    app.add_middleware(SecurityHeadersMiddleware)
    for router in routers():
        app.include_router(router, dependencies=[Depends(reject_unknown_query)])
    _document_throttling(app)
    _document_settings(app, dd.settings.accounts)
    _exact_integer_bounds(app)
    _form_fields_without_null(app)
    _serve_docs_page(app)
    pages.install(app, dd.settings.web)
    return app


def _start_checkpoint_timer(dd: DataDir) -> asyncio.Task[None] | None:
    """Every ``[audit] checkpoint_minutes``: check the whole stored log, then sign if entries were added.

    :func:`audit.checkpoint_if_behind` runs the full integrity check outside the head lock and
    then signs from the stored frontier. When the check fails, the service stays up, but every
    later append is refused, and with it every action that must be recorded (the refusal says why).
    """
    minutes = dd.settings.audit.checkpoint_minutes
    if minutes <= 0:
        return None

    async def tick() -> None:
        while True:
            await asyncio.sleep(minutes * 60)
            try:
                signed = await run_in_threadpool(audit.checkpoint_if_behind, dd)
            except audit.LogIntegrityError as exc:
                log.error("the audit log failed its integrity check; recording is refused: %s", exc)
            except FaceLedgerError as exc:  # a full disk, a lost database: say so and keep the service up
                log.error("the timed audit checkpoint was not signed: %s", exc)
            else:
                if signed is not None:
                    log.info("audit checkpoint signed at size %d", signed.tree_size)

    return asyncio.create_task(tick(), name="faceledger-audit-checkpoints")


def _document_throttling(app: FastAPI) -> None:
    """Sign-in and activation may answer 429 (the throttle is middleware, so FastAPI cannot know)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()  # cached by FastAPI after the first call
        for path in sorted(THROTTLED_PATHS):
            operation = schema.get("paths", {}).get(path, {}).get("post")
            if fresh and operation is not None:
                operation.setdefault("responses", {})["429"] = {
                    "description": "Too many failed sign-ins for this username or from this address; "
                    "retry after the Retry-After header's seconds",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                    },
                }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_settings(app: FastAPI, accounts: AccountSettings) -> None:
    """The rules that are settings, as this installation has them (fields marked :data:`SETTING_MARK`).

    A password being chosen has at least ``[accounts] password_min_length`` characters and is
    not blank (it must not be the username either, which a schema cannot say: that is refused
    with 422); an API token lasts at most ``[accounts] token_max_days`` days.
    """
    build = app.openapi

    def apply(field: dict[str, Any], setting: str) -> None:
        if setting == "new_password":
            field["minLength"] = max(field.get("minLength", 0), accounts.password_min_length)
            field["pattern"] = NOT_BLANK
        elif setting == "token_days":
            field["maximum"] = min(field.get("maximum", accounts.token_max_days), accounts.token_max_days)

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            for component in schema.get("components", {}).get("schemas", {}).values():
                for field in component.get("properties", {}).values():
                    setting = field.pop(SETTING_MARK, None)
                    if setting is not None:
                        apply(field, setting)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _exact_integer_bounds(app: FastAPI) -> None:
    """Integer bounds as the integers they are: FastAPI writes ``minimum``/``maximum`` as floats.

    A float cannot hold the largest id (:data:`MAX_ID`, 2**63 - 1): written as one it reads
    2**63, an id the server refuses. Every integral bound of an integer is written as an integer.
    """
    build = app.openapi

    def exact(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "integer":
                for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                    value = node.get(key)
                    if isinstance(value, float) and value.is_integer():
                        node[key] = MAX_ID if value == float(MAX_ID) else int(value)
            for child in node.values():
                exact(child)
        elif isinstance(node, list):
            for child in node:
                exact(child)

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            exact(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _form_fields_without_null(app: FastAPI) -> None:
    """An optional form field is one left out, never null: a form has no way to send null.

    FastAPI writes an optional field (``str | None = None``) as "a string or null"; sent in a
    form, that null could only arrive as the text ``null``, which a date or a number refuses.
    The document says what a form takes: the field's own type, and not required.
    """
    build = app.openapi

    def forms(schema: dict[str, Any]) -> set[str]:
        names = set()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
                content = body.get("content", {})
                for media_type in FORM_MEDIA_TYPES:
                    ref = content.get(media_type, {}).get("schema", {}).get("$ref", "")
                    if ref.startswith("#/components/schemas/"):
                        names.add(ref.removeprefix("#/components/schemas/"))
        return names

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            components = schema.get("components", {}).get("schemas", {})
            for name in forms(schema):
                for field in components[name].get("properties", {}).values():
                    options = field.get("anyOf")
                    if isinstance(options, list) and {"type": "null"} in options:
                        kept = [option for option in options if option != {"type": "null"}]
                        del field["anyOf"]
                        if len(kept) == 1:
                            field.update(kept[0])
                        else:
                            field["anyOf"] = kept
                        if field.get("default", ...) is None:
                            del field["default"]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _serve_docs_page(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the installed swagger-ui-bundle-v2 package, never from a CDN."""
    assets = importlib.import_module("swagger_ui_bundle").swagger_ui_path  # the package has no type hints
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="swagger-ui-assets")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
    )
    html = bytes(page.body).decode("utf-8")
    policy = docs_page_policy(html)

    @app.get("/docs", include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})
