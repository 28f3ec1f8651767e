"""``faceledger login/logout`` and ``faceledger user|device|token ...``: the CLI as a signed-in person.

The CLI acts for whoever ran ``faceledger login``: the session token, and this machine's
device credential (``faceledger device use``), are kept in one file per data directory,
``<config>/cli-<digest of the data directory path>.json``, where ``<config>`` is
``$FACELEDGER_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/faceledger``, else
``~/.config/faceledger``. The file is created with mode 0600 and refused if others can read
it. Secrets are only ever prompted for (never options), so they stay out of shell history.

Wire into the main app with :func:`register`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceledger.cli.common import (
    DataDirOption,
    JsonOption,
    ask,
    console,
    fail,
    handle_errors,
    print_json,
    shown,
)
from faceledger.config import load_settings
from faceledger.domain.roles import Role
from faceledger.errors import AuthenticationError, StoreError, ValidationError

if TYPE_CHECKING:
    from faceledger.services.accounts import Activation, Principal, User
    from faceledger.services.datadir import DataDir
    from faceledger.services.devices import DeviceCredential

user_app = typer.Typer(help="Accounts: create, inspect and change people's standing.", no_args_is_help=True)
device_app = typer.Typer(help="Agency devices searches are accepted from.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for scripts, scoped to some of your roles.", no_args_is_help=True)

RoleOption = Annotated[
    list[str], typer.Option("--role", help=f"A role (repeat for several): {', '.join(Role)}.")
]


def register(app: typer.Typer) -> None:
    """Add ``login``, ``logout``, ``user``, ``device`` and ``token`` to the main ``faceledger`` app."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.add_typer(user_app, name="user")
    app.add_typer(device_app, name="device")
    app.add_typer(token_app, name="token")


def _now() -> datetime:
    return datetime.now(UTC)


# --- the CLI's own file ------------------------------------------------------------------


def config_dir() -> Path:
    explicit = os.environ.get("FACELEDGER_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "faceledger"


def cli_file(dd: DataDir) -> Path:
    """The file holding this person's session and device credential for ``dd``."""
    key = hashlib.sha256(str(dd.path.resolve()).encode()).hexdigest()[:16]
    return config_dir() / f"cli-{key}.json"


def _read(dd: DataDir) -> dict[str, Any]:
    path = cli_file(dd)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return {}
    if os.name == "posix" and mode & 0o077:
        raise StoreError(
            f"{path} holds your session and device credential but others can read it (mode {mode:04o}); "
            f"restrict it with: chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} is damaged ({exc}); delete it and sign in again") from None
    return data if isinstance(data, dict) else {}


def _write(dd: DataDir, data: dict[str, Any]) -> Path:
    path = cli_file(dd)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**data, "data_dir": str(dd.path)}, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return path


def stored_device(dd: DataDir) -> DeviceCredential | None:
    """This machine's device credential for ``dd`` (set by ``faceledger device use``)."""
    from faceledger.services.devices import DeviceCredential

    value = _read(dd).get("device")
    return DeviceCredential.parse(value) if isinstance(value, str) else None


def signed_in(dd: DataDir) -> Principal:
    """The person the CLI acts for; other commands call this before doing anything guarded."""
    from faceledger.services import accounts

    session = _read(dd).get("session")
    if not isinstance(session, dict) or not isinstance(session.get("token"), str):
        raise AuthenticationError(f"not signed in to {dd.path}; run: faceledger login -d {dd.path}")
    return accounts.principal_from_token(dd, session["token"], stored_device(dd), now=_now())


@contextlib.contextmanager
def opened(data_dir: Path | None) -> Iterator[DataDir]:
    from faceledger.services.datadir import open_data_dir

    settings = load_settings(data_dir)
    with open_data_dir(settings.data_dir, settings=settings) as dd:
        yield dd


# --- parsing and printing ----------------------------------------------------------------


def parse_moment(value: str, option: str) -> datetime:
    """``YYYY-MM-DD`` (00:00 UTC that day) or an ISO time; a time without offset is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{option}: {value!r} is not a date or time (use YYYY-MM-DD or e.g. 2026-04-01T17:00+01:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _new_password(username: str) -> str:
    return ask(f"New password for {username}", hide_input=True, confirm=True)


def _show_user(user: User, as_json: bool) -> None:
    data = user.to_dict()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        text = ", ".join(value) if isinstance(value, list) else "-" if value is None else value
        console.print(f"{key:>16}: {shown(text)}")


def _state(user: User, now: datetime) -> str:
    if user.state != "active":
        return user.state.replace("_", " ")
    if user.suspended:
        return "suspended"
    if user.is_locked(now):
        return "locked"
    return "expired" if user.is_expired(now) else "active"


def _print_activation(activation: Activation) -> None:
    username = activation.user.username
    console.print(
        f"activation code for {username} (shown once; give it to them in person, valid until "
        f"{activation.expires_at.isoformat(timespec='minutes')}):"
    )
    console.print(activation.code, soft_wrap=True, markup=False)
    console.print(
        f"next: {username} runs `faceledger user activate {username}` (their own password), then a "
        f"supervisor of unit {shown(activation.user.unit)} runs `faceledger user vouch {username}`"
    )


def _print_totp(uri: str, username: str) -> None:
    console.print(
        f"second factor for {username} (shown once; scan it as a QR code or paste it into an "
        "authenticator app, then sign in with a code to confirm it):"
    )
    console.print(uri, soft_wrap=True)


# --- login / logout ----------------------------------------------------------------------


@handle_errors
def login(
    username: Annotated[str, typer.Argument(help="Your username.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign in (password, then the code from your authenticator app); the CLI then acts as you."""
    from faceledger.services import accounts

    password = ask("Password", hide_input=True)
    code = ask("Authenticator code (blank if your account has none)", default="")
    with opened(data_dir) as dd:
        device = stored_device(dd)
        principal = accounts.authenticate(
            dd, username=username, password=password, totp=code or None, device=device, now=_now()
        )
        session = {
            "username": username,
            "token": principal.session_token,
            "expires_at": principal.expires_at.isoformat(),
        }
        path = _write(dd, {**_read(dd), "session": session})
    actor = principal.actor
    if as_json:
        print_json(
            {
                "username": username,
                "roles": sorted(actor.roles),
                "device_id": actor.device_id,
                "expires_at": principal.expires_at,
                "file": path,
            }
        )
        return
    console.print(
        f"signed in as {username} ({', '.join(sorted(actor.roles))}) until "
        f"{principal.expires_at.isoformat(timespec='minutes')}"
    )
    if actor.device_id:
        console.print(f"on registered device {actor.device_id}")
    else:
        console.print("not on a registered device: searches will be refused (see: faceledger device use)")


@handle_errors
def logout(data_dir: DataDirOption = None) -> None:
    """End your CLI session (the device credential stays)."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        data = _read(dd)
        session = data.pop("session", None)
        if isinstance(session, dict) and isinstance(session.get("token"), str):
            accounts.logout(dd, session["token"], now=_now())
            _write(dd, data)
            console.print(f"signed out of {dd.path}")
        else:
            console.print("not signed in")


# --- user ----------------------------------------------------------------------------------


@user_app.command("bootstrap")
@handle_errors
def bootstrap(data_dir: DataDirOption = None) -> None:
    """Print a one-time secret for creating the first administrator (only while no account exists)."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        secret = accounts.bootstrap_admin(dd, now=_now())
        minutes = dd.settings.accounts.bootstrap_minutes
    console.print(f"bootstrap secret (shown once, valid {minutes} minutes): {secret}", soft_wrap=True)
    console.print("next: faceledger user claim USERNAME --organisation ... --unit ...")


@user_app.command("claim")
@handle_errors
def claim(
    username: Annotated[str, typer.Argument(help="The first administrator's username.")],
    organisation: Annotated[str, typer.Option(help="Your organisation (agency).")],
    unit: Annotated[str, typer.Option(help="Your unit.")],
    display_name: Annotated[str | None, typer.Option(help="Your full name.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Become the first system administrator with the bootstrap secret."""
    from faceledger.services import accounts

    secret = ask("Bootstrap secret", hide_input=True)
    password = _new_password(username)
    with opened(data_dir) as dd:
        _, uri = accounts.claim_bootstrap(
            dd,
            secret,
            username,
            password,
            organisation=organisation,
            unit=unit,
            display_name=display_name,
            now=_now(),
        )
    console.print(f"account {username} created with the role system_admin")
    _print_totp(uri, username)
    console.print(f"next: faceledger login {username}")


@user_app.command("create")
@handle_errors
def create(
    username: Annotated[str, typer.Argument(help="Username: lowercase, e.g. j.smith.")],
    role: RoleOption,
    organisation: Annotated[str, typer.Option(help="The person's organisation (agency).")],
    unit: Annotated[str, typer.Option(help="The person's unit.")],
    display_name: Annotated[str | None, typer.Option(help="Full name (default: the username).")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: YYYY-MM-DD or an ISO time.")] = None,
    trial: Annotated[bool, typer.Option("--trial", help="A trial account (needs --expires).")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account waiting for activation; prints its one-time activation code once.

    You choose no password and see no second factor: the person activates the account with
    the code and their own password, then a supervisor of their unit vouches for them.
    """
    from faceledger.services import accounts

    expiry = parse_moment(expires, "--expires") if expires else None
    roles = accounts.parse_roles(role)
    with opened(data_dir) as dd:
        by = signed_in(dd)
        activation = accounts.create_user(
            dd,
            by,
            username=username,
            display_name=display_name or username,
            organisation=organisation,
            unit=unit,
            roles=roles,
            expires_at=expiry,
            trial=trial,
            now=_now(),
        )
    if as_json:
        print_json(_activation_json(activation))
        return
    console.print(f"account {username} created; it needs activation")
    _print_activation(activation)


def _activation_json(activation: Activation) -> dict[str, Any]:
    return {
        **activation.user.to_dict(),
        "activation_code": activation.code,
        "activation_expires_at": activation.expires_at.isoformat(),
    }


@user_app.command("activate")
@handle_errors
def activate(
    username: Annotated[str, typer.Argument(help="Your username.")],
    data_dir: DataDirOption = None,
) -> None:
    """Activate your account: the one-time code from the administrator, then your own new password."""
    from faceledger.services import accounts

    code = ask("Activation code", hide_input=True)
    password = _new_password(username)
    with opened(data_dir) as dd:
        uri = accounts.activate(dd, username=username, code=code, password=password, now=_now())
    console.print(f"account {username} activated")
    _print_totp(uri, username)
    console.print(
        f"you can sign in (faceledger login {username}) once a supervisor of your unit has vouched "
        f"for you (faceledger user vouch {username})"
    )


@user_app.command("vouch")
@handle_errors
def vouch(
    username: Annotated[str, typer.Argument(help="The activated account to vouch for.")],
    installer: Annotated[
        bool,
        typer.Option(
            "--installer",
            help="Vouch as the installer, without signing in: only for the first supervisor of a unit.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Vouch, as a supervisor of their unit, that an activated account is held by the person it names."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        if installer:
            user = accounts.vouch_as_installer(dd, username, now=_now())
        else:
            user = accounts.vouch(dd, signed_in(dd), username, now=_now())
    if as_json:
        print_json(user.to_dict())
        return
    console.print(f"account {username} vouched for by {shown(user.vouched_by)}; it can sign in now")


@user_app.command("list")
@handle_errors
def list_users(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List accounts (system administrators and auditors)."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        users = accounts.list_users(dd, signed_in(dd), now=_now())
    if as_json:
        print_json([u.to_dict() for u in users])
        return
    from rich.table import Table

    now = _now()
    table = Table("username", "roles", "organisation", "unit", "state", "expires")  # state: see _state
    for u in users:
        state = _state(u, now)
        expiry = u.expires_at.isoformat(timespec="minutes") if u.expires_at else "-"
        cells = (u.username, ", ".join(sorted(u.roles)), u.organisation, u.unit, state, expiry)
        table.add_row(*(shown(cell) for cell in cells))
    console.print(table)


@user_app.command("show")
@handle_errors
def show(
    username: Annotated[str, typer.Argument(help="Username.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one account (yours, or anyone's for administrators and auditors)."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        user = accounts.get_user(dd, signed_in(dd), username, now=_now())
    _show_user(user, as_json)


@user_app.command("set-roles")
@handle_errors
def set_roles(
    username: Annotated[str, typer.Argument(help="Username.")],
    role: RoleOption,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace an account's roles."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        _show_user(accounts.set_roles(dd, signed_in(dd), username, role, now=_now()), as_json)


@user_app.command("suspend")
@handle_errors
def suspend(
    username: Annotated[str, typer.Argument(help="Username.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
    data_dir: DataDirOption = None,
) -> None:
    """Suspend an account: everything it asks is refused, its sessions end."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        accounts.suspend(dd, signed_in(dd), username, reason=reason, now=_now())
    console.print(f"account {username} suspended")


@user_app.command("unsuspend")
@handle_errors
def unsuspend(
    username: Annotated[str, typer.Argument(help="Username.")], data_dir: DataDirOption = None
) -> None:
    """Lift a suspension."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        accounts.unsuspend(dd, signed_in(dd), username, now=_now())
    console.print(f"account {username} is no longer suspended")


@user_app.command("set-expiry")
@handle_errors
def set_expiry(
    username: Annotated[str, typer.Argument(help="Username.")],
    expires: Annotated[str | None, typer.Option(help="Expiry: YYYY-MM-DD or an ISO time.")] = None,
    never: Annotated[bool, typer.Option("--never", help="Remove the expiry (not for trials).")] = False,
    trial: Annotated[bool | None, typer.Option("--trial/--no-trial", help="Mark or unmark a trial.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set or remove an account's expiry date."""
    from faceledger.services import accounts

    if never == (expires is not None):
        raise fail("give exactly one of --expires and --never", code=2)
    expiry = parse_moment(expires, "--expires") if expires else None
    with opened(data_dir) as dd:
        user = accounts.set_expiry(dd, signed_in(dd), username, expires_at=expiry, trial=trial, now=_now())
    _show_user(user, as_json)


@user_app.command("reset-password")
@handle_errors
def reset_password(
    username: Annotated[str, typer.Argument(help="Username.")], data_dir: DataDirOption = None
) -> None:
    """Reset someone else's account: it needs activation (a new code) and a new vouch.

    You choose no password: the person activates the account again with the printed code and
    a password of their own. Their sessions and API tokens end.
    """
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        activation = accounts.reset_password(dd, signed_in(dd), username, now=_now())
    console.print(f"account {username} reset; it needs activation again")
    _print_activation(activation)


@user_app.command("enrol-totp")
@handle_errors
def enrol_totp(
    username: Annotated[str, typer.Argument(help="Username.")], data_dir: DataDirOption = None
) -> None:
    """A new second factor: the account needs activation again (the person receives the seed).

    The old second factor and password stop working; sessions and API tokens end.
    """
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        activation = accounts.enrol_totp(dd, signed_in(dd), username, now=_now())
    console.print(f"account {username} reset for a new second factor; it needs activation again")
    _print_activation(activation)


@user_app.command("unlock")
@handle_errors
def unlock(
    username: Annotated[str, typer.Argument(help="Username.")], data_dir: DataDirOption = None
) -> None:
    """Lift a lockout after repeated failed sign-ins."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        accounts.unlock(dd, signed_in(dd), username, now=_now())
    console.print(f"account {username} unlocked")


# --- device --------------------------------------------------------------------------------


@device_app.command("register")
@handle_errors
def register_device(
    device_id: Annotated[str, typer.Argument(help="Device id, e.g. lab-ws-03 (never reused).")],
    name: Annotated[str, typer.Option(help="What the device is, e.g. 'FIU lab workstation 3'.")],
    unit: Annotated[str, typer.Option(help="The unit the device belongs to.")],
    save: Annotated[bool, typer.Option("--save", help="Also make this machine that device.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Register an agency device; prints its credential once (install it with `faceledger device use`)."""
    from faceledger.services import devices

    with opened(data_dir) as dd:
        _, credential = devices.register_device(
            dd, signed_in(dd), device_id=device_id, name=name, unit=unit, now=_now()
        )
        if save:
            _write(dd, {**_read(dd), "device": credential.header_value()})
    console.print(f"device {device_id} registered")
    if save:
        console.print(f"this machine now presents device {device_id}")
    else:
        console.print("its credential (shown once; enter it on the device with `faceledger device use`):")
        console.print(credential.header_value(), soft_wrap=True)


@device_app.command("enrol-browser")
@handle_errors
def enrol_browser(
    device_id: Annotated[str, typer.Argument(help="The registered device the browser becomes.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a one-time code that enrols one browser as a registered device (WebAuthn; 15 minutes)."""
    from faceledger.services import browser_devices  # imported here: WebAuthn only for this command

    with opened(data_dir) as dd:
        issued = browser_devices.issue_enrolment(dd, signed_in(dd), device_id, now=_now())
    if as_json:
        print_json(issued.to_dict())
        return
    console.print(
        f"browser enrolment for device {shown(issued.device_id)} (unit {shown(issued.unit)}); "
        f"the code (shown once, used once, valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC):"
    )
    console.print(issued.code, soft_wrap=True)
    console.print("on that device, sign in to the web pages and enter it at /devices/enrol")


@device_app.command("use")
@handle_errors
def use_device(data_dir: DataDirOption = None) -> None:
    """Make this machine present a registered device's credential (asked for, not shown)."""
    from faceledger.services.devices import DeviceCredential

    credential = DeviceCredential.parse(ask("Device credential", hide_input=True))
    with opened(data_dir) as dd:
        path = _write(dd, {**_read(dd), "device": credential.header_value()})
    console.print(
        f"this machine now presents device {credential.device_id} (stored in {path}); sign in again"
    )


@device_app.command("list")
@handle_errors
def list_devices(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List registered devices, revoked ones included."""
    from faceledger.services import devices

    with opened(data_dir) as dd:
        found = devices.list_devices(dd, signed_in(dd), now=_now())
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    for d in found:
        state = f"revoked {d.revoked_at:%Y-%m-%d}" if d.revoked_at else "active"
        console.print(f"{shown(d.id)}  {shown(d.name)}  (unit {shown(d.unit)})  {state}")


@device_app.command("revoke")
@handle_errors
def revoke_device(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a device: requests from it lose their device, sessions opened on it end."""
    from faceledger.services import devices

    with opened(data_dir) as dd:
        devices.revoke_device(dd, signed_in(dd), device_id, reason=reason, now=_now())
    console.print(f"device {device_id} revoked")


# --- token ---------------------------------------------------------------------------------


@token_app.command("create")
@handle_errors
def create_token(
    name: Annotated[str, typer.Argument(help="What the token is for.")],
    scope: Annotated[list[str], typer.Option("--scope", help="A role of yours the token may use (repeat).")],
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 30,
    server: Annotated[
        bool,
        typer.Option(
            "--server",
            help="A server-to-server token bound to no device (only where the policy allows them).",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API token for your own account; prints it once.

    It is bound to this machine's registered device (`faceledger device use`) and accepted
    only with that device's credential; --server makes one bound to none, where the policy
    allows it.
    """
    from faceledger.services import accounts

    now = _now()
    with opened(data_dir) as dd:
        info, secret = accounts.create_token(
            dd,
            signed_in(dd),
            name=name,
            scopes=scope,
            expires_at=now + timedelta(days=days),
            now=now,
            server=server,
        )
    if as_json:
        print_json({**info.to_dict(), "token": secret})
        return
    console.print(f"API token {info.id} created, expires {info.expires_at.isoformat(timespec='minutes')}")
    console.print(f"token (shown once): {secret}", soft_wrap=True)


@token_app.command("list")
@handle_errors
def list_tokens(
    user: Annotated[str | None, typer.Option(help="Another account's tokens (administrators).")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List API tokens (never their secrets)."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        found = accounts.list_tokens(dd, signed_in(dd), username=user, now=_now())
    if as_json:
        print_json([t.to_dict() for t in found])
        return
    now = _now()
    for t in found:
        state = "revoked" if t.revoked_at else "active" if t.is_active(now) else "expired"
        console.print(
            f"{t.id}  {shown(t.name, markup=False)}  [{', '.join(sorted(t.scopes))}]  {state}", markup=False
        )


@token_app.command("revoke")
@handle_errors
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="Token id.")], data_dir: DataDirOption = None
) -> None:
    """Revoke an API token (yours, or anyone's for administrators)."""
    from faceledger.services import accounts

    with opened(data_dir) as dd:
        accounts.revoke_token(dd, signed_in(dd), token_id, now=_now())
    console.print(f"API token {token_id} revoked")
