"""Migrations 0011, 0013 and 0014: token binding, a comparison's estimated FMR, the face choice.

0011: API tokens record the device they are bound to, or that they are server tokens.

A token made before it has neither, so it is refused at use (tests/services/test_devices.py)
and must be made again; the downgrade keeps the table's AUTOINCREMENT (token ids are never
reused).

0014: an enrolled image records how its face was chosen; images enrolled before have none.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect, text

from faceledger.adapters.store.engine import alembic_config


def _columns(url: str, table: str = "api_tokens") -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_0011_adds_the_binding_and_its_downgrade_keeps_autoincrement(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0010")
    assert not {"device_id", "server"} & _columns(url)
    command.upgrade(alembic_config(url), "0011")
    engine = create_engine(url)
    try:
        columns = {c["name"]: c for c in inspect(engine).get_columns("api_tokens")}
        assert columns["device_id"]["nullable"]
        assert not columns["server"]["nullable"]
    finally:
        engine.dispose()
    command.downgrade(alembic_config(url), "0010")
    assert not {"device_id", "server"} & _columns(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'api_tokens'")).scalar_one()
        assert "AUTOINCREMENT" in ddl
    finally:
        engine.dispose()


def test_0013_adds_the_estimated_fmr_of_a_comparison_and_drops_it_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0012")
    assert "estimated_fmr" not in _columns(url, "searches")
    command.upgrade(alembic_config(url), "0013")
    assert "estimated_fmr" in _columns(url, "searches")
    command.downgrade(alembic_config(url), "0012")
    assert "estimated_fmr" not in _columns(url, "searches")


def test_0014_adds_the_face_choice_of_an_image_and_its_downgrade_keeps_autoincrement(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0013")
    assert "face_choice" not in _columns(url, "images")
    command.upgrade(alembic_config(url), "0014")
    engine = create_engine(url)
    try:
        columns = {c["name"]: c for c in inspect(engine).get_columns("images")}
        assert columns["face_choice"]["nullable"]
    finally:
        engine.dispose()
    command.downgrade(alembic_config(url), "0013")
    assert "face_choice" not in _columns(url, "images")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'images'")).scalar_one()
        assert "AUTOINCREMENT" in ddl
    finally:
        engine.dispose()
