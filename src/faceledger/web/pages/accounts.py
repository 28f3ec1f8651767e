"""The accounts pages for system administrators (and, read-only, auditors).

``GET /admin/accounts`` lists every account with its standing; a system administrator creates
one there (its one-time activation code is shown once, on the answer page, never stored).
``GET /admin/accounts/{username}`` shows one account, with forms to replace its roles, suspend or
unsuspend it (with a reason), set or clear its expiry and trial flag, unlock it after failed
sign-ins, and issue a new activation code (a password reset). Every form posts to the same
service as the API's ``/api/v1/users`` routes (:mod:`faceledger.services.accounts`), which asks
the door (``manage_accounts``), records the change or the refusal, and refuses with the reason.
Every form carries the session's CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, tzinfo
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain.roles import Role
from faceledger.errors import ValidationError
from faceledger.services import accounts
from faceledger.services.accounts.records import User
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.pages.routes import (
    PagesDep,
    SignedIn,
    check_csrf,
    current_or_sign_in,
    signed_in_page,
)

router = APIRouter(include_in_schema=False)

Field = Annotated[str, Form()]
Roles = Annotated[list[str], Form()]
#: The longest value any field of these forms takes (the services check the real rules).
MAX_FIELD = 500
ROLES = tuple(role.value for role in Role)
#: Each change a form makes, as the notice after it says it.
CHANGES = {
    "roles": "The roles were replaced.",
    "suspend": "The account is suspended; its sessions have ended.",
    "unsuspend": "The account is no longer suspended.",
    "expiry": "The expiry was saved.",
    "unlock": "The account is unlocked.",
}


def _checked(**fields: str) -> dict[str, str]:
    for name, value in fields.items():
        if len(value) > MAX_FIELD:
            raise ValidationError(
                f"the field {name.replace('_', ' ')!r} takes at most {MAX_FIELD} characters"
            )
    return fields


def _day_end(value: str, zone: tzinfo) -> datetime | None:
    """``YYYY-MM-DD`` as the end of that day in ``zone`` (an account expires after its last day)."""
    if not value.strip():
        return None
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ValidationError(f"the expiry {value[:20]!r} is not a date written YYYY-MM-DD") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=zone).astimezone(UTC)


def standing(user: User, now: datetime) -> str:
    """The account's standing in words, the most pressing first."""
    if user.suspended:
        return "suspended"
    if user.is_expired(now):
        return "expired"
    if user.is_locked(now):
        return "locked after failed sign-ins"
    return {"needs_activation": "awaiting activation", "needs_vouch": "awaiting a supervisor's vouch"}.get(
        user.state, "active"
    )


def _render(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    current: SignedIn,
    template: str,
    **context: Any,
) -> Response:
    zone = pages.policy(dd).zone
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        template,
        standing=lambda user: standing(user, now),
        day=lambda moment: "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d"),
        all_roles=ROLES,
        **context,
    )


@router.get("/admin/accounts", response_class=HTMLResponse)
def account_list(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    users = accounts.list_users(dd, current.principal, now=now)
    may_change = Role.SYSTEM_ADMIN in current.principal.scopes
    return _render(request, pages, dd, now, current, "accounts.html", users=users, may_change=may_change)


@router.post("/admin/accounts", response_class=HTMLResponse)
def create_account(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    username: Field = "",
    display_name: Field = "",
    organisation: Field = "",
    unit: Field = "",
    roles: Roles | None = None,
    expires_on: Field = "",
    trial: Field = "",
    csrf_token: Field = "",
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(username=username, display_name=display_name, organisation=organisation, unit=unit)
    activation = accounts.create_user(
        dd,
        current.principal,
        username=username,
        display_name=display_name,
        organisation=organisation,
        unit=unit,
        roles=roles or [],
        expires_at=_day_end(expires_on, pages.policy(dd).zone),
        trial=trial == "on",
        now=now,
    )
    return _render(
        request, pages, dd, now, current, "account_code.html", activation=activation, what="created"
    )


@router.get("/admin/accounts/{username}", response_class=HTMLResponse)
def account_page(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, username: str) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    user = accounts.get_user(dd, current.principal, _checked(username=username)["username"], now=now)
    may_change = Role.SYSTEM_ADMIN in current.principal.scopes
    changed = CHANGES.get(request.query_params.get("changed", ""))
    return _render(
        request, pages, dd, now, current, "account.html", user=user, may_change=may_change, changed=changed
    )


@router.post("/admin/accounts/{username}/{change}", response_class=HTMLResponse)
def change_account(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    username: str,
    change: str,
    roles: Roles | None = None,
    reason: Field = "",
    expires_on: Field = "",
    trial: Field = "",
    csrf_token: Field = "",
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(username=username, reason=reason)
    by = current.principal
    if change == "roles":
        accounts.set_roles(dd, by, username, roles or [], now=now)
    elif change == "suspend":
        accounts.suspend(dd, by, username, reason=reason, now=now)
    elif change == "unsuspend":
        accounts.unsuspend(dd, by, username, now=now)
    elif change == "expiry":
        expires = _day_end(expires_on, pages.policy(dd).zone)
        accounts.set_expiry(dd, by, username, expires_at=expires, trial=trial == "on", now=now)
    elif change == "unlock":
        accounts.unlock(dd, by, username, now=now)
    elif change == "password":
        activation = accounts.reset_password(dd, by, username, now=now)
        return _render(
            request, pages, dd, now, current, "account_code.html", activation=activation, what="reset"
        )
    else:
        raise ValidationError(f"unknown change {change[:40]!r} ({', '.join(CHANGES)} or password)")
    return RedirectResponse(f"/admin/accounts/{quote(username, safe='')}?changed={change}", status_code=303)
