"""The page session: the API's session token in a cookie, CSRF tokens, and the idle timeout.

A person signed in on the pages holds exactly what the API's ``POST /api/v1/auth/login``
hands out, a session token, in the cookie :data:`SESSION_COOKIE` (``HttpOnly``,
``SameSite=Strict``, ``Path=/``, and ``Secure`` as ``[web] secure_cookies`` says). Every
request resolves it with :func:`faceledger.services.accounts.principal_from_token`, as the API
does with a bearer token, so suspension, expiry and sign-out take effect on the next page.

Every state-changing request carries a CSRF token (hidden form field :data:`CSRF_FIELD`, or
the header :data:`CSRF_HEADER` for scripts): an HMAC, under a key made when the app starts,
of the session token (signed in) or of the random :data:`PRESESSION_COOKIE` (the sign-in and
activation forms). Another site can neither read the cookie nor compute the token. A restart
makes a new key, so a form opened before it is refused once and works after a reload.

Idle timeout: :class:`IdleSessions` remembers, in this process, when each page session was
last used; one unused for more than ``[web] idle_minutes`` (or unknown to this process, e.g.
after a restart) is ended with :func:`faceledger.services.accounts.logout` (recorded with the
reason ``idle``) and the person signs in again.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
from datetime import datetime, timedelta

from fastapi import Request
from starlette.responses import Response

from faceledger.config import WebSettings
from faceledger.services.browser_devices import Ceremony

SESSION_COOKIE = "faceledger_session"
PRESESSION_COOKIE = "faceledger_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: The pre-session cookie's lifetime: a sign-in form left open longer is refused once.
PRESESSION_SECONDS = 2 * 60 * 60
_LOOPBACK_NAMES = frozenset({"localhost"})


class CsrfKeys:
    """Makes and checks the CSRF tokens of one app (the key lives only in this process)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def token_for(self, binding: str) -> str:
        """The token a form must carry for ``binding`` (``session:<token>`` or ``pre:<value>``)."""
        return hmac.new(self._key, binding.encode("utf-8"), hashlib.sha256).hexdigest()

    def accepts(self, binding: str | None, presented: str | None) -> bool:
        if not binding or not presented:
            return False
        return hmac.compare_digest(self.token_for(binding), presented.strip())


class IdleSessions:
    """When each page session was last used, in this process; thread-safe."""

    def __init__(self) -> None:
        self._seen: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def start(self, session_id: int, now: datetime) -> None:
        with self._lock:
            self._seen[session_id] = now

    def touch(self, session_id: int, now: datetime, idle: timedelta) -> bool:
        """Record a use; False (and forget it) when it was idle longer than ``idle``, or unknown."""
        with self._lock:
            last = self._seen.get(session_id)
            if last is None or now - last > idle:
                self._seen.pop(session_id, None)
                return False
            self._seen[session_id] = now
            return True

    def forget(self, session_id: int) -> None:
        with self._lock:
            self._seen.pop(session_id, None)


class Ceremonies:
    """The WebAuthn challenge waiting for each page session's browser, in this process; thread-safe.

    One at a time per session: a new one replaces the last, and each is taken (removed) when the
    browser's answer arrives, so a challenge is answered at most once. Expired ones are dropped
    whenever a new one is put.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, Ceremony] = {}
        self._lock = threading.Lock()

    def put(self, ceremony: Ceremony, now: datetime) -> None:
        with self._lock:
            for session_id in [k for k, v in self._waiting.items() if v.expires_at <= now]:
                del self._waiting[session_id]
            self._waiting[ceremony.session_id] = ceremony

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def take(self, session_id: int) -> Ceremony | None:
        with self._lock:
            return self._waiting.pop(session_id, None)


def is_loopback_http(request: Request) -> bool:
    """Whether ``request`` came over plain HTTP to this machine's loopback address."""
    if request.url.scheme != "http":
        return False
    host = (request.url.hostname or "").strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_cookie(request: Request, settings: WebSettings) -> bool:
    """Whether the session cookie is marked ``Secure`` on this request (see ``[web] secure_cookies``)."""
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    return not is_loopback_http(request)


def set_cookie(
    response: Response, request: Request, settings: WebSettings, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, settings),
    )


def clear_cookie(response: Response, request: Request, settings: WebSettings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=secure_cookie(request, settings)
    )


def session_token(request: Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE, "").strip()
    return value or None


def presession(request: Request) -> str | None:
    value = request.cookies.get(PRESESSION_COOKIE, "").strip()
    return value or None


def new_presession() -> str:
    return secrets.token_urlsafe(32)
