"""The content-addressed image store: layout, atomic writes, integrity, deletion."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from faceledger.adapters.images import ImageStore, sha256_hex
from faceledger.errors import NotFoundError, StoreError


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def photo(lfw_images: Path) -> bytes:
    return next(iter(sorted(lfw_images.glob("Al_Gore/*.jpg")))).read_bytes()


def test_put_files_image_under_its_sha256_in_two_levels(store: ImageStore, photo: bytes) -> None:
    sha = store.put(photo)

    assert sha == hashlib.sha256(photo).hexdigest()
    path = store.root / sha[:2] / sha[2:4] / sha
    assert path == store.path_for(sha)
    assert path.read_bytes() == photo
    assert store.read(sha) == photo
    assert store.exists(sha)


def test_stored_image_is_read_only_and_no_temp_file_is_left(store: ImageStore, photo: bytes) -> None:
    sha = store.put(photo)

    mode = store.path_for(sha).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list(store.temp_dir.iterdir()) == []


def test_put_is_idempotent(store: ImageStore, photo: bytes) -> None:
    first = store.put(photo)
    mtime = store.path_for(first).stat().st_mtime_ns

    assert store.put(photo, first) == first
    assert store.path_for(first).stat().st_mtime_ns == mtime
    assert list(store.hashes()) == [first]


def test_put_refuses_bytes_that_do_not_match_the_expected_hash(store: ImageStore, photo: bytes) -> None:
    wrong = sha256_hex(b"something else")

    with pytest.raises(StoreError, match="not the expected"):
        store.put(photo, wrong)
    assert not store.exists(wrong)
    assert list(store.hashes()) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab" * 31, "A" * 64, "g" * 64, ""])
def test_path_for_refuses_anything_but_a_lowercase_sha256(store: ImageStore, bad: str) -> None:
    with pytest.raises(StoreError, match="not a lowercase hex sha256"):
        store.path_for(bad)


def test_read_detects_a_corrupted_file(store: ImageStore, photo: bytes) -> None:
    sha = store.put(photo)
    path = store.path_for(sha)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(photo[:-10] + b"0123456789")

    with pytest.raises(StoreError, match="corrupt"):
        store.read(sha)
    assert store.read(sha, verify=False).endswith(b"0123456789")


def test_read_of_a_missing_image_names_it(store: ImageStore) -> None:
    sha = sha256_hex(b"never stored")
    with pytest.raises(NotFoundError, match=sha):
        store.read(sha)


def test_a_failed_write_leaves_neither_the_image_nor_a_temp_file(
    store: ImageStore, photo: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)

    with pytest.raises(StoreError, match="No space left on device"):
        store.put(photo)
    assert not store.exists(sha256_hex(photo))
    assert list(store.temp_dir.iterdir()) == []


def test_delete_removes_the_file_and_empty_folders(store: ImageStore, photo: bytes) -> None:
    sha = store.put(photo)
    other = store.put(b"\xff\xd8 not really a jpeg")

    assert store.delete(sha) is True
    assert not store.exists(sha)
    assert not (store.root / sha[:2] / sha[2:4]).exists()
    assert store.delete(sha) is False
    assert list(store.hashes()) == [other]


def test_remove_orphans_keeps_only_referenced_images(store: ImageStore) -> None:
    kept = store.put(b"kept image bytes")
    orphans = {store.put(b"orphan one"), store.put(b"orphan two")}

    assert store.remove_orphans({kept}) == 2
    assert set(store.hashes()) == {kept}
    assert not any(store.exists(sha) for sha in orphans)


def test_clean_temp_removes_half_written_files(store: ImageStore) -> None:
    store.temp_dir.mkdir(parents=True)
    (store.temp_dir / "abc.part").write_bytes(b"half an image")
    store.put(b"complete image")

    assert store.clean_temp() == 1
    assert list(store.temp_dir.iterdir()) == []
    assert len(list(store.hashes())) == 1


def test_hashes_ignores_foreign_files(store: ImageStore) -> None:
    sha = store.put(b"image")
    (store.root / sha[:2] / sha[2:4] / "notes.txt").write_text("not an image")
    (store.root / "README").write_text("hello")

    assert list(store.hashes()) == [sha]
