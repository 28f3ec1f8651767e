"""What the web tests share: a real data directory behind the real app, and an agency driven over HTTP.

Everything here goes through the API as a client would (bootstrap, accounts, devices,
sign-in, policy), so the tests exercise the routes, not shortcuts around them. Data
directories are real: a copy of a freshly initialised SQLite installation, or an emptied
database on the real PostgreSQL server (skipped, saying why, when none is reachable).
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import postgres_db
from audit_records import audit_rows as audit_rows  # re-exported for the tests
from faceledger.adapters.store import Store
from faceledger.config import AccountSettings, ImageLimits, Settings
from faceledger.domain.models import DecodedImage, ImageAnalysis, ModelRef
from faceledger.domain.roles import Role
from faceledger.pipeline.run import Pipeline
from faceledger.services import accounts
from faceledger.services.accounts import totp
from faceledger.services.datadir import DataDir, init_data_dir
from faceledger.services.devices import DEVICE_HEADER
from faceledger.services.identification import Analyzer
from faceledger.web import create_app
from faceledger.web.limits import BodyLimits

BACKENDS = ("sqlite", "postgresql")
#: Cheap Argon2 so a sign-in takes a millisecond; lockout after 3 failures.
FAST = AccountSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, lockout_failures=3)
#: A Monday morning in London (the example policy's time zone), with its agreements in force.
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
ORG = "Example Constabulary"
UNIT = "facial-identification"
PASSWORD = "a long enough passphrase"
ADMIN = "ada.admin"
DEVICE = "ws-01"
CASE = "2025/CID/004211"
PURPOSE = "criminal_investigation"
CUSTODY = "custody_arrest_photos"
PAROLE = "parole_photos"
#: The shipped calibration may not cover the model under test; this separates LFW people (dlib, cosine).
THRESHOLD = 0.93
API = "/api/v1"
#: The supervisor the helpers make first in each unit (vouched for by the installer, from the
#: server's side), who vouches over the API for every account :meth:`Agency.add` makes there.
VOUCHER = "una.unitlead"


def settings(database_url: str | None = None, image: ImageLimits | None = None) -> Settings:
    return Settings(
        accounts=FAST, threshold=THRESHOLD, database_url=database_url, image=image or ImageLimits()
    )


class Clock:
    """The app's clock: fixed, moved on by the tests (TOTP codes and expiries depend on it)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person as a client holds them: a token, and the device credential it sends."""

    username: str
    token: str
    device: str | None

    @property
    def headers(self) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"}
        if self.device is not None:
            out[DEVICE_HEADER] = self.device
        return out


@dataclass
class Agency:
    """An installation driven over HTTP: its first administrator, a registered device, its people."""

    client: TestClient
    dd: DataDir
    clock: Clock
    seeds: dict[str, str | None] = field(default_factory=dict)
    device: str = ""
    #: Each unit's registered workstation (the policy refuses another unit's device): unit -> credential.
    unit_devices: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, client: TestClient, dd: DataDir, clock: Clock) -> Agency:
        agency = cls(client, dd, clock)
        secret = accounts.bootstrap_admin(dd, now=clock.now)  # what `faceledger serve` prints
        claimed = client.post(
            f"{API}/auth/bootstrap",
            json={
                "secret": secret,
                "username": ADMIN,
                "password": PASSWORD,
                "organisation": ORG,
                "unit": "IT",
            },
        )
        assert claimed.status_code == 201, claimed.text
        agency.seeds[ADMIN] = claimed.json()["totp_uri"]
        first = agency.login(ADMIN, device=None)
        registered = client.post(
            f"{API}/devices", json={"device_id": DEVICE, "name": "Lab 1", "unit": UNIT}, headers=first.headers
        )
        assert registered.status_code == 201, registered.text
        agency.device = registered.json()["credential"]
        agency.unit_devices[UNIT] = agency.device
        return agency

    def device_of(self, unit: str) -> str:
        """The credential of ``unit``'s workstation, registered on first use (``ws-01`` for FIU)."""
        if unit not in self.unit_devices:
            slug = re.sub(r"[^a-z0-9-]", "-", unit.lower())
            body = {"device_id": f"ws-{slug}"[:64], "name": f"{unit} workstation", "unit": unit}
            first = self.login(ADMIN, device=None)
            registered = self.client.post(f"{API}/devices", json=body, headers=first.headers)
            assert registered.status_code == 201, registered.text
            self.unit_devices[unit] = registered.json()["credential"]
        return self.unit_devices[unit]

    @property
    def app(self) -> FastAPI:
        app = self.client.app
        assert isinstance(app, FastAPI)
        return app

    def code(self, username: str) -> str | None:
        uri = self.seeds.get(username)
        return None if uri is None else totp.current_code(totp.seed_from_uri(uri), self.clock.now)

    def login(self, username: str, *, device: bool | str | None = True, password: str = PASSWORD) -> Session:
        """Sign in over the API (the clock moves on a TOTP step first, so no code is reused).

        ``device=True``: from the workstation of the person's unit.
        """
        if device is True:
            device = self.device_of(self.units.get(username, UNIT))
        self.clock.advance(seconds=31)
        credential = device or None
        headers = {DEVICE_HEADER: credential} if credential else {}
        answer = self.client.post(
            f"{API}/auth/login",
            json={"username": username, "password": password, "totp": self.code(username)},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        return Session(username, answer.json()["token"], credential)

    def admin(self) -> Session:
        return self.login(ADMIN)

    def add(self, username: str, *roles: Role | str, **extra: Any) -> dict[str, Any]:
        """An account as people make one over the API: the first administrator creates it, its
        owner activates it (remembering the TOTP seed), a supervisor of its unit vouches for it.
        """
        body = {
            "username": username,
            "display_name": username.title(),
            "organisation": ORG,
            "unit": UNIT,
            "roles": [str(r) for r in roles],
            **extra,
        }
        unit = str(body["unit"])
        self.units[username] = unit
        voucher = VOUCHER if unit == UNIT else f"{VOUCHER}.{re.sub(r'[^a-z0-9._-]', '-', unit.lower())}"[:64]
        if username != voucher and voucher not in self.seeds:
            self.add(voucher, Role.SUPERVISOR, unit=unit)
        self.create_activated(body)
        if username == voucher:
            accounts.vouch_as_installer(self.dd, username, now=self.clock.now)
        else:
            vouched = self.client.post(f"{API}/users/{username}/vouch", headers=self.login(voucher).headers)
            assert vouched.status_code == 200, vouched.text
        user: dict[str, Any] = self.client.get(f"{API}/users/{username}", headers=self.admin().headers).json()
        return user

    def create_activated(self, body: dict[str, Any]) -> None:
        """Create the account (as the first administrator) and activate it as its owner: not vouched for."""
        answer = self.client.post(f"{API}/users", json=body, headers=self.admin().headers)
        assert answer.status_code == 201, answer.text
        self.activate(body["username"], answer.json()["activation_code"])

    def activate(self, username: str, code: str, password: str = PASSWORD) -> None:
        """The owner activates their account over the API; their TOTP seed is remembered."""
        answer = self.client.post(
            f"{API}/auth/activate", json={"username": username, "code": code, "password": password}
        )
        assert answer.status_code == 200, answer.text
        self.seeds[username] = answer.json()["totp_uri"]

    def load_example_policy(self) -> None:
        answer = self.client.post(f"{API}/policy/example", headers=self.admin().headers)
        assert answer.status_code == 200, answer.text


class LazyPipeline:
    """The real pipeline (single process), built on first use: tests that analyse no face never load it."""

    def __init__(self) -> None:
        self._pipeline: Pipeline | None = None

    def _get(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline.from_settings(Settings(), parallel_flip=False)
        return self._pipeline

    @property
    def model(self) -> ModelRef:
        return self._get().model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        return self._get().analyze(image)

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None


@functools.cache
def shared_pipeline() -> LazyPipeline:
    """One pipeline for every web test module of the session (it starts no helper process)."""
    return LazyPipeline()


# --- installations -------------------------------------------------------------------------


def make_template(folder: Path) -> Path:
    """A freshly initialised SQLite installation to copy (migrations take half a second)."""
    init_data_dir(folder, settings=settings()).close()
    return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("template") / "data")


@pytest.fixture(scope="module", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite; else one throw-away PostgreSQL database per module (emptied per installation)."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_db.pg_database() as url:
        Store.open(url).close()
        yield url


def open_installation(
    folder: Path, template: Path, database_url: str | None = None, image: ImageLimits | None = None
) -> DataDir:
    if database_url is None:
        shutil.copytree(template, folder)
    else:
        postgres_db.empty_database(database_url)
    return init_data_dir(folder, settings=settings(database_url, image))


@contextmanager
def running(
    folder: Path,
    template: Path,
    *,
    database_url: str | None = None,
    analyzer: Analyzer | None = None,
    image: ImageLimits | None = None,
    body_limits: BodyLimits | None = None,
) -> Iterator[Agency]:
    """A new installation behind the real app, with its first administrator and one device."""
    clock = Clock()
    dd = open_installation(folder, template, database_url, image)
    try:
        app = create_app(dd, analyzer=analyzer, clock=clock, body_limits=body_limits)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Agency.start(client, dd, clock)
    finally:
        dd.close()


# --- reading what was recorded -------------------------------------------------------------


def error_of(response: httpx2.Response) -> dict[str, Any]:
    """The error object of a JSON error response (and a check that it has the agreed shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str), error
    assert error["code"], error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert set(error) <= {"code", "message", "rule_id", "policy_version", "fields"}, error
    return error


def photo(lfw_images: Path, name: str, number: int) -> Path:
    return lfw_images / name / f"{name}_{number:04d}.jpg"


# --- real photos over the API --------------------------------------------------------------

PEOPLE = ("Colin_Powell", "Tony_Blair", "Jean_Chretien")
SEARCH_FORM: dict[str, Any] = {
    "case_number": CASE,
    "purpose": PURPOSE,
    "galleries": [CUSTODY],
    "justification": "robbery at the post office",
}


def enrol_photo(
    agency: Agency, session: Session, lfw_images: Path, name: str, number: int = 1, **provenance: str
) -> httpx2.Response:
    form = {
        "subject_id": name,
        "source": f"custody record {name}",
        "collected_on": "2024-05-01",
        **provenance,
    }
    files = {"image": (f"{name}_{number}.jpg", photo(lfw_images, name, number).read_bytes(), "image/jpeg")}
    return agency.client.post(
        f"{API}/galleries/{CUSTODY}/images", data=form, files=files, headers=session.headers
    )


def enrol_people(agency: Agency, session: Session, lfw_images: Path) -> None:
    """Photo 1 of each of :data:`PEOPLE` into the custody gallery, over the API."""
    for name in PEOPLE:
        answer = enrol_photo(agency, session, lfw_images, name)
        assert answer.status_code == 201, answer.text


def search_photo(
    agency: Agency, session: Session, lfw_images: Path, name: str, number: int, **form: Any
) -> httpx2.Response:
    files = {"probe": (f"{name}_{number}.jpg", photo(lfw_images, name, number).read_bytes(), "image/jpeg")}
    fields = {k: v for k, v in {**SEARCH_FORM, **form}.items() if v is not None}
    return agency.client.post(f"{API}/searches", data=fields, files=files, headers=session.headers)
