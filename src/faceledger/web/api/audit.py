"""The audit log over HTTP: read it a page at a time, export it, checkpoint it, get its public key.

Each route calls :mod:`faceledger.services.audit_access` (or :mod:`~faceledger.services.audit_proofs`),
which asks the one door: reading needs ``read_audit``, exporting and checkpointing
``export_audit`` (auditors), the oversight report ``reports`` (supervisors and auditors). The
public key is public: it is what an auditor verifies an export with, and gives nothing away.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from faceledger.audit.canonical import format_timestamp
from faceledger.services import audit, audit_access, audit_proofs
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.audit import CheckpointOut, EntryOut, ProofOut, PublicKeyOut, ReportOut
from faceledger.web.models.common import Page, UtcDatetime, page_of, slice_page

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=COMMON_RESPONSES)

#: Exports are kept in the data directory: the audit log records where each one went.
EXPORTS_DIR = "exports"

Since = Annotated[UtcDatetime | None, Query(description="From this moment (with time zone), inclusive.")]
Until = Annotated[UtcDatetime | None, Query(description="Up to this moment (with time zone), exclusive.")]


@router.get("/entries", response_model=Page[EntryOut])
def list_entries(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    page: PageDep,
    actor: Annotated[str | None, Query(max_length=64, description="Only entries by this username.")] = None,
    action: Annotated[str | None, Query(max_length=64, description="Only this action, e.g. search.")] = None,
    object_prefix: Annotated[
        str | None,
        Query(alias="object", max_length=200, description="Objects starting with this, e.g. search:41."),
    ] = None,
    since: Since = None,
    until: Until = None,
) -> Page[EntryOut]:
    """Stored entries, oldest first (``read_audit``)."""
    filters = audit.EntryFilter(
        actor=actor, action=action, object_prefix=object_prefix, since=since, until=until
    )
    found = audit_access.entries(dd, principal, filters, offset=page.offset, limit=page.limit, now=now)
    return page_of(
        [EntryOut.of(e) for e in found.entries], total=found.total, limit=page.limit, offset=page.offset
    )


def export_to_data_dir(dd: DataDir, principal: Principal, now: datetime) -> Path:
    """Export the whole log (``export_audit``, recorded) into the data directory's exports/ folder."""
    folder = dd.path / EXPORTS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = format_timestamp(now).replace(":", "").replace("-", "")
    target = folder / f"audit-{stamp}-{principal.actor.username}.json"
    return audit_access.export(dd, principal, target, now=now).path


@router.post(
    "/export",
    response_class=FileResponse,
    responses={200: {"content": {"application/json": {}}, "description": "The export file (docs/audit.md)."}},
)
async def export(principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> FileResponse:
    """The whole log with a fresh signed checkpoint, for the standalone verifier (``export_audit``).

    The export is recorded in the log it exports, and a copy stays in the data directory's
    ``exports`` folder.
    """
    path = await run_in_threadpool(export_to_data_dir, dd, principal, now)
    return FileResponse(path, media_type="application/json", filename=path.name)


@router.post("/checkpoints", response_model=CheckpointOut)
def take_checkpoint(principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> CheckpointOut:
    """Sign the log as it stands now (``export_audit``); also appended to the checkpoint file."""
    return CheckpointOut.of(audit_access.checkpoint(dd, principal, now=now))


@router.get("/checkpoints", response_model=Page[CheckpointOut])
def list_checkpoints(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, page: PageDep
) -> Page[CheckpointOut]:
    """Stored checkpoints, oldest first (``read_audit``)."""
    stored = [CheckpointOut.model_validate(c) for c in audit_access.checkpoints(dd, principal, now=now)]
    return slice_page(stored, limit=page.limit, offset=page.offset)


@router.get("/proofs/entries/{seq}", response_model=ProofOut, response_model_exclude_none=True)
def prove_entry(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    seq: Annotated[int, PathParam(ge=1, le=2**53 - 1, description="The entry's sequence number.")],
    tree_size: Annotated[
        int | None, Query(ge=1, le=2**53 - 1, description="The stored checkpoint (default: the newest).")
    ] = None,
) -> ProofOut:
    """Proof that entry ``seq`` is in the log a signed checkpoint covers (``read_audit``)."""
    found = audit_proofs.prove_entry(dd, principal, seq, tree_size=tree_size, now=now)
    return ProofOut.model_validate(found.document)


@router.get("/proofs/consistency", response_model=ProofOut, response_model_exclude_none=True)
def prove_consistency(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    old_size: Annotated[int, Query(ge=1, le=2**53 - 1, description="The older stored checkpoint's size.")],
    new_size: Annotated[
        int | None, Query(ge=1, le=2**53 - 1, description="The newer one's (default: the newest).")
    ] = None,
) -> ProofOut:
    """Proof that the log at one checkpoint extends the log at an earlier one (``read_audit``)."""
    found = audit_proofs.prove_extension(dd, principal, old_size, new_size, now=now)
    return ProofOut.model_validate(found.document)


@router.get("/public-key", response_model=PublicKeyOut)
def public_key(dd: DataDirDep) -> PublicKeyOut:
    """The log's public key (no sign-in needed): what exports and checkpoints are verified with."""
    found = audit_access.public_key(dd)
    return PublicKeyOut(log_id=found.log_id, fingerprint=found.fingerprint, pem=found.pem)


@router.get("/report", response_model=ReportOut)
def report(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, since: Since = None, until: Until = None
) -> ReportOut:
    """Searches per user, unit, purpose and outcome; denials by rule; failed sign-ins (``reports``)."""
    return ReportOut.of(audit_access.report(dd, principal, since=since, until=until, now=now))
