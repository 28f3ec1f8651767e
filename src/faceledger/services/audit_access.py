"""The audit log as a person reads, exports and checkpoints it: each function asks the one door.

:mod:`faceledger.services.audit` keeps the log (append, sign, export) and checks no person;
these are what the web, the CLI and the library call instead, and each asks
:func:`faceledger.services.authorization.authorize` before it reads or signs anything, so a
refusal is decided and recorded in one place, with its rule id:

- reading entries and stored checkpoints needs ``read_audit`` (auditors);
- exporting and signing a checkpoint need ``export_audit`` (auditors);
- the oversight report needs ``reports`` (supervisors and auditors).

The log's public key is public (it is what an outside auditor verifies an export with), so
:func:`public_key` takes no person, over the API and the CLI alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from faceledger.audit.checkpoint import Checkpoint
from faceledger.audit.events import JsonValue
from faceledger.domain.roles import Action
from faceledger.services import audit
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal

TARGET = "audit_log"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """The log's identity and the key its entries and checkpoints are signed with."""

    log_id: str
    fingerprint: str
    pem: str


def _allow(dd: DataDir, principal: Principal, action: Action, now: datetime) -> None:
    authorize(dd, principal, [action], target=TARGET, now=now)


def entries(
    dd: DataDir,
    principal: Principal,
    filters: audit.EntryFilter | None = None,
    *,
    offset: int = 0,
    limit: int = 50,
    now: datetime,
) -> audit.EntryPage:
    """One page of stored entries, oldest first (``read_audit``)."""
    _allow(dd, principal, Action.READ_AUDIT, now)
    return audit.list_entries(dd, filters or audit.EntryFilter(), offset=offset, limit=limit)


def checkpoints(dd: DataDir, principal: Principal, *, now: datetime) -> list[dict[str, JsonValue]]:
    """The stored checkpoints, oldest first (``read_audit``)."""
    _allow(dd, principal, Action.READ_AUDIT, now)
    return list(audit.stored_checkpoints(dd))


def export(dd: DataDir, principal: Principal, path: Path, *, now: datetime) -> audit.ExportResult:
    """Export the whole log to ``path`` with a fresh checkpoint (``export_audit``); recorded."""
    _allow(dd, principal, Action.EXPORT_AUDIT, now)
    return audit.export_log(dd, path, actor=principal.actor.username, now=now)


def checkpoint(dd: DataDir, principal: Principal, *, now: datetime) -> Checkpoint:
    """Sign the log as it stands now (``export_audit``), after checking every stored entry."""
    _allow(dd, principal, Action.EXPORT_AUDIT, now)
    return audit.checkpoint(dd, now=now)


def report(
    dd: DataDir,
    principal: Principal,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime,
) -> audit.OversightReport:
    """Searches per user, unit, purpose and outcome, and refusals by rule (``reports``)."""
    _allow(dd, principal, Action.REPORTS, now)
    return audit.oversight_report(dd, since=since, until=until)


def public_key(dd: DataDir) -> PublicKey:
    """The log's public key: no person needed, it verifies and gives nothing away."""
    info = audit.log_info(dd)
    key = audit.signer(dd).public_key
    return PublicKey(log_id=info.log_id, fingerprint=key.fingerprint, pem=key.pem().decode("ascii"))
