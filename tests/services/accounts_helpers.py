"""Shared by the account and device tests: a real data directory on SQLite or PostgreSQL, people in it.

The PostgreSQL half uses one throw-away database per test module on the real server
(emptied between tests: creating a database costs over a second) and is skipped, with the
reason, when no server answers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import postgres_db
from faceledger.adapters.store import Store
from faceledger.adapters.store import tables_accounts as ta
from faceledger.adapters.store.tables_audit import audit_entries
from faceledger.config import AccountSettings, Settings
from faceledger.services import accounts, devices
from faceledger.services.accounts import totp
from faceledger.services.accounts.records import Activation, Principal
from faceledger.services.datadir import DataDir, init_data_dir
from faceledger.services.devices import DeviceCredential

BACKENDS = ["sqlite", "postgresql"]

#: Cheap Argon2 so a test signs in in a millisecond; lockout after 3 failures for 15 minutes.
FAST = AccountSettings(
    argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, lockout_failures=3, lockout_minutes=15
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ORG = "Example Constabulary"
PASSWORD = "a long enough passphrase"
ADMIN = "ada.admin"
UNIT = "facial-identification"  # the unit the example policy lets search
#: The supervisor the helpers make first in each unit (vouched for by the installer), who
#: vouches for every account the helpers add to that unit (accounts need a second person).
VOUCHER = "una.unitlead"


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server with the schema applied, dropped afterwards."""
    with postgres_db.pg_database() as url:
        Store.open(url).close()  # the schema
        yield url


empty_database = postgres_db.empty_database


def make_template(folder: Path) -> Path:
    """A new, empty SQLite installation to copy (applying the migrations takes half a second)."""
    init_data_dir(folder, settings=Settings(accounts=FAST)).close()
    return folder


def open_dd(backend: str, folder: Path, *, template: Path, pg_url: str | None) -> DataDir:
    """A new installation: a copy of ``template`` on SQLite, an emptied database on PostgreSQL."""
    if backend == "sqlite":
        shutil.copytree(template, folder)
        return init_data_dir(folder, settings=Settings(accounts=FAST))
    assert pg_url is not None
    empty_database(pg_url)
    return init_data_dir(folder, settings=Settings(accounts=FAST, database_url=pg_url))


def reopen(dd: DataDir, settings: AccountSettings) -> DataDir:
    """The same installation opened with other account settings (as after editing config.toml)."""
    dd.close()
    return init_data_dir(dd.path, settings=dd.settings.with_overrides(accounts=settings))


def code(uri: str, at: datetime) -> str:
    """What the authenticator app that scanned ``uri`` shows at ``at``."""
    return totp.current_code(totp.seed_from_uri(uri), at)


class Org:
    """A small agency: the first administrator (via bootstrap) and helpers to add people."""

    def __init__(self, dd: DataDir, now: datetime = T0) -> None:
        self.dd = dd
        self.seeds: dict[str, str] = {}
        secret = accounts.bootstrap_admin(dd, now=now)
        _, uri = accounts.claim_bootstrap(dd, secret, ADMIN, PASSWORD, organisation=ORG, unit="IT", now=now)
        self.seeds[ADMIN] = uri
        self.admin = self.sign_in(ADMIN, now=now)
        self._step = 0
        self.vouchers: dict[str, Principal] = {}
        self._workstation: DeviceCredential | None = None

    def workstation(self) -> DeviceCredential:
        """The unit's registered workstation (registered on first use): API tokens are made on one."""
        if self._workstation is None:
            _, self._workstation = devices.register_device(
                self.dd, self.admin, device_id="ws-unit", name="Unit workstation", unit=UNIT, now=T0
            )
        return self._workstation

    def sign_in(
        self,
        username: str,
        *,
        now: datetime = T0,
        device: DeviceCredential | None = None,
        password: str = PASSWORD,
    ) -> Principal:
        uri = self.seeds.get(username)
        return accounts.authenticate(
            self.dd,
            username=username,
            password=password,
            totp=code(uri, now) if uri else None,
            device=device,
            now=now,
        )

    def add(
        self,
        username: str,
        *roles: str,
        now: datetime = T0,
        with_totp: bool | None = None,
        expires_at: datetime | None = None,
        trial: bool = False,
    ) -> None:
        """Create an account as people do: the administrator creates it, its owner activates it
        (their password, their TOTP seed), a supervisor of the unit vouches for it.

        ``with_totp=False`` then removes the second factor from the row, as an account from
        before activation existed may lack one (to test what sign-in says about it).
        """
        if username != VOUCHER and UNIT not in self.vouchers:
            self._add_voucher(now)
        activation = accounts.create_user(
            self.dd,
            self.admin,
            username=username,
            display_name=username.title(),
            organisation=ORG,
            unit=UNIT,
            roles=roles,
            expires_at=expires_at,
            trial=trial,
            now=now,
        )
        self.activate(activation, now=now)
        if with_totp is False:
            with self.dd.store.begin() as conn:
                conn.execute(
                    update(ta.users)
                    .where(ta.users.c.username == username)
                    .values(totp_secret=None, totp_confirmed=False)
                )
            self.seeds.pop(username, None)

    def activate(self, activation: Activation, *, now: datetime = T0, password: str = PASSWORD) -> None:
        """The owner activates (remembering their seed), then the unit's helper supervisor vouches."""
        username = activation.user.username
        self.seeds[username] = accounts.activate(
            self.dd, username=username, code=activation.code, password=password, now=now
        )
        if username == VOUCHER:
            accounts.vouch_as_installer(self.dd, username, now=now)
        else:
            accounts.vouch(self.dd, self.vouchers[activation.user.unit], username, now=now)

    def _add_voucher(self, now: datetime) -> None:
        self.add(VOUCHER, "supervisor", now=now)
        self.vouchers[UNIT] = self.sign_in(VOUCHER, now=now)

    def second_admin(self, now: datetime = T0) -> Principal:
        self.add("bob.admin", "system_admin", now=now)
        return self.sign_in("bob.admin", now=now + timedelta(seconds=31))


def audit_rows(dd: DataDir, action: str | None = None) -> list[Any]:
    """The audit log's entries (optionally of one action), oldest first."""
    query = select(audit_entries).order_by(audit_entries.c.seq)
    if action is not None:
        query = query.where(audit_entries.c.action == action)
    with dd.store.read() as conn:
        return list(conn.execute(query).all())


def details(row: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(row.details)
    return parsed


# --- fixtures shared by the account and device tests (imported into those modules; named by `name=`) ---


@pytest.fixture(scope="module", name="pg_url")
def pg_url_fixture() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture(scope="module", name="template")
def template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("template") / "data")


@pytest.fixture(params=BACKENDS, name="dd")
def dd_fixture(request: pytest.FixtureRequest, tmp_path: Path, template: Path) -> Iterator[DataDir]:
    """A new installation on each backend: SQLite (a copy of ``template``) and PostgreSQL."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    opened = open_dd(request.param, tmp_path / "data", template=template, pg_url=url)
    yield opened
    opened.close()
