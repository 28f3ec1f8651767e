"""The audit page for auditors: the log with filters, its state, and "verify now".

``GET /audit`` lists stored entries, oldest first, 50 a page, filtered by person, action, object
(its start, e.g. ``search:41``) and days (in the policy's time zone), through the same service
as ``GET /api/v1/audit/entries`` (``read_audit``; a refusal is recorded). It also shows the log's
state: its size, its key, and the last stored checkpoint. ``POST /audit/verify`` exports the
whole log (``export_audit``, recorded, kept under the data directory's ``exports/`` as the API
keeps its exports), then runs the standalone verifier (``faceledger/audit/verify.py``, the file an
outside auditor runs without faceledger) over that export with the log's public key, and shows
what it found: the entries and checkpoints it checked, or the first problem, in its words.
Countersignatures are kept by the witness, on its own machine; the page does not hold them.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from faceledger.audit import verify as standalone
from faceledger.errors import ValidationError
from faceledger.services import audit, audit_access
from faceledger.web.api.audit import export_to_data_dir
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.pages.routes import PagesDep, SignedIn, check_csrf, signed_in, signed_in_page, to_sign_in

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
Filter = Annotated[str, Query(max_length=200)]


def _day(value: str, zone: tzinfo, what: str, *, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` as the start of that day in ``zone`` (``end``: the start of the next day)."""
    if not value.strip():
        return None
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ValidationError(f"the {what} {value[:20]!r} is not a date written YYYY-MM-DD") from None
    start = datetime.combine(day, time(0, 0), tzinfo=zone)
    return (start + timedelta(days=1) if end else start).astimezone(UTC)


def _blank_to_none(value: str) -> str | None:
    return value.strip() or None


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    actor: Filter = "",
    action: Filter = "",
    object: Filter = "",
    since: Filter = "",
    until: Filter = "",
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    zone = pages.policy(dd).zone
    filters = audit.EntryFilter(
        actor=_blank_to_none(actor),
        action=_blank_to_none(action),
        object_prefix=_blank_to_none(object),
        since=_day(since, zone, "first day", end=False),
        until=_day(until, zone, "last day", end=True),
    )
    found = audit_access.entries(dd, current.principal, filters, offset=offset, limit=PAGE_SIZE, now=now)
    stored = audit_access.checkpoints(dd, current.principal, now=now)
    chosen = {"actor": actor, "action": action, "object": object, "since": since, "until": until}

    def page_link(at: int) -> str:
        return "/audit?" + urlencode({**{k: v for k, v in chosen.items() if v}, "offset": at})

    following = offset + len(found.entries)
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "audit.html",
        found=found,
        chosen=chosen,
        info=audit.log_info(dd),
        last_checkpoint=stored[-1] if stored else None,
        checkpoints=len(stored),
        previous_link=page_link(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
        next_link=page_link(following) if following < found.total else None,
        details=_details,
    )


def _details(value: Any) -> str:
    """An entry's details as one line of canonical JSON (escaped by the template)."""
    return standalone.canonical_json(value).decode("utf-8")


@router.post("/audit/verify", response_class=HTMLResponse)
def verify_now(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    exported = export_to_data_dir(dd, current.principal, now)
    with tempfile.TemporaryDirectory(prefix="faceledger-verify-") as folder:
        key = Path(folder) / "audit-public-key.pem"
        key.write_text(audit_access.public_key(dd).pem, encoding="ascii")
        try:
            summary: standalone.Summary | None = standalone.verify_files(exported, key)
            problem = None
        except (standalone.VerificationError, standalone.InputError) as exc:
            summary, problem = None, str(exc)
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "audit_verified.html",
        summary=summary,
        problem=problem,
        export=exported.name,
    )
