"""Audit log appends on a short and a long log: the checkpoint frontier against a full read.

Every ``[audit] checkpoint_every`` entries an append signs a checkpoint under the head lock.
From the frontier stored with the newest checkpoint it reads only the entries after it; the
full read (what every signing did before migration 0012, and what it still does when a
checkpoint row has no frontier) reads every leaf of the log. This appends K entries, one
committed transaction each (as the services do), to a copy of a log already holding a small
prefix and to a copy of one holding a large one, and prints the time per append for each,
and the ratio large/small, for both paths. A ratio near 1 is an append cost that does not
grow with the log.

    python bench/audit_append.py                               # 1,000 and 100,000; K = 2,000
    python bench/audit_append.py --small 1000 --large 20000 --appends 500   # quicker

The prefixes are built in bulk (sealed entries and one signed checkpoint, with its frontier,
per ``checkpoint_every`` entries in the table and the checkpoint file, as a real log has;
the service's own integrity check then accepts them). The full-read path is measured by making
the frontier lookup find nothing, the state of checkpoint rows from before migration 0012.
SQLite, in a temporary folder, with its durable settings (a sync per commit). Each figure is
the best of ``--rounds`` runs, each on a fresh copy of the prefix, since the cores are shared.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

from faceledger.adapters.store.tables_audit import audit_entries, audit_log
from faceledger.audit import events as ev
from faceledger.audit.canonical import canonical_json, format_timestamp
from faceledger.audit.checkpoint import Checkpoint, append_checkpoint, sign_checkpoint
from faceledger.audit.export import seal_entry
from faceledger.audit.merkle import MerkleAccumulator
from faceledger.config import AuditSettings, Settings
from faceledger.services import audit
from faceledger.services.datadir import DataDir, init_data_dir, open_data_dir

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def _settings(every: int) -> Settings:
    return Settings(audit=AuditSettings(checkpoint_every=every, checkpoint_minutes=0))


def _event(n: int) -> ev.AuditEvent:
    return ev.search(
        f"examiner{n % 7}",
        search_id=str(n),
        probe_sha256=f"{n:064x}",
        galleries=["custody"],
        model_key="dlib/resnet/1/abcdef012345",
        threshold="0.930000",
        score_normalisation="none",
        top_k=10,
        case_ref=f"CASE-{n}",
        purpose="investigation",
    )


def _build(root: Path, entries: int, every: int) -> None:
    """A data directory whose log holds ``entries`` sealed entries and a checkpoint every ``every``.

    Built in bulk, as the service would have left it: each entry sealed with the log key
    (:func:`seal_entry`), a checkpoint signed, stored with its frontier and appended to the
    checkpoint file at every multiple of ``every`` and at the end; one transaction in all.
    """
    with init_data_dir(root, settings=_settings(every)) as dd:
        key = audit.signer(dd)
        info = audit.log_info(dd)
        with dd.store.begin() as conn:
            (first,) = conn.execute(select(audit_entries.c.leaf_hash).where(audit_entries.c.seq == 1)).one()
            tree = MerkleAccumulator()
            tree.append(bytes.fromhex(first))
            rows: list[dict[str, object]] = []
            signed: list[Checkpoint] = []
            for seq in range(2, entries + 1):
                event = _event(seq)
                stamp = format_timestamp(START + timedelta(milliseconds=seq))
                sealed = seal_entry(event.at(seq, stamp), log_id=info.log_id, signer=key)
                rows.append(
                    {
                        "seq": seq,
                        "ts": stamp,
                        "actor": event.actor,
                        "action": event.action.value,
                        "object": event.object,
                        "details": canonical_json(dict(event.details)).decode("utf-8"),
                        "leaf_hash": sealed.leaf_hash.hex(),
                        "signature": base64.b64encode(sealed.signature).decode("ascii"),
                    }
                )
                tree.append(sealed.leaf_hash)
                if seq % every == 0 or seq == entries:
                    cp = sign_checkpoint(
                        log_id=info.log_id, tree_size=seq, root_hash=tree.root(), timestamp=stamp, signer=key
                    )
                    audit._store_checkpoint(conn, cp, tree)
                    signed.append(cp)
                if len(rows) >= 5_000 or seq == entries:
                    conn.execute(insert(audit_entries), rows)
                    rows = []
            conn.execute(update(audit_log).values(size=entries))
        for cp in signed:
            append_checkpoint(dd.checkpoint_path, cp)
        audit.check_integrity(dd)  # the service accepts it as its own


@contextmanager
def _copy(prefix: Path, work: Path, name: str, every: int) -> Iterator[DataDir]:
    target = work / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(prefix, target)
    dd = open_data_dir(target, settings=_settings(every))
    try:
        yield dd
    finally:
        dd.close()
        shutil.rmtree(target, ignore_errors=True)


@contextmanager
def _full_read() -> Iterator[None]:
    """Every signing finds no usable frontier, as with checkpoint rows from before migration 0012."""
    saved = audit._stored_frontier
    audit._stored_frontier = lambda *_args: None
    try:
        yield
    finally:
        audit._stored_frontier = saved


def _appends(dd: DataDir, appends: int, first: int, every: int) -> tuple[float, float]:
    """Mean seconds per append, and per append that signed a periodic checkpoint.

    ``appends`` appends, one committed transaction each, after ``every + 1`` untimed ones that
    sign one checkpoint (the first commits of a copied database are slower, and the process's
    first signing parses the whole checkpoint file; later ones parse only the lines added).
    The log's newest checkpoint covers ``first - 1`` entries, so the append of entry
    ``first + k * every`` signs one.
    """
    for n in range(first, first + every + 1):
        _append(dd, n)
    start = first + every + 1
    times: list[float] = []
    signing: list[float] = []
    for n in range(start, start + appends):
        began = time.perf_counter()
        _append(dd, n)
        took = time.perf_counter() - began
        times.append(took)
        if (n - first) % every == 0 and n > first:
            signing.append(took)
    return sum(times) / len(times), (sum(signing) / len(signing)) if signing else float("nan")


def _append(dd: DataDir, n: int) -> None:
    with dd.store.begin() as conn:
        audit.record(dd, conn, _event(n), now=START + timedelta(days=1, milliseconds=n))


@contextmanager
def _as_stored() -> Iterator[None]:
    """Signings use the frontier stored with the newest checkpoint (the service as it is)."""
    yield


def _row(label: str, small: float, large: float) -> None:
    print(f"{label:<34}{small * 1e3:>11.3f} ms{large * 1e3:>13.3f} ms{large / small:>12.2f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=1_000, help="entries in the short log (1,000)")
    parser.add_argument("--large", type=int, default=100_000, help="entries in the long log (100,000)")
    parser.add_argument("--appends", type=int, default=2_000, help="entries appended to each (2,000)")
    parser.add_argument("--every", type=int, default=100, help="[audit] checkpoint_every (100)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, the best kept (2)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="faceledger-bench-") as tmp:
        work = Path(tmp)
        prefixes: dict[int, Path] = {}
        for size in (args.small, args.large):
            started = time.perf_counter()
            prefixes[size] = work / f"prefix-{size}"
            _build(prefixes[size], size, args.every)
            print(f"built a log of {size:,} entries in {time.perf_counter() - started:.1f} s", flush=True)

        print(f"\n{args.appends:,} appends (one transaction each), a checkpoint every {args.every}:")
        small_label, large_label = f"log {args.small:,}", f"log {args.large:,}"
        print(f"{'':<34}{small_label:>14}{large_label:>16}{'large/small':>13}")
        for label, mode in (("frontier", _as_stored), ("full read", _full_read)):
            best: dict[int, tuple[float, float]] = {}
            for _round in range(args.rounds):
                for size in (args.small, args.large):
                    with _copy(prefixes[size], work, "run", args.every) as dd, mode():
                        mean, signing = _appends(dd, args.appends, size + 1, args.every)
                    kept = best.get(size, (mean, signing))
                    best[size] = (min(kept[0], mean), min(kept[1], signing))
            (small, small_signing), (large, large_signing) = best[args.small], best[args.large]
            _row(f"{label}: per append", small, large)
            _row(f"{label}: per signing append", small_signing, large_signing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
