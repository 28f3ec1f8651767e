"""Requests and responses of sign-in, accounts, devices and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from faceledger.domain.roles import INCOMPATIBLE_ROLES, Role
from faceledger.services.accounts import Activation, ApiToken, Principal, User
from faceledger.services.accounts.hashing import MAX_PASSWORD_CHARS
from faceledger.services.accounts.rows import USERNAME
from faceledger.services.devices import DEVICE_HEADER, DEVICE_ID, Device
from faceledger.web.models.common import VISIBLE_LINE, Label, UtcDatetime, documented

#: A username as given to sign in or activate (any text: a name no account has is refused with 401).
Username = Annotated[str, Field(min_length=1, max_length=64, examples=["j.smith"])]
#: The username of a new account, in the shape the accounts service requires (else 422).
NewUsername = Annotated[
    str,
    Field(
        min_length=2,
        max_length=64,
        examples=["j.smith"],
        json_schema_extra=documented(f"^{USERNAME.pattern}$"),
    ),
]
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_CHARS)]
#: Marks a field whose rule is a setting of the installation (see faceledger.web.app, which
#: writes each app's own into its document): ``new_password`` (a password being chosen: at
#: least ``[accounts] password_min_length`` characters, not blank) and ``token_days`` (at most
#: ``[accounts] token_max_days``).
SETTING_MARK = "x-faceledger-setting"
NewPassword = Annotated[
    str, Field(min_length=1, max_length=MAX_PASSWORD_CHARS, json_schema_extra={SETTING_MARK: "new_password"})
]
Reason = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=documented(VISIBLE_LINE))]
#: Roles an account may hold together: no pair of :data:`INCOMPATIBLE_ROLES` (else 422).
RoleList = Annotated[
    list[Role],
    Field(
        min_length=1,
        max_length=len(Role),
        json_schema_extra={
            "allOf": [
                {"not": {"allOf": [{"contains": {"const": role.value}} for role in sorted(pair.roles)]}}
                for pair in INCOMPATIBLE_ROLES
            ]
        },
    ),
]


# --- sign-in -------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    username: Username
    password: Password
    totp: str | None = Field(
        None, max_length=16, description="The code from the authenticator app, when the account has one."
    )


class PrincipalOut(BaseModel):
    """Who a request acts for, as the token and device header established it."""

    username: str
    user_id: int
    roles: list[Role] = Field(description="The roles this request may use (a token's scopes).")
    organisation: str
    unit: str
    device_id: str | None = Field(description="The registered device the request came from, if any.")
    mfa_verified: bool
    via: Literal["session", "api_token"]
    expires_at: datetime

    @classmethod
    def of(cls, principal: Principal) -> PrincipalOut:
        actor = principal.actor
        return cls(
            username=actor.username,
            user_id=principal.user_id,
            roles=sorted(principal.scopes),
            organisation=actor.organisation,
            unit=actor.unit,
            device_id=actor.device_id,
            mfa_verified=actor.mfa_verified,
            via="api_token" if principal.token_id is not None else "session",
            expires_at=principal.expires_at,
        )


class LoginResponse(BaseModel):
    token: str = Field(description="The session token: send it as 'Authorization: Bearer <token>'.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme name, not a secret
    expires_at: datetime
    principal: PrincipalOut


class BootstrapStatus(BaseModel):
    needed: bool = Field(
        description="True while no account exists: the first administrator is still to be made."
    )


class BootstrapClaim(BaseModel):
    secret: str = Field(min_length=1, max_length=200, description="The one-time secret the server printed.")
    username: NewUsername
    password: NewPassword
    organisation: Label
    unit: Label
    display_name: Label | None = None


# --- accounts ------------------------------------------------------------------------------


class UserOut(BaseModel):
    """An account as an administrator sees it (never its password hash or TOTP seed)."""

    id: int
    username: str
    display_name: str
    organisation: str
    unit: str
    roles: list[Role]
    totp_enrolled: bool
    totp_confirmed: bool
    failed_attempts: int
    locked_until: datetime | None
    suspended: bool
    suspended_reason: str | None
    expires_at: datetime | None
    trial: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    state: Literal["needs_activation", "needs_vouch", "active"] = Field(
        description="needs_activation: its owner has not used the code yet; needs_vouch: a supervisor "
        "of its unit has not vouched yet; active: it may sign in (unless suspended, expired or locked)."
    )
    activation_expires_at: datetime | None
    activation_issued_by: str | None
    activated_at: datetime | None
    vouched_by: str | None
    vouched_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls.model_validate(user.to_dict())


class UserWithTotp(BaseModel):
    user: UserOut
    totp_uri: str | None = Field(
        description="otpauth:// URI to show once as a QR code; None when the account needs no second factor."
    )


class UserCreate(BaseModel):
    """A new account: no password (its owner chooses one when activating it). A trial needs an expiry."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"trial": {"const": False}}},
                {"required": ["expires_at"], "properties": {"expires_at": {"type": "string"}}},
            ]
        },
    )

    username: NewUsername
    display_name: Label
    organisation: Label
    unit: Label
    roles: RoleList
    expires_at: UtcDatetime | None = None
    trial: StrictBool = False


class ActivationOut(BaseModel):
    """An account waiting for its owner, and the one-time code to hand to them in person."""

    user: UserOut
    activation_code: str = Field(
        description="The one-time activation code (fla_...), shown once: the server keeps only a digest. "
        "The owner activates with it (POST /api/v1/auth/activate), then a supervisor of the unit vouches."
    )
    expires_at: datetime = Field(description="When the code stops working.")

    @classmethod
    def of(cls, activation: Activation) -> ActivationOut:
        return cls(
            user=UserOut.of(activation.user),
            activation_code=activation.code,
            expires_at=activation.expires_at,
        )


class ActivateIn(BaseModel):
    username: Username
    code: str = Field(min_length=1, max_length=200, description="The one-time activation code.")
    password: NewPassword = Field(description="Your own new password (the password rules apply).")


class ActivatedOut(BaseModel):
    totp_uri: str = Field(
        description="otpauth:// URI for your authenticator app, shown once: your first sign-in with a "
        "code confirms it. You can sign in once a supervisor of your unit has vouched for you."
    )


class UserUpdate(BaseModel):
    """What to change: at least one of the three (else 422, nothing to change)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("display_name", "organisation", "unit")
            ]
        }
    )

    display_name: Label | None = None
    organisation: Label | None = None
    unit: Label | None = None


class RolesIn(BaseModel):
    roles: RoleList


class SuspendIn(BaseModel):
    reason: Reason


class ExpiryIn(BaseModel):
    """A new expiry. Making an account a trial needs an expiry (so does clearing a trial's, with
    ``trial`` left out: that depends on the account, and is refused with 422)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"trial": {"not": {"const": True}}}},
                {"required": ["expires_at"], "properties": {"expires_at": {"type": "string"}}},
            ]
        }
    )

    expires_at: UtcDatetime | None = Field(description="None: the account never expires.")
    trial: StrictBool | None = Field(default=None, description="None keeps the trial flag as it is.")


# --- devices -------------------------------------------------------------------------------


class DeviceOut(BaseModel):
    id: str
    name: str
    unit: str
    registered_by: str
    registered_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    active: bool

    @classmethod
    def of(cls, device: Device) -> DeviceOut:
        return cls.model_validate(device.to_dict())


class DeviceCreate(BaseModel):
    device_id: str = Field(
        min_length=2,
        max_length=64,
        examples=["lab-ws-03"],
        json_schema_extra=documented(f"^{DEVICE_ID.pattern}$"),
    )
    name: Label
    unit: Label


class DeviceRegistered(BaseModel):
    device: DeviceOut
    credential: str = Field(
        description="The device's credential, shown once; the server keeps only a digest."
    )
    header: str = Field(default=DEVICE_HEADER, description="The HTTP header the device sends it in.")


class BrowserEnrolmentIssued(BaseModel):
    id: int
    device_id: str
    unit: str
    expires_at: datetime
    code: str = Field(
        description="The one-time code, shown once: enter it at /devices/enrol on the device's browser."
    )
    enrol_at: str = Field(default="/devices/enrol", description="The page that takes the code.")


class RevokeIn(BaseModel):
    reason: Reason


# --- API tokens ----------------------------------------------------------------------------


class TokenOut(BaseModel):
    id: int
    username: str
    name: str
    scopes: list[Role]
    mfa: bool
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None
    device_id: str | None = Field(description="The registered device it is accepted with (none: server).")
    server: bool = Field(description="A server-to-server token, bound to no device.")

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls.model_validate(token.to_dict())


class TokenCreate(BaseModel):
    name: Label
    scopes: RoleList = Field(description="Some of your own roles.")
    days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days until it expires (at most the limit).",
        json_schema_extra={SETTING_MARK: "token_days"},
    )
    server: StrictBool = Field(
        default=False,
        description="A server-to-server token bound to no device (only where the policy says "
        "[devices] server_tokens = true); it cannot search or fetch face images.",
    )


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str = Field(description="The API token (flt_...), shown once: send it as a bearer token.")
