"""The web pages for people, served by ``faceledger serve`` at ``/`` (docs/web.md).

Server-rendered (Jinja2 templates in ``faceledger/web/templates``), with the project's own
CSS and JS from ``faceledger/web/static`` and third-party files (htmx) that ``scripts/setup``
installs from the npm registry, all served by this service: nothing comes from a CDN. Every
page calls the same services as the API, so nothing a page does escapes the policy or the log.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

from faceledger.config import WebSettings
from faceledger.web.pages import (
    accounts,
    audit,
    cases,
    device_admin,
    devices,
    errors,
    galleries,
    policy,
    review,
    routes,
    search,
)
from faceledger.web.pages.rendering import STATIC, STATIC_URL, VENDOR_URL, Pages


def install(app: FastAPI, settings: WebSettings) -> None:
    """Add the pages, their files and their HTML error pages to ``app`` (after the API's errors)."""
    pages = Pages(settings)
    app.state.faceledger_pages = pages
    errors.install(app)
    vendor: dict[str, Path] = pages.vendor

    @app.get(VENDOR_URL + "/{name}", include_in_schema=False)
    def vendor_file(name: str) -> FileResponse:
        path = vendor.get(name)
        if path is None:
            raise HTTPException(404)
        return FileResponse(path, media_type="text/javascript")

    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC)), name="faceledger-static")
    app.include_router(routes.router)
    app.include_router(devices.router)
    app.include_router(cases.router)
    app.include_router(accounts.router)
    app.include_router(audit.router)
    app.include_router(policy.router)
    app.include_router(search.router)
    app.include_router(galleries.router)
    app.include_router(device_admin.router)
    app.include_router(review.router)
