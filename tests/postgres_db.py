"""Throw-away databases on the real PostgreSQL server, for the tests that run on both backends.

``FACELEDGER_TEST_POSTGRES_URL`` names an administrative connection (default: the local server,
trust auth). Without a reachable server the PostgreSQL half of the suite is skipped, saying so,
unless ``FACELEDGER_REQUIRE_POSTGRES=1`` (set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from faceledger.adapters.store import tables as t

PG_ADMIN_URL = os.environ.get(
    "FACELEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRED = os.environ.get("FACELEDGER_REQUIRE_POSTGRES", "") not in {"", "0"}


def unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL half skipped: no server at {PG_ADMIN_URL} ({reason}); "
        "start one or set FACELEDGER_TEST_POSTGRES_URL to run it"
    )
    if REQUIRED:
        pytest.fail(message.replace("skipped", "required (FACELEDGER_REQUIRE_POSTGRES=1) but unavailable"))
    pytest.skip(message)


@contextmanager
def pg_database() -> Iterator[str]:
    """The URL of a fresh, empty database on the server, dropped afterwards."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the psycopg driver is not installed")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        conn = admin.connect()
    except OperationalError as exc:
        admin.dispose()
        unavailable(str(exc.orig).strip())
        raise  # unreachable: unavailable() skips or fails
    name = f"faceledger_test_{uuid.uuid4().hex[:12]}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        conn.close()
        admin.dispose()


def empty_database(url: str) -> None:
    """Delete every row, keeping the schema (DELETE beats TRUNCATE on tables this small)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(t.metadata.sorted_tables):
                conn.execute(delete(table))
    finally:
        engine.dispose()
