"""Agency devices searches are accepted from: register (credential shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from faceledger.services import browser_devices, devices
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.accounts import (
    BrowserEnrolmentIssued,
    DeviceCreate,
    DeviceOut,
    DeviceRegistered,
    RevokeIn,
)
from faceledger.web.models.common import Page, slice_page

router = APIRouter(prefix="/api/v1/devices", tags=["devices"], responses=COMMON_RESPONSES)


@router.get("", response_model=Page[DeviceOut])
def list_devices(principal: PrincipalDep, dd: DataDirDep, now: NowDep, page: PageDep) -> Page[DeviceOut]:
    """Every registered device, revoked ones included (system administrators and auditors)."""
    found = [DeviceOut.of(d) for d in devices.list_devices(dd, principal, now=now)]
    return slice_page(found, limit=page.limit, offset=page.offset)


@router.post("", response_model=DeviceRegistered, status_code=status.HTTP_201_CREATED)
def register_device(
    body: DeviceCreate, principal: PrincipalDep, dd: DataDirDep, now: NowDep
) -> DeviceRegistered:
    """Register a device; its credential is in the answer and nowhere else."""
    device, credential = devices.register_device(
        dd, principal, device_id=body.device_id, name=body.name, unit=body.unit, now=now
    )
    return DeviceRegistered(device=DeviceOut.of(device), credential=credential.header_value())


@router.post("/{device_id}/revoke", response_model=DeviceOut)
def revoke_device(
    body: RevokeIn,
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    device_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> DeviceOut:
    """Revoke a device and end every session opened on it (its id is never reused)."""
    return DeviceOut.of(devices.revoke_device(dd, principal, device_id, reason=body.reason, now=now))


@router.post(
    "/{device_id}/browser-enrolments",
    response_model=BrowserEnrolmentIssued,
    status_code=status.HTTP_201_CREATED,
)
def issue_browser_enrolment(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    device_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> BrowserEnrolmentIssued:
    """Issue a one-time code that enrols one browser as this device (WebAuthn, at /devices/enrol).

    The code is in the answer and nowhere else (the server keeps its SHA-256); it is valid for 15
    minutes and enrols one browser, once.
    """
    issued = browser_devices.issue_enrolment(dd, principal, device_id, now=now)
    return BrowserEnrolmentIssued(
        id=issued.id,
        device_id=issued.device_id,
        unit=issued.unit,
        expires_at=issued.expires_at,
        code=issued.code,
    )
