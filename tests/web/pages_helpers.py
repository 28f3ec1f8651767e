"""What the page tests share: an installation behind the real app, with a browser-like client.

The client talks to ``http://127.0.0.1`` so that, under the default ``[web] secure_cookies =
"auto"``, the session cookie is not ``Secure`` and the client sends it back over plain HTTP
(as a browser on the development machine does).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient
from web_helpers import PASSWORD, Agency, Clock, open_installation

from faceledger.config import WebSettings
from faceledger.services.datadir import init_data_dir
from faceledger.web import create_app

LOCAL = "http://127.0.0.1"
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@contextmanager
def page_agency(
    folder: Path, template: Path, *, web: WebSettings | None = None, base_url: str = LOCAL
) -> Iterator[Agency]:
    """A new installation (first administrator, one device) served to a client at ``base_url``."""
    clock = Clock()
    dd = open_installation(folder, template)
    if web is not None:  # the same installation, opened with these [web] settings
        dd.close()
        dd = init_data_dir(folder, settings=dd.settings.with_overrides(web=web))
    try:
        app = create_app(dd, clock=clock)
        with TestClient(app, base_url=base_url, raise_server_exceptions=False) as client:
            yield Agency.start(client, dd, clock)
    finally:
        dd.close()


def csrf_of(response: httpx2.Response) -> str:
    """The CSRF token of the (first) form on a page."""
    found = _CSRF.search(response.text)
    assert found, f"no CSRF field on the page:\n{response.text[:2000]}"
    return found.group(1)


def sign_in(
    agency: Agency, username: str, *, password: str = PASSWORD, code: str | None = None
) -> httpx2.Response:
    """Sign in on the page as a browser does: fetch the form (its CSRF token), then post it."""
    form = agency.client.get("/signin")
    assert form.status_code == 200, form.text
    agency.clock.advance(seconds=31)  # a fresh TOTP step: no code is reused
    typed = agency.code(username) if code is None else code
    return agency.client.post(
        "/signin",
        data={"username": username, "password": password, "totp": typed or "", "csrf_token": csrf_of(form)},
        follow_redirects=False,
    )
