"""Checkpoints from the stored Merkle frontier: only the new entries are read under the head lock.

Each stored checkpoint keeps the frontier of the tree it signed (migration 0012). The periodic
checkpoint in ``record`` and the serve timer's start from it when it folds to the newest
signed root, and read only the entries after it; otherwise (no frontier, a forged one) they
read every leaf once and check the prefix. The timer first runs the full integrity check
outside the lock, and a failure there stops every later append in the process.

On real data directories (SQLite, and PostgreSQL when a server answers), tampered with plain
SQL as a database administrator would.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from audit_helpers import BACKENDS, append, data_dir, pg_url  # noqa: F401 - pg_url: a fixture
from sqlalchemy import create_engine, event, inspect, select, text
from starlette.testclient import TestClient

from faceledger.adapters.store import Store
from faceledger.adapters.store.engine import alembic_config, current_revision, head_revision
from faceledger.adapters.store.tables_audit import audit_checkpoints, audit_entries
from faceledger.audit.checkpoint import read_checkpoints
from faceledger.audit.merkle import MerkleAccumulator, root_from_leaf_hashes
from faceledger.config import AuditSettings, Settings
from faceledger.errors import ValidationError
from faceledger.services import audit
from faceledger.services.audit import LogIntegrityError
from faceledger.services.datadir import DataDir, init_data_dir
from faceledger.web.app import create_app

EVERY = 5
FULL = 13  # log_created and 12 searches; checkpoints at 5, 10 (periodic) and 13 (on demand)
OLD = 2  # the entry the red team rewrites: long since checkpointed


@pytest.fixture(params=BACKENDS)
def dd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataDir]:
    with data_dir(request.param, tmp_path / "data", request=request, checkpoint_every=EVERY) as opened:
        append(opened, FULL - 1)
        audit.checkpoint(opened)
        yield opened
        audit._FAILED_CHECKS.clear()


def _sql(dd: DataDir, *statements: str) -> None:
    with dd.store.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _leaves(dd: DataDir) -> list[bytes]:
    with dd.store.read() as conn:
        rows = conn.execute(select(audit_entries.c.leaf_hash).order_by(audit_entries.c.seq))
        return [bytes.fromhex(leaf) for (leaf,) in rows]


def _rewrite_old_entry(dd: DataDir) -> None:
    """Entry OLD's leaf hash replaced by a well-formed other one (a rewritten row, re-hashed)."""
    _sql(dd, f"UPDATE audit_entries SET leaf_hash = '{'ab' * 32}' WHERE seq = {OLD}")


def _frontiers(dd: DataDir) -> dict[int, str | None]:
    with dd.store.read() as conn:
        rows = conn.execute(select(audit_checkpoints.c.tree_size, audit_checkpoints.c.frontier))
        return {int(size): frontier for size, frontier in rows}


@contextmanager
def leaf_reads(dd: DataDir) -> Iterator[list[tuple[int, int]]]:
    """The (first, last) entry numbers of every read of stored leaf hashes while in the block."""
    ranges: list[tuple[int, int]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FROM audit_entries" in statement and "leaf_hash" in statement and "seq >=" in statement:
            values = list(parameters.values()) if isinstance(parameters, dict) else list(parameters)
            first, last = values[-2:]
            ranges.append((int(first), int(last)))

    event.listen(dd.store.engine, "before_cursor_execute", seen)
    try:
        yield ranges
    finally:
        event.remove(dd.store.engine, "before_cursor_execute", seen)


def test_every_stored_checkpoint_keeps_the_frontier_of_the_tree_it_signed(dd: DataDir) -> None:
    leaves = _leaves(dd)
    frontiers = _frontiers(dd)
    assert sorted(frontiers) == [5, 10, FULL]
    for size, stored in frontiers.items():
        tree = MerkleAccumulator()
        tree.extend(leaves[:size])
        assert stored == ",".join(node.hex() for node in tree.frontier)
        assert tree.root() == root_from_leaf_hashes(leaves[:size])


# --- (a) the periodic checkpoint reads only the new entries ----------------------------------


def test_a_periodic_checkpoint_reads_only_the_entries_after_the_stored_frontier(dd: DataDir) -> None:
    with leaf_reads(dd) as reads:
        append(dd, EVERY + 1, first=100)  # the append of entry 19 checkpoints 1..18
    assert reads == [(FULL + 1, FULL + EVERY)]
    assert read_checkpoints(dd.checkpoint_path)[-1].tree_size == FULL + EVERY
    leaves = _leaves(dd)
    assert read_checkpoints(dd.checkpoint_path)[-1].root_hash == root_from_leaf_hashes(leaves[: FULL + EVERY])


def test_a_rewritten_old_row_is_not_read_so_the_checkpoint_commits_to_the_honest_log(
    dd: DataDir, tmp_path: Path
) -> None:
    """The frontier path does not see entry 2 change, and signs the log as it was checkpointed."""
    honest = _leaves(dd)
    _rewrite_old_entry(dd)
    append(dd, EVERY + 1, first=100)
    cp = read_checkpoints(dd.checkpoint_path)[-1]
    assert cp.tree_size == FULL + EVERY
    now_stored = _leaves(dd)
    assert cp.root_hash == root_from_leaf_hashes(honest + now_stored[FULL : FULL + EVERY])
    assert cp.root_hash != root_from_leaf_hashes(now_stored[: FULL + EVERY])  # what a verifier recomputes
    # Everything that reads the whole prefix refuses the rewritten log.
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        audit.check_integrity(dd)
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        audit.checkpoint(dd)  # the CLI's: verify_stored by default


def test_without_a_stored_frontier_every_leaf_is_read_once_and_the_prefix_checked(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_checkpoints SET frontier = NULL")  # rows from before migration 0012
    with leaf_reads(dd) as reads:
        append(dd, EVERY + 1, first=100)
    assert reads == [(1, FULL + EVERY)]
    assert _frontiers(dd)[FULL + EVERY] is not None  # and the next one starts from here
    with leaf_reads(dd) as reads:
        append(dd, EVERY, first=200)
    assert reads == [(FULL + EVERY + 1, FULL + 2 * EVERY)]


def test_without_a_stored_frontier_a_rewritten_prefix_is_refused(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_checkpoints SET frontier = NULL")
    _rewrite_old_entry(dd)
    file_before = dd.checkpoint_path.read_bytes()
    append(dd, EVERY, first=100)  # entries 14..18: no checkpoint due yet
    with pytest.raises(
        LogIntegrityError, match=rf"stored entries 1\.\.{FULL} \(of {FULL + EVERY}\) do not match"
    ):
        append(dd, 1, first=200)
    assert dd.checkpoint_path.read_bytes() == file_before
    assert audit.log_info(dd).size == FULL + EVERY  # the refused action's entry rolled back


def test_without_the_checkpoint_rows_the_file_is_checked_by_a_full_read(dd: DataDir) -> None:
    _sql(dd, "DELETE FROM audit_checkpoints")
    _rewrite_old_entry(dd)
    with pytest.raises(LogIntegrityError, match=r"do not match the newest checkpoint \(checkpoint file"):
        append(dd, 1, first=100)  # the table is empty, so the very next append is due one


# --- (b) a forged frontier is not used -------------------------------------------------------


def test_a_forged_frontier_is_passed_over_and_the_right_root_signed(dd: DataDir) -> None:
    other = MerkleAccumulator()
    other.extend([bytes([n]) * 32 for n in range(FULL)])  # a frontier of the right shape, another tree
    forged = ",".join(node.hex() for node in other.frontier)
    _sql(dd, f"UPDATE audit_checkpoints SET frontier = '{forged}' WHERE tree_size = {FULL}")
    with leaf_reads(dd) as reads:
        append(dd, EVERY + 1, first=100)
    assert reads == [(1, FULL + EVERY)]  # it did not fold to the signed root: the full read instead
    cp = read_checkpoints(dd.checkpoint_path)[-1]
    assert cp.root_hash == root_from_leaf_hashes(_leaves(dd)[: FULL + EVERY])


@pytest.mark.parametrize("forged", ["", "zz", "ab" * 32, ",".join(["ab" * 32] * 5), "not,hex,at all"])
def test_a_malformed_frontier_is_passed_over(dd: DataDir, forged: str) -> None:
    _sql(dd, f"UPDATE audit_checkpoints SET frontier = '{forged}' WHERE tree_size = {FULL}")
    with leaf_reads(dd) as reads:
        append(dd, EVERY + 1, first=100)
    assert reads == [(1, FULL + EVERY)]
    assert read_checkpoints(dd.checkpoint_path)[-1].root_hash == root_from_leaf_hashes(
        _leaves(dd)[: FULL + EVERY]
    )


def test_a_forged_frontier_does_not_hide_a_rewritten_prefix(dd: DataDir) -> None:
    other = MerkleAccumulator()
    other.extend([bytes([n]) * 32 for n in range(FULL)])
    _sql(
        dd,
        "UPDATE audit_checkpoints SET frontier = '"
        + ",".join(node.hex() for node in other.frontier)
        + f"' WHERE tree_size = {FULL}",
    )
    _rewrite_old_entry(dd)
    append(dd, EVERY, first=100)
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        append(dd, 1, first=200)


# --- (c) the serve timer: the full check first, and a failure stops recording -----------------


def test_the_timer_signs_from_the_frontier_after_a_full_check(dd: DataDir) -> None:
    append(dd, 3, first=100)
    with leaf_reads(dd) as reads:
        cp = audit.checkpoint_if_behind(dd)
    assert cp is not None
    assert cp.tree_size == FULL + 3
    assert reads == [(1, FULL), (FULL + 1, FULL + 3)]  # check_integrity (no lock), then the signing


def test_the_timer_catches_a_rewritten_row_and_later_records_are_refused_until_a_check_passes(
    dd: DataDir,
) -> None:
    append(dd, 2, first=100)
    (original,) = _sql_value(dd, f"SELECT leaf_hash FROM audit_entries WHERE seq = {OLD}")
    file_before = dd.checkpoint_path.read_bytes()
    _rewrite_old_entry(dd)
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        audit.checkpoint_if_behind(dd)
    assert dd.checkpoint_path.read_bytes() == file_before  # nothing signed
    size = audit.log_info(dd).size
    for _attempt in range(2):  # every later append, not just the next one
        with pytest.raises(LogIntegrityError, match=r"failed its integrity check .*do not match"):
            append(dd, 1, first=300)
    assert audit.log_info(dd).size == size
    _sql(dd, f"UPDATE audit_entries SET leaf_hash = '{original}' WHERE seq = {OLD}")  # restored
    with pytest.raises(LogIntegrityError, match="failed its integrity check"):
        append(dd, 1, first=300)  # restoring the row is not enough: the check must pass again
    audit.check_integrity(dd)
    append(dd, 1, first=300)
    assert audit.log_info(dd).size == size + 1


def test_a_failed_check_of_one_log_does_not_stop_another(dd: DataDir, request: pytest.FixtureRequest) -> None:
    _rewrite_old_entry(dd)
    with pytest.raises(LogIntegrityError):
        audit.check_integrity(dd)
    with data_dir("sqlite", Path(str(dd.path) + "-other"), request=request) as other:
        append(other, 2)
        assert audit.log_info(other).size == 3


def _sql_value(dd: DataDir, statement: str) -> tuple[Any, ...]:
    with dd.store.read() as conn:
        return tuple(conn.execute(text(statement)).one())


# --- (d) migration 0012 -------------------------------------------------------------------


def test_0012_adds_the_frontier_column_to_a_database_at_0011(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0011")
    engine = create_engine(url)
    assert "frontier" not in {c["name"] for c in inspect(engine).get_columns("audit_checkpoints")}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_checkpoints (log_id, tree_size, root_hash, timestamp, key_fingerprint, "
                f"signature) VALUES ('old-log', 7, '{'cd' * 32}', '2026-01-01T09:00:00.000000Z', "
                f"'sha256:{'ef' * 32}', '{'A' * 86}==')"
            )
        )
    engine.dispose()
    store = Store.open_sqlite(tmp_path / "old.db")  # applies 0012
    try:
        assert current_revision(store.engine) == head_revision()  # 0012 and any later ones
        columns = {c["name"]: c for c in inspect(store.engine).get_columns("audit_checkpoints")}
        assert columns["frontier"]["nullable"]
        with store.read() as conn:
            row = conn.execute(select(audit_checkpoints)).one()
        assert (row.tree_size, row.frontier) == (7, None)  # old rows have none: the full read is used
    finally:
        store.close()
    command.downgrade(alembic_config(url), "0011")
    engine = create_engine(url)
    try:
        assert "frontier" not in {c["name"] for c in inspect(engine).get_columns("audit_checkpoints")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT tree_size FROM audit_checkpoints")).scalar_one() == 7
            ddl = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'audit_checkpoints'")
            ).scalar_one()
        assert "AUTOINCREMENT" in ddl  # the table SQLite rebuilt to drop the column keeps it
    finally:
        engine.dispose()


def test_0012_renders_for_postgresql() -> None:
    config = alembic_config("postgresql://user@localhost/faceledger")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "0011:0012", sql=True)
    assert "ALTER TABLE audit_checkpoints ADD COLUMN frontier TEXT" in buffer.getvalue()


# --- the checkpoint file: only the lines appended since are parsed again ---------------------


def _newest_in_file(dd: DataDir) -> int | None:
    key = audit.signer(dd)
    found = audit._newest_in_file(dd.checkpoint_path, audit.log_info(dd).log_id, key.public_key)
    return None if found is None else found.tree_size


def test_the_checkpoint_file_is_parsed_again_only_after_the_bytes_already_read(dd: DataDir) -> None:
    assert _newest_in_file(dd) == FULL
    scan = audit._FILE_SCANS[str(dd.checkpoint_path)]
    assert (scan.lines, [cp.tree_size for cp in scan.checkpoints]) == (3, [5, 10, FULL])
    append(dd, EVERY + 1, first=100)  # another line, appended by this process
    assert _newest_in_file(dd) == FULL + EVERY
    assert audit._FILE_SCANS[str(dd.checkpoint_path)].lines == 4


def test_a_checkpoint_file_changed_before_the_end_is_parsed_again_in_full(dd: DataDir) -> None:
    assert _newest_in_file(dd) == FULL
    lines = dd.checkpoint_path.read_text(encoding="utf-8").splitlines(keepends=True)
    with dd.checkpoint_path.open("r+", encoding="utf-8") as handle:  # same file, rewritten in place
        handle.write(lines[0] + lines[1] + lines[1] + lines[2])  # the newest line moved down, a copy
    assert _newest_in_file(dd) == FULL
    dd.checkpoint_path.write_text(lines[0] + "not json\n" + lines[2], encoding="utf-8")
    with pytest.raises(ValidationError, match=r"line 2: not JSON"):
        _newest_in_file(dd)
    with pytest.raises(ValidationError, match=r"line 2: not JSON"):
        append(dd, EVERY + 1, first=100)  # a damaged file stops the signing, as it always did
    replaced = dd.checkpoint_path.with_name("replacement")
    replaced.write_text(lines[0] + lines[1], encoding="utf-8")
    replaced.replace(dd.checkpoint_path)  # another file (inode) under the same name
    assert _newest_in_file(dd) == 10


def test_a_half_written_last_line_is_read_but_not_kept(dd: DataDir) -> None:
    text_before = dd.checkpoint_path.read_text(encoding="utf-8")
    last = text_before.splitlines()[-1]
    dd.checkpoint_path.write_text(text_before + last[:20], encoding="utf-8")
    with pytest.raises(ValidationError, match="line 4: not JSON"):
        _newest_in_file(dd)
    dd.checkpoint_path.write_text(text_before + last, encoding="utf-8")  # no newline yet: still read
    assert _newest_in_file(dd) == FULL
    assert audit._FILE_SCANS[str(dd.checkpoint_path)].lines == 3


def test_the_running_service_timer_stops_recording_when_a_row_is_rewritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real serve timer: its full check catches the rewrite, logs it, and appends are refused."""
    settings = Settings(audit=AuditSettings(checkpoint_every=0, checkpoint_minutes=0.005))  # every 0.3 s
    with init_data_dir(tmp_path / "data", settings=settings) as served:
        append(served, 4)
        audit.checkpoint(served)
        try:
            with caplog.at_level(logging.ERROR), TestClient(create_app(served)):
                _rewrite_old_entry(served)  # after the start's own check passed: while it runs
                deadline = time.monotonic() + 10
                while not audit._FAILED_CHECKS and time.monotonic() < deadline:
                    time.sleep(0.1)
            assert "the audit log failed its integrity check; recording is refused" in caplog.text
            with pytest.raises(LogIntegrityError, match="failed its integrity check while the service ran"):
                append(served, 1, first=100)
        finally:
            audit._FAILED_CHECKS.clear()
