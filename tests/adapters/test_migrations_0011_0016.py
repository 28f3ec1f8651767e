"""Migrations 0011, 0013, 0014, 0015 and 0016: token binding, a comparison's estimated FMR, the face
choice, the score normalisation, the template size of a candidate's score.

0011: API tokens record the device they are bound to, or that they are server tokens.

A token made before it has neither, so it is refused at use (tests/services/test_devices.py)
and must be made again; the downgrade keeps the table's AUTOINCREMENT (token ids are never
reused).

0014: an enrolled image records how its face was chosen; images enrolled before have none.

0015: every search and comparison names the score normalisation of its scores; those recorded
before it were raw cosine similarities and read "none", and a new row must name its own.

0016: each stored candidate says how many of its subject's images its score compares with; those
stored before it compared with one image (the subject's best face) and read 1, and a new row must
say its own number, so a writer cannot pass a template's score off as one image's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Integer, String, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

import postgres_db
from faceledger.adapters.store.engine import alembic_config
from faceledger.domain.normalisation import MAX_KEY_CHARS


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


_OLD_SEARCH = (
    "INSERT INTO searches (kind, case_id, purpose, username, policy_id, policy_version, rule_ids, "
    "probe_id, searched_sha256, model_key, threshold, galleries, faces_found, timings, created_at, "
    "probe_retain_until{extra}) VALUES (:kind, 1, 'investigation', 'alice', 1, 'p-1', '[]', 1, :sha, "
    "'dlib/test', 0.93, '[]', 1, '{{}}', '2026-12-01 10:00:00', '2027-12-01 10:00:00'{value})"
)


def _insert_search(url: str, kind: str, normalisation: str | None = None) -> None:
    extra, value = ("", "") if normalisation is None else (", score_normalisation", ", :normalisation")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(_OLD_SEARCH.format(extra=extra, value=value)),
                {"kind": kind, "sha": "ab" * 32, "normalisation": normalisation},
            )
    finally:
        engine.dispose()


def _normalisations(url: str) -> list[tuple[str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, score_normalisation FROM searches ORDER BY id"))
            return [(r.kind, r.score_normalisation) for r in rows]
    finally:
        engine.dispose()


def _searches_ddl(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'searches'")).scalar_one()
            )
    finally:
        engine.dispose()


def test_0015_names_none_for_old_searches_and_comparisons_and_no_default_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0014")
    assert "score_normalisation" not in _columns(url, "searches")
    _insert_search(url, "search")
    _insert_search(url, "verify")
    command.upgrade(alembic_config(url), "0015")
    assert _normalisations(url) == [("search", "none"), ("verify", "none")]
    engine = create_engine(url)
    try:
        column = next(
            c for c in inspect(engine).get_columns("searches") if c["name"] == "score_normalisation"
        )
    finally:
        engine.dispose()
    assert not column["nullable"]
    assert isinstance(column["type"], String)
    assert column["type"].length == MAX_KEY_CHARS  # every key the domain accepts fits
    assert column["default"] is None  # the default only filled the old rows
    with pytest.raises(IntegrityError, match="score_normalisation"):
        _insert_search(url, "search")  # a new row that does not name its normalisation is refused
    _insert_search(url, "search", "none")
    assert len(_normalisations(url)) == 3
    assert "AUTOINCREMENT" in _searches_ddl(url)  # search ids are never reused


def test_0015_downgrade_drops_the_normalisation_and_keeps_the_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0015")
    _insert_search(url, "verify", "none")
    command.downgrade(alembic_config(url), "0014")
    assert "score_normalisation" not in _columns(url, "searches")
    assert "AUTOINCREMENT" in _searches_ddl(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT kind FROM searches")).scalars().all() == ["verify"]
    finally:
        engine.dispose()


def test_0015_on_postgresql_leaves_a_required_column_without_a_default() -> None:
    with postgres_db.pg_database() as url:
        command.upgrade(alembic_config(url), "0015")
        engine = create_engine(url)
        try:
            columns = {c["name"]: c for c in inspect(engine).get_columns("searches")}
        finally:
            engine.dispose()
    assert not columns["score_normalisation"]["nullable"]
    assert columns["score_normalisation"]["default"] is None


_CANDIDATE = (
    "INSERT INTO search_candidates (search_id, rank, subject_id, face_id, gallery, score, estimated_fmr, "
    "above_threshold{extra}) VALUES (1, :rank, 'S-1', :face, 'mugshots', 0.95, 0.0001, 1{value})"
)


def _insert_candidate(url: str, rank: int, images: int | None = None) -> None:
    extra, value = ("", "") if images is None else (", template_images", ", :images")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(_CANDIDATE.format(extra=extra, value=value)),
                {"rank": rank, "face": rank, "images": images},
            )
    finally:
        engine.dispose()


def _stored(url: str) -> list[tuple[int, int]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT rank, template_images FROM search_candidates ORDER BY rank"))
            return [(int(r.rank), int(r.template_images)) for r in rows]
    finally:
        engine.dispose()


def test_0016_gives_old_candidates_one_image_and_leaves_no_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0015")
    _insert_search(url, "search", "none")
    _insert_candidate(url, 1)
    command.upgrade(alembic_config(url), "0016")
    assert _stored(url) == [(1, 1)]
    engine = create_engine(url)
    try:
        column = next(
            c for c in inspect(engine).get_columns("search_candidates") if c["name"] == "template_images"
        )
        with engine.connect() as conn:
            ddl = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'search_candidates'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert not column["nullable"]
    assert isinstance(column["type"], Integer)
    assert column["default"] is None
    assert "AUTOINCREMENT" in ddl  # candidate ids are never reused
    with pytest.raises(IntegrityError, match="template_images"):
        _insert_candidate(url, 2)  # a new row must say how many images its score compares with
    _insert_candidate(url, 2, 3)
    assert _stored(url) == [(1, 1), (2, 3)]


def test_0016_downgrade_drops_the_column_and_keeps_the_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0016")
    _insert_search(url, "search", "mean-template")
    _insert_candidate(url, 1, 4)
    command.downgrade(alembic_config(url), "0015")
    engine = create_engine(url)
    try:
        names = {c["name"] for c in inspect(engine).get_columns("search_candidates")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT rank FROM search_candidates")).scalars().all() == [1]
    finally:
        engine.dispose()
    assert "template_images" not in names


def test_0016_on_postgresql_leaves_a_required_column_without_a_default() -> None:
    with postgres_db.pg_database() as url:
        command.upgrade(alembic_config(url), "0016")
        engine = create_engine(url)
        try:
            columns = {c["name"]: c for c in inspect(engine).get_columns("search_candidates")}
        finally:
            engine.dispose()
    assert not columns["template_images"]["nullable"]
    assert columns["template_images"]["default"] is None
