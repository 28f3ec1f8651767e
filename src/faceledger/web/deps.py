"""Dependencies the routes declare: the app's state, "now", the device, the signed-in person, a page.

Routes take them as ``Annotated`` aliases (``principal: PrincipalDep``), so that every
route resolves who is asking the same way: the bearer token (a session token from
``POST /api/v1/auth/login``, or an API token) and the device credential header are checked
on every request by :func:`faceledger.services.accounts.principal_from_token`, which reads
the account's standing fresh each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from faceledger.domain import text
from faceledger.errors import AuthenticationError, ValidationError
from faceledger.services import accounts
from faceledger.services.accounts import Principal
from faceledger.services.datadir import DataDir
from faceledger.services.devices import DEVICE_HEADER, DeviceCredential
from faceledger.web.engine import FaceEngine
from faceledger.web.models.common import MAX_OFFSET, documented
from faceledger.web.state import MAX_PAGE, AppState

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A session token (fls_..., from POST /api/v1/auth/login) or an API token (flt_...).",
)
#: The device header's shape (:meth:`DeviceCredential.parse`): blank (no device), or
#: ``<device-id>:<secret>`` in printable ASCII, perhaps between spaces or tabs. Another shape is
#: refused (422); a credential of this shape that no active device has is refused with 401.
DEVICE_CREDENTIAL = r"^[ \t]*$|^[ \t]*[!-9;-~]+:[!-~]+[ \t]*$"


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.faceledger
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_data_dir(state: StateDep) -> DataDir:
    return state.dd


def get_engine(state: StateDep) -> FaceEngine:
    return state.engine


def get_now(state: StateDep) -> datetime:
    return state.now()


DataDirDep = Annotated[DataDir, Depends(get_data_dir)]
EngineDep = Annotated[FaceEngine, Depends(get_engine)]
NowDep = Annotated[datetime, Depends(get_now)]


def get_device(
    value: Annotated[
        str,
        Header(
            alias=DEVICE_HEADER,
            description=(
                "The registered agency device the request comes from, as <device-id>:<secret> "
                "(printed once by `faceledger device register` or POST /api/v1/devices). Without it "
                "the request acts from no device, and the policy refuses searches when it says so."
            ),
            json_schema_extra=documented(DEVICE_CREDENTIAL),
        ),
    ] = "",
) -> DeviceCredential | None:
    # A header is text or absent, never null: absent and blank both mean no device.
    return DeviceCredential.parse(value) if value.strip() else None


DeviceDep = Annotated[DeviceCredential | None, Depends(get_device)]


def get_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise AuthenticationError(
            "sign in first: send 'Authorization: Bearer <token>' with a session token from "
            "POST /api/v1/auth/login, or an API token"
        )
    return credentials.credentials.strip()


TokenDep = Annotated[str, Depends(get_token)]


def get_principal(dd: DataDirDep, token: TokenDep, device: DeviceDep, now: NowDep) -> Principal:
    return accounts.principal_from_token(dd, token, device, now=now)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(get_page)]


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameter names (aliases) an operation takes, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """Refuse (422) a query parameter the operation does not take, naming it and those it takes.

    A misspelt filter (``?actr=alice``) would otherwise be ignored and answer as if no filter
    had been asked for; an auditor reading the answer would be misled.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        shown = text.escape_control(unknown[0][:40])
        raise ValidationError(f"unknown query parameter {shown!r} (this operation takes: {takes})")
