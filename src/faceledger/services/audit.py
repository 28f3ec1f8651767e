"""The audit log service: signed entries appended inside the action's own transaction.

:func:`record` is what every other service calls, inside its ``with dd.store.begin() as
conn:`` block, so that an action and its record commit together or not at all. Appends are
serialised by updating the one-row ``audit_log`` head first: on SQLite that takes the write
lock, on PostgreSQL a row lock that a concurrent append waits on, so two appends never get
the same sequence number or leave a gap (the primary key on ``seq`` backs this up).

Checkpoints (signed tree heads) are written on demand, before every export, and every
``audit.checkpoint_every`` entries. A periodic checkpoint is taken by the first append of a
transaction and covers only the entries before it: while the head is locked those are all
committed and can never change, so the line appended to the checkpoint file outside the
database stays true even if the caller's transaction then rolls back.

Every signing runs under the head lock against the newest checkpoint the service knows, from
the checkpoint file and the checkpoints table alike (:func:`_checked_tree`): a log cut below
it is refused with :class:`LogIntegrityError`, never re-signed. Each stored checkpoint keeps
its Merkle frontier, so the periodic and the timed checkpoints read only the entries after
the newest one (O(new entries + log n) under the lock, not O(n)). The export, the CLI's
checkpoint and :func:`check_integrity` (run by ``faceledger serve`` at start and by its
checkpoint timer, outside the head lock) read the whole stored prefix and refuse one that
was rewritten; a failed :func:`check_integrity` makes every later :func:`record` in the
process refuse until a check passes again.

The pure parts (canonical form, Merkle tree, signatures, export format) are in
:mod:`faceledger.audit`; this module owns storage, keys and transactions. See docs/audit.md.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.signing import LogSigner
from faceledger.adapters.store.tables_accounts import users
from faceledger.adapters.store.tables_audit import audit_checkpoints, audit_entries, audit_log
from faceledger.audit import events as ev
from faceledger.audit.canonical import canonical_json, format_timestamp
from faceledger.audit.checkpoint import (
    Checkpoint,
    Verifier,
    append_checkpoint,
    checkpoint_is_valid,
    parse_checkpoint_lines,
    sign_checkpoint,
)
from faceledger.audit.events import AuditEvent, JsonValue
from faceledger.audit.export import build_export, seal_entry, write_export
from faceledger.audit.merkle import HASH_SIZE, MerkleAccumulator
from faceledger.errors import ConflictError, StoreError, ValidationError

if TYPE_CHECKING:
    from faceledger.adapters.store import Store
    from faceledger.config import Settings


class LogHome(Protocol):
    """What this service needs of an opened data directory.

    :class:`faceledger.services.datadir.DataDir` is the one implementation. Typing against this
    rather than importing ``DataDir`` lets :mod:`faceledger.services.datadir` import this module
    (it creates the log when it creates a data directory) without the two importing each other.
    """

    @property
    def path(self) -> Path: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def audit_key_path(self) -> Path: ...

    @property
    def audit_public_key_path(self) -> Path: ...

    @property
    def checkpoint_path(self) -> Path: ...


__all__ = [
    "EntryFilter",
    "EntryPage",
    "ExportResult",
    "LogEntry",
    "LogHome",
    "LogInfo",
    "LogIntegrityError",
    "OversightReport",
    "checkpoint",
    "ensure_log",
    "export_log",
    "list_entries",
    "log_info",
    "oversight_report",
    "record",
    "signer",
    "stored_checkpoints",
]

_HEAD_ID = 1
_TXN_MARK = "faceledger.audit.first_append"
_SIGNERS: weakref.WeakKeyDictionary[LogHome, LogSigner] = weakref.WeakKeyDictionary()


class LogIntegrityError(StoreError):
    """The stored log does not extend the newest checkpoint signed of it: cut or rewritten.

    A :class:`StoreError` (the CLI prints it as one line, the web API answers 503 with code
    ``store_error``): the fix is on the server (restore the database), not in the request.
    """


@dataclass(frozen=True, slots=True)
class LogInfo:
    """The log's identity and length, as its head row says."""

    log_id: str
    key_fingerprint: str
    size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    entries: int
    checkpoints: int
    checkpoint: Checkpoint | None
    """The checkpoint taken for this export (None only when the stored log was too damaged to sign)."""


# --- keys --------------------------------------------------------------------------------


def signer(dd: LogHome) -> LogSigner:
    """The log's signing key, loaded once per opened data directory."""
    cached = _SIGNERS.get(dd)
    if cached is None:
        path = dd.audit_key_path
        if not path.exists():
            raise StoreError(
                f"no audit signing key at {path}: nothing can be recorded without it; if this data "
                f"directory predates the audit log run `faceledger init {dd.path}`, otherwise restore "
                "the key file from its backup"
            )
        cached = LogSigner.load(path)
        _SIGNERS[dd] = cached
    return cached


def _ensure_key(dd: LogHome, *, create: bool) -> LogSigner:
    """The key, and its public half beside it; ``create``: make the key file for a new log."""
    path = dd.audit_key_path
    if create and not path.exists():
        with contextlib.suppress(ConflictError):  # another process created it first: use theirs
            LogSigner.generate(path)
    key = signer(dd)
    public = dd.audit_public_key_path
    pem = key.public_key.pem()
    if not public.exists() or public.read_bytes() != pem:
        key.public_key.write(public)
    return key


# --- the head ----------------------------------------------------------------------------


def ensure_log(dd: LogHome, *, now: datetime | None = None) -> LogInfo:
    """Create the log (key file, head row, first entry) if it does not exist yet; else check its key.

    Called by ``faceledger init``. A log that exists is never given a new key: a missing key
    file is an error to restore from backup, not a reason to start signing with another key.
    """
    with dd.store.read() as conn:
        head = _read_head(conn)
    if head is not None:
        _check_key(head, _ensure_key(dd, create=False), dd)
        return head
    key = _ensure_key(dd, create=True)
    try:
        with dd.store.begin() as conn:
            _create_log(conn, key, now=_moment(now))
    except IntegrityError:  # another process created the log at the same moment
        pass
    return log_info(dd)


def log_info(dd: LogHome) -> LogInfo:
    with dd.store.read() as conn:
        head = _read_head(conn)
    if head is None:
        raise StoreError(f"the audit log of {dd.path} has not been created; run `faceledger init {dd.path}`")
    return head


def _read_head(conn: Connection) -> LogInfo | None:
    row = conn.execute(select(audit_log).where(audit_log.c.id == _HEAD_ID)).first()
    if row is None:
        return None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return LogInfo(row.log_id, row.key_fingerprint, int(row.size), created)


def _advance_head(conn: Connection, by: int) -> LogInfo | None:
    """Lock the head row (the write lock on SQLite) and grow the log by ``by`` entries."""
    result = conn.execute(
        update(audit_log).where(audit_log.c.id == _HEAD_ID).values(size=audit_log.c.size + by)
    )
    if result.rowcount == 0:
        return None
    return _read_head(conn)


def _create_log(conn: Connection, key: LogSigner, *, now: datetime) -> None:
    log_id = f"faceledger-{secrets.token_hex(8)}"
    conn.execute(
        insert(audit_log).values(
            id=_HEAD_ID, log_id=log_id, key_fingerprint=key.fingerprint, size=1, created_at=now
        )
    )
    _append(conn, key, log_id, ev.log_created(log_id=log_id, key_fingerprint=key.fingerprint), 1, now)


def _check_key(head: LogInfo, key: LogSigner, dd: LogHome) -> None:
    if head.key_fingerprint != key.fingerprint:
        raise StoreError(
            f"the audit log {head.log_id} was created with key {head.key_fingerprint}, but "
            f"{dd.audit_key_path} holds key {key.fingerprint}; restore the log's own key file"
        )


def _moment(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now


# --- appending ---------------------------------------------------------------------------


def record(dd: LogHome, conn: Connection, event: AuditEvent, *, now: datetime | None = None) -> int:
    """Append ``event`` to the log in the caller's transaction; returns its sequence number.

    Call it inside the same ``with dd.store.begin() as conn:`` block as the action, so that a
    rollback takes the record with it and a commit cannot happen without it. ``now`` must be
    timezone-aware (tests pass fixed times); it defaults to the current time.
    """
    moment = _moment(now)
    timestamp = format_timestamp(moment)  # refuses a naive datetime before anything is written
    canonical_json(dict(event.details))  # refuses floats, NaN, huge ints before anything is written
    if not conn.in_transaction():
        raise StoreError("audit.record needs the action's transaction: call it inside dd.store.begin()")
    key = signer(dd)
    _refuse_if_failed(dd, conn)  # before the head moves: nothing is written when refused
    head = _advance_head(conn, 1)
    if head is None:  # a data directory from before the audit log: start it now
        _create_log(conn, key, now=moment)
        head = _advance_head(conn, 1)
        if head is None:  # pragma: no cover - the row was inserted just above
            raise StoreError("the audit log head vanished while appending")
    _check_key(head, key, dd)
    if _first_append_in_transaction(conn):
        _periodic_checkpoint(dd, conn, key, head, moment)
    _append(conn, key, head.log_id, event, head.size, timestamp)
    return head.size


def _append(
    conn: Connection, key: LogSigner, log_id: str, event: AuditEvent, seq: int, when: datetime | str
) -> None:
    timestamp = when if isinstance(when, str) else format_timestamp(when)
    sealed = seal_entry(event.at(seq, timestamp), log_id=log_id, signer=key)
    try:
        _insert_entry(conn, event, seq, timestamp, sealed.leaf_hash, sealed.signature)
    except IntegrityError:
        raise StoreError(
            f"audit entry {seq} already exists although the log's head says it is next: the audit "
            "tables were changed in the database; export the log and verify it to see how"
        ) from None


def _insert_entry(
    conn: Connection, event: AuditEvent, seq: int, timestamp: str, leaf_hash: bytes, signature: bytes
) -> None:
    conn.execute(
        insert(audit_entries).values(
            seq=seq,
            ts=timestamp,
            actor=event.actor,
            action=event.action.value,
            object=event.object,
            details=canonical_json(dict(event.details)).decode("utf-8"),
            leaf_hash=leaf_hash.hex(),
            signature=_b64(signature),
        )
    )


def _first_append_in_transaction(conn: Connection) -> bool:
    """Whether this transaction has not appended before (so every earlier entry is committed).

    The mark holds the transaction object itself, so its identity cannot be reused by a later one.
    """
    transaction = conn.get_transaction()
    if conn.info.get(_TXN_MARK) is transaction:
        return False
    conn.info[_TXN_MARK] = transaction
    return True


def _periodic_checkpoint(
    dd: LogHome, conn: Connection, key: LogSigner, head: LogInfo, moment: datetime
) -> None:
    every = dd.settings.audit.checkpoint_every
    committed = head.size - 1
    if every <= 0 or committed <= 0:
        return
    newest = select(audit_checkpoints.c.tree_size).order_by(audit_checkpoints.c.tree_size.desc()).limit(1)
    last_size = conn.execute(newest).scalar() or 0
    if committed - int(last_size) < every:
        return
    # A log cut since its newest checkpoint, or rewritten where this signing reads it, is refused
    # (LogIntegrityError), never re-signed. From a stored frontier only the new entries are read.
    try:
        tree = _checked_tree(dd, conn, key, head.log_id, committed, verify_stored=False)
    except _DamagedLeafError:
        return  # a row damaged in the database must not stop every action: leave it to the verifier
    cp = _sign(key, head.log_id, tree, moment)
    _store_checkpoint(conn, cp, tree)
    append_checkpoint(dd.checkpoint_path, cp)


# --- checkpoints -------------------------------------------------------------------------
#
# Every signing runs under the head lock and makes one pass (:func:`_checked_tree`): find the
# newest checkpoint signed of this log (checkpoint file and table), refuse a stored log shorter
# than it, then build the tree of entries 1..size. When a stored checkpoint row of that same
# size and root carries a frontier that folds to the signed root, the tree starts from it and
# only the entries after it are read: O(new entries + log n). Otherwise (rows from before
# migration 0012, rows deleted, a frontier that does not fold to the root, or ``verify_stored``)
# every leaf is read once, the first tree_size of them checked against the signed root on the
# way. The frontier path cannot notice an old row rewritten in the database; that is what
# :func:`check_integrity` (full read, no head lock) is for, and what the serve timer runs.


class _DamagedLeafError(StoreError):
    """A stored leaf hash past the checked prefix is not 32 bytes of hex: no tree can be signed."""


def _checked_tree(
    dd: LogHome, conn: Connection, key: LogSigner, log_id: str, size: int, *, verify_stored: bool
) -> MerkleAccumulator:
    """The Merkle tree of the stored entries 1..size, once they extend the newest checkpoint.

    Raises :class:`LogIntegrityError` when the stored log is shorter than the newest validly
    signed checkpoint, or (whenever the prefix is read: no usable frontier, or
    ``verify_stored``) its first ``tree_size`` stored leaf hashes do not give its root; and
    :class:`_DamagedLeafError` when a leaf hash after that prefix cannot be read. Entries are the
    rows numbered 1..size, whatever rows hold those numbers: a gap leaves a smaller tree, which
    then no verifier accepts.
    """
    newest = _newest_checkpoint(dd, conn, key, log_id)
    if newest is None:
        tree = MerkleAccumulator()
        _extend_from_rows(tree, conn, 1, size)
        return tree
    cp, source = newest
    if size < cp.tree_size:
        raise _cut_error(size, cp, source)
    if not verify_stored:
        tree_or_none = _stored_frontier(conn, key, cp)
        if tree_or_none is not None:
            _extend_from_rows(tree_or_none, conn, cp.tree_size + 1, size)
            return tree_or_none
    tree = MerkleAccumulator()
    checked = False
    for seq, leaf in _leaf_rows(conn, 1, size):
        if not checked and seq > cp.tree_size:
            if tree.root() != cp.root_hash:
                raise _mismatch_error(size, cp, source)
            checked = True
        parsed = _parse_leaf(leaf)
        if parsed is None:
            if not checked:  # a damaged leaf cannot match any root
                raise _mismatch_error(size, cp, source)
            raise _damaged(seq, leaf)
        tree.append(parsed)
    if not checked and tree.root() != cp.root_hash:
        raise _mismatch_error(size, cp, source)
    return tree


def _leaf_rows(conn: Connection, first: int, last: int) -> Iterable[tuple[int, Any]]:
    rows = conn.execute(
        select(audit_entries.c.seq, audit_entries.c.leaf_hash)
        .where(audit_entries.c.seq >= first, audit_entries.c.seq <= last)
        .order_by(audit_entries.c.seq)
    )
    return ((int(seq), leaf) for seq, leaf in rows)


def _parse_leaf(leaf: Any) -> bytes | None:
    try:
        parsed = bytes.fromhex(leaf)
    except (ValueError, TypeError):
        return None
    return parsed if len(parsed) == HASH_SIZE else None


def _extend_from_rows(tree: MerkleAccumulator, conn: Connection, first: int, last: int) -> None:
    """Append the stored leaf hashes of entries first..last; :class:`_DamagedLeafError` at a bad one."""
    for seq, leaf in _leaf_rows(conn, first, last):
        parsed = _parse_leaf(leaf)
        if parsed is None:
            raise _damaged(seq, leaf)
        tree.append(parsed)


def _damaged(seq: int, leaf: Any) -> _DamagedLeafError:
    return _DamagedLeafError(
        f"audit entry {seq} has a damaged leaf hash ({leaf!r}): the log was altered in the "
        "database; export it and verify the export to see what else changed"
    )


def _cut_error(size: int, cp: Checkpoint, source: str) -> LogIntegrityError:
    return LogIntegrityError(
        f"refusing to sign the audit log: the stored log has {size} entries, but the newest "
        f"checkpoint ({source}, signed {cp.timestamp}) covers {cp.tree_size}; entries were cut "
        "from the database. Nothing was signed; restore the database from a backup that holds "
        f"all {cp.tree_size} entries, and verify an export against the checkpoint file"
    )


def _mismatch_error(size: int, cp: Checkpoint, source: str) -> LogIntegrityError:
    return LogIntegrityError(
        f"refusing to sign the audit log: its stored entries 1..{cp.tree_size} (of {size}) do not "
        f"match the newest checkpoint ({source}, size {cp.tree_size}, signed {cp.timestamp}); "
        "entries were removed, reordered or rewritten in the database. Nothing was signed; "
        "restore the database from a backup that matches it, and verify an export against "
        "the checkpoint file"
    )


def _stored_frontier(conn: Connection, key: LogSigner, cp: Checkpoint) -> MerkleAccumulator | None:
    """The tree at ``cp`` from a stored frontier that folds to its (signed) root, if a row has one.

    Only rows of the same log, size and root whose own signature is valid are considered, and
    a frontier is used only when its fold is ``cp``'s root: a frontier changed in the table
    cannot fold to the same root, so it is passed over (the caller then reads every leaf).
    """
    rows = conn.execute(
        select(audit_checkpoints)
        .where(audit_checkpoints.c.log_id == cp.log_id)
        .where(audit_checkpoints.c.tree_size == cp.tree_size)
        .where(audit_checkpoints.c.root_hash == cp.root_hash.hex())
        .where(audit_checkpoints.c.frontier.is_not(None))
        .order_by(audit_checkpoints.c.id.desc())
    ).all()
    for row in rows:
        try:
            stored = Checkpoint.from_json(checkpoint_json(row), where=f"stored checkpoint {row.id}")
            tree = MerkleAccumulator.from_frontier(cp.tree_size, _parse_frontier(row.frontier))
        except ValidationError:
            continue
        if tree.root() == cp.root_hash and checkpoint_is_valid(stored, key.public_key):
            return tree
    return None


def _frontier_text(tree: MerkleAccumulator) -> str:
    return ",".join(node.hex() for node in tree.frontier)


def _parse_frontier(text: Any) -> list[bytes]:
    if not isinstance(text, str):
        raise ValidationError("a stored frontier is text")
    if not text:
        return []
    try:
        return [bytes.fromhex(part) for part in text.split(",")]
    except ValueError:
        raise ValidationError("a stored frontier is comma-separated hex") from None


def _sign(key: LogSigner, log_id: str, tree: MerkleAccumulator, moment: datetime) -> Checkpoint:
    return sign_checkpoint(
        log_id=log_id,
        tree_size=tree.size,
        root_hash=tree.root(),
        timestamp=format_timestamp(moment),
        signer=key,
    )


def _check_against_newest_checkpoint(
    dd: LogHome, conn: Connection, key: LogSigner, log_id: str, size: int
) -> None:
    """Refuse a stored log that does not extend the newest checkpoint known of it (no signing).

    The newest checkpoint (largest tree size) signed by this log's key, from the checkpoint
    file outside the database and from the checkpoints table together: the stored log must
    have at least its ``tree_size`` entries (``size``, as the head says), and its first
    ``tree_size`` stored leaf hashes must give its root, read in full whatever frontier is
    stored. Checkpoints that do not carry a valid signature of the key (forged into the table)
    are ignored; the verifier names them. Only the newest is checked, in one pass over its
    entries: it commits to every older one.
    """
    newest = _newest_checkpoint(dd, conn, key, log_id)
    if newest is None:
        return
    cp, source = newest
    if size < cp.tree_size:
        raise _cut_error(size, cp, source)
    if _stored_root(conn, cp.tree_size) != cp.root_hash:
        raise _mismatch_error(size, cp, source)


def _newest_checkpoint(
    dd: LogHome, conn: Connection, key: LogSigner, log_id: str
) -> tuple[Checkpoint, str] | None:
    """The validly signed checkpoint of this log with the largest tree size, and where it is from."""
    public = key.public_key
    best: tuple[Checkpoint, str] | None = None
    path = dd.checkpoint_path
    if path.exists():
        in_file = _newest_in_file(path, log_id, public)  # unreadable or malformed: that stops the signing
        if in_file is not None:
            best = (in_file, f"checkpoint file {path}")
    rows = conn.execute(  # only those newer than the file's; forged rows among them are skipped
        select(audit_checkpoints)
        .where(audit_checkpoints.c.log_id == log_id)
        .where(audit_checkpoints.c.tree_size > (best[0].tree_size if best else -1))
        .order_by(audit_checkpoints.c.tree_size.desc(), audit_checkpoints.c.id)
    ).all()
    for row in rows:
        try:
            cp = Checkpoint.from_json(checkpoint_json(row), where=f"stored checkpoint {row.id}")
        except ValidationError:
            continue  # damaged in the database: not something to trust, the verifier names it
        if checkpoint_is_valid(cp, public):
            best = (cp, "stored checkpoints")
            break
    return best


@dataclass(frozen=True, slots=True)
class _FileScan:
    """What this process parsed of a checkpoint file: its first ``length`` bytes (whole lines)."""

    device: int
    inode: int
    length: int
    digest: bytes
    """SHA-256 of those bytes: a file changed anywhere in them is parsed again from the start."""
    lines: int
    checkpoints: tuple[Checkpoint, ...]
    newest: dict[tuple[str, str], Checkpoint | None]
    """Per (log id, key fingerprint): the newest validly signed checkpoint among them."""


_FILE_SCANS: dict[str, _FileScan] = {}
_FILE_SCANS_LOCK = threading.Lock()  # check_integrity (no head lock) may run beside a signing


def _newest_in_file(path: Path, log_id: str, public: Verifier) -> Checkpoint | None:
    """The validly signed checkpoint of ``log_id`` with the largest size in the file (the first such).

    Every line must parse, as :func:`faceledger.audit.checkpoint.read_checkpoints` requires (its
    errors stop the signing), but the lines this process already parsed are not parsed again
    while the bytes before them are unchanged (same file, same SHA-256): the checkpoint file is
    append-only, so a signing reads and hashes it whole (cheap) but parses and verifies only
    the lines appended since.
    """
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except OSError as exc:
        raise StoreError(f"cannot read the checkpoint file {path}: {exc}") from None
    with _FILE_SCANS_LOCK:
        return _newest_in_bytes(path, stat, data, log_id, public)


def _newest_in_bytes(
    path: Path, stat: os.stat_result, data: bytes, log_id: str, public: Verifier
) -> Checkpoint | None:
    cached = _FILE_SCANS.get(str(path))
    if (
        cached is None
        or (cached.device, cached.inode) != (stat.st_dev, stat.st_ino)
        or len(data) < cached.length
        or hashlib.sha256(data[: cached.length]).digest() != cached.digest
    ):
        cached = _FileScan(stat.st_dev, stat.st_ino, 0, hashlib.sha256(b"").digest(), 0, (), {})
    whole = data.rfind(b"\n") + 1  # lines after the last newline may still be being written: not kept
    done, done_lines = _parse_checkpoint_lines(path, data[cached.length : whole], cached.lines)
    tail, _ = _parse_checkpoint_lines(path, data[whole:], cached.lines + done_lines)
    fingerprint = public.fingerprint
    wanted = (log_id, fingerprint)
    if wanted in cached.newest:
        best = _newest_of(done, cached.newest[wanted], log_id, public)
    else:
        best = _newest_of([*cached.checkpoints, *done], None, log_id, public)
    if whole > cached.length:
        newest = {
            key: _newest_of(done, cp, key[0], public)
            for key, cp in cached.newest.items()
            if key[1] == fingerprint
        }
        newest[wanted] = best
        _FILE_SCANS[str(path)] = _FileScan(
            stat.st_dev,
            stat.st_ino,
            whole,
            hashlib.sha256(data[:whole]).digest(),
            cached.lines + done_lines,
            (*cached.checkpoints, *done),
            newest,
        )
    elif wanted not in cached.newest and cached.length:
        cached.newest[wanted] = best
    return _newest_of(tail, best, log_id, public)


def _parse_checkpoint_lines(path: Path, data: bytes, before: int) -> tuple[list[Checkpoint], int]:
    """The checkpoints on the lines of ``data`` (which follow ``before`` lines), and how many lines."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise StoreError(f"cannot read the checkpoint file {path}: {exc}") from None
    return parse_checkpoint_lines(lines, path, first=before + 1), len(lines)


def _newest_of(
    later: Sequence[Checkpoint], best: Checkpoint | None, log_id: str, public: Verifier
) -> Checkpoint | None:
    """The newest validly signed checkpoint of ``log_id``: ``best`` (from earlier lines) or a later one.

    A later line wins only with a strictly larger size (the first line of the largest size wins),
    and signatures are checked largest first, so only the candidates that could win are verified.
    """
    for cp in sorted(later, key=lambda c: -c.tree_size):  # stable: file order among equal sizes
        if best is not None and cp.tree_size <= best.tree_size:
            break
        if cp.log_id == log_id and checkpoint_is_valid(cp, public):
            return cp
    return best


def _stored_root(conn: Connection, size: int) -> bytes:
    """The Merkle root of the stored leaf hashes of entries 1..size (whatever rows hold those numbers)."""
    tree = MerkleAccumulator()
    rows = conn.execute(
        select(audit_entries.c.seq, audit_entries.c.leaf_hash)
        .where(audit_entries.c.seq >= 1, audit_entries.c.seq <= size)
        .order_by(audit_entries.c.seq)
    )
    for _seq, leaf in rows:
        try:
            tree.append(bytes.fromhex(leaf))
        except (ValueError, TypeError, ValidationError):
            return b""  # a damaged leaf hash cannot match any root
    return tree.root()


def _store_checkpoint(conn: Connection, cp: Checkpoint, tree: MerkleAccumulator) -> None:
    """Store ``cp`` with the frontier of ``tree``, the tree it was signed from."""
    if tree.size != cp.tree_size:  # pragma: no cover - both come from _sign(tree)
        raise StoreError(f"a checkpoint of size {cp.tree_size} cannot keep a frontier of {tree.size}")
    conn.execute(
        insert(audit_checkpoints).values(
            log_id=cp.log_id,
            tree_size=cp.tree_size,
            root_hash=cp.root_hash.hex(),
            timestamp=cp.timestamp,
            key_fingerprint=cp.key_fingerprint,
            signature=_b64(cp.signature),
            frontier=_frontier_text(tree),
        )
    )


def checkpoint(dd: LogHome, *, now: datetime | None = None, verify_stored: bool = True) -> Checkpoint:
    """Sign the log as it stands now; store it (with its frontier) and append it to the checkpoint file.

    Under the head lock, it refuses (:class:`LogIntegrityError`) a log cut below its newest
    checkpoint. With ``verify_stored`` (the default, what ``faceledger audit checkpoint``
    does) every stored leaf is read and the prefix the newest checkpoint covers is checked
    against its root. Without it, a stored frontier of that checkpoint is used when there is
    one, and only the entries after it are read (the serve timer's way, after its own
    :func:`check_integrity`); a rewritten old row then goes unnoticed here, but the checkpoint
    still commits to the log as it was checkpointed, so a verifier fails the rewritten export.
    """
    moment = _moment(now)
    key = signer(dd)
    with dd.store.begin() as conn:
        head = _locked_head(conn, key, dd)
        tree = _checked_tree(dd, conn, key, head.log_id, head.size, verify_stored=verify_stored)
        cp = _sign(key, head.log_id, tree, moment)
        _store_checkpoint(conn, cp, tree)
    append_checkpoint(dd.checkpoint_path, cp)
    return cp


# Logs whose full integrity check failed in this process: (store URL, log id) -> the reason.
# While a log is here every record() refuses (state-changing work stops); a later successful
# check_integrity() of it, e.g. after the database was restored, takes it out.
_FAILED_CHECKS: dict[tuple[str, str], str] = {}


def _store_key(dd: LogHome, log_id: str) -> tuple[str, str]:
    return (dd.store.engine.url.render_as_string(hide_password=True), log_id)


def _refuse_if_failed(dd: LogHome, conn: Connection) -> None:
    """Raise :class:`LogIntegrityError` when this log failed :func:`check_integrity` in this process."""
    if not _FAILED_CHECKS:  # the usual case: no query at all
        return
    head = _read_head(conn)
    if head is None:
        return
    log_id = head.log_id
    reason = _FAILED_CHECKS.get(_store_key(dd, log_id))
    if reason is not None:
        raise LogIntegrityError(
            f"refusing to record: the audit log {log_id} failed its integrity check while the "
            f"service ran ({reason}). Nothing is recorded, so nothing that must be recorded is "
            "done, until the database is restored and the integrity check passes (restart the service)"
        )


def check_integrity(dd: LogHome) -> LogInfo:
    """Raise :class:`LogIntegrityError` when the stored log does not extend its newest checkpoint.

    In a read transaction, without the head lock: every stored leaf of the prefix the newest
    checkpoint covers is read and checked against its root, whatever frontier is stored.
    ``faceledger serve`` makes it before it starts answering, so a log cut while the service
    was down is reported at once, and its checkpoint timer before every timed checkpoint.
    A failure is remembered for this process (every later :func:`record` of the log refuses
    with the reason) until a later call passes.
    """
    key = signer(dd)
    with dd.store.read() as conn:
        head = _read_head(conn)
        if head is None:
            raise StoreError(
                f"the audit log of {dd.path} has not been created; run `faceledger init {dd.path}`"
            )
        try:
            _check_against_newest_checkpoint(dd, conn, key, head.log_id, head.size)
        except LogIntegrityError as exc:
            _FAILED_CHECKS[_store_key(dd, head.log_id)] = str(exc)
            raise
    _FAILED_CHECKS.pop(_store_key(dd, head.log_id), None)
    return head


def checkpoint_if_behind(dd: LogHome, *, now: datetime | None = None) -> Checkpoint | None:
    """The serve timer's job: check the whole stored log, then sign when entries were added.

    First :func:`check_integrity` (a full read, outside the head lock, so appends go on
    meanwhile); when it fails, the :class:`LogIntegrityError` is raised and remembered, and
    every later :func:`record` in this process refuses. Then, when entries were added since
    the newest stored checkpoint, :func:`checkpoint` without ``verify_stored``: from the
    stored frontier, reading only the new entries under the lock. Returns None when the
    newest checkpoint already covers the whole log (or there is no log yet).
    """
    with dd.store.read() as conn:
        head = _read_head(conn)
    if head is None:
        return None
    head = check_integrity(dd)
    with dd.store.read() as conn:
        newest = conn.execute(select(func.max(audit_checkpoints.c.tree_size))).scalar_one_or_none()
    if head.size <= (newest or 0):
        return None
    return checkpoint(dd, now=now, verify_stored=False)


def _locked_head(conn: Connection, key: LogSigner, dd: LogHome) -> LogInfo:
    head = _advance_head(conn, 0)  # no growth: just the lock, so no append slips in meanwhile
    if head is None:
        raise StoreError(f"the audit log of {dd.path} has not been created; run `faceledger init {dd.path}`")
    _check_key(head, key, dd)
    return head


# --- export ------------------------------------------------------------------------------


def export_log(dd: LogHome, path: Path, *, actor: str, now: datetime | None = None) -> ExportResult:
    """Write the whole log, as stored (tampered or not), to ``path`` for an auditor to verify.

    In one transaction holding the head lock: record the export itself, sign a checkpoint
    covering every entry (including that one), and read everything out, so the export ends
    exactly at its checkpoint. The checkpoint file line and the export file are written once
    that has committed.

    Tampered entries still go out for the verifier to name, but a log that no longer extends
    the newest checkpoint signed of it (cut, reordered or rewritten; see
    :func:`_checked_tree`, reading every stored leaf) is refused with :class:`LogIntegrityError` before
    anything is signed or written: re-signing it would vouch for the cut.
    """
    moment = _moment(now)
    key = signer(dd)
    path = path.expanduser().resolve()
    if path.is_dir():
        raise ValidationError(
            f"{path} is a folder; give the export a file name, e.g. {path / 'audit-export.json'}"
        )
    destination = str(path)
    with dd.store.begin() as conn:
        head = _locked_head(conn, key, dd)
        # Before the export's own entry is signed: a cut or rewritten log is refused, not re-signed.
        # Every stored leaf is read (as every row is below anyway) and the prefix checked in full.
        try:
            tree: MerkleAccumulator | None = _checked_tree(
                dd, conn, key, head.log_id, head.size, verify_stored=True
            )
        except _DamagedLeafError:
            tree = None  # a damaged row past the checked prefix: nothing is signed, the export goes out
        event = ev.exported(
            actor, what=f"audit_log:{head.log_id}", destination=destination, count=head.size + 1
        )
        record(dd, conn, event, now=moment)
        cp: Checkpoint | None = None
        if tree is not None:
            _extend_from_rows(tree, conn, head.size + 1, head.size + 1)  # the export's own entry
            cp = _sign(key, head.log_id, tree, moment)
            _store_checkpoint(conn, cp, tree)
        entries = [
            entry_json(row) for row in conn.execute(select(audit_entries).order_by(audit_entries.c.seq))
        ]
        checkpoints = [
            checkpoint_json(row)
            for row in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id))
        ]
    if cp is not None:
        append_checkpoint(dd.checkpoint_path, cp)
    document = build_export(
        log_id=head.log_id,
        key_fingerprint=key.fingerprint,
        entries=[],
        checkpoints=[],
        exported_at=format_timestamp(moment),
    )
    # Entries and checkpoints go out as the raw stored values, not rebuilt as records: a row
    # altered into something no record allows must still reach the verifier, which names it.
    document["entries"] = entries
    document["checkpoints"] = checkpoints
    _write_document(path, document)
    return ExportResult(path, len(entries), len(checkpoints), cp)


def entry_json(row: Any) -> dict[str, JsonValue]:
    """A stored entry row as exports carry it: the entry (details parsed) and its signature."""
    return {
        "entry": {
            "seq": row.seq,
            "ts": row.ts,
            "actor": row.actor,
            "action": row.action,
            "object": row.object,
            "details": _stored_details(row.details),
        },
        "signature": row.signature,
    }


def _stored_details(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text  # not JSON any more: export the text; the verifier reports the entry as malformed


def checkpoint_json(row: Any) -> dict[str, JsonValue]:
    """A stored checkpoint row as exports and proofs carry it."""
    return {
        "log_id": row.log_id,
        "tree_size": row.tree_size,
        "root_hash": row.root_hash,
        "timestamp": row.timestamp,
        "key_fingerprint": row.key_fingerprint,
        "signature": row.signature,
    }


def _write_document(path: Path, document: dict[str, JsonValue]) -> None:
    try:
        write_export(path, document)
    except ValidationError:
        # A stored value no canonical form allows (a float typed into the database): write the
        # export as plain JSON so the verifier can name that entry instead of exporting nothing.
        _write_atomic(path, json.dumps(document, ensure_ascii=False, indent=0, sort_keys=False) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StoreError(f"cannot write the audit export {path}: {exc.strerror or exc}") from None


def stored_checkpoints(dd: LogHome) -> Sequence[dict[str, JsonValue]]:
    """The checkpoints in the database, as stored, oldest first."""
    with dd.store.read() as conn:
        return [
            checkpoint_json(row)
            for row in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id))
        ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- reading: the log, page by page, and the oversight report ---------------------------


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One stored entry as an auditor reads it (details parsed; as stored, not verified)."""

    seq: int
    timestamp: str
    actor: str
    action: str
    object: str
    details: Any


@dataclass(frozen=True, slots=True)
class EntryPage:
    entries: list[LogEntry]
    total: int
    """How many entries match the filters, on every page."""
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Which entries to list; every field is optional and they combine with AND.

    ``object_prefix`` matches the start of the object (``gallery:`` or ``search:41``);
    ``since`` is inclusive and ``until`` exclusive.
    """

    actor: str | None = None
    action: str | None = None
    object_prefix: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(filters: EntryFilter) -> list[Any]:
    c = audit_entries.c
    clauses: list[Any] = []
    if filters.actor is not None:
        clauses.append(c.actor == filters.actor)
    if filters.action is not None:
        clauses.append(c.action == filters.action)
    if filters.object_prefix:
        clauses.append(c.object.startswith(filters.object_prefix, autoescape=True))
    # Stored timestamps are one fixed-width UTC text form, so text order is time order.
    if filters.since is not None:
        clauses.append(c.ts >= format_timestamp(filters.since))
    if filters.until is not None:
        clauses.append(c.ts < format_timestamp(filters.until))
    return clauses


def list_entries(
    dd: LogHome, filters: EntryFilter = EntryFilter(), *, offset: int = 0, limit: int = 50
) -> EntryPage:
    """One page of the stored entries matching ``filters``, oldest first."""
    if offset < 0 or limit < 1:
        raise ValidationError(f"a page needs offset >= 0 and limit >= 1, got offset {offset}, limit {limit}")
    clauses = _where(filters)
    with dd.store.read() as conn:
        total = conn.execute(select(func.count()).select_from(audit_entries).where(*clauses)).scalar_one()
        rows = conn.execute(
            select(audit_entries).where(*clauses).order_by(audit_entries.c.seq).offset(offset).limit(limit)
        ).all()
    entries = [LogEntry(r.seq, r.ts, r.actor, r.action, r.object, _stored_details(r.details)) for r in rows]
    return EntryPage(entries, int(total), offset, limit)


NOT_RECORDED = "(not recorded)"


@dataclass(frozen=True, slots=True)
class OversightReport:
    """Who searched, from which unit, for what purpose, with what outcome; and what was refused.

    Counts come from the entries in [since, until). A search's unit is the one its entry
    records, else its account's unit now. Its outcome is the ``outcome`` its entry records
    when there is one, else what its ``candidates_shown`` entry says (``candidates shown`` /
    ``no candidates``), else ``no candidates recorded``. A refusal's rule is its
    ``rule_id``, or that of the policy decision it records.
    """

    since: datetime | None
    until: datetime | None
    searches: int
    searches_by_user: dict[str, int]
    searches_by_unit: dict[str, int]
    searches_by_purpose: dict[str, int]
    searches_by_outcome: dict[str, int]
    denials: int
    denials_by_rule: dict[str, int]
    failed_sign_ins: int


def oversight_report(
    dd: LogHome, *, since: datetime | None = None, until: datetime | None = None
) -> OversightReport:
    window = EntryFilter(since=since, until=until)
    with dd.store.read() as conn:
        searches = _entries(conn, dataclasses.replace(window, action=ev.AuditAction.SEARCH.value))
        denials = _entries(conn, dataclasses.replace(window, action=ev.AuditAction.POLICY_DENIED.value))
        failed = conn.execute(
            select(func.count())
            .select_from(audit_entries)
            .where(*_where(dataclasses.replace(window, action=ev.AuditAction.SIGN_IN_FAILED.value)))
        ).scalar_one()
        shown = _candidates_shown(conn, [e.object for e in searches])
        units = _current_units(conn, {e.actor for e in searches})
    return OversightReport(
        since=since,
        until=until,
        searches=len(searches),
        searches_by_user=_count(e.actor for e in searches),
        searches_by_unit=_count(_unit(e, units) for e in searches),
        searches_by_purpose=_count(_text(e.details, "purpose") for e in searches),
        searches_by_outcome=_count(_outcome(e, shown) for e in searches),
        denials=len(denials),
        denials_by_rule=_count(_rule(e.details) for e in denials),
        failed_sign_ins=int(failed),
    )


def _entries(conn: Connection, filters: EntryFilter) -> list[LogEntry]:
    rows = conn.execute(select(audit_entries).where(*_where(filters)).order_by(audit_entries.c.seq))
    return [LogEntry(r.seq, r.ts, r.actor, r.action, r.object, _stored_details(r.details)) for r in rows]


def _candidates_shown(conn: Connection, objects: Sequence[str]) -> dict[str, int]:
    """The candidate count last shown for each search object (``search:<id>``)."""
    shown: dict[str, int] = {}
    wanted = sorted(set(objects))
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(audit_entries.c.object, audit_entries.c.details)
            .where(audit_entries.c.action == ev.AuditAction.CANDIDATES_SHOWN.value)
            .where(audit_entries.c.object.in_(wanted[start : start + 500]))
            .order_by(audit_entries.c.seq)
        )
        for obj, details in rows:
            count = _stored_details(details)
            shown[obj] = count.get("count", 0) if isinstance(count, dict) else 0
    return shown


def _outcome(entry: LogEntry, shown: dict[str, int]) -> str:
    recorded = entry.details.get("outcome") if isinstance(entry.details, dict) else None
    if isinstance(recorded, str) and recorded:
        return recorded
    if entry.object not in shown:
        return "no candidates recorded"
    return "candidates shown" if shown[entry.object] else "no candidates"


def _current_units(conn: Connection, usernames: set[str]) -> dict[str, str]:
    wanted = sorted(usernames)
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(users.c.username, users.c.unit).where(users.c.username.in_(wanted[start : start + 500]))
        )
        for name, unit in rows:
            found[name] = unit
    return found


def _unit(entry: LogEntry, current: dict[str, str]) -> str:
    """The unit the entry records, else the account's unit now (an account may have moved since)."""
    recorded = _text(entry.details, "unit")
    return recorded if recorded != NOT_RECORDED else current.get(entry.actor, NOT_RECORDED)


def _rule(details: Any) -> str:
    """The policy rule a refusal cites: its own ``rule_id``, or its recorded decision's."""
    rule = _text(details, "rule_id")
    decision = details.get("decision") if isinstance(details, dict) else None
    return _text(decision, "rule_id") if rule == NOT_RECORDED else rule


def _text(details: Any, key: str) -> str:
    value = details.get(key) if isinstance(details, dict) else None
    return value if isinstance(value, str) and value else NOT_RECORDED


def _count(values: Iterable[str]) -> dict[str, int]:
    counts = Counter(values)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
