"""The audit log service on real SQLite and PostgreSQL databases: appends, transactions, keys, checkpoints.

Every test runs on both backends; the PostgreSQL half skips with the reason when no server
answers at FACELEDGER_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audit_helpers import BACKENDS, append, data_dir, pg_url, search_event, stamp  # noqa: F401 - pg_url: a fixture
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.signing import LogPublicKey
from faceledger.adapters.store import repository
from faceledger.adapters.store.tables_accounts import users
from faceledger.adapters.store.tables_audit import audit_checkpoints, audit_entries, audit_log
from faceledger.audit import events as ev
from faceledger.audit import verify
from faceledger.audit.canonical import entry_signature_message
from faceledger.audit.checkpoint import checkpoint_is_valid, read_checkpoints
from faceledger.audit.merkle import root_from_leaf_hashes
from faceledger.domain.models import Gallery, ModelRef, Provenance
from faceledger.errors import StoreError, ValidationError
from faceledger.services import audit, galleries
from faceledger.services.datadir import DataDir, open_data_dir


@pytest.fixture(params=BACKENDS)
def dd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataDir]:
    with data_dir(request.param, tmp_path / "data", request=request) as opened:
        yield opened


@pytest.fixture(params=BACKENDS)
def dd_every_5(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataDir]:
    with data_dir(request.param, tmp_path / "data", request=request, checkpoint_every=5) as opened:
        yield opened


def _rows(dd: DataDir) -> list[dict[str, object]]:
    with dd.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_entries).order_by(audit_entries.c.seq))]


def _size(dd: DataDir) -> int:
    return audit.log_info(dd).size


def _verify(dd: DataDir, tmp_path: Path, *, with_file: bool = True) -> verify.Summary:
    out = tmp_path / "export.json"
    audit.export_log(dd, out, actor="auditor")
    earlier = [dd.checkpoint_path] if with_file and dd.checkpoint_path.exists() else []
    return verify.verify_files(out, dd.audit_public_key_path, earlier)


# --- the key and the log's creation -----------------------------------------------------


def test_init_creates_a_private_key_outside_the_database_and_the_first_entry(dd: DataDir) -> None:
    key_path = dd.audit_key_path
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    public = LogPublicKey.load(dd.audit_public_key_path)
    info = audit.log_info(dd)
    assert public.fingerprint == info.key_fingerprint == audit.signer(dd).fingerprint
    [first] = _rows(dd)
    assert (first["seq"], first["action"], first["actor"]) == (1, "log_created", "system")
    assert json.loads(str(first["details"])) == {"log_id": info.log_id, "key_fingerprint": public.fingerprint}
    if dd.store.is_sqlite:  # the private key's bytes are nowhere in the database files
        secret = key_path.read_text().splitlines()[1].encode()
        for path in dd.path.glob("faceledger.db*"):
            assert secret not in path.read_bytes()


def test_reopening_and_reinitialising_keeps_the_same_log_and_key(dd: DataDir, tmp_path: Path) -> None:
    before = audit.log_info(dd)
    key_bytes = dd.audit_key_path.read_bytes()
    again = audit.ensure_log(dd)
    assert again == before
    assert dd.audit_key_path.read_bytes() == key_bytes
    assert _size(dd) == 1


def test_a_missing_key_file_is_an_error_not_a_new_key(dd: DataDir) -> None:
    dd.audit_key_path.unlink()
    reopened = open_data_dir(dd.path, settings=dd.settings)
    try:
        with pytest.raises(StoreError, match=r"no audit signing key at .*restore"):
            audit.ensure_log(reopened)
        with pytest.raises(StoreError, match="no audit signing key"), reopened.store.begin() as conn:
            audit.record(reopened, conn, search_event(1))
        assert not dd.audit_key_path.exists()
    finally:
        reopened.close()


def test_a_key_that_is_not_the_logs_own_is_refused(
    dd: DataDir, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with data_dir("sqlite", tmp_path / "other", request=request) as other:
        dd.audit_key_path.unlink()
        dd.audit_key_path.write_bytes(other.audit_key_path.read_bytes())
        os.chmod(dd.audit_key_path, 0o600)
    reopened = open_data_dir(dd.path, settings=dd.settings)
    try:
        with (
            pytest.raises(StoreError, match=r"was created with key sha256:.*restore the log's own key"),
            reopened.store.begin() as conn,
        ):
            audit.record(reopened, conn, search_event(1))
    finally:
        reopened.close()
    assert _size(dd) == 1


# --- appending ----------------------------------------------------------------------------


def test_each_entry_is_stored_as_signed_and_numbered_without_gaps(dd: DataDir) -> None:
    assert append(dd, 3) == [2, 3, 4]
    rows = _rows(dd)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert _size(dd) == 4
    second = rows[1]
    assert (second["ts"], second["actor"], second["action"], second["object"]) == (
        "2024-05-01T09:00:01.000000Z",
        "alice",
        "search",
        "search:1",
    )
    assert json.loads(str(second["details"]))["probe_sha256"] == f"{1:064x}"
    key = LogPublicKey.load(dd.audit_public_key_path)
    log_id = audit.log_info(dd).log_id
    for row in rows:
        message = entry_signature_message(log_id, bytes.fromhex(str(row["leaf_hash"])))
        assert key.verify(message, base64.b64decode(str(row["signature"])))


def _action_then_record_then_fail(dd: DataDir, gallery: Gallery, event: ev.AuditEvent) -> None:
    with dd.store.begin() as conn:
        repository.insert_gallery(conn, gallery)
        audit.record(dd, conn, event)
        raise RuntimeError("the action failed after the record was appended")


def test_an_action_that_rolls_back_leaves_no_record(dd: DataDir) -> None:
    gallery = Gallery(
        name="custody", legal_basis="statute s.1", source_description="test", retention_days=None
    )
    event = ev.exported("alice", what="gallery:custody", destination="x", count=1)
    with pytest.raises(RuntimeError, match="after the record"):
        _action_then_record_then_fail(dd, gallery, event)
    assert _rows(dd)[-1]["seq"] == 1
    assert _size(dd) == 1
    with dd.store.read() as conn:
        assert repository.find_gallery(conn, "custody") is None
    assert append(dd, 1) == [2]  # the number the rolled-back record had is used, no gap


def test_an_action_is_never_committed_without_its_record(
    dd: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    gallery = galleries.create_gallery(dd, "custody", legal_basis="statute s.1", source_description="test")
    _store_face(dd, gallery, "S-1", seed=1)

    def broken_seal(*args: object, **kwargs: object) -> object:
        raise OSError("the signing device is unplugged")

    monkeypatch.setattr(audit, "seal_entry", broken_seal)
    with pytest.raises(OSError, match="unplugged"):
        galleries.purge_subject(
            dd, "custody", "S-1", reason="court_order", authority="Order 2026-123", actor="alice"
        )
    monkeypatch.undo()
    assert [s.external_id for s in galleries.list_subjects(dd, "custody")] == ["S-1"]  # purge rolled back
    assert [r["action"] for r in _rows(dd)] == ["log_created", "gallery_created"]  # no purge entry


def test_a_naive_time_or_a_float_is_refused_before_anything_is_written(dd: DataDir) -> None:
    from datetime import datetime

    with pytest.raises(ValidationError, match="time zone"), dd.store.begin() as conn:
        audit.record(dd, conn, search_event(1), now=datetime(2024, 5, 1, 9, 0))
    score: Any = 0.93  # what a careless caller might pass; the type checker would refuse it
    bad = ev.AuditEvent("alice", ev.AuditAction.SEARCH, "search:1", {"score": score})
    with pytest.raises(ValidationError, match="float"), dd.store.begin() as conn:
        audit.record(dd, conn, bad)
    assert _size(dd) == 1
    assert len(_rows(dd)) == 1


def test_record_refuses_a_connection_outside_a_transaction(dd: DataDir) -> None:
    with pytest.raises(StoreError, match=r"inside dd\.store\.begin"), dd.store.read() as conn:
        audit.record(dd, conn, search_event(1))


def test_the_unique_sequence_number_refuses_a_fork(dd: DataDir) -> None:
    [row] = _rows(dd)
    forked = {**row, "actor": "mallory"}
    with pytest.raises(IntegrityError), dd.store.begin() as conn:
        conn.execute(insert(audit_entries).values(**forked))


def test_concurrent_appends_queue_and_never_fork_or_leave_gaps(dd: DataDir, tmp_path: Path) -> None:
    """Two writers, each with its own connection pool (as two processes would have), at once."""
    per_writer = 25
    barrier = threading.Barrier(2)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        own = open_data_dir(dd.path, settings=dd.settings)
        try:
            barrier.wait()
            seqs = []
            for n in range(per_writer):
                with own.store.begin() as conn:
                    seqs.append(audit.record(own, conn, search_event(n, actor=name)))
            results[name] = seqs
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    together = sorted(results["alice"] + results["bob"])
    assert together == list(range(2, 2 + 2 * per_writer))
    assert [r["seq"] for r in _rows(dd)] == list(range(1, 2 + 2 * per_writer))
    assert _size(dd) == 1 + 2 * per_writer
    interleaved = results["alice"] != list(range(2, 2 + per_writer))
    assert interleaved or results["bob"] == list(range(2 + per_writer, 2 + 2 * per_writer))
    assert _verify(dd, tmp_path).entries == 2 + 2 * per_writer


# --- checkpoints ----------------------------------------------------------------------------


def _leaves(dd: DataDir) -> list[bytes]:
    return [bytes.fromhex(str(r["leaf_hash"])) for r in _rows(dd)]


def test_periodic_checkpoints_are_signed_stored_and_written_to_the_file(dd_every_5: DataDir) -> None:
    dd = dd_every_5
    append(dd, 11)  # the log is 12 long; appends 6 and 11 find 5 and 10 committed entries
    key = LogPublicKey.load(dd.audit_public_key_path)
    with dd.store.read() as conn:
        stored = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id)).all()
    assert [r.tree_size for r in stored] == [5, 10]
    in_file = read_checkpoints(dd.checkpoint_path)
    assert [(c.tree_size, c.root_hash.hex(), c.timestamp) for c in in_file] == [
        (r.tree_size, r.root_hash, r.timestamp) for r in stored
    ]
    leaves = _leaves(dd)
    for cp in in_file:
        assert checkpoint_is_valid(cp, key)
        assert cp.root_hash == root_from_leaf_hashes(leaves[: cp.tree_size])


def _record_then_fail(dd: DataDir) -> None:
    with dd.store.begin() as conn:
        audit.record(dd, conn, search_event(99), now=stamp(99))  # checkpoints the committed 5
        raise RuntimeError("the action failed")


def test_a_periodic_checkpoint_taken_in_a_transaction_that_rolls_back_stays_true(
    dd_every_5: DataDir, tmp_path: Path
) -> None:
    dd = dd_every_5
    append(dd, 4)  # 5 entries committed
    with pytest.raises(RuntimeError, match="the action failed"):
        _record_then_fail(dd)
    [in_file] = read_checkpoints(dd.checkpoint_path)
    assert in_file.tree_size == 5
    with dd.store.read() as conn:
        assert conn.execute(select(audit_checkpoints)).all() == []  # the row went with the rollback
    append(dd, 3, first=5)
    summary = _verify(dd, tmp_path)  # the file's checkpoint is consistent with the history kept
    assert summary.entries == 9
    assert [c.size for c in summary.earlier] == [5, 5, 9]


def test_only_the_first_append_of_a_transaction_checkpoints_and_only_committed_entries(
    dd_every_5: DataDir,
) -> None:
    dd = dd_every_5
    append(dd, 3)  # 4 committed
    with dd.store.begin() as conn:
        seqs = [audit.record(dd, conn, search_event(n)) for n in range(10, 18)]
    assert seqs == list(range(5, 13))
    assert not dd.checkpoint_path.exists()  # 4 committed at the first append: not yet due
    append(dd, 1, first=20)
    [cp] = read_checkpoints(dd.checkpoint_path)
    assert cp.tree_size == 12


def test_a_damaged_row_skips_the_periodic_checkpoint_but_does_not_block_actions(dd_every_5: DataDir) -> None:
    dd = dd_every_5
    append(dd, 2)
    with dd.store.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET leaf_hash = 'not hex' WHERE seq = 2"))
    assert append(dd, 5, first=3) == [4, 5, 6, 7, 8]
    assert not dd.checkpoint_path.exists()
    with pytest.raises(StoreError, match="audit entry 2 has a damaged leaf hash"):
        audit.checkpoint(dd)


def test_an_on_demand_checkpoint_covers_the_whole_log(dd: DataDir) -> None:
    append(dd, 6)
    cp = audit.checkpoint(dd, now=stamp(100))
    assert (cp.tree_size, cp.timestamp) == (7, "2024-05-01T09:01:40.000000Z")
    assert cp.root_hash == root_from_leaf_hashes(_leaves(dd))
    assert read_checkpoints(dd.checkpoint_path) == [cp]
    assert [c["tree_size"] for c in audit.stored_checkpoints(dd)] == [7]


# --- export -----------------------------------------------------------------------------------


def test_the_export_records_itself_ends_at_a_checkpoint_and_verifies(dd: DataDir, tmp_path: Path) -> None:
    append(dd, 4)
    out = tmp_path / "export.json"
    result = audit.export_log(dd, out, actor="auditor", now=stamp(50))
    assert (result.entries, result.checkpoints) == (6, 1)
    assert result.checkpoint is not None
    assert result.checkpoint.tree_size == 6
    document = json.loads(out.read_text())
    last = document["entries"][-1]["entry"]
    assert (last["action"], last["actor"], last["details"]["count"]) == ("export", "auditor", 6)
    assert last["details"]["destination"] == str(out.resolve())
    summary = verify.verify_files(out, dd.audit_public_key_path, [dd.checkpoint_path])
    assert (summary.entries, summary.latest.size) == (6, 6)
    assert read_checkpoints(dd.checkpoint_path) == [result.checkpoint]


def test_verify_runs_standalone_on_the_export(dd: DataDir, tmp_path: Path) -> None:
    """The verifier file, copied out of the project, checks the export in a bare interpreter."""
    import shutil
    import subprocess
    import sys

    append(dd, 2)
    out = tmp_path / "export.json"
    audit.export_log(dd, out, actor="auditor")
    copy = tmp_path / "elsewhere" / "verify.py"
    copy.parent.mkdir()
    shutil.copy(Path(verify.__file__), copy)
    done = subprocess.run(
        [sys.executable, "-I", str(copy), str(out), "--key", str(dd.audit_public_key_path)],
        capture_output=True,
        text=True,
        cwd=copy.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: 4 entries")


# --- reading ----------------------------------------------------------------------------------


def test_list_entries_filters_and_pages(dd: DataDir) -> None:
    from datetime import timedelta

    append(dd, 5)
    with dd.store.begin() as conn:
        audit.record(dd, conn, ev.sign_in("bob", device_id="d-1", mfa=True), now=stamp(6))
    page = audit.list_entries(dd, audit.EntryFilter(actor="alice"), offset=2, limit=2)
    assert page.total == 5
    assert [e.seq for e in page.entries] == [4, 5]
    assert page.entries[0].details["case_ref"] == "CASE-3"
    window = audit.EntryFilter(since=stamp(2), until=stamp(4))
    assert [e.seq for e in audit.list_entries(dd, window).entries] == [3, 4]
    assert [e.actor for e in audit.list_entries(dd, audit.EntryFilter(action="sign_in")).entries] == ["bob"]
    assert audit.list_entries(dd, audit.EntryFilter(object_prefix="search:")).total == 5
    assert audit.list_entries(dd, audit.EntryFilter(object_prefix="search%")).total == 0  # no wildcards
    later = audit.EntryFilter(action="sign_in", since=stamp(6) + timedelta(microseconds=1))
    assert audit.list_entries(dd, later).total == 0
    with pytest.raises(ValidationError, match="page"):
        audit.list_entries(dd, limit=0)


def _account(username: str, *, unit: str) -> dict[str, object]:
    moment = stamp(0)
    return {
        "username": username,
        "display_name": username.title(),
        "organisation": "police",
        "unit": unit,
        "password_hash": "-",
        "totp_confirmed": False,
        "failed_attempts": 0,
        "suspended": False,
        "trial": False,
        "created_by": "admin",
        "created_at": moment,
        "updated_at": moment,
    }


def test_the_oversight_report_counts_searches_and_denials(dd: DataDir) -> None:
    events = [
        search_event(1, actor="alice", purpose="investigation"),
        search_event(2, actor="alice", purpose="missing person"),
        search_event(3, actor="bob", purpose=None),
        ev.candidates_shown("alice", search_id="1", candidates=[{"rank": 1, "face_id": 7}]),
        ev.candidates_shown("alice", search_id="2", candidates=[]),
        ev.AuditEvent(
            "carol",
            ev.AuditAction.SEARCH,
            "search:4",
            {"purpose": "investigation", "unit": "unit-7", "outcome": "refused: probe quality"},
        ),
        ev.AuditEvent("bob", ev.AuditAction.POLICY_DENIED, "search", {"rule_id": "purpose.not_allowed"}),
        ev.AuditEvent("bob", ev.AuditAction.POLICY_DENIED, "search", {"rule_id": "purpose.not_allowed"}),
        ev.policy_denied("dave", attempted="search", target="gallery:x", reason="no"),
        ev.policy_denied(
            "dave",
            attempted="search",
            target="gallery:x",
            reason="wrong unit",
            decision={"allowed": False, "rule_id": "gallery.unit_not_allowed", "policy_version": "3"},
        ),
        ev.sign_in_failed("eve", reason="bad password", device_id=None),
        search_event(9, actor="alice"),  # outside the window
    ]
    for n, event in enumerate(events, start=1):
        with dd.store.begin() as conn:
            audit.record(dd, conn, event, now=stamp(n))
    with dd.store.begin() as conn:  # bob's account says which unit he is in; alice has no account here
        conn.execute(insert(users).values(**_account("bob", unit="unit-3")))
    report = audit.oversight_report(dd, since=stamp(1), until=stamp(12))
    assert report.searches == 4
    assert report.searches_by_user == {"alice": 2, "bob": 1, "carol": 1}
    assert report.searches_by_unit == {"(not recorded)": 2, "unit-3": 1, "unit-7": 1}
    assert report.searches_by_purpose == {"investigation": 2, "(not recorded)": 1, "missing person": 1}
    assert report.searches_by_outcome == {
        "candidates shown": 1,
        "no candidates": 1,
        "no candidates recorded": 1,
        "refused: probe quality": 1,
    }
    assert report.denials == 4
    assert report.denials_by_rule == {
        "purpose.not_allowed": 2,
        "(not recorded)": 1,
        "gallery.unit_not_allowed": 1,
    }
    assert report.failed_sign_ins == 1


# --- the services that record: purge and enrolment -----------------------------------------------

MODEL = ModelRef("test", "hand-made", "1", "ab" * 32, 4)


def _store_face(dd: DataDir, gallery: Gallery, subject: str, *, seed: int, keep: date | None = None) -> int:
    vector = np.random.default_rng(seed).standard_normal(MODEL.dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    with dd.store.begin() as conn:
        repository.ensure_model(conn, MODEL)
        subject_id = repository.get_or_create_subject(conn, gallery.id or 0, subject)
        image_id = repository.insert_image(
            conn,
            repository.NewImage(
                gallery_id=gallery.id or 0,
                subject_id=subject_id,
                sha256=f"{seed:064x}",
                format="JPEG",
                width=250,
                height=250,
                byte_size=1000,
                provenance=Provenance("cam-1", date(2024, 5, 1), "officer", keep, "REC-1"),
            ),
        )
        return repository.insert_face(
            conn,
            image_id=image_id,
            subject_id=subject_id,
            gallery_id=gallery.id or 0,
            face=repository.NewFace(
                face_index=0,
                box={"left": 1.0, "top": 2.0, "right": 30.0, "bottom": 40.0},
                landmarks={"scheme": "5pt"},
                quality={"score": 80.0, "issues": []},
                quality_score=80.0,
                detector="hand",
                detector_score=0.9,
                model=MODEL,
                embedding=vector,
            ),
        )


def test_purges_are_recorded_with_their_faces_and_never_the_external_subject_id(dd: DataDir) -> None:
    gallery = galleries.create_gallery(dd, "custody", legal_basis="statute s.1", source_description="t")
    first = _store_face(dd, gallery, "SECRET-7731", seed=1)
    second = _store_face(dd, gallery, "S-2", seed=2, keep=date(2024, 1, 31))
    third = _store_face(dd, gallery, "S-3", seed=3)
    galleries.purge_subject(
        dd, "custody", "SECRET-7731", reason="court_order", authority="Order 2026-123", actor="alice"
    )
    galleries.purge_expired(dd, today=date(2024, 2, 1))
    galleries.purge_gallery(dd, "custody", reason="court_order", authority="Order 2026-123", actor="bob")
    galleries.create_gallery(dd, "empty", legal_basis="statute s.1", source_description="t")
    galleries.purge_gallery(dd, "empty", reason="court_order", authority="Order 2026-123", actor="bob")
    purges = [r for r in _rows(dd) if r["action"] == "purge"]
    got = [(r["actor"], r["object"], json.loads(str(r["details"]))["face_ids"]) for r in purges]
    assert got == [
        ("alice", "gallery:custody", [first]),
        ("system", "gallery:custody", [second]),
        ("bob", "gallery:custody", [third]),
        ("bob", "gallery:empty", []),
    ]
    assert all("SECRET-7731" not in str(r) for r in _rows(dd))


@pytest.mark.faces
@pytest.mark.slow
def test_every_face_enrolment_commits_is_covered_by_an_enrol_entry(
    dd: DataDir, lfw_images: Path, tmp_path: Path
) -> None:
    from faceledger.pipeline.run import Pipeline
    from faceledger.services.enrolment import EnrolOptions, enrol_folder

    folder = tmp_path / "enrol"
    for person in ("Tony_Blair", "Colin_Powell"):
        (folder / person).mkdir(parents=True)
        for n in (1, 2):
            name = f"{person}_{n:04d}.jpg"
            (folder / person / name).symlink_to(lfw_images / person / name)
    galleries.create_gallery(
        dd, "custody", legal_basis="statute s.1", source_description="t", required_provenance=("source",)
    )
    pipeline = Pipeline.from_settings(dd.settings)
    try:
        result = enrol_folder(dd, "custody", folder, EnrolOptions(enrolled_by="officer-9"), pipeline=pipeline)
    finally:
        pipeline.close()
    with dd.store.read() as conn:
        face_ids = sorted(conn.execute(text("SELECT id FROM faces")).scalars())
    enrols = [r for r in _rows(dd) if r["action"] == "enrol"]
    recorded = sorted(i for r in enrols for i in json.loads(str(r["details"]))["face_ids"])
    assert face_ids
    assert recorded == face_ids == sorted(e.face_id for e in result.enrolled)
    details = json.loads(str(enrols[0]["details"]))
    assert enrols[0]["actor"] == "officer-9"
    assert enrols[0]["object"] == "gallery:custody"
    assert details["provenance"]["run_id"] == result.run_id
    assert details["subject_id"].startswith("subject:")
    assert all("Tony_Blair" not in str(r) for r in enrols)  # file names go with a purge; the log stays


def test_a_head_that_disagrees_with_the_entries_stops_appends_with_a_clear_error(dd: DataDir) -> None:
    append(dd, 3)
    with dd.store.begin() as conn:
        conn.execute(audit_log.update().values(size=2))
    with pytest.raises(StoreError, match="audit entry 3 already exists"), dd.store.begin() as conn:
        audit.record(dd, conn, search_event(9))
    assert _size(dd) == 2
    assert len(_rows(dd)) == 4


def test_deleting_audit_rows_directly_is_possible_but_not_silent(dd: DataDir, tmp_path: Path) -> None:
    """The database does not stop its administrator; the verifier catches it (see test_audit_tamper)."""
    append(dd, 3)
    with dd.store.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq == 2))
    with pytest.raises(verify.VerificationError, match="entry 2 was removed"):
        _verify(dd, tmp_path)


def test_a_log_cut_below_its_newest_checkpoint_is_never_signed_again(
    dd_every_5: DataDir, tmp_path: Path
) -> None:
    """The checkpoint file outside the database still remembers the longer log (test_redteam_audit_log)."""
    dd = dd_every_5
    append(dd, 6)  # a periodic checkpoint of 5
    audit.checkpoint(dd, now=stamp(50))  # and one of 7
    with dd.store.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq > 4))
        conn.execute(audit_log.update().values(size=4))
        conn.execute(delete(audit_checkpoints))
    with pytest.raises(audit.LogIntegrityError, match=r"stored log has 4 entries, but the newest checkpoint"):
        audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    with pytest.raises(audit.LogIntegrityError, match=r"covers 7"):
        audit.checkpoint(dd)
    # An append that takes no checkpoint is not checked (that would cost a pass per action) ...
    assert append(dd, 1, first=60) == [5]
    # ... but the next one that would sign a checkpoint is refused, and its action with it.
    with pytest.raises(audit.LogIntegrityError, match=r"stored log has 5 entries, .* covers 7"):
        append(dd, 1, first=61)
    assert audit.log_info(dd).size == 5
    assert [cp.tree_size for cp in read_checkpoints(dd.checkpoint_path)] == [5, 7]
    assert audit.stored_checkpoints(dd) == []
    assert not (tmp_path / "export.json").exists()


def test_signing_points_check_the_newest_checkpoint_and_pass_an_intact_log(
    dd_every_5: DataDir, tmp_path: Path
) -> None:
    dd = dd_every_5
    append(dd, 12)  # periodic checkpoints of 5 and 10, each checked against the one before
    cp = audit.checkpoint(dd, now=stamp(50))
    assert [c.tree_size for c in read_checkpoints(dd.checkpoint_path)] == [5, 10, 13]
    assert cp.root_hash == root_from_leaf_hashes(_leaves(dd))
    summary = _verify(dd, tmp_path)
    assert summary.entries == 14
    assert [c.size for c in summary.earlier] == [5, 10, 13, 14]
