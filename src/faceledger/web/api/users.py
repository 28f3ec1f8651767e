"""Accounts: create, read and change people's standing (system administrators; auditors read).

The account services check who may do each thing (the fixed role table, and that nobody
changes their own standing) and record every change and refusal in the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from faceledger.domain.roles import requires_mfa
from faceledger.services import accounts
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.accounts import (
    ExpiryIn,
    PasswordIn,
    RolesIn,
    SuspendIn,
    TotpOut,
    UserCreate,
    UserOut,
    UserUpdate,
    UserWithTotp,
)
from faceledger.web.models.common import Page, slice_page

router = APIRouter(prefix="/api/v1/users", tags=["accounts"], responses=COMMON_RESPONSES)

UsernameArg = Annotated[
    str, Path(min_length=1, max_length=64, description="The account's username, e.g. j.smith.")
]


@router.get("", response_model=Page[UserOut])
def list_users(principal: PrincipalDep, dd: DataDirDep, now: NowDep, page: PageDep) -> Page[UserOut]:
    """Every account (system administrators and auditors)."""
    users = [UserOut.of(u) for u in accounts.list_users(dd, principal, now=now)]
    return slice_page(users, limit=page.limit, offset=page.offset)


@router.post("", response_model=UserWithTotp, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> UserWithTotp:
    """Create an account; for roles that need a second factor, its TOTP enrolment URI (shown once)."""
    user = accounts.create_user(
        dd,
        principal,
        username=body.username,
        display_name=body.display_name,
        organisation=body.organisation,
        unit=body.unit,
        roles=body.roles,
        password=body.password,
        expires_at=body.expires_at,
        trial=body.trial,
        now=now,
    )
    uri = accounts.enrol_totp(dd, principal, user.username, now=now) if requires_mfa(user.roles) else None
    if uri is not None:
        user = accounts.get_user(dd, principal, user.username, now=now)
    return UserWithTotp(user=UserOut.of(user), totp_uri=uri)


@router.get("/{username}", response_model=UserOut)
def get_user(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> UserOut:
    """One account: anybody may read their own; administrators and auditors anybody's."""
    return UserOut.of(accounts.get_user(dd, principal, username, now=now))


@router.patch("/{username}", response_model=UserOut)
def update_user(
    body: UserUpdate, principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg
) -> UserOut:
    """Change the display name, organisation or unit."""
    user = accounts.update_user(
        dd,
        principal,
        username,
        display_name=body.display_name,
        organisation=body.organisation,
        unit=body.unit,
        now=now,
    )
    return UserOut.of(user)


@router.put("/{username}/roles", response_model=UserOut)
def set_roles(
    body: RolesIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg
) -> UserOut:
    """Replace the account's roles (its API tokens keep only the roles it still holds)."""
    return UserOut.of(accounts.set_roles(dd, principal, username, body.roles, now=now))


@router.post("/{username}/suspend", response_model=UserOut)
def suspend(
    body: SuspendIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg
) -> UserOut:
    """Suspend the account: every request it makes is refused and its sessions end."""
    return UserOut.of(accounts.suspend(dd, principal, username, reason=body.reason, now=now))


@router.post("/{username}/unsuspend", response_model=UserOut)
def unsuspend(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> UserOut:
    return UserOut.of(accounts.unsuspend(dd, principal, username, now=now))


@router.put("/{username}/expiry", response_model=UserOut)
def set_expiry(
    body: ExpiryIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg
) -> UserOut:
    """Set or clear the expiry (a trial account must keep one)."""
    user = accounts.set_expiry(dd, principal, username, expires_at=body.expires_at, trial=body.trial, now=now)
    return UserOut.of(user)


@router.post("/{username}/password", response_model=UserOut)
def reset_password(
    body: PasswordIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg
) -> UserOut:
    """Set a new password for someone else's account; its sessions end."""
    return UserOut.of(accounts.reset_password(dd, principal, username, body.password, now=now))


@router.post("/{username}/totp", response_model=TotpOut)
def enrol_totp(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> TotpOut:
    """Give the account a new TOTP seed (shown once); the old one stops working, its sessions end."""
    return TotpOut(totp_uri=accounts.enrol_totp(dd, principal, username, now=now))


@router.post("/{username}/unlock", response_model=UserOut)
def unlock(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> UserOut:
    """Lift a lockout after repeated failed sign-ins."""
    return UserOut.of(accounts.unlock(dd, principal, username, now=now))
