"""Request size limits, enforced on the bytes that actually arrive.

A ``Content-Length`` over the limit is refused before the body is read, but the header is
only the client's claim: a chunked upload has none, and a lying client sends more than it
announced. So the body stream itself is counted, and reading stops (413) at the first byte
over the limit, before it is parsed, spooled to disk or decoded.

Uploads (``multipart/form-data``: probe photos, gallery images) may be as large as two
images at the configured image byte limit; every other body (JSON) gets a much smaller
limit, since nothing the API takes as JSON is big.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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
        if declared.strip().isdigit() and int(declared) > limit:
            await _refuse(send, limit)
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
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    error = RequestTooLargeError(limit)
    body = json.dumps(error_body("request_too_large", str(error.detail))).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
