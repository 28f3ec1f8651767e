"""Proofs an auditor can check against signed checkpoints: one entry is in the log, and a later
log extends an earlier one (RFC 6962 inclusion and consistency proofs).

Each proof is anchored to checkpoints the service signed and stored, so it says something
only if those checkpoints are the ones the auditor (or a witness) already holds. A proof is
a JSON document (``format: faceledger-audit-proof``); the standalone verifier
(:mod:`faceledger.audit.verify`, ``--proof``) checks it with its own code.

Reading proofs needs ``read_audit``: both functions ask the one door
(:func:`faceledger.services.authorization.authorize`) before they read anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from faceledger.adapters.store.tables_audit import audit_checkpoints, audit_entries
from faceledger.audit.events import JsonValue
from faceledger.audit.merkle import consistency_proof, inclusion_proof
from faceledger.domain.roles import Action
from faceledger.errors import NotFoundError, StoreError, ValidationError
from faceledger.services.audit import checkpoint_json, entry_json, log_info
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal

PROOF_FORMAT = "faceledger-audit-proof"
PROOF_VERSION = 1


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof document, ready to write out as JSON."""

    kind: str
    document: dict[str, JsonValue]


def _checkpoint_row(conn: Connection, log_id: str, size: int | None) -> Any:
    """The stored checkpoint of ``size`` (None: the newest), signed by this log."""
    query = select(audit_checkpoints).where(audit_checkpoints.c.log_id == log_id)
    if size is None:
        query = query.order_by(audit_checkpoints.c.tree_size.desc(), audit_checkpoints.c.id.desc())
    else:
        query = query.where(audit_checkpoints.c.tree_size == size).order_by(audit_checkpoints.c.id.desc())
    row = conn.execute(query.limit(1)).first()
    if row is None:
        sizes = conn.execute(
            select(audit_checkpoints.c.tree_size).where(audit_checkpoints.c.log_id == log_id).distinct()
        ).scalars()
        known = ", ".join(str(s) for s in sorted(sizes)) or "none yet (run `faceledger audit checkpoint`)"
        wanted = "any checkpoint" if size is None else f"a checkpoint of size {size}"
        raise NotFoundError(f"there is not {wanted} of this log; checkpoint sizes: {known}")
    return row


def _leaf_hashes(conn: Connection, size: int) -> list[bytes]:
    rows = conn.execute(
        select(audit_entries.c.seq, audit_entries.c.leaf_hash)
        .where(audit_entries.c.seq >= 1, audit_entries.c.seq <= size)
        .order_by(audit_entries.c.seq)
    ).all()
    if [int(r.seq) for r in rows] != list(range(1, size + 1)):
        raise StoreError(
            f"the stored log does not hold entries 1..{size} in order: it was altered in the database; "
            "export it and verify the export"
        )
    try:
        return [bytes.fromhex(str(r.leaf_hash)) for r in rows]
    except ValueError:
        raise StoreError("a stored leaf hash is damaged: export the log and verify the export") from None


def _header(kind: str, log_id: str) -> dict[str, JsonValue]:
    return {"format": PROOF_FORMAT, "version": PROOF_VERSION, "kind": kind, "log_id": log_id}


def prove_entry(
    dd: DataDir, principal: Principal, seq: int, *, tree_size: int | None = None, now: datetime
) -> Proof:
    """Entry ``seq`` (as stored, with its signature) is leaf ``seq - 1`` of a signed checkpoint.

    ``tree_size`` names the checkpoint (default: the newest stored one); it must cover ``seq``.
    """
    authorize(dd, principal, [Action.READ_AUDIT], target="audit_log", now=now)
    head = log_info(dd)
    if seq < 1 or seq > head.size:
        raise ValidationError(f"entry {seq} is not in the log, which has entries 1..{head.size}")
    with dd.store.read() as conn:
        row = _checkpoint_row(conn, head.log_id, tree_size)
        size = int(row.tree_size)
        if seq > size:
            raise ValidationError(
                f"checkpoint of size {size} does not cover entry {seq}; take a checkpoint first "
                "(`faceledger audit checkpoint`) or name a later one"
            )
        hashes = _leaf_hashes(conn, size)
        entry = conn.execute(select(audit_entries).where(audit_entries.c.seq == seq)).one()
    document = _header("inclusion", head.log_id)
    document |= {
        "seq": seq,
        "entry": entry_json(entry),
        "leaf_hash": hashes[seq - 1].hex(),
        "proof": [node.hex() for node in inclusion_proof(hashes, seq - 1)],
        "checkpoint": checkpoint_json(row),
    }
    return Proof("inclusion", document)


def prove_extension(
    dd: DataDir, principal: Principal, old_size: int, new_size: int | None = None, *, now: datetime
) -> Proof:
    """The log at checkpoint ``new_size`` (default: the newest) extends the one at ``old_size``."""
    authorize(dd, principal, [Action.READ_AUDIT], target="audit_log", now=now)
    head = log_info(dd)
    with dd.store.read() as conn:
        old = _checkpoint_row(conn, head.log_id, old_size)
        new = _checkpoint_row(conn, head.log_id, new_size)
        if int(new.tree_size) < old_size:
            raise ValidationError(f"checkpoint {new.tree_size} is older than checkpoint {old_size}")
        hashes = _leaf_hashes(conn, int(new.tree_size))
    document = _header("consistency", head.log_id)
    document |= {
        "old": checkpoint_json(old),
        "new": checkpoint_json(new),
        "proof": [node.hex() for node in consistency_proof(hashes, old_size)],
    }
    return Proof("consistency", document)
