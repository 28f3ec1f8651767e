"""The devices pages for system administrators (and, read-only, auditors).

``GET /admin/devices`` lists every registered device, revoked ones included (id, name, unit,
state, who registered it and when; the service records no last use, so none is shown). A system
administrator registers a device there (its credential is shown once, on the answer page), revokes
one with a reason (its sessions end), and issues a one-time code that enrols one browser as the
device (shown once; the browser enrols at ``/devices/enrol``). Every form posts to the services the
API's ``/api/v1/devices`` routes call (:mod:`faceledger.services.devices`,
:func:`faceledger.services.browser_devices.issue_enrolment`), which ask the door
(``register_device``), record the change or the refusal, and refuse with the reason. Every form
carries the session's CSRF token.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain.roles import Role
from faceledger.errors import ValidationError
from faceledger.services import browser_devices, devices
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.pages.devices import ENROL_PATH
from faceledger.web.pages.routes import (
    PagesDep,
    SignedIn,
    check_csrf,
    current_or_sign_in,
    signed_in_page,
)

router = APIRouter(include_in_schema=False)

Field = Annotated[str, Form()]
#: The longest value any field of these forms takes (the services check the real rules).
MAX_FIELD = 500


def _checked(**fields: str) -> None:
    for name, value in fields.items():
        if len(value) > MAX_FIELD:
            raise ValidationError(
                f"the field {name.replace('_', ' ')!r} takes at most {MAX_FIELD} characters"
            )


@router.get("/admin/devices", response_class=HTMLResponse)
def device_list(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    found = devices.list_devices(dd, current.principal, now=now)
    revoked = request.query_params.get("revoked", "")
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "devices.html",
        devices=found,
        may_change=Role.SYSTEM_ADMIN in current.principal.scopes,
        revoked=revoked if any(d.id == revoked for d in found) else None,
        quote=lambda value: quote(value, safe=""),
    )


@router.post("/admin/devices", response_class=HTMLResponse)
def register_device(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    device_id: Field = "",
    name: Field = "",
    unit: Field = "",
    csrf_token: Field = "",
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(device_id=device_id, name=name, unit=unit)
    device, credential = devices.register_device(
        dd, current.principal, device_id=device_id.strip(), name=name, unit=unit, now=now
    )
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "device_secret.html",
        device_id=device.id,
        what="registered",
        secret=credential.header_value(),
        expires_at=None,
        enrol_path=ENROL_PATH,
    )


@router.post("/admin/devices/{device_id}/revoke", response_class=HTMLResponse)
def revoke_device(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    device_id: str,
    reason: Field = "",
    csrf_token: Field = "",
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(device_id=device_id, reason=reason)
    device = devices.revoke_device(dd, current.principal, device_id, reason=reason, now=now)
    return RedirectResponse(f"/admin/devices?revoked={quote(device.id, safe='')}", status_code=303)


@router.post("/admin/devices/{device_id}/browser-enrolment", response_class=HTMLResponse)
def issue_browser_enrolment(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, device_id: str, csrf_token: Field = ""
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(device_id=device_id)
    issued = browser_devices.issue_enrolment(dd, current.principal, device_id, now=now)
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "device_secret.html",
        device_id=issued.device_id,
        what="enrolment",
        secret=issued.code,
        expires_at=issued.expires_at,
        enrol_path=ENROL_PATH,
    )
