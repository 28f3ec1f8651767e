"""Database conflicts answer as conflicts (409) or a busy database (503), not as bugs: real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError

from faceledger.errors import ConflictError, DatabaseBusyError
from faceledger.services.database_errors import clear_error
from faceledger.web.errors import status_for

metadata = MetaData()
cases = Table(
    "cases", metadata, Column("id", Integer, primary_key=True), Column("number", String, unique=True)
)


def test_a_duplicate_is_a_conflict_to_retry(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(cases).values(number="2025/CID/1"))
    with pytest.raises(IntegrityError) as raised, engine.begin() as conn:
        conn.execute(insert(cases).values(number="2025/CID/1"))
    clear = clear_error(raised.value)
    assert isinstance(clear, ConflictError)
    assert "retry" in str(clear)
    assert status_for(clear) == 409


def test_a_database_locked_past_the_wait_is_busy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    holder = create_engine(url)
    waiter = create_engine(url, connect_args={"timeout": 0.05})
    metadata.create_all(holder)
    with holder.connect() as held:
        held.exec_driver_sql("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked") as raised, waiter.begin() as conn:
            conn.execute(insert(cases).values(number="2025/CID/2"))
        held.exec_driver_sql("ROLLBACK")
    clear = clear_error(raised.value)
    assert isinstance(clear, DatabaseBusyError)
    assert status_for(clear) == 503


def test_anything_else_is_left_to_the_unexpected_error_handler(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(OperationalError, match="no such table") as raised, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert clear_error(raised.value) is None
    assert clear_error(ValueError("boom")) is None
