"""Headers on every response: nothing cached, nothing sniffed, nothing loaded from elsewhere.

Almost every answer of the API holds a credential, personal data or a face image, so every
response gets ``Cache-Control: no-store`` (a shared workstation's browser cache or a proxy
must not keep any of it), except Swagger UI's own static files under :data:`DOCS_ASSETS`,
which hold nothing of the agency's. Every response also gets ``X-Content-Type-Options:
nosniff`` (an image is never run as a script), ``Referrer-Policy: no-referrer`` and a
Content-Security-Policy that lets nothing load or run: the API answers JSON and images.
The ``/docs`` page sets its own policy (:func:`docs_page_policy`): its scripts, styles and
the OpenAPI document come from this service only, and its one inline script is allowed by
its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Where Swagger UI's files (from the swagger-ui-bundle-v2 package) are served.
DOCS_ASSETS = "/docs/assets"

#: For everything but the /docs page: no script, style, frame or form of any origin.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_page_policy(html: str) -> str:
    """The CSP of the /docs page ``html``: its own assets, plus its inline scripts by hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


class SecurityHeadersMiddleware:
    """Add the headers above to every HTTP response (keeping a CSP a route set itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asset = str(scope.get("path", "")).startswith(DOCS_ASSETS + "/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = API_POLICY
                if not asset:
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, with_headers)
