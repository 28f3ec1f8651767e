"""A writer that dies at any instant leaves a data directory that heals on the next open.

The kill -9 tests run a real enrolment (real pipeline, real LFW photos) in a child process
and kill it: at a random moment, and at the two dangerous instants of the write path
(image file written but row not committed; row committed but vector not yet indexed).
Afterwards the database must hold no half-enrolled face, the index must equal the
database once opened, and a rerun must finish the job without duplicates.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from faceledger.adapters.images import ImageStore
from faceledger.adapters.index import open_index
from faceledger.adapters.store import Store, repository
from faceledger.adapters.store import tables as t
from faceledger.config import Settings
from faceledger.domain.models import Gallery, ModelRef, Provenance
from faceledger.services import galleries
from faceledger.services.datadir import DB_FILE, DIRTY_FILE, DataDir, init_data_dir, model_slug, open_data_dir

MODEL = ModelRef("test", "hand-made", "1", "ef" * 32, 8)


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(MODEL.dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _insert_face(dd: DataDir, gallery: Gallery, subject: str, seed: int) -> int:
    """A committed face that no index has seen yet (as after a crash between commit and index add)."""
    data = f"image {seed}".encode()
    sha = dd.images.put(data)
    with dd.store.begin() as conn:
        subject_id = repository.get_or_create_subject(conn, gallery.id or 0, subject)
        image_id = repository.insert_image(
            conn,
            repository.NewImage(
                gallery.id or 0, subject_id, sha, "JPEG", 9, 9, len(data), Provenance("x", None, "me")
            ),
        )
        face = repository.NewFace(0, {}, {}, {}, 70.0, "hand", 1.0, MODEL, _vector(seed))
        return repository.insert_face(
            conn, image_id=image_id, subject_id=subject_id, gallery_id=gallery.id or 0, face=face
        )


def _db_face_ids(dd: DataDir) -> list[int]:
    with dd.store.read() as conn:
        return sorted(conn.execute(select(t.faces.c.id)).scalars())


def _disk_index_ids(dd: DataDir, gallery: str, model: ModelRef) -> list[int]:
    index = open_index(dd.index_dir(gallery, model.key), dim=model.dim, settings=dd.settings.index)
    return sorted(index.ids().tolist())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    with init_data_dir(root) as dd:
        galleries.create_gallery(dd, "custody", legal_basis="s.1", source_description="test")
    return root


# --- in-process: recovery and reconciliation -------------------------------------------


def test_the_next_writer_cleans_up_after_one_that_died(data: Path) -> None:
    with open_data_dir(data) as dd:
        gallery = galleries.get_gallery(dd, "custody")
        kept = _insert_face(dd, gallery, "A", seed=1)
        orphan = dd.images.put(b"written, never committed")
        dd.images.temp_dir.mkdir(exist_ok=True)
        (dd.images.temp_dir / "x.part").write_bytes(b"half")
        with dd.store.begin() as conn:
            run = repository.start_run(
                conn, gallery_id=gallery.id or 0, source="s", enrolled_by="me", settings={}
            )
        (data / "index" / "deleted-gallery" / "m").mkdir(parents=True)
        (data / DIRTY_FILE).write_text("12345\n")  # the dead writer's marker

    with open_data_dir(data) as dd:
        galleries.create_gallery(dd, "next", legal_basis="s.1", source_description="d")  # any write
        assert dd.last_recovery is not None
        assert (dd.last_recovery.orphan_images, dd.last_recovery.temp_files) == (1, 1)
        assert (dd.last_recovery.aborted_runs, dd.last_recovery.stale_index_dirs) == (1, 1)
        assert not dd.images.exists(orphan)
        assert len(list(dd.images.hashes())) == 1
        assert _db_face_ids(dd) == [kept]
        with dd.store.read() as conn:
            assert repository.run_status(conn, run) == repository.RUN_ABORTED
    assert not (data / DIRTY_FILE).exists()
    assert not (data / "index" / "deleted-gallery").exists()


def test_a_clean_writer_leaves_no_marker_and_triggers_no_recovery(data: Path) -> None:
    with open_data_dir(data) as dd:
        orphan = dd.images.put(b"an unrelated file")  # would be swept by a recovery
        galleries.create_gallery(dd, "other", legal_basis="s.1", source_description="d")
        assert dd.last_recovery is None
        assert dd.images.exists(orphan)
    assert not (data / DIRTY_FILE).exists()


def test_opening_an_index_adds_what_the_database_has_and_drops_what_it_lacks(data: Path) -> None:
    with open_data_dir(data) as dd:
        gallery = galleries.get_gallery(dd, "custody")
        with dd.writing():
            first = _insert_face(dd, gallery, "A", seed=1)
            dd.index(gallery, MODEL)  # reconciled and saved: holds `first`
            second = _insert_face(dd, gallery, "B", seed=2)  # committed, never indexed
        assert _disk_index_ids(dd, "custody", MODEL) == [first]
        ghost = open_index(dd.index_dir("custody", MODEL.key), dim=MODEL.dim, settings=dd.settings.index)
        ghost.add(np.asarray([999], dtype=np.int64), _vector(9)[None, :])  # a vector with no face row
        ghost.save()

    with open_data_dir(data) as dd, dd.writing():
        index = dd.index(galleries.get_gallery(dd, "custody"), MODEL)
        assert sorted(index.ids().tolist()) == [first, second]
        scores, ids = index.search(_vector(2)[None, :], 1)
        assert ids[0, 0] == second
        assert scores[0, 0] == pytest.approx(1.0, abs=1e-6)
    with open_data_dir(data) as dd:
        assert _disk_index_ids(dd, "custody", MODEL) == [first, second]


def test_a_purge_cut_short_after_its_commit_still_erases_on_the_next_open(data: Path) -> None:
    with open_data_dir(data) as dd:
        gallery = galleries.get_gallery(dd, "custody")
        with dd.writing():
            gone = _insert_face(dd, gallery, "A", seed=1)
            kept = _insert_face(dd, gallery, "B", seed=2)
            dd.index(gallery, MODEL)
        assert _disk_index_ids(dd, "custody", MODEL) == [gone, kept]
        # The purge's transaction commits, then the process dies before touching index and files.
        with dd.store.begin() as conn:
            rows = repository.delete_subject(conn, gallery, "A")
        (data / DIRTY_FILE).write_text("4242\n")

    with open_data_dir(data) as dd:
        assert dd.last_recovery is not None
        assert dd.last_recovery.reconciled_indexes == 1
        assert _disk_index_ids(dd, "custody", MODEL) == [kept]
        assert not any(dd.images.exists(sha) for sha in rows.sha256s)


def test_an_index_left_without_faces_by_a_cut_short_purge_is_removed(data: Path) -> None:
    with open_data_dir(data) as dd:
        gallery = galleries.get_gallery(dd, "custody")
        with dd.writing():
            _insert_face(dd, gallery, "A", seed=1)
            dd.index(gallery, MODEL)
        directory = dd.index_dir("custody", MODEL.key)
        assert directory.is_dir()
        with dd.store.begin() as conn:
            repository.delete_subject(conn, gallery, "A")
        (data / DIRTY_FILE).write_text("4242\n")

    with open_data_dir(data) as dd:
        assert dd.last_recovery is not None
        assert dd.last_recovery.stale_index_dirs == 1
    assert not directory.exists()
    assert (data / "index" / "custody").is_dir()


def test_a_reader_reconciles_in_memory_but_never_writes_the_index(data: Path) -> None:
    with open_data_dir(data) as dd:
        gallery = galleries.get_gallery(dd, "custody")
        face = _insert_face(dd, gallery, "A", seed=1)
        assert sorted(dd.index(gallery, MODEL).ids().tolist()) == [face]
        assert _disk_index_ids(dd, "custody", MODEL) == []


def test_a_damaged_index_is_rebuilt_from_the_database(data: Path) -> None:
    with open_data_dir(data) as dd:
        gallery = galleries.get_gallery(dd, "custody")
        with dd.writing():
            faces = [_insert_face(dd, gallery, s, seed=i) for i, s in enumerate("ABC")]
            dd.index(gallery, MODEL)
        directory = dd.index_dir("custody", MODEL.key)
    for path in directory.iterdir():
        if path.name != "manifest.json":
            path.write_bytes(b"\x00garbage")

    with open_data_dir(data) as dd, dd.writing():
        index = dd.index(galleries.get_gallery(dd, "custody"), MODEL)
        assert sorted(index.ids().tolist()) == faces
    with open_data_dir(data) as dd:
        assert _disk_index_ids(dd, "custody", MODEL) == faces


# --- kill -9 with the real pipeline ----------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from datetime import date
    from pathlib import Path

    from faceledger.services.datadir import open_data_dir
    from faceledger.services.enrolment import EnrolOptions, enrol_folder

    def main() -> None:
        data, photos, progress_file, workers, crash_at = sys.argv[1:6]
        dd = open_data_dir(data)
        if crash_at:
            point, nth = crash_at.split(":")
            install_crash(dd, point, int(nth))

        def progress(p):
            Path(progress_file).write_text(json.dumps({"done": p.done, "enrolled": p.enrolled}))

        result = enrol_folder(
            dd, "custody", photos,
            EnrolOptions(enrolled_by="crash test", collected_on=date(2024, 1, 1), workers=int(workers)),
            progress=progress,
        )
        print(json.dumps(result.to_dict()))

    def install_crash(dd, point, nth):
        # kill -9 ourselves at the nth passage through a dangerous point of the write path
        calls = {"n": 0}
        def die_on_nth(original):
            def wrapper(*args, **kwargs):
                calls["n"] += 1
                if point == "after_file":
                    out = original(*args, **kwargs)
                    if calls["n"] == nth:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return out
                if calls["n"] == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)
            return wrapper
        if point == "after_file":
            dd.images.put = die_on_nth(dd.images.put)
        elif point == "after_commit":
            real_index = dd.index
            def index(gallery, model):
                opened = real_index(gallery, model)
                if not hasattr(opened, "_crash_wrapped"):
                    opened.add = die_on_nth(opened.add)
                    opened._crash_wrapped = True
                return opened
            dd.index = index

    if __name__ == "__main__":
        main()
    """
)


# One network pass per face instead of two (no mirrored pass): crash safety does not depend on it.
CHILD_ENV = {**os.environ, "FACELEDGER_EMBEDDER__FLIP": "false"}


@pytest.fixture
def photos(lfw_images: Path, tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for person in ("Al_Gore", "Ai_Sugiyama", "Al_Sharpton"):
        (root / person).mkdir(parents=True)
        for source in sorted((lfw_images / person).glob("*.jpg"))[:3]:
            shutil.copy(source, root / person / source.name)
    return root


@pytest.fixture
def child(tmp_path: Path) -> Path:
    script = tmp_path / "enrol_child.py"
    script.write_text(CHILD)
    return script


def _start(
    child: Path, data: Path, photos: Path, progress: Path, workers: int, crash_at: str = ""
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(child), str(data), str(photos), str(progress), str(workers), crash_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: "power loss" kills workers too
        env=CHILD_ENV,
    )


def _wait_for_enrolled(progress: Path, process: subprocess.Popen[str], at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"enrolment ended before it could be killed: {stderr}")
        try:
            if json.loads(progress.read_text())["enrolled"] >= at_least:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.02)
    pytest.fail(f"no {at_least} images enrolled within {timeout} s")


def _kill_group(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)  # reaps it and closes the pipes


def _assert_consistent(data: Path) -> DataDir:
    """No half-enrolled face: every face has its image row and file; every image row has a face."""
    dd = open_data_dir(data)
    with dd.store.read() as conn:
        faces = conn.execute(select(t.faces.c.id, t.faces.c.image_id)).all()
        images: dict[int, str] = {
            int(i): str(s) for i, s in conn.execute(select(t.images.c.id, t.images.c.sha256))
        }
        counted = conn.execute(select(t.faces.c.image_id, func.count()).group_by(t.faces.c.image_id)).all()
    faces_per_image: dict[int, int] = {int(image_id): int(n) for image_id, n in counted}
    assert all(image_id in images for _, image_id in faces)
    assert set(faces_per_image) == set(images)
    for sha in images.values():
        dd.images.read(sha)  # present, complete, and matching its hash
    return dd


def _finish_and_check(child: Path, data: Path, photos: Path, tmp_path: Path) -> dict[str, Any]:
    rerun = subprocess.run(
        [sys.executable, str(child), str(data), str(photos), str(tmp_path / "rerun.json"), "1", ""],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=CHILD_ENV,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary: dict[str, Any] = json.loads(rerun.stdout.strip().splitlines()[-1])
    dd = _assert_consistent(data)
    with dd.store.read() as conn:
        shas = conn.execute(select(t.images.c.sha256)).scalars().all()
        model = repository.get_model(conn, conn.execute(select(t.models.c.key)).scalar_one())
    photo_shas = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in photos.rglob("*.jpg")}
    skipped_for_content = {
        Path(s["source"]).name
        for s in summary["skipped_items"]
        if s["reason"] in {"no_face", "several_faces", "low_quality"}
    }
    assert len(shas) == len(set(shas))  # no duplicates
    assert {photo_shas[s].name for s in shas} | skipped_for_content == {p.name for p in photo_shas.values()}
    assert not {photo_shas[s].name for s in shas} & skipped_for_content
    assert _disk_index_ids(dd, "custody", model) == _db_face_ids(dd)
    dd.close()
    return summary


@dataclass(frozen=True)
class RawState:
    """The directory exactly as the dead writer left it."""

    face_ids: list[int]
    image_shas: set[str]
    files: set[str]
    run_statuses: list[str]
    index_ids: list[int]


def _raw_state(data: Path) -> RawState:
    """Read without DataDir, whose open would already recover."""
    store = Store.open_sqlite(data / DB_FILE)
    with store.read() as conn:
        face_ids = sorted(conn.execute(select(t.faces.c.id)).scalars())
        shas = set(conn.execute(select(t.images.c.sha256)).scalars())
        statuses = list(
            conn.execute(select(t.enrolment_runs.c.status).order_by(t.enrolment_runs.c.id)).scalars()
        )
        key = conn.execute(select(t.models.c.key)).scalar_one()
        model = repository.get_model(conn, key)
    store.close()
    directory = data / "index" / "custody" / model_slug(key)
    index = open_index(directory, dim=model.dim, settings=Settings().index)
    files = set(ImageStore(data / "images").hashes())
    return RawState(face_ids, shas, files, statuses, sorted(index.ids().tolist()))


def _assert_recovered_on_open(data: Path) -> None:
    dd = _assert_consistent(data)
    assert dd.last_recovery is not None
    assert not (data / DIRTY_FILE).exists()
    with dd.store.read() as conn:
        shas = set(conn.execute(select(t.images.c.sha256)).scalars())
        model = repository.get_model(conn, conn.execute(select(t.models.c.key)).scalar_one())
        assert repository.RUN_RUNNING not in conn.execute(select(t.enrolment_runs.c.status)).scalars().all()
    assert set(dd.images.hashes()) == shas  # no orphan file
    assert _disk_index_ids(dd, "custody", model) == _db_face_ids(dd)  # the saved index equals the database
    dd.close()


@pytest.mark.slow
@pytest.mark.faces
def test_kill_minus_9_mid_enrolment_then_rerun_completes(
    data: Path, photos: Path, child: Path, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.json"
    process = _start(child, data, photos, progress, workers=2)
    _wait_for_enrolled(progress, process, at_least=2, timeout=120)
    _kill_group(process)

    raw = _raw_state(data)
    assert raw.run_statuses == [repository.RUN_RUNNING]
    assert len(raw.face_ids) >= 2
    assert set(raw.index_ids) <= set(raw.face_ids)  # the saved index never holds a vector the database lacks
    assert (data / DIRTY_FILE).exists()
    _assert_recovered_on_open(data)

    summary = _finish_and_check(child, data, photos, tmp_path)
    assert summary["skipped"].get("already_enrolled", 0) >= 2


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.parametrize("crash_at", ["after_file:2", "after_commit:2"])
def test_kill_minus_9_at_the_dangerous_instants(
    data: Path, photos: Path, child: Path, tmp_path: Path, crash_at: str
) -> None:
    shutil.rmtree(photos / "Al_Sharpton")  # fewer photos: the crash comes on the second image
    process = _start(child, data, photos, tmp_path / "progress.json", workers=1, crash_at=crash_at)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, stderr

    raw = _raw_state(data)
    if crash_at.startswith("after_file"):
        assert len(raw.files - raw.image_shas) == 1  # the unfinished unit of work: a file, no row
        assert raw.image_shas <= raw.files
    else:
        assert raw.files == raw.image_shas  # committed: row and file are both there...
        assert len(raw.index_ids) < len(raw.face_ids)  # ...the saved index lags behind
    _assert_recovered_on_open(data)

    _finish_and_check(child, data, photos, tmp_path)
