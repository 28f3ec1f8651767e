"""Migration 0017: browsers enrolled as registered devices with WebAuthn.

It adds ``browser_enrolments`` (one-time codes, kept as SHA-256), ``browser_credentials`` (a
browser's public key, credential id and sign count for one device, one per code) and
``sessions.browser_credential_id``; sessions from before it have none. The downgrade removes
them and keeps the sessions table's AUTOINCREMENT (session ids are never reused).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.store.engine import alembic_config

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).isoformat()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _session_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("sessions")}
    finally:
        engine.dispose()


def test_0017_adds_the_tables_and_the_session_column_and_its_downgrade_removes_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0016")
    assert not {"browser_enrolments", "browser_credentials"} & _tables(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:  # a session from before 0017
            conn.execute(
                text(
                    "INSERT INTO users (username, display_name, organisation, unit, password_hash, "
                    "suspended, failed_attempts, created_by, created_at, updated_at, trial, totp_confirmed) "
                    "VALUES ('ada', 'Ada', 'Org', 'IT', 'x', 0, 0, 'installer', :now, :now, 0, 0)"
                ),
                {"now": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO sessions (user_id, token_hash, mfa, created_at, expires_at) "
                    "VALUES (1, 'h', 1, :now, :now)"
                ),
                {"now": NOW},
            )
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "0017")
    assert {"browser_enrolments", "browser_credentials"} <= _tables(url)
    assert "browser_credential_id" in _session_columns(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT browser_credential_id FROM sessions")).scalar_one() is None
            conn.execute(
                text(
                    "INSERT INTO devices (id, name, unit, credential_hash, registered_by, registered_at) "
                    "VALUES ('ws-1', 'WS', 'IT', 'h', 'ada', :now)"
                ),
                {"now": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO browser_enrolments (device_id, code_hash, issued_by, issued_at, expires_at) "
                    "VALUES ('ws-1', 'c1', 'ada', :now, :now)"
                ),
                {"now": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO browser_credentials (device_id, enrolment_id, credential_id, public_key, "
                    "sign_count, enrolled_by, enrolled_at) VALUES ('ws-1', 1, x'01', x'02', 0, 'ada', :now)"
                ),
                {"now": NOW},
            )
        # One credential per code: a second one for the same enrolment is refused by the schema.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO browser_credentials (device_id, enrolment_id, credential_id, public_key, "
                    "sign_count, enrolled_by, enrolled_at) VALUES ('ws-1', 1, x'03', x'04', 0, 'ada', :now)"
                ),
                {"now": NOW},
            )
    finally:
        engine.dispose()
    command.downgrade(alembic_config(url), "0016")
    assert not {"browser_enrolments", "browser_credentials"} & _tables(url)
    assert "browser_credential_id" not in _session_columns(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'sessions'")).scalar_one()
            assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 1
        assert "AUTOINCREMENT" in ddl
    finally:
        engine.dispose()
