"""``faceledger login/logout/user/device/token`` as an administrator and an examiner use them.

Real data directory, real clock (TOTP codes are computed from the enrolment URI the CLI
prints, as an authenticator app would), the CLI's session file in a temporary config folder.
"""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from faceledger.cli.accounts import cli_file, register
from faceledger.config import load_settings
from faceledger.services.accounts import totp
from faceledger.services.datadir import init_data_dir, open_data_dir

ORG = "Example Constabulary"
ADMIN_PW = "admin passphrase 123"
EVE_PW = "examiner passphrase 1"
RITA_PW = "reviewer passphrase 1"
SUE_PW = "supervisor passphrase 1"

runner = CliRunner()
app = typer.Typer()
register(app)


def run(*args: str, code: int = 0, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def now_code(uri: str) -> str:
    return totp.current_code(totp.seed_from_uri(uri), datetime.now(UTC))


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in:\n{text}"
    return match.group(0)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FACELEDGER_CONFIG_DIR", str(tmp_path / "config"))
    for key, value in {
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_PARALLELISM": "1",
    }.items():
        monkeypatch.setenv(f"FACELEDGER_ACCOUNTS__{key}", value)
    path = tmp_path / "data"
    init_data_dir(path).close()
    return str(path)


def _session_file(data_dir: str) -> Path:
    with open_data_dir(data_dir, settings=load_settings(data_dir)) as dd:
        return cli_file(dd)


def _first_admin(data_dir: str) -> str:
    """Bootstrap, claim and sign in the first administrator; returns their enrolment URI."""
    secret = found(r"flb_\S+", run("user", "bootstrap", "-d", data_dir))
    out = run(
        "user",
        "claim",
        "ada.admin",
        "--organisation",
        ORG,
        "--unit",
        "IT",
        "-d",
        data_dir,
        input=f"{secret}\n{ADMIN_PW}\n{ADMIN_PW}\n",
    )
    uri = found(r"otpauth://\S+", out)
    assert "signed in as ada.admin" in run(
        "login", "ada.admin", "-d", data_dir, input=f"{ADMIN_PW}\n{now_code(uri)}\n"
    )
    return uri


def test_help_lists_the_account_commands() -> None:
    text = run("--help")
    for command in ("login", "logout", "user", "device", "token"):
        assert command in text
    for group, commands in {
        "user": (
            "create",
            "list",
            "show",
            "set-roles",
            "suspend",
            "unsuspend",
            "set-expiry",
            "reset-password",
            "enrol-totp",
            "unlock",
            "activate",
            "vouch",
            "bootstrap",
            "claim",
        ),
        "device": ("register", "list", "revoke", "use"),
        "token": ("create", "list", "revoke"),
    }.items():
        for command in commands:
            assert "Usage" in run(group, command, "--help")


def test_an_installation_from_the_first_administrator_to_an_examiner_on_a_device(data_dir: str) -> None:
    run("user", "list", "-d", data_dir, code=1)  # nobody is signed in yet
    _first_admin(data_dir)
    session_file = _session_file(data_dir)
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    stored = session_file.read_text()
    assert "fls_" in stored
    assert ADMIN_PW not in stored

    def create(username: str, role: str) -> str:
        out = run(
            "user", "create", username, "--role", role, "--organisation", ORG, "--unit", "FIU", "-d", data_dir
        )
        assert "otpauth://" not in out  # the administrator never sees anyone's second factor
        return found(r"fla_[A-Za-z0-9_-]+", out)

    def activate(username: str, code: str, password: str) -> str:
        out = run("user", "activate", username, "-d", data_dir, input=f"{code}\n{password}\n{password}\n")
        assert "account " + username + " activated" in out
        return found(r"otpauth://\S+", out)

    sue_code = create("sue.supervisor", "supervisor")
    eve_code = create("eve.examiner", "examiner")
    create("rita.reviewer", "reviewer")
    listed = json.loads(run("user", "list", "--json", "-d", data_dir))
    assert [u["username"] for u in listed] == ["ada.admin", "eve.examiner", "rita.reviewer", "sue.supervisor"]
    assert {u["state"] for u in listed[1:]} == {"needs_activation"}
    # the people: their own passwords; the unit's first supervisor is vouched for by the installer
    sue_uri = activate("sue.supervisor", sue_code, SUE_PW)
    eve_uri = activate("eve.examiner", eve_code, EVE_PW)
    assert "wrong, expired or already used" in run(
        "user", "activate", "eve.examiner", "-d", data_dir, input=f"{eve_code}\n{EVE_PW}\n{EVE_PW}\n", code=1
    )
    assert "first supervisor of a unit" in run(
        "user", "vouch", "eve.examiner", "--installer", "-d", data_dir, code=1
    )
    assert "vouched for by installer" in run("user", "vouch", "sue.supervisor", "--installer", "-d", data_dir)

    run("user", "suspend", "rita.reviewer", "--reason", "on leave", "-d", data_dir)
    assert json.loads(run("user", "show", "rita.reviewer", "--json", "-d", data_dir))["suspended"] is True
    run("user", "unsuspend", "rita.reviewer", "-d", data_dir)
    out = run(
        "user", "set-expiry", "rita.reviewer", "--expires", "2099-01-31", "--trial", "--json", "-d", data_dir
    )
    assert (json.loads(out)["expires_at"], json.loads(out)["trial"]) == ("2099-01-31T00:00:00+00:00", True)
    out = run(
        "user",
        "set-roles",
        "rita.reviewer",
        "--role",
        "reviewer",
        "--role",
        "supervisor",
        "--json",
        "-d",
        data_dir,
    )
    assert json.loads(out)["roles"] == ["reviewer", "supervisor"]
    assert "separation of duties" in run(
        "user",
        "set-roles",
        "rita.reviewer",
        "--role",
        "reviewer",
        "--role",
        "auditor",
        "-d",
        data_dir,
        code=1,
    )
    assert "separation of duties" in run(
        "user", "set-roles", "ada.admin", "--role", "supervisor", "-d", data_dir, code=1
    )

    credential = found(
        r"lab-ws-03:fld_\S+",
        run(
            "device", "register", "lab-ws-03", "--name", "FIU workstation 3", "--unit", "FIU", "-d", data_dir
        ),
    )
    assert json.loads(run("device", "list", "--json", "-d", data_dir))[0]["id"] == "lab-ws-03"
    out = run("device", "enrol-browser", "lab-ws-03", "-d", data_dir)
    assert "/devices/enrol" in out
    shown_code = found(r"fle_\S+", out)
    issued = json.loads(run("device", "enrol-browser", "lab-ws-03", "--json", "-d", data_dir))
    assert issued["device_id"] == "lab-ws-03"
    assert issued["unit"] == "FIU"
    assert issued["code"].startswith("fle_")
    assert issued["code"] != shown_code  # a new code each time, each for one browser
    assert "no device 'nowhere'" in run("device", "enrol-browser", "nowhere", "-d", data_dir, code=1)
    assert "signed out" in run("logout", "-d", data_dir)
    assert "session" not in json.loads(session_file.read_text())
    run("user", "list", "-d", data_dir, code=1)

    # the examiner cannot sign in until a supervisor of the unit vouches for her
    assert "waits for a supervisor" in run(
        "login", "eve.examiner", "-d", data_dir, input=f"{EVE_PW}\n{now_code(eve_uri)}\n", code=1
    )
    run("login", "sue.supervisor", "-d", data_dir, input=f"{SUE_PW}\n{now_code(sue_uri)}\n")
    assert "vouched for by sue.supervisor" in run("user", "vouch", "eve.examiner", "-d", data_dir)
    run("logout", "-d", data_dir)

    # the examiner's workstation: install the device credential, then sign in on it
    assert "presents device lab-ws-03" in run("device", "use", "-d", data_dir, input=f"{credential}\n")
    out = run("login", "eve.examiner", "-d", data_dir, input=f"{EVE_PW}\n{now_code(eve_uri)}\n")
    assert "on registered device lab-ws-03" in out
    token = json.loads(
        run("token", "create", "batch", "--scope", "examiner", "--days", "7", "--json", "-d", data_dir)
    )
    assert token["token"].startswith("flt_")
    assert token["scopes"] == ["examiner"]
    assert [t["name"] for t in json.loads(run("token", "list", "--json", "-d", data_dir))] == ["batch"]
    run("token", "revoke", str(token["id"]), "-d", data_dir)
    assert json.loads(run("token", "list", "--json", "-d", data_dir))[0]["revoked_by"] == "eve.examiner"
    out = run(
        "user",
        "create",
        "evil.twin",
        "--role",
        "examiner",
        "--organisation",
        ORG,
        "--unit",
        "FIU",
        "-d",
        data_dir,
        input=f"{EVE_PW}\n{EVE_PW}\n",
        code=1,
    )
    assert "needs one of the roles system_admin" in out
    assert "Traceback" not in out


def test_a_wrong_password_fails_with_one_line_and_no_session(data_dir: str) -> None:
    _first_admin(data_dir)
    run("logout", "-d", data_dir)
    out = run("login", "ada.admin", "-d", data_dir, input="not my password\n\n", code=1)
    assert "wrong username or password" in out
    assert "Traceback" not in out
    assert "session" not in json.loads(_session_file(data_dir).read_text())


def test_a_session_file_others_can_read_is_refused(data_dir: str) -> None:
    _first_admin(data_dir)
    session_file = _session_file(data_dir)
    os.chmod(session_file, 0o644)
    out = run("user", "list", "-d", data_dir, code=1)
    assert f"chmod 600 {session_file}" in out.replace("\n", "")
