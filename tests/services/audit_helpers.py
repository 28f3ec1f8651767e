"""Data directories for the audit tests, on SQLite and on a throw-away PostgreSQL database.

A plain module rather than a conftest, so that test files can import it and mypy sees one
module by that name. The PostgreSQL half skips with the reason when no server answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import postgres_db
from faceledger.adapters.store import Store
from faceledger.audit import events as ev
from faceledger.config import AuditSettings, Settings
from faceledger.services import audit
from faceledger.services.datadir import DataDir, init_data_dir

BACKENDS = ("sqlite", "postgresql")
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


pg_database = postgres_db.pg_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session (creating one per test costs seconds)."""
    with pg_database() as url:
        Store.open(url).close()
        yield url


_empty = postgres_db.empty_database


@contextmanager
def data_dir(
    backend: str, root: Path, *, request: pytest.FixtureRequest, checkpoint_every: int = 0
) -> Iterator[DataDir]:
    """An initialised data directory whose database is SQLite (in ``root``) or an emptied PostgreSQL one."""
    settings = Settings(audit=AuditSettings(checkpoint_every=checkpoint_every))
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        _empty(url)
        settings = settings.with_overrides(database_url=url)
    with init_data_dir(root, settings=settings) as dd:
        yield dd


def stamp(n: int) -> datetime:
    return START + timedelta(seconds=n)


def search_event(n: int, *, actor: str = "alice", purpose: str | None = "investigation") -> ev.AuditEvent:
    return ev.search(
        actor,
        search_id=str(n),
        probe_sha256=f"{n:064x}",
        galleries=["custody"],
        model_key="dlib/test",
        threshold="0.930000",
        score_normalisation="none",
        top_k=10,
        case_ref=f"CASE-{n}",
        purpose=purpose,
    )


def append(dd: DataDir, count: int, *, first: int = 1) -> list[int]:
    """``count`` search entries, one committed transaction each; their sequence numbers."""
    seqs = []
    for n in range(first, first + count):
        with dd.store.begin() as conn:
            seqs.append(audit.record(dd, conn, search_event(n), now=stamp(n)))
    return seqs
