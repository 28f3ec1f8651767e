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
from sqlalchemy import select

import postgres_db
from faceledger.adapters.store import Store
from faceledger.adapters.store.tables_audit import audit_entries
from faceledger.config import AccountSettings, Settings
from faceledger.domain.roles import requires_mfa
from faceledger.services import accounts
from faceledger.services.accounts import totp
from faceledger.services.accounts.records import Principal
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
        """Create an account; enrol TOTP when its roles need it (or when ``totp`` says so)."""
        user = accounts.create_user(
            self.dd,
            self.admin,
            username=username,
            display_name=username.title(),
            organisation=ORG,
            unit=UNIT,
            roles=roles,
            password=PASSWORD,
            expires_at=expires_at,
            trial=trial,
            now=now,
        )
        if requires_mfa(user.roles) if with_totp is None else with_totp:
            self.seeds[username] = accounts.enrol_totp(self.dd, self.admin, username, now=now)

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
