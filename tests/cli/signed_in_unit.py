"""A facial-identification unit set up the way a new installation is, for the CLI tests.

Everything goes through the ``faceledger`` command as people would use it: ``init`` prints
the bootstrap secret, the first system administrator claims it and signs in, then creates
each person's account (with a second factor where their roles need one) and registers a
workstation for them; each person installs their device credential and signs in, in their
own CLI configuration folder (``FACELEDGER_CONFIG_DIR``). :meth:`SignedInUnit.run` then runs
a command as one of them, or as nobody.

Building a unit takes a fraction of a second (cheap Argon2 through the environment), so
each test module builds one, once.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from faceledger.cli import accounts as accounts_cli
from faceledger.cli.main import app
from faceledger.config import load_settings
from faceledger.domain.calibration import load_calibrations
from faceledger.services import audit
from faceledger.services.accounts import Principal, totp
from faceledger.services.datadir import DataDir, open_data_dir

ORG = "Example Constabulary"  # the organisation of the shipped example policy
UNIT = "facial-identification"  # the unit the example policy lets search its galleries
ADMIN = "ada.admin"
#: The unit's first supervisor (vouched for by the installer), who vouches for everyone else.
VOUCHER = "una.unitlead"
PASSWORD = "a long enough passphrase"
CASE, PURPOSE, GALLERY = "2025/CID/004211", "criminal_investigation", "custody_arrest_photos"
#: One person for each role but the administrator's, all in ``UNIT``: (username, role).
ONE_OF_EACH = [
    ("gina.gallery", "gallery_admin"),
    ("eve.examiner", "examiner"),
    ("rex.reviewer", "reviewer"),
    ("sue.supervisor", "supervisor"),
    ("otto.auditor", "auditor"),
]

#: Cheap password hashing, given to every command through the environment.
FAST = {"FACELEDGER_ACCOUNTS__ARGON2_TIME_COST": "1", "FACELEDGER_ACCOUNTS__ARGON2_MEMORY_KIB": "1024"}

runner = CliRunner()


def _threshold_until_calibrated() -> dict[str, str]:
    """TEMPORARY: an explicit threshold while faceledger/data/calibration.json has no dlib entry.

    Without a calibration the dlib model has no default threshold and searches refuse to run;
    0.93 is the cosine threshold measured on LFW before calibration existed. Once
    bench/calibrate.py has written the dlib entry this returns nothing and the tests use the
    calibrated default, as an installation does.
    """
    if any(model_key.startswith("dlib") for model_key, _flip, _size in load_calibrations()):
        return {}
    return {"FACELEDGER_THRESHOLD": "0.93"}


def environment() -> dict[str, str]:
    """What every command of a test unit runs with (besides its person's config folder)."""
    return {**FAST, **_threshold_until_calibrated()}


def now() -> datetime:
    return datetime.now(UTC)


def code_for(uri: str) -> str:
    """The authenticator code for a TOTP enrolment URI now, as an authenticator app shows it."""
    return totp.current_code(totp.seed_from_uri(uri), now())


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in:\n{text}"
    return match.group(0)


@dataclass
class SignedInUnit:
    """A data directory and its people, each signed in in their own CLI configuration folder."""

    root: Path
    path: Path
    env: Mapping[str, str]
    folders: dict[str, Path]
    dd: DataDir

    def invoke(self, who: str | None, *args: str, input: str | None = None) -> Result:
        """``faceledger ARGS -d DATA`` as ``who`` (None: someone who never signed in)."""
        folder = self.folders.get(who or "", self.root / "config" / "nobody")
        env = {**self.env, "FACELEDGER_CONFIG_DIR": str(folder)}
        return runner.invoke(app, [*args, "-d", str(self.path)], input=input, env=env, catch_exceptions=False)

    def run(self, who: str | None, *args: str, code: int = 0, input: str | None = None) -> str:
        """Stdout and stderr of a command that must end with ``code`` and never show a traceback."""
        result = self.invoke(who, *args, input=input)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    def stdout(self, who: str | None, *args: str, input: str | None = None) -> str:
        """Stdout alone (what a script parses) of a command that must succeed."""
        result = self.invoke(who, *args, input=input)
        assert result.exit_code == 0, result.output
        return result.stdout

    def principal(self, username: str) -> Principal:
        """Who the CLI acts for in ``username``'s configuration folder."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FACELEDGER_CONFIG_DIR", str(self.folders[username]))
            return accounts_cli.signed_in(self.dd)

    def entries(self, *, actor: str | None = None, action: str | None = None) -> list[audit.LogEntry]:
        """Audit entries as stored (for checking what a command recorded)."""
        found_entries = audit.list_entries(
            self.dd, audit.EntryFilter(actor=actor, action=action), offset=0, limit=10_000
        )
        return list(found_entries.entries)

    def create_and_activate(self, username: str, role: str) -> str:
        """The administrator creates the account, its owner activates it; returns the TOTP URI."""
        created = self.run(
            ADMIN, "user", "create", username, "--role", role, "--organisation", ORG, "--unit", UNIT
        )  # fmt: skip
        activation_code = found(r"fla_[A-Za-z0-9_-]+", created)
        self.folders[username] = self.root / "config" / username
        activated = self.run(
            username, "user", "activate", username, input=f"{activation_code}\n{PASSWORD}\n{PASSWORD}\n"
        )
        return found(r"otpauth://\S+", activated)

    def add_voucher(self) -> None:
        """The unit's first supervisor: activated, vouched for by the installer, signed in."""
        uri = self.create_and_activate(VOUCHER, "supervisor")
        self.run(None, "user", "vouch", VOUCHER, "--installer")
        self.run(VOUCHER, "login", VOUCHER, input=f"{PASSWORD}\n{code_for(uri)}\n")

    def add_person(self, username: str, role: str) -> None:
        """An account made by the administrator, activated by its owner, vouched for by the unit's
        supervisor; a workstation registered for it, and a sign-in there."""
        if VOUCHER not in self.folders:
            self.add_voucher()
        uri = self.create_and_activate(username, role)
        self.run(VOUCHER, "user", "vouch", username)
        device_id = f"ws-{username}"
        registered = self.run(
            ADMIN, "device", "register", device_id, "--name", f"workstation of {username}", "--unit", UNIT
        )
        credential = found(rf"{re.escape(device_id)}:\S+", registered)
        self.run(username, "device", "use", input=f"{credential}\n")
        code = code_for(uri)
        assert f"signed in as {username}" in self.run(
            username, "login", username, input=f"{PASSWORD}\n{code}\n"
        )

    def copy(self, root: Path) -> SignedInUnit:
        """The same unit in a new folder, everyone still signed in: for tests that change or damage it.

        The data directory is copied as it stands (the database's journal folded in first); each
        person's CLI file is copied to the name the CLI gives it for the new data directory.
        """
        self.dd.store.checkpoint()
        path = root / "data"
        shutil.copytree(self.path, path)
        dd = open_data_dir(path, settings=load_settings(path, env=dict(self.env)))
        copied = SignedInUnit(root, path, self.env, {}, dd)
        for username, folder in self.folders.items():
            copied.folders[username] = root / "config" / username
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("FACELEDGER_CONFIG_DIR", str(folder))
                source = accounts_cli.cli_file(self.dd)
                patch.setenv("FACELEDGER_CONFIG_DIR", str(copied.folders[username]))
                target = accounts_cli.cli_file(dd)
            target.parent.mkdir(mode=0o700, parents=True)
            shutil.copy2(source, target)
        return copied

    def close(self) -> None:
        self.dd.close()


def build_unit(root: Path, people: Sequence[tuple[str, str]], *, example_policy: bool) -> SignedInUnit:
    """A fresh data directory under ``root`` with a signed-in administrator (``ADMIN``) and ``people``.

    ``people`` are (username, role) pairs, all in ``UNIT`` of ``ORG``, each on a registered
    device of their own. ``example_policy``: the administrator loads the shipped example
    policy, so guarded commands are decided by it (otherwise none is in force).
    """
    env = environment()
    path = root / "data"
    result = runner.invoke(app, ["init", str(path), "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    secret = json.loads(result.stdout)["bootstrap_secret"]
    dd = open_data_dir(path, settings=load_settings(path, env=env))
    unit = SignedInUnit(root, path, env, {ADMIN: root / "config" / ADMIN}, dd)
    claimed = unit.run(
        None, "user", "claim", ADMIN, "--organisation", ORG, "--unit", "IT",
        input=f"{secret}\n{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    uri = found(r"otpauth://\S+", claimed)
    unit.run(ADMIN, "login", ADMIN, input=f"{PASSWORD}\n{code_for(uri)}\n")
    if example_policy:
        unit.run(ADMIN, "policy", "load", "--example")
    for username, role in people:
        unit.add_person(username, role)
    return unit


@contextmanager
def governed_unit(root: Path, people: Sequence[tuple[str, str]]) -> Iterator[SignedInUnit]:
    """:func:`build_unit` under the example policy, with its custody gallery (``GALLERY``); closed after."""
    from faceledger.services import galleries

    built = build_unit(root, people, example_policy=True)
    galleries.create_gallery(built.dd, GALLERY, legal_basis="PACE s.64A", source_description="custody")
    try:
        yield built
    finally:
        built.close()
