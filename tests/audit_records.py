"""Reading the audit log straight from the database, as the tests check what was recorded."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from faceledger.adapters.store.tables_audit import audit_entries
from faceledger.services.datadir import DataDir


def audit_rows(dd: DataDir, action: str | None = None) -> list[dict[str, Any]]:
    """The audit log's entries (optionally of one action), oldest first, details decoded."""
    query = select(audit_entries).order_by(audit_entries.c.seq)
    if action is not None:
        query = query.where(audit_entries.c.action == action)
    with dd.store.read() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "seq": r.seq,
            "actor": r.actor,
            "action": r.action,
            "object": r.object,
            "details": json.loads(r.details),
        }
        for r in rows
    ]
