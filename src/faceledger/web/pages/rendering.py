"""Rendering a page: the Jinja2 templates, the frame every page shows, times, the page CSP, vendor files.

The frame says who is signed in (username, display name, unit, roles), from which device
("not a registered device" when the request presented none the agency registered), and which
policy version is in force. Times are written ``YYYY-MM-DD HH:MM <zone>`` in the policy's
timezone, or UTC when no policy is loaded (:func:`format_time`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from faceledger import __version__
from faceledger.config import WebSettings
from faceledger.domain.roles import Action, roles_permitting
from faceledger.services import accounts, policies
from faceledger.services.accounts import Principal
from faceledger.services.datadir import DataDir
from faceledger.web.pages.session import CSRF_FIELD, Ceremonies, CsrfKeys, IdleSessions

log = logging.getLogger("faceledger.web")

WEB = Path(__file__).resolve().parents[1]
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
#: ``web-assets/node_modules`` of the source tree (where scripts/setup runs ``npm ci``).
SOURCE_ASSETS = WEB.parents[2] / "web-assets" / "node_modules"
#: Where the project's own CSS and JS are served, and the third-party files (:data:`VENDOR_FILES`).
STATIC_URL = "/static/faceledger"
VENDOR_URL = "/static/vendor"
#: The third-party files served under :data:`VENDOR_URL`: name -> path inside node_modules.
VENDOR_FILES: Mapping[str, str] = {"htmx.min.js": "htmx.org/dist/htmx.min.js"}

#: The pages' Content-Security-Policy: scripts and styles only as files from this service.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
TIME_FORMAT = "%Y-%m-%d %H:%M"


def format_time(moment: datetime | None, zone: tzinfo) -> str:
    """``moment`` as ``YYYY-MM-DD HH:MM <zone abbreviation>`` in ``zone`` ("" for None)."""
    if moment is None:
        return ""
    local = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(zone)
    return f"{local.strftime(TIME_FORMAT)} {local.tzname() or zone}"


def vendor_files(root: Path) -> dict[str, Path]:
    """The :data:`VENDOR_FILES` present under ``root``; logs the setup step when any is missing."""
    found = {name: root / inside for name, inside in VENDOR_FILES.items() if (root / inside).is_file()}
    missing = sorted(set(VENDOR_FILES) - set(found))
    if missing:
        log.warning(
            "web pages: %s not found under %s; the pages work without them, but run ./scripts/setup "
            "(it runs `npm ci` in web-assets/) or set [web] assets_dir to the folder holding node_modules",
            ", ".join(missing),
            root,
        )
    return found


@dataclass(frozen=True, slots=True)
class Frame:
    """What every signed-in page shows about who, where and under which policy."""

    username: str
    display_name: str
    organisation: str
    unit: str
    roles: tuple[str, ...]
    device: str | None
    session_expires: str


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    version: str | None
    zone: tzinfo
    zone_name: str


class Pages:
    """The pages' shared objects of one app: templates, CSRF keys, idle sessions, vendor files."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.csrf = CsrfKeys()
        self.idle = IdleSessions()
        self.ceremonies = Ceremonies()
        self.vendor = vendor_files(settings.assets_dir or SOURCE_ASSETS)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["search_roles"] = sorted(role.value for role in roles_permitting(Action.SEARCH))

    def policy(self, dd: DataDir) -> PolicyInForce:
        stored = policies.active_stored_policy(dd)
        if stored is None:
            return PolicyInForce(None, UTC, "UTC")
        policy = stored.policy()
        return PolicyInForce(policy.version, policy.timezone, str(policy.timezone))

    def frame(self, dd: DataDir, principal: Principal, zone: tzinfo, now: datetime) -> Frame:
        user = accounts.get_user(dd, principal, principal.username, now=now)  # one's own: no role needed
        return Frame(
            username=user.username,
            display_name=user.display_name,
            organisation=user.organisation,
            unit=user.unit,
            roles=tuple(sorted(role.value for role in principal.scopes)),
            device=principal.actor.device_id,
            session_expires=format_time(principal.expires_at, zone),
        )

    def render(
        self,
        request: Request,
        template: str,
        *,
        dd: DataDir,
        now: datetime,
        csrf_token: str,
        frame: Frame | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        policy = self.policy(dd)
        html = self.env.get_template(template).render(
            request_path=request.url.path,
            static_url=STATIC_URL,
            htmx_url=f"{VENDOR_URL}/htmx.min.js" if "htmx.min.js" in self.vendor else None,
            csrf_field=CSRF_FIELD,
            csrf_token=csrf_token,
            frame=frame,
            policy=policy,
            now=format_time(now, policy.zone),
            version=__version__,
            **context,
        )
        return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": PAGE_POLICY})
