"""Accounts: create, read and change people's standing (system administrators; auditors read).

The account services check who may do each thing (the fixed role table, and that nobody
changes their own standing) and record every change and refusal in the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from faceledger.services import accounts
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.accounts import (
    ActivationOut,
    ExpiryIn,
    RolesIn,
    SuspendIn,
    UserCreate,
    UserOut,
    UserUpdate,
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


@router.post("", response_model=ActivationOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> ActivationOut:
    """Create an account waiting for activation; returns its one-time activation code (shown once).

    No password is chosen here and no second factor is returned: the owner activates the
    account with the code and their own password (POST /api/v1/auth/activate), then a
    supervisor of its unit vouches for it (POST /api/v1/users/{username}/vouch).
    """
    activation = accounts.create_user(
        dd,
        principal,
        username=body.username,
        display_name=body.display_name,
        organisation=body.organisation,
        unit=body.unit,
        roles=body.roles,
        expires_at=body.expires_at,
        trial=body.trial,
        now=now,
    )
    return ActivationOut.of(activation)


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


@router.post("/{username}/password", response_model=ActivationOut)
def reset_password(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg
) -> ActivationOut:
    """Reset someone else's account: it needs activation again (a new code) and a new vouch.

    The old password and second factor stop working, and its sessions and API tokens end.
    """
    return ActivationOut.of(accounts.reset_password(dd, principal, username, now=now))


@router.post("/{username}/totp", response_model=ActivationOut)
def enrol_totp(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> ActivationOut:
    """A new second factor: the account needs activation again (a new code) and a new vouch.

    The seed goes to the owner when they activate, never to the administrator.
    """
    return ActivationOut.of(accounts.enrol_totp(dd, principal, username, now=now))


@router.post("/{username}/vouch", response_model=UserOut)
def vouch(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> UserOut:
    """Vouch, as a supervisor of the account's unit, that the activated account is held by its owner.

    After the owner's activation; not by whoever created the account or issued its code.
    The account can sign in once it is both activated and vouched for.
    """
    return UserOut.of(accounts.vouch(dd, principal, username, now=now))


@router.post("/{username}/unlock", response_model=UserOut)
def unlock(principal: PrincipalDep, dd: DataDirDep, now: NowDep, username: UsernameArg) -> UserOut:
    """Lift a lockout after repeated failed sign-ins."""
    return UserOut.of(accounts.unlock(dd, principal, username, now=now))
