"""Sign-in and sign-out, who am I, and creating the first administrator."""

from __future__ import annotations

from fastapi import APIRouter, status

from faceledger.errors import ValidationError
from faceledger.services import accounts
from faceledger.web.deps import DataDirDep, DeviceDep, NowDep, PrincipalDep, TokenDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.accounts import (
    ActivatedOut,
    ActivateIn,
    BootstrapClaim,
    BootstrapStatus,
    LoginRequest,
    LoginResponse,
    PrincipalOut,
    UserOut,
    UserWithTotp,
)

router = APIRouter(prefix="/api/v1/auth", tags=["sign-in"], responses=COMMON_RESPONSES)


@router.post("/login", response_model=LoginResponse)
def login(body: LoginRequest, dd: DataDirDep, device: DeviceDep, now: NowDep) -> LoginResponse:
    """Sign in with username, password and (where the account has one) the authenticator code.

    Send the device header from a registered agency device: the session is bound to it,
    and searches are refused from sessions opened without one. Every attempt is recorded.
    """
    principal = accounts.authenticate(
        dd, username=body.username, password=body.password, totp=body.totp, device=device, now=now
    )
    assert principal.session_token is not None
    return LoginResponse(
        token=principal.session_token, expires_at=principal.expires_at, principal=PrincipalOut.of(principal)
    )


@router.post("/activate", response_model=ActivatedOut)
def activate(body: ActivateIn, dd: DataDirDep, now: NowDep) -> ActivatedOut:
    """Activate your account with the one-time code from the administrator and your own password.

    Returns your TOTP enrolment URI once (add it to your authenticator app; your first
    sign-in with a code confirms it). You can sign in once a supervisor of your unit has
    vouched for you. A wrong, expired or used code gets one answer (401), is recorded, and
    counts like a failed sign-in towards the throttle.
    """
    uri = accounts.activate(dd, username=body.username, code=body.code, password=body.password, now=now)
    return ActivatedOut(totp_uri=uri)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: PrincipalDep, token: TokenDep, dd: DataDirDep, now: NowDep) -> None:
    """End this session (API tokens are revoked instead: POST /api/v1/tokens/{id}/revoke)."""
    if principal.session_id is None:
        raise ValidationError(
            "an API token is not signed out; revoke it instead (POST /api/v1/tokens/{token_id}/revoke)"
        )
    accounts.logout(dd, token, now=now)


@router.get("/me", response_model=PrincipalOut)
def me(principal: PrincipalDep) -> PrincipalOut:
    """Who this request acts as: roles, unit, device, second factor."""
    return PrincipalOut.of(principal)


@router.get("/bootstrap", response_model=BootstrapStatus)
def bootstrap_status(dd: DataDirDep) -> BootstrapStatus:
    """Whether the first administrator is still to be created (no account exists yet)."""
    return BootstrapStatus(needed=accounts.needs_bootstrap(dd))


@router.post("/bootstrap", response_model=UserWithTotp, status_code=status.HTTP_201_CREATED)
def claim_bootstrap(body: BootstrapClaim, dd: DataDirDep, now: NowDep) -> UserWithTotp:
    """Create the first system administrator with the one-time secret the server printed at start.

    Returns the TOTP enrolment URI once: add it to an authenticator app, then sign in with a
    code. Works only while no account exists; wrong, used and expired secrets are recorded.
    """
    user, uri = accounts.claim_bootstrap(
        dd,
        body.secret,
        body.username,
        body.password,
        organisation=body.organisation,
        unit=body.unit,
        display_name=body.display_name,
        now=now,
    )
    return UserWithTotp(user=UserOut.of(user), totp_uri=uri)
