"""Red team: the service re-signed an audit log cut in the database.

The hole: cut the tail of ``audit_entries``, set ``audit_log.size`` to match, delete the
stored checkpoints, and the next ``faceledger audit export`` was signed and verified OK,
although the service's own checkpoint file still held a checkpoint of the longer log. Now
every signing point (the periodic checkpoint in ``record``, ``checkpoint()``, the export)
first checks the stored log against the newest checkpoint it knows, from the checkpoint
file and the table alike, and refuses, naming the sizes, without signing anything. The
verifier fails a cut export against a checkpoint file and warns when it is given none.

All on a real SQLite data directory, tampered with plain SQL as a database administrator would.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_helpers import append, data_dir
from signed_in_unit import SignedInUnit, build_unit, runner
from sqlalchemy import func, select, text

from faceledger.adapters.store.tables_audit import audit_checkpoints, audit_entries
from faceledger.audit import verify
from faceledger.audit.checkpoint import read_checkpoints
from faceledger.cli.main import app
from faceledger.services import audit
from faceledger.services.audit import LogIntegrityError
from faceledger.services.datadir import DataDir

EVERY = 5
FULL = 13  # entries when the fixture ends: log_created, 12 searches; checkpoints at 5, 10 and 13
CUT = 7


@dataclass
class Log:
    dd: DataDir
    witness: Path
    """A copy of the checkpoint file shipped out of the administrators' reach before the attack."""


@pytest.fixture
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    with data_dir("sqlite", tmp_path / "data", request=request, checkpoint_every=EVERY) as dd:
        append(dd, FULL - 1)
        audit.checkpoint(dd)
        witness = tmp_path / "witness.jsonl"
        shutil.copy(dd.checkpoint_path, witness)
        yield Log(dd, witness)


def _sql(dd: DataDir, *statements: str) -> None:
    with dd.store.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def cut(dd: DataDir, keep: int = CUT) -> None:
    """The red team's sequence: cut the tail, fix the head's size, delete the stored checkpoints."""
    _sql(
        dd,
        f"DELETE FROM audit_entries WHERE seq > {keep}",
        f"UPDATE audit_log SET size = {keep}",
        "DELETE FROM audit_checkpoints",
    )


def _counts(dd: DataDir) -> tuple[int, int, int]:
    """(head size, stored entries, stored checkpoints)."""
    with dd.store.read() as conn:
        entries = conn.execute(select(func.count()).select_from(audit_entries)).scalar_one()
        checkpoints = conn.execute(select(func.count()).select_from(audit_checkpoints)).scalar_one()
    return audit.log_info(dd).size, entries, checkpoints


def _sizes_in_file(dd: DataDir) -> list[int]:
    return [cp.tree_size for cp in read_checkpoints(dd.checkpoint_path)]


def test_the_fixture_has_the_checkpoints_the_cases_rely_on(log: Log) -> None:
    assert _sizes_in_file(log.dd) == [5, 10, FULL]
    assert _counts(log.dd) == (FULL, FULL, 3)


# --- the cut log: nothing is signed ---------------------------------------------------------


def test_the_export_of_a_cut_log_is_refused_naming_the_sizes(log: Log, tmp_path: Path) -> None:
    dd = log.dd
    cut(dd)
    file_before = dd.checkpoint_path.read_bytes()
    out = tmp_path / "export.json"
    with pytest.raises(LogIntegrityError) as caught:
        audit.export_log(dd, out, actor="auditor")
    message = str(caught.value)
    assert f"the stored log has {CUT} entries" in message
    assert f"covers {FULL}" in message
    assert str(dd.checkpoint_path) in message  # the file is what still remembers the longer log
    assert "Nothing was signed" in message
    assert not out.exists()
    assert dd.checkpoint_path.read_bytes() == file_before  # no new checkpoint line
    assert _counts(dd) == (CUT, CUT, 0)  # not even the export's own entry was recorded


def test_an_on_demand_checkpoint_of_a_cut_log_is_refused(log: Log) -> None:
    dd = log.dd
    cut(dd)
    with pytest.raises(LogIntegrityError, match=rf"stored log has {CUT} entries, .* covers {FULL}"):
        audit.checkpoint(dd)
    assert _sizes_in_file(dd) == [5, 10, FULL]
    assert _counts(dd) == (CUT, CUT, 0)


def test_the_next_periodic_checkpoint_of_a_cut_log_is_refused(log: Log) -> None:
    """The stored checkpoints are gone, so the next append is due one: it must not sign the cut."""
    dd = log.dd
    cut(dd)
    with pytest.raises(LogIntegrityError, match=rf"stored log has {CUT} entries, .* covers {FULL}"):
        append(dd, 1, first=100)
    assert _sizes_in_file(dd) == [5, 10, FULL]
    assert _counts(dd) == (CUT, CUT, 0)  # the action's transaction rolled back with its entry


def test_the_stored_checkpoints_alone_also_stop_a_cut(log: Log, tmp_path: Path) -> None:
    """The checkpoint file lost too, but the table still has the longer log's checkpoint."""
    dd = log.dd
    dd.checkpoint_path.unlink()
    _sql(dd, f"DELETE FROM audit_entries WHERE seq > {CUT}", f"UPDATE audit_log SET size = {CUT}")
    with pytest.raises(LogIntegrityError, match=rf"has {CUT} entries, but the newest checkpoint \(stored"):
        audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    assert not dd.checkpoint_path.exists()


def test_a_cut_padded_back_to_the_old_length_is_refused_by_the_root(log: Log, tmp_path: Path) -> None:
    """Same size as the checkpoint, different history: the size check alone would let it through."""
    dd = log.dd
    cut(dd)
    with dd.store.begin() as conn:  # entries 8..13 replaced by copies of entry 2, renumbered
        row = dict(conn.execute(select(audit_entries).where(audit_entries.c.seq == 2)).one()._mapping)
        for seq in range(CUT + 1, FULL + 1):
            conn.execute(audit_entries.insert().values({**row, "seq": seq}))
        conn.execute(text(f"UPDATE audit_log SET size = {FULL}"))
    with pytest.raises(LogIntegrityError, match=rf"stored entries 1\.\.{FULL} \(of {FULL}\) do not match"):
        audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        audit.checkpoint(dd)
    assert _sizes_in_file(dd) == [5, 10, FULL]


def test_a_reordered_prefix_is_refused_by_the_root(log: Log, tmp_path: Path) -> None:
    dd = log.dd
    _sql(
        dd,
        "UPDATE audit_entries SET seq = -3 WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
        "UPDATE audit_entries SET seq = 4 WHERE seq = -3",
        "DELETE FROM audit_checkpoints",
    )
    with pytest.raises(LogIntegrityError, match=rf"stored entries 1\.\.{FULL} \(of {FULL}\) do not match"):
        audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    assert not (tmp_path / "export.json").exists()


def test_a_checkpoint_forged_into_the_table_does_not_block_the_log(log: Log, tmp_path: Path) -> None:
    """Only checkpoints the log key signed count: a row copied under a bigger size is ignored."""
    dd = log.dd
    _sql(
        dd,
        "INSERT INTO audit_checkpoints (log_id, tree_size, root_hash, timestamp, key_fingerprint, signature) "
        f"SELECT log_id, 500, root_hash, timestamp, key_fingerprint, signature FROM audit_checkpoints "
        f"WHERE tree_size = {FULL}",
    )
    result = audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    assert result.checkpoint is not None
    assert result.checkpoint.tree_size == FULL + 1
    with pytest.raises(verify.VerificationError, match=r"size 500, .* does not carry a valid signature"):
        verify.verify_files(result.path, dd.audit_public_key_path, [log.witness])


# --- the verifier ---------------------------------------------------------------------------


def _cut_export_made_without_the_file(log: Log, tmp_path: Path) -> Path:
    """The attacker also deletes the service's checkpoint file: then the service cannot know."""
    cut(log.dd)
    log.dd.checkpoint_path.unlink()
    out = tmp_path / "cut-export.json"
    result = audit.export_log(log.dd, out, actor="auditor")
    assert (result.entries, result.checkpoints) == (CUT + 1, 2)  # a periodic one at 7, the export's at 8
    return out


def test_verify_fails_a_cut_export_against_the_checkpoint_file(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _cut_export_made_without_the_file(log, tmp_path)
    key = log.dd.audit_public_key_path
    # the first checkpoint held that the export does not reach (10 of 5, 10, 13) is the one named
    with pytest.raises(
        verify.VerificationError, match=r"truncated: the earlier checkpoint covers 10 entries"
    ):
        verify.verify_files(out, key, [log.witness])
    assert verify.main([str(out), "--key", str(key), "--checkpoint", str(log.witness)]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"FAILED: truncated: the earlier checkpoint covers 10 entries, the export has {CUT + 1}"
    )


def test_verify_without_a_checkpoint_passes_the_cut_export_but_warns(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _cut_export_made_without_the_file(log, tmp_path)
    assert verify.main([str(out), "--key", str(log.dd.audit_public_key_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"OK: {CUT + 1} entries")
    assert captured.err.strip() == verify.NO_CHECKPOINT_WARNING
    assert "cannot be detected" in captured.err
    assert "checkpoint file" in captured.err


# --- the untouched log ----------------------------------------------------------------------


def test_an_untouched_log_still_exports_checkpoints_and_verifies(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dd = log.dd
    append(dd, 6, first=50)  # a periodic checkpoint (at 18) passes the check
    assert _sizes_in_file(dd) == [5, 10, FULL, FULL + 5]
    cp = audit.checkpoint(dd)
    assert cp.tree_size == FULL + 6
    out = tmp_path / "export.json"
    result = audit.export_log(dd, out, actor="auditor")
    assert result.checkpoint is not None
    assert result.checkpoint.tree_size == FULL + 7
    summary = verify.verify_files(out, dd.audit_public_key_path, [dd.checkpoint_path, log.witness])
    assert summary.entries == FULL + 7
    assert (
        verify.main([str(out), "--key", str(dd.audit_public_key_path), "--checkpoint", str(log.witness)]) == 0
    )
    captured = capsys.readouterr()
    assert captured.out.startswith(f"OK: {FULL + 7} entries")
    assert captured.err == ""  # a checkpoint was given: no warning


# --- the command line -----------------------------------------------------------------------

OTTO = "otto.auditor"


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[SignedInUnit]:
    built = build_unit(tmp_path / "unit", [(OTTO, "auditor")], example_policy=True)
    yield built
    built.close()


def test_the_cli_refuses_to_export_a_cut_log_and_verify_warns_without_a_checkpoint(
    unit: SignedInUnit, tmp_path: Path
) -> None:
    dd = unit.dd
    unit.run(OTTO, "audit", "checkpoint")
    size = read_checkpoints(dd.checkpoint_path)[-1].tree_size
    keep = size - 2
    cut(dd, keep)
    out = tmp_path / "export.json"
    said = unit.run(OTTO, "audit", "export", str(out), code=1)
    assert said.startswith("error: refusing to sign the audit log")
    assert re.search(rf"the stored log has {keep} entries, but the newest checkpoint .* covers {size}", said)
    assert not out.exists()

    witness = tmp_path / "witness.jsonl"
    dd.checkpoint_path.rename(witness)  # the attacker removes the service's file too: it cannot know
    unit.run(OTTO, "audit", "export", str(out))
    key = str(dd.audit_public_key_path)
    plain = _verify_cli(str(out), "--key", key)
    assert plain.startswith("OK: ")
    assert verify.NO_CHECKPOINT_WARNING in " ".join(plain.split())
    failed = _verify_cli(str(out), "--key", key, "--checkpoint", str(witness), code=1)
    assert failed.startswith(f"FAILED: truncated: the earlier checkpoint covers {size} entries")
    assert verify.NO_CHECKPOINT_WARNING not in " ".join(failed.split())


def _verify_cli(*args: str, code: int = 0) -> str:
    """``faceledger audit verify``, as an outside auditor with no account runs it (stdout and stderr)."""
    result = runner.invoke(app, ["audit", "verify", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


# --- checkpoints from the stored frontier (only the new entries are read) ---------------------


def test_a_row_rewritten_mid_run_is_not_re_signed_by_the_frontier_checkpoint(
    log: Log, tmp_path: Path
) -> None:
    """The periodic checkpoint reads only the entries after the newest one, so it does not see
    an old row rewritten in the database, and signs the log as it was checkpointed. The red team
    then hides the checkpoints and exports: the export is signed over the rewritten log, and the
    verifier fails it against the witness copy of the checkpoint file, frontier checkpoint included.
    """
    dd = log.dd
    _sql(dd, f"UPDATE audit_entries SET leaf_hash = '{'ab' * 32}' WHERE seq = 2")
    append(dd, EVERY + 1, first=100)  # a periodic checkpoint at 18, from the frontier at 13
    assert _sizes_in_file(dd) == [5, 10, FULL, FULL + EVERY]
    witness = tmp_path / "witness-later.jsonl"
    shutil.copy(dd.checkpoint_path, witness)
    with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
        audit.check_integrity(dd)  # the full check (serve's start, its timer) sees it
    audit._FAILED_CHECKS.clear()  # the red team exports from another process, which never checked
    dd.checkpoint_path.unlink()
    _sql(dd, "DELETE FROM audit_checkpoints")
    result = audit.export_log(dd, tmp_path / "export.json", actor="auditor")
    with pytest.raises(verify.VerificationError):
        verify.verify_files(result.path, dd.audit_public_key_path, [witness])


def test_the_timer_refuses_a_row_rewritten_mid_run_and_recording_stops(log: Log) -> None:
    dd = log.dd
    append(dd, 2, first=100)
    _sql(dd, "UPDATE audit_entries SET leaf_hash = '" + "ab" * 32 + "' WHERE seq = 2")
    file_before = dd.checkpoint_path.read_bytes()
    try:
        with pytest.raises(LogIntegrityError, match="do not match the newest checkpoint"):
            audit.checkpoint_if_behind(dd)
        with pytest.raises(LogIntegrityError, match="failed its integrity check"):
            append(dd, 1, first=200)
        assert dd.checkpoint_path.read_bytes() == file_before
        assert _counts(dd) == (FULL + 2, FULL + 2, 3)
    finally:
        audit._FAILED_CHECKS.clear()
