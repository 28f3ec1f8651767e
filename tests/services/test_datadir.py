"""Creating and opening a data directory, its config.toml, and the single-writer lock."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from faceledger.adapters.store.engine import current_revision, head_revision
from faceledger.config import Settings, load_settings
from faceledger.errors import ConflictError, NotInitializedError, StoreError
from faceledger.services import galleries
from faceledger.services.datadir import (
    CONFIG_FILE,
    DB_FILE,
    MARKER_FILE,
    default_config_toml,
    init_data_dir,
    is_data_dir,
    model_slug,
    open_data_dir,
)


def test_init_creates_the_layout_and_a_migrated_database(tmp_path: Path) -> None:
    root = tmp_path / "new" / "data"
    with init_data_dir(root) as dd:
        assert dd.path == root
        assert dd.settings.data_dir == root
        assert current_revision(dd.store.engine) == head_revision()
    assert is_data_dir(root)
    assert {p.name for p in root.iterdir()} >= {MARKER_FILE, CONFIG_FILE, DB_FILE, "images", "index"}
    marker = json.loads((root / MARKER_FILE).read_text())
    assert marker["format"] == 1


def test_init_is_idempotent_and_keeps_data_and_config(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with init_data_dir(root) as dd:
        galleries.create_gallery(dd, "custody", legal_basis="s.1", source_description="d")
    (root / CONFIG_FILE).write_text("quality_floor = 55.0\n")

    with init_data_dir(root) as dd:
        assert [i.gallery.name for i in galleries.list_galleries(dd)] == ["custody"]
        assert dd.settings.quality_floor == 55.0


def test_init_accepts_an_existing_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    init_data_dir(tmp_path / "empty").close()
    assert is_data_dir(tmp_path / "empty")


def test_init_refuses_a_folder_that_holds_something_else(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.docx").write_text("precious")

    with pytest.raises(ConflictError, match="not empty and is not a faceledger data directory"):
        init_data_dir(tmp_path / "home")
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["thesis.docx"]


def test_init_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConflictError, match="is a file"):
        init_data_dir(tmp_path / "file")


def test_open_refuses_a_folder_never_initialised_and_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    for path in (tmp_path / "plain", tmp_path / "missing"):
        with pytest.raises(NotInitializedError, match="faceledger init"):
            open_data_dir(path)
    assert not (tmp_path / "missing").exists()
    assert list((tmp_path / "plain").iterdir()) == []


def test_open_refuses_a_data_directory_from_a_newer_faceledger(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "d").close()
    (tmp_path / "d" / MARKER_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(StoreError, match="format 99"):
        open_data_dir(tmp_path / "d")
    (tmp_path / "d" / MARKER_FILE).write_text("{not json")
    with pytest.raises(StoreError, match="damaged"):
        open_data_dir(tmp_path / "d")


def test_config_toml_changes_nothing_until_a_line_is_uncommented(tmp_path: Path) -> None:
    text = default_config_toml()
    root = tmp_path / "d"
    init_data_dir(root).close()
    assert (root / CONFIG_FILE).read_text() == text
    assert load_settings(root, env={}) == Settings(data_dir=root)

    # Every commented "# key = value" line, uncommented, is valid TOML and equals the default.
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", text)
    values = tomllib.loads(uncommented)
    assert values["quality_floor"] == Settings().quality_floor
    assert values["embedder"]["flip"] is Settings().embedder.flip
    assert values["index"]["exact_max"] == Settings().index.exact_max
    (root / CONFIG_FILE).write_text(uncommented)
    assert load_settings(root, env={}) == Settings(data_dir=root)


def test_database_url_setting_points_the_store_elsewhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    settings = Settings(database_url=f"sqlite:///{elsewhere}")
    with init_data_dir(tmp_path / "d", settings=settings) as dd:
        galleries.create_gallery(dd, "g", legal_basis="s.1", source_description="d")
    assert elsewhere.is_file()
    assert not (tmp_path / "d" / DB_FILE).exists()


def test_only_one_writer_at_a_time(tmp_path: Path) -> None:
    first = init_data_dir(tmp_path / "d")
    second = open_data_dir(tmp_path / "d")
    with first.writing():
        with pytest.raises(ConflictError, match="another faceledger process is changing"):
            galleries.create_gallery(second, "g", legal_basis="s.1", source_description="d")
        with first.writing():  # re-entrant for the holder
            galleries.create_gallery(first, "g", legal_basis="s.1", source_description="d")
    galleries.create_gallery(second, "h", legal_basis="s.1", source_description="d")
    assert [i.gallery.name for i in galleries.list_galleries(second)] == ["g", "h"]
    first.close()
    second.close()


def test_model_slug_is_a_single_safe_folder_name() -> None:
    slug = model_slug("onnx/arc face:v2/1.0/0123456789ab")
    assert slug == "onnx--arc_face_v2--1.0--0123456789ab"
    assert "/" not in model_slug("../../x")
    assert model_slug("..") not in {"", ".", ".."}
    assert model_slug("") != ""
