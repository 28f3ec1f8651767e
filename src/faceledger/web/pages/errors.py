"""Errors on the pages are pages: the same reasons as the API's JSON errors, as HTML a person reads.

:func:`install` puts handlers in front of :mod:`faceledger.web.errors`'s: a request for a page
(:func:`faceledger.web.limits.is_page_path`, from a client that does not ask for JSON only)
gets an HTML page with the status and the reason; everything else (``/api/v1``, ``/docs``,
``/openapi.json``) keeps the JSON error shape. An unexpected exception is logged with its
stack trace and answered with the log reference, never the trace.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from faceledger import __version__
from faceledger.errors import FaceLedgerError, PermissionDeniedError
from faceledger.services import database_errors
from faceledger.web import errors
from faceledger.web.limits import is_page_path
from faceledger.web.pages.rendering import PAGE_POLICY, STATIC_URL, Pages, PolicyInForce, format_time

log = logging.getLogger("faceledger.web")

TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Refused",
    404: "Page not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Server error",
    503: "Service unavailable",
}


def wants_page(request: Request) -> bool:
    if not is_page_path(request.url.path):
        return False
    accept = request.headers.get("accept", "")
    return not ("application/json" in accept and "text/html" not in accept)


def error_page(request: Request, status: int, message: str, *, rule_id: str | None = None) -> HTMLResponse:
    pages: Pages = request.app.state.faceledger_pages
    state = request.app.state.faceledger
    now = state.now()
    try:
        policy = pages.policy(state.dd)
    except Exception:  # the error may be the database itself: the page must still be shown
        policy = PolicyInForce(None, UTC, "UTC")
    html = pages.env.get_template("error.html").render(
        request_path=request.url.path,
        static_url=STATIC_URL,
        htmx_url=None,
        frame=None,
        policy=policy,
        now=format_time(now, policy.zone),
        title=TITLES.get(status, "Error"),
        status=status,
        message=message,
        rule_id=rule_id,
        version=__version__,
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_POLICY})


Handler = Callable[[Request, Exception], Response]


def _either(page: Callable[[Request, Exception], HTMLResponse], api: Handler) -> Handler:
    def handle(request: Request, exc: Exception) -> Response:
        return page(request, exc) if wants_page(request) else api(request, exc)

    return handle


def _faceledger(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, FaceLedgerError)
    status = errors.status_for(exc)
    if status >= 500:
        log.error("page request failed on the server's side: %s (%s)", exc, exc.code)
    decision = exc.decision if isinstance(exc, PermissionDeniedError) else None
    message = errors.without_paths(request, str(exc))
    return error_page(request, status, message, rule_id=decision.rule_id if decision else None)


def _validation(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in p.get('loc', ()))}: {p.get('msg', '')}" for p in exc.errors()[:5]
    ]
    return error_page(request, 422, "The request is not valid: " + "; ".join(problems))


def _http(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = "There is no page at this address. Go to the home page and start from there."
    elif exc.status_code == 405:
        message = "This page does not accept that kind of request."
    else:
        message = str(exc.detail)
    return error_page(request, exc.status_code, message)


def _unexpected(request: Request, exc: Exception) -> HTMLResponse:
    clear = database_errors.clear_error(exc)
    if clear is not None:
        return _faceledger(request, clear)
    reference = secrets.token_hex(6)
    log.error("unexpected error %s on page %s %s", reference, request.method, request.url.path, exc_info=exc)
    return error_page(
        request,
        500,
        f"An unexpected error happened on the server. It was logged with reference {reference}; "
        "give that to the administrator.",
    )


def install(app: FastAPI) -> None:
    """HTML errors for pages, in front of the API's JSON ones (call after ``errors.install``)."""
    app.add_exception_handler(FaceLedgerError, _either(_faceledger, errors.faceledger_error))
    app.add_exception_handler(RequestValidationError, _either(_validation, errors.validation_error))
    app.add_exception_handler(StarletteHTTPException, _either(_http, errors.http_error))
    app.add_exception_handler(Exception, _either(_unexpected, errors.unexpected_error))
