"""What the case, search, review and policy tests share: people, policies, data directories, photos.

Data directories are real: a SQLite file, or a throw-away database on the real PostgreSQL
server (skipped, saying why, when none is reachable). Probes and gallery faces are real LFW
photos analysed by the real pipeline, remembered per test module so each photo is analysed
once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from audit_records import audit_rows as audit_rows  # re-exported for the tests
from faceledger.adapters.policy_file import example_policy_text
from faceledger.adapters.store import Store
from faceledger.config import Settings
from faceledger.domain.models import DecodedImage, ImageAnalysis, ModelRef
from faceledger.domain.roles import Actor, Role
from faceledger.pipeline.run import Pipeline
from faceledger.services import galleries
from faceledger.services.accounts.records import Principal
from faceledger.services.datadir import DataDir, init_data_dir
from faceledger.services.enrolment import EnrolOptions, enrol_image
from faceledger.services.policies import load_policy_text
from postgres_db import empty_database, pg_database

BACKENDS = ("sqlite", "postgresql")
ORG = "Example Constabulary"
UNIT = "facial-identification"
CASE = "2025/CID/004211"
PURPOSE = "criminal_investigation"
CUSTODY = "custody_arrest_photos"
PAROLE = "parole_photos"
#: A Monday morning in London (the example policy's time zone), with its agreements in force.
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
PEOPLE = ("Colin_Powell", "Tony_Blair", "Jean_Chretien")
#: The shipped calibration may not cover the model under test; this separates these people (dlib, cosine).
THRESHOLD = 0.93

_user_ids = iter(range(1, 1_000_000))


def person(
    username: str,
    *roles: Role,
    device: str | None = "ws-01",
    mfa: bool = True,
    expires_at: datetime | None = None,
    unit: str = UNIT,
    organisation: str = ORG,
) -> Principal:
    """A signed-in person, as the accounts service would establish them."""
    held = frozenset(roles)
    actor = Actor(
        username, held, organisation, unit, expires_at=expires_at, mfa_verified=mfa, device_id=device
    )
    return Principal(actor=actor, user_id=next(_user_ids), scopes=held, expires_at=T0 + timedelta(days=1))


ADMIN = person("sam.admin", Role.SYSTEM_ADMIN, device=None)


def policy_text(**changes: str) -> str:
    """The shipped example policy with lines replaced: ``policy_text(version='"v2"')``."""
    out = example_policy_text()
    for key, value in changes.items():
        lines = out.splitlines()
        hits = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == key]
        assert len(hits) == 1, f"the example policy has {len(hits)} '{key} =' lines"
        lines[hits[0]] = f"{key} = {value}"
        out = "\n".join(lines) + "\n"
    return out


def load(dd: DataDir, text: str | None = None, *, at: datetime = T0) -> None:
    load_policy_text(dd, ADMIN, text or example_policy_text(), source="test-policy.toml", now=at)


# --- data directories --------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite; else one throw-away PostgreSQL database per module (emptied per test)."""
    if request.param == "sqlite":
        yield None
        return
    with pg_database() as url:
        yield url


@pytest.fixture
def dd(backend_url: str | None, tmp_path: Path) -> Iterator[DataDir]:
    """A fresh data directory: a SQLite file, or the PostgreSQL database emptied."""
    if backend_url is not None:
        Store.open(backend_url).close()  # the schema, on first use
        empty_database(backend_url)
    settings = Settings(database_url=backend_url, threshold=THRESHOLD)
    opened = init_data_dir(tmp_path / "data", settings=settings)
    yield opened
    opened.close()


# --- the pipeline on real photos ---------------------------------------------------------


class CachingAnalyzer:
    """The real pipeline, remembering each image's analysis; counts calls to prove what ran."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.cache: dict[str, ImageAnalysis] = {}
        self.calls = 0

    @property
    def model(self) -> ModelRef:
        return self.pipeline.model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        self.calls += 1
        if image.sha256 not in self.cache:
            self.cache[image.sha256] = self.pipeline.analyze(image)
        return self.cache[image.sha256]


@pytest.fixture(scope="module")
def analyzer(lfw_images: Path) -> Iterator[CachingAnalyzer]:
    pipeline = Pipeline.from_settings(Settings(), parallel_flip=False)
    yield CachingAnalyzer(pipeline)
    pipeline.close()


def photo(lfw_images: Path, name: str, number: int) -> Path:
    return lfw_images / name / f"{name}_{number:04d}.jpg"


def create_galleries(dd: DataDir) -> None:
    for name in (CUSTODY, PAROLE):
        galleries.create_gallery(
            dd, name, legal_basis="PACE s.64A", source_description="LFW test photos", retention_days=2190
        )


def enrol_people(dd: DataDir, analyzer: CachingAnalyzer, lfw_images: Path, gallery: str = CUSTODY) -> None:
    """Photo 1 of each of :data:`PEOPLE` into ``gallery``."""
    options = EnrolOptions(enrolled_by="gina.galleries", collected_on=date(2024, 5, 1), workers=1)
    for name in PEOPLE:
        enrol_image(dd, gallery, name, photo(lfw_images, name, 1), options, pipeline=analyzer)
