"""Browsers as registered devices: a one-time enrolment, then a WebAuthn assertion at each sign-in.

A system administrator issues a one-time enrolment code for a registered device
(:func:`issue_enrolment`: shown once, kept only as its SHA-256, valid for
:data:`ENROLMENT_MINUTES` minutes, used at most once). On that device, a person signed in to the
pages types it; the browser's authenticator makes a key pair for this service's relying-party id
(:func:`begin_enrolment`, :func:`finish_enrolment`) and the service stores the public key, the
credential id and the sign count for the device. The private key stays in the authenticator (a
platform authenticator keeps it in the machine's TPM or secure element): there is nothing in the
browser profile to copy to a personal device. Credentials the authenticator says may be backed up
or synced (passkeys in a password manager) are refused.

At each sign-in the page asks for an assertion (:func:`begin_confirmation`,
:func:`confirm_device`): a signature over a fresh challenge, for this origin, with a sign count
above the stored one. A count that does not increase means two authenticators hold the key (a
clone): the credential is revoked and the attempt recorded. A verified assertion binds the page
session to the device; from then on :func:`session_device` gives that session the same
:class:`~faceledger.services.devices.DeviceCheck` an API request gets from a device secret, read
fresh on every request, so revoking the device (``faceledger device revoke``) ends it at once.

Every step is written to the audit log: issued, used, and every refusal with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json, parse_registration_credential_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure, WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from faceledger.adapters.store import tables_accounts as ta
from faceledger.audit import events
from faceledger.audit.events import AuditAction, AuditEvent, JsonValue
from faceledger.domain.roles import Action, Role
from faceledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from faceledger.services import audit
from faceledger.services.accounts import hashing
from faceledger.services.accounts.guard import authorize
from faceledger.services.accounts.records import SESSION_PREFIX, from_db, iso, utc

if TYPE_CHECKING:
    from faceledger.services.accounts.records import Principal
    from faceledger.services.datadir import DataDir

ENROLMENT_PREFIX = "fle_"
#: How long an enrolment code is valid after it is issued.
ENROLMENT_MINUTES = 15
#: How long a browser has to answer a registration or assertion challenge.
CEREMONY_SECONDS = 120
#: The longest response (JSON) a browser may send back; a real one is a few kilobytes.
MAX_RESPONSE_CHARS = 64_000
RP_NAME = "faceledger"


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the browser's credential is for: ``id`` (a host name) and the page ``origin`` it must sign."""

    id: str
    origin: str


@dataclass(frozen=True, slots=True)
class IssuedEnrolment:
    """A one-time enrolment code, as issued: ``code`` is its only copy."""

    id: int
    device_id: str
    unit: str
    expires_at: datetime
    code: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "unit": self.unit,
            "expires_at": iso(self.expires_at),
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class Ceremony:
    """A challenge handed to one page session's browser, and what its answer must match.

    ``options_json`` goes to the browser; the rest stays on the server until the answer comes.
    """

    purpose: str  # "enrol" or "confirm"
    session_id: int
    challenge: bytes = field(repr=False)
    options_json: str
    expires_at: datetime
    enrolment_id: int | None = None
    device_id: str | None = None
    allowed: frozenset[bytes] = frozenset()


def _deny(
    dd: DataDir, conn: Connection, actor: str, attempted: str, target: str, reason: str, now: datetime
) -> str:
    audit.record(
        dd, conn, events.policy_denied(actor, attempted=attempted, target=target, reason=reason), now=now
    )
    return reason


def _refused(
    dd: DataDir, actor: str, attempted: str, target: str, reason: str, now: datetime
) -> PermissionDeniedError:
    """Record a refusal in its own (committed) transaction; the caller raises what this returns."""
    with dd.store.begin() as conn:
        _deny(dd, conn, actor, attempted, target, reason, now)
    return PermissionDeniedError(reason)


def _device_event(actor: str, device_id: str, change: str, values: dict[str, JsonValue]) -> AuditEvent:
    details: dict[str, JsonValue] = {"change": change, "values": values}
    return AuditEvent(actor, AuditAction.ACCOUNT_CHANGED, f"device:{device_id}", details)


def _device_row(conn: Connection, device_id: str) -> Row[Any] | None:
    return conn.execute(select(ta.devices).where(ta.devices.c.id == device_id)).first()


def _need_session(by: Principal) -> int:
    if by.session_id is None:
        raise ValidationError(
            "a browser is enrolled and confirmed from a signed-in page session, not with an API token"
        )
    return by.session_id


# --- issuing (a system administrator) --------------------------------------------------------------


def issue_enrolment(dd: DataDir, by: Principal, device_id: str, *, now: datetime) -> IssuedEnrolment:
    """Issue a one-time code that enrols one browser as ``device_id``; the code is shown once."""
    now = utc(now)
    authorize(dd, by, [Action.REGISTER_DEVICE], target=f"device:{device_id}", now=now)
    code = hashing.new_secret(ENROLMENT_PREFIX)
    expires_at = now + timedelta(minutes=ENROLMENT_MINUTES)
    with dd.store.begin() as conn:
        device = _device_row(conn, device_id)
        if device is None:
            raise NotFoundError(
                f"no device {device_id!r} is registered; register it first (faceledger device register)"
            )
        if device.revoked_at is not None:
            reason = f"device {device_id!r} was revoked; a revoked device cannot enrol a browser"
            _deny(dd, conn, by.username, "enrol_browser", f"device:{device_id}", reason, now)
            failure: PermissionDeniedError | None = PermissionDeniedError(reason)
        else:
            failure = None
            key = conn.execute(
                insert(ta.browser_enrolments).values(
                    device_id=device_id,
                    code_hash=hashing.digest(code),
                    issued_by=by.username,
                    issued_at=now,
                    expires_at=expires_at,
                )
            ).inserted_primary_key
            assert key is not None
            enrolment_id = int(key[0])
            values: dict[str, JsonValue] = {"enrolment_id": enrolment_id, "expires_at": iso(expires_at)}
            audit.record(
                dd, conn, _device_event(by.username, device_id, "browser_enrolment_issued", values), now=now
            )
    if failure is not None:
        raise failure
    return IssuedEnrolment(enrolment_id, device_id, device.unit, expires_at, code)


# --- enrolling a browser (on the device, signed in) -------------------------------------------------


def _enrolment_problem(
    dd: DataDir, conn: Connection, by: Principal, code: str, now: datetime
) -> tuple[Row[Any], Row[Any]] | str:
    """The (enrolment, device) rows a code stands for, or the refusal's reason (recorded)."""
    row = conn.execute(
        select(ta.browser_enrolments).where(ta.browser_enrolments.c.code_hash == hashing.digest(code))
    ).first()
    if row is None:
        reason = "unknown browser enrolment code; ask a system administrator for a new one"
        return _deny(dd, conn, by.username, "enrol_browser", "browser_enrolment", reason, now)
    target = f"browser_enrolment:{row.id}"
    if row.used_at is not None:
        reason = (
            f"this browser enrolment code was already used (at {iso(from_db(row.used_at))}); "
            "a code enrols one browser once: ask a system administrator for a new one"
        )
        return _deny(dd, conn, by.username, "enrol_browser", target, reason, now)
    expires_at = from_db(row.expires_at) or row.expires_at
    if now >= expires_at:
        reason = (
            f"this browser enrolment code expired at {iso(expires_at)} ({ENROLMENT_MINUTES} minutes after "
            "it was issued); ask a system administrator for a new one"
        )
        event = events.action_failed(
            by.username, attempted="enrol_browser", target=target, code="expired", reason=reason
        )
        audit.record(dd, conn, event, now=now)
        return reason
    device = _device_row(conn, row.device_id)
    assert device is not None  # a foreign key
    if device.revoked_at is not None:
        reason = f"device {device.id!r} was revoked; its enrolment codes cannot be used"
        return _deny(dd, conn, by.username, "enrol_browser", target, reason, now)
    if device.unit != by.actor.unit and Role.SYSTEM_ADMIN not in by.actor.roles:
        reason = (
            f"device {device.id!r} belongs to unit {device.unit!r}; only a person of that unit or a "
            f"system administrator may enrol a browser as it ({by.username!r} is in unit {by.actor.unit!r})"
        )
        return _deny(dd, conn, by.username, "enrol_browser", target, reason, now)
    return row, device


def begin_enrolment(dd: DataDir, by: Principal, code: str, rp: RelyingParty, *, now: datetime) -> Ceremony:
    """Check ``code`` (refusals recorded) and make the registration challenge for this browser."""
    now = utc(now)
    session_id = _need_session(by)
    code = code.strip()
    if not code.startswith(ENROLMENT_PREFIX) or len(code) > 128:
        raise _refused(
            dd,
            by.username,
            "enrol_browser",
            "browser_enrolment",
            f"that is not a browser enrolment code (they start with {ENROLMENT_PREFIX!r}, from "
            "`faceledger device enrol-browser`)",
            now,
        )
    with dd.store.begin() as conn:
        found = _enrolment_problem(dd, conn, by, code, now)
        if not isinstance(found, str):
            row, device = found
            existing = conn.execute(
                select(ta.browser_credentials.c.credential_id).where(
                    ta.browser_credentials.c.device_id == device.id
                )
            ).all()
    if isinstance(found, str):
        raise PermissionDeniedError(found)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_name=device.id,
        user_id=f"device:{device.id}".encode(),
        user_display_name=f"faceledger device {device.id} ({device.unit})",
        timeout=CEREMONY_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            authenticator_attachment=AuthenticatorAttachment.PLATFORM,
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=bytes(r[0])) for r in existing],
    )
    return Ceremony(
        purpose="enrol",
        session_id=session_id,
        challenge=options.challenge,
        options_json=options_to_json(options),
        expires_at=now + timedelta(seconds=CEREMONY_SECONDS),
        enrolment_id=int(row.id),
        device_id=device.id,
    )


def _ceremony_problem(
    by: Principal, ceremony: Ceremony | None, purpose: str, response: str, now: datetime
) -> str | None:
    if ceremony is None or ceremony.purpose != purpose or ceremony.session_id != by.session_id:
        return "no challenge is waiting for this browser; start again from the page"
    if now >= ceremony.expires_at:
        return f"the browser did not answer within {CEREMONY_SECONDS} seconds; start again from the page"
    if len(response) > MAX_RESPONSE_CHARS:
        return (
            f"the browser's answer is {len(response):,} characters; at most {MAX_RESPONSE_CHARS:,} are taken"
        )
    return None


def finish_enrolment(
    dd: DataDir, by: Principal, ceremony: Ceremony | None, response: str, rp: RelyingParty, *, now: datetime
) -> str:
    """Verify the browser's new credential and store it for the device; uses the code up. The device id."""
    now = utc(now)
    _need_session(by)
    problem = _ceremony_problem(by, ceremony, "enrol", response, now)
    if problem is not None:
        raise _refused(dd, by.username, "enrol_browser", "browser_enrolment", problem, now)
    assert ceremony is not None
    assert ceremony.enrolment_id is not None
    assert ceremony.device_id is not None
    target = f"browser_enrolment:{ceremony.enrolment_id}"
    try:
        credential = parse_registration_credential_json(response)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=ceremony.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=False,
        )
    except (WebAuthnException, InvalidJSONStructure, ValueError, TypeError) as exc:
        reason = f"the browser's new credential was not accepted: {exc}"
        raise _refused(dd, by.username, "enrol_browser", target, reason, now) from None
    if verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE or verified.credential_backed_up:
        reason = (
            "the authenticator made a credential that may be synced or backed up to other devices (a "
            "passkey in a password manager); enrol with this machine's own authenticator instead"
        )
        raise _refused(dd, by.username, "enrol_browser", target, reason, now)
    with dd.store.begin() as conn:
        # Claimed in one conditional update, so two browsers racing with the same code cannot both enrol.
        claimed = conn.execute(
            update(ta.browser_enrolments)
            .where(
                ta.browser_enrolments.c.id == ceremony.enrolment_id,
                ta.browser_enrolments.c.used_at.is_(None),
                ta.browser_enrolments.c.expires_at > now,
            )
            .values(used_at=now, used_by=by.username)
        ).rowcount
        device = _device_row(conn, ceremony.device_id)
        failed = claimed != 1 or device is None or device.revoked_at is not None
        if failed:
            # Nothing was claimed (or the claim is undone below by raising): only the refusal is kept.
            reason = (
                "the enrolment code was used, expired or its device revoked while the browser was "
                "answering; ask a system administrator for a new code"
            )
            _deny(dd, conn, by.username, "enrol_browser", target, reason, now)
        else:
            key = conn.execute(
                insert(ta.browser_credentials).values(
                    device_id=ceremony.device_id,
                    enrolment_id=ceremony.enrolment_id,
                    credential_id=verified.credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    enrolled_by=by.username,
                    enrolled_at=now,
                )
            ).inserted_primary_key
            assert key is not None
            values: dict[str, JsonValue] = {
                "enrolment_id": ceremony.enrolment_id,
                "credential": int(key[0]),
                "user_verified": verified.user_verified,
            }
            event = _device_event(by.username, ceremony.device_id, "browser_enrolled", values)
            audit.record(dd, conn, event, now=now)
    if failed:
        raise PermissionDeniedError(reason)
    return ceremony.device_id


# --- confirming the device at sign-in -----------------------------------------------------------------


def _active_credentials(conn: Connection) -> list[Any]:
    bc, dv = ta.browser_credentials, ta.devices
    return list(
        conn.execute(
            select(bc.c.id, bc.c.credential_id)
            .join(dv, dv.c.id == bc.c.device_id)
            .where(bc.c.revoked_at.is_(None), dv.c.revoked_at.is_(None))
        ).all()
    )


def begin_confirmation(dd: DataDir, by: Principal, rp: RelyingParty, *, now: datetime) -> Ceremony | None:
    """The assertion challenge for a signed-in page session; None when no browser is enrolled at all."""
    now = utc(now)
    session_id = _need_session(by)
    with dd.store.read() as conn:
        credentials = _active_credentials(conn)
    if not credentials:
        return None
    allowed = frozenset(bytes(r.credential_id) for r in credentials)
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CEREMONY_SECONDS * 1000,
        allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in sorted(allowed)],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return Ceremony(
        purpose="confirm",
        session_id=session_id,
        challenge=options.challenge,
        options_json=options_to_json(options),
        expires_at=now + timedelta(seconds=CEREMONY_SECONDS),
        allowed=allowed,
    )


def confirm_device(
    dd: DataDir,
    by: Principal,
    token: str,
    ceremony: Ceremony | None,
    response: str,
    rp: RelyingParty,
    *,
    now: datetime,
) -> tuple[str, str]:
    """Verify the browser's assertion and bind the session ``token`` to its device.

    Returns (the device id, the session's new token): the token is replaced in the same
    transaction, so the one from before the device was proved is no longer accepted.
    """
    now = utc(now)
    _need_session(by)
    if not token.startswith(SESSION_PREFIX):
        raise ValidationError("only a page session can be bound to a browser's device")
    problem = _ceremony_problem(by, ceremony, "confirm", response, now)
    if problem is not None:
        raise _refused(dd, by.username, "confirm_device", "browser_credential", problem, now)
    assert ceremony is not None
    try:
        credential = parse_authentication_credential_json(response)
    except (WebAuthnException, InvalidJSONStructure, ValueError, TypeError) as exc:
        reason = f"the browser's answer is not a WebAuthn assertion: {exc}"
        raise _refused(dd, by.username, "confirm_device", "browser_credential", reason, now) from None
    raw_id = bytes(credential.raw_id)
    with dd.store.begin() as conn:
        outcome = _confirm(dd, conn, by, token, ceremony, credential, raw_id, rp, now)
    if isinstance(outcome, str):
        raise PermissionDeniedError(outcome)
    return outcome


def _confirm(
    dd: DataDir,
    conn: Connection,
    by: Principal,
    token: str,
    ceremony: Ceremony,
    credential: Any,
    raw_id: bytes,
    rp: RelyingParty,
    now: datetime,
) -> tuple[str, str] | str:
    bc = ta.browser_credentials
    row = conn.execute(select(bc).where(bc.c.credential_id == raw_id)).first()
    if row is None or raw_id not in ceremony.allowed:
        reason = "this browser's credential is not enrolled for any device"
        return _deny(dd, conn, by.username, "confirm_device", "browser_credential", reason, now)
    target = f"device:{row.device_id}"
    if row.revoked_at is not None:
        when = iso(from_db(row.revoked_at))
        reason = f"this browser's credential for device {row.device_id!r} was revoked at {when}"
        return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
    device = _device_row(conn, row.device_id)
    assert device is not None
    if device.revoked_at is not None:
        reason = f"device {row.device_id!r} was revoked"
        return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=ceremony.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=bytes(row.public_key),
            credential_current_sign_count=int(row.sign_count),
            require_user_verification=False,
        )
    except InvalidAuthenticationResponse as exc:
        if str(exc).startswith("Response sign count"):
            # The signature was valid, but the counter went back: another authenticator holds the key.
            conn.execute(update(bc).where(bc.c.id == row.id).values(revoked_at=now))
            reason = (
                f"the browser's credential for device {row.device_id!r} answered with a sign count that did "
                f"not increase ({exc}): the key may have been copied to another authenticator. The "
                "credential is revoked; a system administrator must enrol this browser again"
            )
            return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
        reason = f"the browser's assertion was not accepted: {exc}"
        return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
    except (WebAuthnException, ValueError, TypeError) as exc:
        reason = f"the browser's assertion was not accepted: {exc}"
        return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
    if verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE or verified.credential_backed_up:
        reason = "the authenticator now says this credential is synced or backed up to other devices"
        return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
    conn.execute(
        update(bc).where(bc.c.id == row.id).values(sign_count=verified.new_sign_count, last_used_at=now)
    )
    sessions = ta.sessions
    new_token = hashing.new_secret(SESSION_PREFIX)
    bound = conn.execute(
        update(sessions)
        .where(
            sessions.c.id == by.session_id,
            sessions.c.token_hash == hashing.digest(token),
            sessions.c.revoked_at.is_(None),
        )
        .values(device_id=row.device_id, browser_credential_id=row.id, token_hash=hashing.digest(new_token))
    ).rowcount
    if bound != 1:
        reason = "this session has ended; sign in again"
        return _deny(dd, conn, by.username, "confirm_device", target, reason, now)
    values: dict[str, JsonValue] = {
        "session_id": by.session_id,
        "credential": int(row.id),
        "sign_count": verified.new_sign_count,
        "user_verified": verified.user_verified,
    }
    audit.record(
        dd, conn, _device_event(by.username, row.device_id, "browser_device_confirmed", values), now=now
    )
    return row.device_id, new_token
