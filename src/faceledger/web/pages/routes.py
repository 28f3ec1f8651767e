"""The pages: sign-in, sign-out, account activation (password, then TOTP by QR code), and home.

Each calls the same account services as the API's ``/api/v1/auth`` routes, so throttling,
refusals and audit entries are the same: :func:`accounts.authenticate` for sign-in,
:func:`accounts.activate` for activation, :func:`accounts.logout` for sign-out. Every POST is
checked for its CSRF token first (:func:`check_csrf`); a refused one gets a 403 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain import text
from faceledger.errors import AuthenticationError, FaceLedgerError, PermissionDeniedError, ValidationError
from faceledger.services import accounts, work_queues
from faceledger.services.accounts import Principal, totp
from faceledger.services.accounts.records import SESSION_PREFIX
from faceledger.services.datadir import DataDir
from faceledger.services.devices import DEVICE_HEADER, DeviceCredential
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.limits import PAGE_ACTIVATE_PATH, PAGE_SIGN_IN_PATH
from faceledger.web.pages import session as sess
from faceledger.web.pages.rendering import Pages, format_time

router = APIRouter(include_in_schema=False)

#: The notices the sign-in page shows after a redirect (only these: no text is taken from the URL).
NOTICES = {
    "signed_out": "You are signed out.",
    "idle": "You were signed out because the session was not used for a while. Sign in again.",
    "ended": "Your session has ended (it expired, was signed out elsewhere, or the account changed). "
    "Sign in again.",
    "activated": "Your account is activated. You can sign in once a supervisor of your unit has vouched "
    "for it.",
}
#: The longest value each form field takes: more is refused with the reason, before any service runs.
FIELD_LIMITS = {"username": 64, "password": 1024, "totp": 16, "code": 256, "password_again": 1024}
CSRF_REFUSED = (
    "This form could not be accepted: its security token is missing or out of date (the page may "
    "have been open across a server restart, or the request came from another site). "
    "Reload the page and try again."
)

CSRF_OVER_HTTP = (
    "This form could not be accepted: this service must be reached over HTTPS (its cookies are "
    "Secure, so the browser does not send them over plain HTTP to another machine). Use the https:// "
    "address, or ask the administrator (docs/web.md, [web] secure_cookies)."
)


class CsrfRefusedError(FaceLedgerError):
    """A state-changing request without this session's CSRF token."""

    code = "forbidden"


def get_pages(request: Request) -> Pages:
    pages: Pages = request.app.state.faceledger_pages
    return pages


PagesDep = Annotated[Pages, Depends(get_pages)]


def page_device(request: Request) -> DeviceCredential | None:
    """The device credential header, as the API reads it (a browser sends none: its device is proved
    by a WebAuthn assertion that binds the session, docs/web.md)."""
    value = request.headers.get(DEVICE_HEADER, "")
    return DeviceCredential.parse(value) if value.strip() else None


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    token: str


def signed_in(request: Request, pages: Pages, dd: DataDir, now: datetime) -> SignedIn | str:
    """The person of the session cookie, or the notice to sign in with (ends an idle session)."""
    token = sess.session_token(request)
    if token is None or not token.startswith(SESSION_PREFIX):
        return ""
    try:
        principal = accounts.principal_from_token(dd, token, page_device(request), now=now, page=True)
    except AuthenticationError:
        return "ended"
    assert principal.session_id is not None
    idle = timedelta(minutes=pages.settings.idle_minutes)
    if not pages.idle.touch(principal.session_id, now, idle):
        accounts.logout(dd, token, now=now, reason="idle")
        return "idle"
    return SignedIn(principal, token)


def current_or_sign_in(request: Request, pages: Pages, dd: DataDir, now: datetime) -> SignedIn | Response:
    """The signed-in person of the request, or the redirect to sign in (with the notice why)."""
    current = signed_in(request, pages, dd, now)
    return current if isinstance(current, SignedIn) else to_sign_in(request, pages, current)


def signed_in_page(
    request: Request,
    pages: Pages,
    dd: DataDir,
    now: datetime,
    current: SignedIn,
    template: str,
    **context: Any,
) -> HTMLResponse:
    """``template`` for the signed-in person: the frame, the session's CSRF token, and ``when``
    (a moment in the policy's time zone) besides ``context``."""
    policy = pages.policy(dd)
    return pages.render(
        request,
        template,
        dd=dd,
        now=now,
        csrf_token=pages.csrf.token_for(f"session:{current.token}"),
        frame=pages.frame(dd, current.principal, policy.zone, now),
        when=lambda moment: format_time(moment, policy.zone),
        **context,
    )


def to_sign_in(request: Request, pages: Pages, notice: str) -> RedirectResponse:
    target = PAGE_SIGN_IN_PATH + (f"?notice={quote(notice)}" if notice else "")
    response = RedirectResponse(target, status_code=303)
    if sess.session_token(request) is not None:
        sess.clear_cookie(response, request, pages.settings, sess.SESSION_COOKIE)
    return response


def presession_token(request: Request, pages: Pages) -> tuple[str, str | None]:
    """(CSRF token for a pre-sign-in form, the new pre-session cookie value to set, if one is needed)."""
    current = sess.presession(request)
    fresh = None if current else sess.new_presession()
    return pages.csrf.token_for(f"pre:{current or fresh}"), fresh


def with_presession(response: Response, request: Request, pages: Pages, fresh: str | None) -> Response:
    if fresh is not None:
        sess.set_cookie(
            response, request, pages.settings, sess.PRESESSION_COOKIE, fresh, sess.PRESESSION_SECONDS
        )
    return response


def check_csrf(request: Request, pages: Pages, presented: str, binding: str | None) -> None:
    token = presented or request.headers.get(sess.CSRF_HEADER, "")
    if pages.csrf.accepts(binding, token):
        return
    if binding is None and request.url.scheme == "http" and sess.secure_cookie(request, pages.settings):
        # The browser kept the Secure cookie to itself: it is never sent back over plain HTTP.
        raise CsrfRefusedError(CSRF_OVER_HTTP)
    raise CsrfRefusedError(CSRF_REFUSED)


def check_fields(**fields: str) -> None:
    """Refuse a field over its length limit, saying which and how long it may be."""
    for name, value in fields.items():
        limit = FIELD_LIMITS[name]
        if len(value) > limit:
            raise ValidationError(
                f"the field {name.replace('_', ' ')!r} is {len(value):,} characters long; "
                f"it takes at most {limit}"
            )


def _presession_binding(request: Request) -> str | None:
    value = sess.presession(request)
    return f"pre:{value}" if value else None


Field = Annotated[str, Form()]


# --- sign-in and sign-out ---------------------------------------------------------------------


@router.get(PAGE_SIGN_IN_PATH, response_class=HTMLResponse)
def sign_in_page(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, notice: str = ""
) -> Response:
    current = signed_in(request, pages, dd, now)
    if isinstance(current, SignedIn):
        return RedirectResponse("/", status_code=303)
    token, fresh = presession_token(request, pages)
    response = pages.render(
        request,
        "signin.html",
        dd=dd,
        now=now,
        csrf_token=token,
        notice=NOTICES.get(notice),
        error=None,
        username="",
    )
    return with_presession(response, request, pages, fresh)


@router.post(PAGE_SIGN_IN_PATH, response_class=HTMLResponse)
def sign_in(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    username: Field = "",
    password: Field = "",
    totp_code: Annotated[str, Form(alias="totp")] = "",
    csrf_token: Field = "",
) -> Response:
    check_csrf(request, pages, csrf_token, _presession_binding(request))
    check_fields(username=username, password=password, totp=totp_code)
    try:
        principal = accounts.authenticate(
            dd,
            username=username,
            password=password,
            totp=totp_code or None,
            device=page_device(request),
            now=now,
        )
    except AuthenticationError as exc:
        token, fresh = presession_token(request, pages)
        response = pages.render(
            request,
            "signin.html",
            dd=dd,
            now=now,
            csrf_token=token,
            notice=None,
            error=str(exc),
            username=text.escape_control(username),
            status_code=401,
        )
        return with_presession(response, request, pages, fresh)
    assert principal.session_token is not None
    assert principal.session_id is not None
    pages.idle.start(principal.session_id, now)
    home = RedirectResponse("/", status_code=303)
    # No Max-Age: the browser drops the cookie when it closes (a shared workstation keeps nothing);
    # the server ends the session at its expiry, or sooner when idle.
    sess.set_cookie(home, request, pages.settings, sess.SESSION_COOKIE, principal.session_token, None)
    sess.clear_cookie(home, request, pages.settings, sess.PRESESSION_COOKIE)
    return home


@router.post("/signout")
def sign_out(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, csrf_token: Field = ""
) -> Response:
    token = sess.session_token(request)
    check_csrf(request, pages, csrf_token, f"session:{token}" if token else None)
    assert token is not None  # check_csrf refuses a request without a session
    if token.startswith(SESSION_PREFIX):
        accounts.logout(dd, token, now=now)
    return to_sign_in(request, pages, "signed_out")


# --- activation ---------------------------------------------------------------------------------


@router.get(PAGE_ACTIVATE_PATH, response_class=HTMLResponse)
def activate_page(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    token, fresh = presession_token(request, pages)
    response = pages.render(
        request,
        "activate.html",
        dd=dd,
        now=now,
        csrf_token=token,
        error=None,
        username="",
        min_length=dd.settings.accounts.password_min_length,
    )
    return with_presession(response, request, pages, fresh)


@router.post(PAGE_ACTIVATE_PATH, response_class=HTMLResponse)
def activate(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    username: Field = "",
    code: Field = "",
    password: Field = "",
    password_again: Field = "",
    csrf_token: Field = "",
) -> Response:
    check_csrf(request, pages, csrf_token, _presession_binding(request))
    check_fields(username=username, code=code, password=password, password_again=password_again)
    token, fresh = presession_token(request, pages)
    try:
        if password != password_again:
            raise ValidationError("the two passwords differ; type the same new password twice")
        uri = accounts.activate(dd, username=username, code=code.strip(), password=password, now=now)
    except (AuthenticationError, ValidationError) as exc:
        response = pages.render(
            request,
            "activate.html",
            dd=dd,
            now=now,
            csrf_token=token,
            error=str(exc),
            username=text.escape_control(username),
            min_length=dd.settings.accounts.password_min_length,
            status_code=401 if isinstance(exc, AuthenticationError) else 422,
        )
        return with_presession(response, request, pages, fresh)
    secret = totp.seed_from_uri(uri)
    qr = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff", omitsize=False)
    response = pages.render(
        request,
        "activated.html",
        dd=dd,
        now=now,
        csrf_token=token,
        username=username,
        qr_svg=qr,
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    )
    return with_presession(response, request, pages, fresh)


# --- home ------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    try:
        work = work_queues.work_queues(dd, current.principal, now=now)
        refused = None
    except PermissionDeniedError as exc:  # recorded by the door; home still shows who and where
        work, refused = work_queues.nothing_for(current.principal), exc
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "home.html",
        work=work,
        refused=refused,
        queues=[
            (title, queue)
            for title, queue in (
                ("Searches awaiting examination", work.to_examine),
                ("Blind peer reviews", work.to_peer_review),
                ("Approvals for my unit", work.to_approve),
            )
            if queue is not None
        ],
    )
