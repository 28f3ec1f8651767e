"""Every failure leaves the service as one JSON shape with a stable code and a sentence for a person.

::

    {"error": {"code": "forbidden", "message": "refused: ...", "rule_id": "case.missing",
               "policy_version": "example-2025.1"}}

``code`` is the project's error code (:mod:`faceledger.errors`), or one of the web layer's
own (``invalid_request``, ``malformed_json``, ``request_too_large``, ``not_found``,
``method_not_allowed``, ``busy``, ``internal_error``); clients branch on it, never on the
message. ``rule_id`` and ``policy_version`` are present when a policy decision refused the
request, so a refusal can be matched to the rule and the version of the policy that made it.

An unexpected exception is logged with its stack trace here, on the server, and answered
with a reference to that log line: a stack trace is never sent to a client. Nor is a server
path: the data directory in a message becomes ``<data directory>`` and any other absolute
path ``<path>`` (the full message is logged on the server for errors of the server's side).
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from faceledger.errors import FaceLedgerError, PermissionDeniedError
from faceledger.services import database_errors

log = logging.getLogger("faceledger.web")

#: HTTP status for each error code; a subclass without its own entry takes its parent's.
STATUS_BY_CODE: dict[str, int] = {
    "error": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "separation_of_duties": 403,
    "not_found": 404,
    "conflict": 409,
    "review_error": 409,
    "invalid_transition": 409,
    "image_too_large": 413,
    "invalid_input": 422,
    "bad_image": 422,
    "no_face": 422,
    "alignment_error": 422,
    "missing_provenance": 422,
    "evaluation_error": 422,
    "invalid_policy": 422,
    # The server's own state or configuration, not the request: the message says what to fix.
    "store_error": 503,
    "not_initialized": 503,
    "model_error": 503,
    "index_error": 503,
    "config_error": 503,
    "busy": 503,
    "database_busy": 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code; branch on this, never on the message.")
    message: str = Field(description="What went wrong and what to do about it, for a person.")
    rule_id: str | None = Field(default=None, description="The policy rule that refused the request.")
    policy_version: str | None = Field(default=None, description="The version of the policy that decided.")
    fields: list[FieldProblem] | None = Field(
        default=None, description="Each bad field of an invalid request."
    )


class FieldProblem(BaseModel):
    location: str = Field(description="Where the bad value is, e.g. 'body.username' or 'query.limit'.")
    problem: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


ErrorDetail.model_rebuild()


class BusyError(FaceLedgerError):
    """Too many face jobs are already waiting; the client should retry later."""

    code = "busy"


class InvalidPolicyError(FaceLedgerError):
    """An uploaded policy file that does not parse or contradicts itself."""

    code = "invalid_policy"


class RequestTooLargeError(StarletteHTTPException):
    """Raised from inside the body stream, so that FastAPI's body parsing passes it through untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than this endpoint accepts ({limit:,} bytes); "
            "send a smaller file or body",
        )


def status_for(error: FaceLedgerError) -> int:
    for cls in type(error).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in STATUS_BY_CODE:
            return STATUS_BY_CODE[code]
    return 400


def error_body(
    code: str,
    message: str,
    *,
    rule_id: str | None = None,
    policy_version: str | None = None,
    fields: Sequence[FieldProblem] | None = None,
) -> dict[str, Any]:
    detail = ErrorDetail(
        code=code,
        message=message,
        rule_id=rule_id,
        policy_version=policy_version,
        fields=list(fields) if fields is not None else None,
    )
    return {"error": detail.model_dump(exclude_none=True)}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


#: An absolute path of two or more parts ("/srv/x/y"), not an API route ("/api/v1/...").
_ABSOLUTE_PATH = re.compile(r"(?<![\w/.:~])/(?!api/)(?:[\w.@+-]+/)+[\w.@+-]*")


def without_paths(request: Request, message: str) -> str:
    """``message`` with the server's file paths taken out."""
    state = getattr(request.app.state, "faceledger", None)
    root = getattr(getattr(state, "dd", None), "path", None)
    if root is not None:
        for form in sorted({str(root), str(root.resolve())}, key=len, reverse=True):
            message = message.replace(form, "<data directory>")
    return _ABSOLUTE_PATH.sub("<path>", message)


def faceledger_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FaceLedgerError)
    status = status_for(exc)
    if status >= 500:
        log.error("request failed on the server's side: %s (%s)", exc, exc.code)
    decision = exc.decision if isinstance(exc, PermissionDeniedError) else None
    return error_response(
        status,
        exc.code,
        without_paths(request, str(exc)),
        rule_id=decision.rule_id if decision else None,
        policy_version=decision.policy_version if decision else None,
    )


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = list(exc.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        where = next(p for p in problems if p.get("type") == "json_invalid")
        reason = where.get("ctx", {}).get("error", "not valid JSON")
        return error_response(400, "malformed_json", f"the request body is not valid JSON ({reason})")
    fields = [
        FieldProblem(location=_location(p.get("loc", ())), problem=str(p.get("msg", ""))) for p in problems
    ]
    summary = "; ".join(f"{f.location}: {f.problem}" for f in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    return error_response(422, "invalid_request", f"the request is not valid: {summary}{more}", fields=fields)


def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint; the API is described at /openapi.json and /docs"
    elif exc.status_code == 405:
        message = "this endpoint does not accept that HTTP method; see /openapi.json"
    response = error_response(exc.status_code, code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def allowed_methods(request: Request) -> list[str]:
    """Every method the API document gives this path (and ``HEAD`` where ``GET`` is).

    Starlette's own ``Allow`` names only the first route whose path matched, so a path served
    by several routes (``GET`` and ``DELETE /galleries/{name}``) would be under-reported.
    """
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _template_pattern(template).fullmatch(path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


@functools.cache
def _template_pattern(template: str) -> re.Pattern[str]:
    """``/a/{x}/b/{y:path}`` as a regular expression over request paths."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile(
        "".join(
            (".+" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part)
            for part in parts
        )
    )


def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    clear = database_errors.clear_error(exc)
    if clear is not None:  # a conflict with another request, not a bug: 409 or 503
        return faceledger_error(request, clear)
    reference = secrets.token_hex(6)
    log.error("unexpected error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        "internal_error",
        f"an unexpected error happened on the server; it was logged with reference {reference} "
        "(give that to the administrator)",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(FaceLedgerError, faceledger_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


#: The error responses every operation may give, for the OpenAPI document.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Malformed request (e.g. a body that is not JSON)"),
    401: _documented("Not signed in, or the session/token is not valid"),
    403: _documented("Refused by role, account state or policy (rule_id says which rule)"),
    404: _documented("No such thing"),
    409: _documented("The state forbids this (already exists, review in another state)"),
    413: _documented("The request or an uploaded image is too large"),
    422: _documented("A value is missing or invalid"),
    503: _documented("The server cannot do this now (storage, models, configuration, busy)"),
}
