"""Request size limits, enforced on the bytes that actually arrive.

A ``Content-Length`` over the limit is refused before the body is read, but the header is
only the client's claim: a chunked upload has none, and a lying client sends more than it
announced. So the body stream itself is counted, and reading stops (413) at the first byte
over the limit, before it is parsed, spooled to disk or decoded.

Uploads (``multipart/form-data``: probe photos, gallery images) may be as large as two
images at the configured image byte limit; every other body (JSON) gets a much smaller
limit, since nothing the API takes as JSON is big.

Sign-in (and account activation) is also throttled (:class:`SignInThrottleMiddleware`, with
the ``limits`` library): failed sign-ins and activations are counted per username and per
client address in a moving window, and once either count is spent the route answers 429
with ``Retry-After`` without checking the password. Only failures count, so people who
sign in correctly are never slowed; the counts are held in this process's memory and
start afresh when it restarts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceledger.config import ImageLimits
from faceledger.web.errors import RequestTooLargeError, error_body

#: Room for the multipart framing and the form fields next to the files.
MULTIPART_OVERHEAD = 256 * 1024


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How many bytes a request body may have: JSON and other bodies, and multipart uploads."""

    json_bytes: int = 2 * 1024 * 1024
    upload_bytes: int = 2 * ImageLimits().max_bytes + MULTIPART_OVERHEAD

    @classmethod
    def for_images(cls, limits: ImageLimits) -> BodyLimits:
        """Uploads sized for a verification: two images at the image byte limit."""
        return cls(upload_bytes=2 * limits.max_bytes + MULTIPART_OVERHEAD)

    def for_content_type(self, content_type: str) -> int:
        if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
            return self.upload_bytes
        return self.json_bytes


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413, whatever ``Content-Length`` says."""

    def __init__(self, app: ASGIApp, limits: BodyLimits = BodyLimits()) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_content_type(_header(scope, b"content-type"))
        declared = _header(scope, b"content-length")
        page = is_page_path(str(scope.get("path", "")))
        if declared.strip().isdigit() and int(declared) > limit:
            await _refuse(send, limit, page=page)
            return
        started = False
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLargeError(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except RequestTooLargeError:
            # Raised where nothing turned it into a response (e.g. read outside body parsing).
            if started:
                raise
            await _refuse(send, limit, page=page)


#: Paths of the API and its documents; every other path is a web page (faceledger.web.pages).
API_PREFIXES = ("/api/", "/openapi.json", "/docs")


def is_page_path(path: str) -> bool:
    """Whether ``path`` belongs to the web pages, whose errors are HTML, rather than to the API."""
    return not (path.startswith(API_PREFIXES) or path == "/api")


def _plain_page(title: str, message: str) -> bytes:
    """A minimal HTML error page, for answers given before any route or template is reached."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} - faceledger</title>'
        f"</head><body><main><h1>{title}</h1><p>{message}</p>"
        '<p><a href="/">Back to faceledger</a></p></main></body></html>'
    ).encode()


async def _refuse(send: Send, limit: int, *, page: bool = False) -> None:
    error = RequestTooLargeError(limit)
    if page:
        body = _plain_page("Request too large", str(error.detail))
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps(error_body("request_too_large", str(error.detail))).encode("utf-8")
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


#: The routes the throttle guards (activation codes are guessed like passwords, if anyone tries).
LOGIN_PATH = "/api/v1/auth/login"
ACTIVATE_PATH = "/api/v1/auth/activate"
THROTTLED_PATHS = frozenset({LOGIN_PATH, ACTIVATE_PATH})
#: The web pages' sign-in and activation forms (faceledger.web.pages), throttled with the same counts.
PAGE_SIGN_IN_PATH = "/signin"
PAGE_ACTIVATE_PATH = "/activate"
PAGE_THROTTLED_PATHS = frozenset({PAGE_SIGN_IN_PATH, PAGE_ACTIVATE_PATH})


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """How many failed sign-ins a username and a client address may have in a moving window.

    Written as the ``limits`` library parses them ("10 per 15 minutes"). Several
    workstations behind one proxy share an address, hence the larger address limit.
    """

    per_username: str = "10 per 15 minutes"
    per_address: str = "30 per 15 minutes"


class SignInThrottleMiddleware:
    """Answer 429 to sign-ins for a username, or from an address, with too many recent failures."""

    def __init__(self, app: ASGIApp, limits: SignInLimits = SignInLimits()) -> None:
        self.app = app
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.items: dict[str, RateLimitItem] = {
            "username": parse(limits.per_username),
            "address": parse(limits.per_address),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in THROTTLED_PATHS | PAGE_THROTTLED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        client = scope.get("client")
        keys = {"address": str(client[0]) if client else "unknown"}
        username = _username(body)
        if username is not None:
            keys["username"] = username
        for kind, key in keys.items():
            item = self.items[kind]
            if not self.limiter.test(item, kind, key):
                reset = self.limiter.get_window_stats(item, kind, key).reset_time
                page = scope.get("path") in PAGE_THROTTLED_PATHS
                await _too_many(send, kind, max(1, int(reset - time.time()) + 1), page=page)
                return
        status = 0

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, _replay(body, receive), watched_send)
        if status == 401:
            for kind, key in keys.items():
                self.limiter.hit(self.items[kind], kind, key)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replayed


def _username(body: bytes) -> str | None:
    """The username a sign-in body names (case-folded, as accounts are looked up), if any.

    The API sends JSON; the pages' forms send ``application/x-www-form-urlencoded``.
    """
    try:
        data = json.loads(body)
    except ValueError:
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            return None
        data = {key: values[0] for key, values in form.items() if values}
    name = data.get("username") if isinstance(data, dict) else None
    return name.strip().casefold()[:256] if isinstance(name, str) else None


async def _too_many(send: Send, kind: str, retry_after: int, *, page: bool = False) -> None:
    message = (
        f"too many failed sign-ins {'for this username' if kind == 'username' else 'from this address'}; "
        f"try again in {retry_after} seconds"
    )
    if page:  # a browser's form: a page that says so, not JSON
        body = _plain_page("Too many attempts", message + ".")
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps(error_body("too_many_attempts", message)).encode("utf-8")
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"retry-after", str(retry_after).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
