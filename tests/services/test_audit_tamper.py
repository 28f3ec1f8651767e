"""Tampering with the audit tables directly in the database, on SQLite and PostgreSQL, is caught.

Each case builds a real log (21 entries, checkpoints at 8 and 16 written periodically and one
at 21 on demand, the checkpoint file copied away as an operator would ship it), changes the
database with plain SQL the way someone with database access would, exports the log through
the service and runs the standalone verifier on the export. The verifier must fail and name
the first entry affected.

Where the change cuts or rewrites entries that the newest checkpoint already covers, the
service itself refuses to sign the export (``REFUSED: ...``, :class:`LogIntegrityError`),
so no signed copy of the altered log ever leaves it; the verifier's reading of such logs is
tested on the exports in ``tests/audit/test_verify.py``, and here on the attacker who also
deletes the service's checkpoint file and its stored checkpoints.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_helpers import BACKENDS, append, data_dir, pg_url  # noqa: F401 - pg_url: a fixture
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from faceledger.adapters.store.tables_audit import audit_entries
from faceledger.audit import verify
from faceledger.audit.canonical import entry_leaf_data, entry_signature_message
from faceledger.audit.events import AuditEntry
from faceledger.audit.merkle import leaf_hash
from faceledger.services import audit
from faceledger.services.datadir import DataDir

SIZE = 21


@dataclass
class Log:
    dd: DataDir
    shipped: Path
    """The checkpoint file as the operator shipped it elsewhere before anyone tampered."""


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    with data_dir(request.param, tmp_path / "data", request=request, checkpoint_every=8) as dd:
        append(dd, SIZE - 1)
        audit.checkpoint(dd)
        shipped = tmp_path / "shipped-checkpoints.jsonl"
        shutil.copy(dd.checkpoint_path, shipped)
        yield Log(dd, shipped)


def _sql(dd: DataDir, *statements: str) -> None:
    with dd.store.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _export_and_verify(log: Log, tmp_path: Path, *, with_shipped: bool) -> str:
    """The verifier's verdict: ``OK: ...`` or the reason it failed."""
    out = tmp_path / "export.json"
    try:
        audit.export_log(log.dd, out, actor="auditor")
    except audit.LogIntegrityError as exc:
        assert not out.exists()
        return f"REFUSED: {exc}"
    earlier = [log.shipped] if with_shipped else []
    try:
        return verify.verify_files(out, log.dd.audit_public_key_path, earlier).line()
    except verify.VerificationError as exc:
        return f"FAILED: {exc}"


def _shift(first: int, by: int) -> tuple[str, str]:
    """Renumber entries from ``first`` on by ``by``, in two steps so no unique seq collides."""
    return (
        f"UPDATE audit_entries SET seq = -seq WHERE seq >= {first}",
        f"UPDATE audit_entries SET seq = -seq + ({by}) WHERE seq < 0",
    )


def _copy_row(conn: Connection, seq: int) -> dict[str, object]:
    row = conn.execute(select(audit_entries).where(audit_entries.c.seq == seq)).one()
    return dict(row._mapping)


# --- the cases -----------------------------------------------------------------------------


def alter_actor(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5")


def alter_details(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_entries SET details = REPLACE(details, 'CASE-6', 'CASE-666') WHERE seq = 7")


def alter_timestamp(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_entries SET ts = '2024-05-01T08:00:00.000000Z' WHERE seq = 9")


def float_in_details(dd: DataDir) -> None:
    _sql(dd, """UPDATE audit_entries SET details = '{"top_k": 0.5}' WHERE seq = 3""")


def details_not_json(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_entries SET details = 'nothing to see' WHERE seq = 4")


def delete_one(dd: DataDir) -> None:
    _sql(dd, "DELETE FROM audit_entries WHERE seq = 5")


def delete_three_and_close_the_gap(dd: DataDir) -> None:
    _sql(
        dd,
        "DELETE FROM audit_entries WHERE seq BETWEEN 5 AND 7",
        *_shift(8, -3),
        "UPDATE audit_log SET size = size - 3",
    )


def renumber_one(dd: DataDir) -> None:
    _sql(dd, "UPDATE audit_entries SET seq = 50 WHERE seq = 5")


def swap_two(dd: DataDir) -> None:
    _sql(
        dd,
        "UPDATE audit_entries SET seq = -10 WHERE seq = 10",
        "UPDATE audit_entries SET seq = 10 WHERE seq = 11",
        "UPDATE audit_entries SET seq = 11 WHERE seq = -10",
    )


def insert_forged(dd: DataDir) -> None:
    """A made-up search by alice, well formed, with a correct leaf hash but no valid signature."""
    forged = AuditEntry(5, "2024-05-01T09:00:04.500000Z", "alice", "search", "search:999", {"purpose": "x"})
    with dd.store.begin() as conn:
        for statement in (*_shift(5, 1), "UPDATE audit_log SET size = size + 1"):
            conn.execute(text(statement))
        conn.execute(
            audit_entries.insert().values(
                seq=5,
                ts=forged.timestamp,
                actor=forged.actor,
                action=forged.action,
                object=forged.object,
                details='{"purpose":"x"}',
                leaf_hash=leaf_hash(entry_leaf_data(forged)).hex(),
                signature=base64.b64encode(bytes(64)).decode(),
            )
        )


def duplicate_a_real_entry(dd: DataDir) -> None:
    with dd.store.begin() as conn:
        row = _copy_row(conn, 3)
        conn.execute(audit_entries.insert().values({**row, "seq": SIZE + 1}))
        conn.execute(text("UPDATE audit_log SET size = size + 1"))


def truncate_keeping_checkpoints(dd: DataDir) -> None:
    _sql(dd, "DELETE FROM audit_entries WHERE seq > 17", "UPDATE audit_log SET size = 17")


def truncate_with_its_checkpoints(dd: DataDir) -> None:
    _sql(
        dd,
        "DELETE FROM audit_entries WHERE seq > 17",
        "DELETE FROM audit_checkpoints WHERE tree_size > 17",
        "UPDATE audit_log SET size = 17",
    )


def forge_checkpoint_root(dd: DataDir) -> None:
    _sql(dd, f"UPDATE audit_checkpoints SET root_hash = '{'ab' * 32}' WHERE tree_size = 8")


def insert_forged_checkpoint(dd: DataDir) -> None:
    _sql(
        dd,
        "INSERT INTO audit_checkpoints (log_id, tree_size, root_hash, timestamp, key_fingerprint, signature) "
        "SELECT log_id, 30, root_hash, timestamp, key_fingerprint, signature FROM audit_checkpoints "
        "WHERE tree_size = 16",
    )


def alter_stored_leaf_hash(dd: DataDir) -> None:
    _sql(dd, f"UPDATE audit_entries SET leaf_hash = '{'00' * 32}' WHERE seq = 3")


def rewrite_with_the_key(dd: DataDir) -> None:
    """Someone who also holds the key edits entry 5 and re-signs everything, checkpoints included."""
    key = audit.signer(dd)
    log_id = audit.log_info(dd).log_id
    with dd.store.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5"))
        conn.execute(text("DELETE FROM audit_checkpoints"))
        for row in conn.execute(select(audit_entries)).all():
            entry = AuditEntry(row.seq, row.ts, row.actor, row.action, row.object, json.loads(row.details))
            leaf = leaf_hash(entry_leaf_data(entry))
            signature = key.sign(entry_signature_message(log_id, leaf))
            conn.execute(
                audit_entries.update()
                .where(audit_entries.c.seq == row.seq)
                .values(leaf_hash=leaf.hex(), signature=base64.b64encode(signature).decode())
            )


Tamper = Callable[[DataDir], None]

#: The service's own answer when the stored entries no longer extend its newest checkpoint.
CUT = r"^REFUSED: refusing to sign the audit log: the stored log has \d+ entries, but the newest checkpoint"
REWRITTEN = r"^REFUSED: refusing to sign the audit log: its stored entries 1\.\.21 \(of \d+\) do not match"

CASES: list[tuple[Tamper, bool, str]] = [
    (
        alter_actor,
        False,
        r"^FAILED: entry 5 was altered \(or forged\): its content does not match its signature$",
    ),
    (alter_details, False, r"^FAILED: entry 7 was altered \(or forged\)"),
    (alter_timestamp, False, r"^FAILED: entry 9 was altered \(or forged\)"),
    (float_in_details, False, r"^FAILED: the entry at position 3 is malformed \(non-integer number 0\.5\)"),
    (details_not_json, False, r"^FAILED: the entry at position 4 is malformed \(details must be an object\)"),
    (delete_one, False, REWRITTEN),
    (delete_three_and_close_the_gap, False, CUT),
    (renumber_one, False, REWRITTEN),
    (swap_two, False, REWRITTEN),
    (insert_forged, False, REWRITTEN),
    (
        duplicate_a_real_entry,
        False,
        rf"^FAILED: an entry was inserted at position {SIZE + 1}: a copy of entry 3$",
    ),
    (truncate_keeping_checkpoints, False, CUT),
    (truncate_with_its_checkpoints, True, CUT),
    (
        forge_checkpoint_root,
        False,
        r"^FAILED: checkpoint 1 \(size 8, .*\) does not carry a valid signature of this key",
    ),
    (
        insert_forged_checkpoint,
        False,
        r"^FAILED: checkpoint 4 \(size 30, .*\) does not carry a valid signature",
    ),
    (alter_stored_leaf_hash, False, REWRITTEN),
    (rewrite_with_the_key, True, REWRITTEN),
]


@pytest.mark.parametrize(("tamper", "with_shipped", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
def test_tampering_in_the_database_is_caught_and_named(
    log: Log, tmp_path: Path, tamper: Tamper, with_shipped: bool, expected: str
) -> None:
    tamper(log.dd)
    verdict = _export_and_verify(log, tmp_path, with_shipped=with_shipped)
    assert re.search(expected, verdict), verdict


def test_the_untouched_log_verifies_with_the_shipped_checkpoints(log: Log, tmp_path: Path) -> None:
    verdict = _export_and_verify(log, tmp_path, with_shipped=True)
    assert verdict.startswith("OK: 22 entries and 4 signed checkpoint(s) verified"), verdict
    assert verdict.endswith("consistent with 3 earlier checkpoint(s) (size 8, 16, 21)")


def _without_the_services_checkpoints(dd: DataDir) -> None:
    """The stronger attacker: shell access to delete the checkpoint file as well as the database rows."""
    dd.checkpoint_path.unlink()
    _sql(dd, "DELETE FROM audit_checkpoints")


def test_a_truncation_with_its_checkpoints_passes_without_the_shipped_file(log: Log, tmp_path: Path) -> None:
    """Why the checkpoint file must leave the machine: with it deleted too, a cut is consistent."""
    truncate_with_its_checkpoints(log.dd)
    _without_the_services_checkpoints(log.dd)
    assert _export_and_verify(log, tmp_path, with_shipped=False).startswith("OK: 18 entries")
    assert _export_and_verify(log, tmp_path, with_shipped=True).startswith("FAILED: truncated")


def test_a_rewrite_with_the_key_passes_without_the_shipped_file(log: Log, tmp_path: Path) -> None:
    rewrite_with_the_key(log.dd)
    _without_the_services_checkpoints(log.dd)
    assert _export_and_verify(log, tmp_path, with_shipped=False).startswith("OK: 22 entries")
    assert _export_and_verify(log, tmp_path, with_shipped=True).startswith(
        "FAILED: the export's entries 1..8 differ"
    )
