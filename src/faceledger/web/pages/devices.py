"""The pages that make a browser a registered device (WebAuthn) and prove it at sign-in.

``GET /devices/enrol`` shows the form for the one-time code a system administrator issued
(``faceledger device enrol-browser``). The page's script (``static/webauthn.js``) posts the code
to ``POST /devices/enrol/options``, hands the registration options to
``navigator.credentials.create`` and posts the new credential to ``POST /devices/enrol/finish``.
On the home page, a session on no device can prove this browser's device: the script posts to
``POST /devices/confirm/options``, calls ``navigator.credentials.get`` and posts the assertion to
``POST /devices/confirm/finish``, which binds the session to the device and replaces its cookie.

All four POSTs need a signed-in page session and its CSRF token (header ``X-CSRF-Token``); they
answer JSON (``{"error": reason}`` on a refusal) because only the script calls them. Every check
and every audit entry is the service's (:mod:`faceledger.services.browser_devices`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from faceledger.config import WebSettings
from faceledger.errors import FaceLedgerError, ValidationError
from faceledger.services import browser_devices
from faceledger.services.browser_devices import MAX_RESPONSE_CHARS, RelyingParty
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.errors import status_for
from faceledger.web.pages import session as sess
from faceledger.web.pages.routes import PagesDep, SignedIn, check_csrf, signed_in, to_sign_in

router = APIRouter(include_in_schema=False)

ENROL_PATH = "/devices/enrol"
#: The longest enrolment code the form takes (a real one is 47 characters).
CODE_LIMIT = 128


def relying_party(request: Request, settings: WebSettings) -> RelyingParty:
    """The relying party of this request: ``[web] rp_id``, and ``[web] origin`` or the request's own."""
    origin = settings.origin or f"{request.url.scheme}://{request.url.netloc}"
    host = urlsplit(origin).hostname or ""
    if host != settings.rp_id and not host.endswith("." + settings.rp_id):
        raise ValidationError(
            f"this page was reached as {host!r}, but browsers' device credentials are made for "
            f"{settings.rp_id!r} ([web] rp_id, docs/web.md): open the service by that name"
        )
    return RelyingParty(id=settings.rp_id, origin=origin.rstrip("/"))


def _error(exc: FaceLedgerError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status_for(exc))


def _signed_in_json(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep
) -> SignedIn | JSONResponse:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return JSONResponse({"error": "sign in first", "sign_in": "/signin"}, status_code=401)
    check_csrf(request, pages, "", f"session:{current.token}")
    return current


@router.get(ENROL_PATH, response_class=HTMLResponse)
def enrol_page(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    policy = pages.policy(dd)
    return pages.render(
        request,
        "enrol_device.html",
        dd=dd,
        now=now,
        csrf_token=pages.csrf.token_for(f"session:{current.token}"),
        frame=pages.frame(dd, current.principal, policy.zone, now),
        code_limit=CODE_LIMIT,
    )


@router.post(ENROL_PATH + "/options")
def enrol_options(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, code: Annotated[str, Form()] = ""
) -> Response:
    current = _signed_in_json(request, pages, dd, now)
    if isinstance(current, JSONResponse):
        return current
    try:
        if len(code) > CODE_LIMIT:
            raise ValidationError(f"the enrolment code is {len(code):,} characters; at most {CODE_LIMIT}")
        rp = relying_party(request, pages.settings)
        ceremony = browser_devices.begin_enrolment(dd, current.principal, code, rp, now=now)
    except FaceLedgerError as exc:
        return _error(exc)
    pages.ceremonies.put(ceremony, now)
    return Response(ceremony.options_json, media_type="application/json")


async def _response_text(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_RESPONSE_CHARS:
        return body[: MAX_RESPONSE_CHARS + 1].decode("utf-8", "replace")
    return body.decode("utf-8", "replace")


@router.post(ENROL_PATH + "/finish")
async def enrol_finish(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    response = await _response_text(request)
    return await run_in_threadpool(_enrol_finish, request, pages, dd, now, response)


def _enrol_finish(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, response: str) -> Response:
    current = _signed_in_json(request, pages, dd, now)
    if isinstance(current, JSONResponse):
        return current
    assert current.principal.session_id is not None
    ceremony = pages.ceremonies.take(current.principal.session_id)
    try:
        rp = relying_party(request, pages.settings)
        device_id = browser_devices.finish_enrolment(dd, current.principal, ceremony, response, rp, now=now)
    except FaceLedgerError as exc:
        return _error(exc)
    return JSONResponse({"device_id": device_id})


@router.post("/devices/confirm/options")
def confirm_options(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = _signed_in_json(request, pages, dd, now)
    if isinstance(current, JSONResponse):
        return current
    try:
        rp = relying_party(request, pages.settings)
        ceremony = browser_devices.begin_confirmation(dd, current.principal, rp, now=now)
    except FaceLedgerError as exc:
        return _error(exc)
    if ceremony is None:
        return JSONResponse(
            {"error": "no browser is enrolled as a device yet: this browser is not a registered device"},
            status_code=404,
        )
    pages.ceremonies.put(ceremony, now)
    return Response(ceremony.options_json, media_type="application/json")


@router.post("/devices/confirm/finish")
async def confirm_finish(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    response = await _response_text(request)
    return await run_in_threadpool(_confirm_finish, request, pages, dd, now, response)


def _confirm_finish(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, response: str
) -> Response:
    current = _signed_in_json(request, pages, dd, now)
    if isinstance(current, JSONResponse):
        return current
    assert current.principal.session_id is not None
    ceremony = pages.ceremonies.take(current.principal.session_id)
    try:
        rp = relying_party(request, pages.settings)
        device_id, token = browser_devices.confirm_device(
            dd, current.principal, current.token, ceremony, response, rp, now=now
        )
    except FaceLedgerError as exc:
        return _error(exc)
    answer = JSONResponse({"device_id": device_id})
    # The session's token was replaced when it was bound: the old cookie no longer signs anyone in.
    sess.set_cookie(answer, request, pages.settings, sess.SESSION_COOKIE, token, None)
    return answer
