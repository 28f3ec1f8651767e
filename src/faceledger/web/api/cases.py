"""A case's history: everything recorded about one case number, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from faceledger.services import cases
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.common import VISIBLE_LINE, documented
from faceledger.web.models.reviews import CaseHistoryOut, HistoryEntryOut

router = APIRouter(prefix="/api/v1/cases", tags=["cases"], responses=COMMON_RESPONSES)


@router.get("/{case_number:path}", response_model=CaseHistoryOut)
def case_history(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    page: PageDep,
    case_number: Annotated[
        str,
        Path(
            min_length=1,
            max_length=200,
            description="The case number, e.g. 2025/CID/004211.",
            json_schema_extra=documented(VISIBLE_LINE),
        ),
    ],
) -> CaseHistoryOut:
    """Searches, decisions and refusals, probe edits, candidate views and review steps (``view_case``).

    Searches are listed by id: their candidates are shown (and that is recorded) by
    GET /api/v1/searches/{id}.
    """
    found = cases.case_history(dd, principal, case_number, now=now)
    entries = found.entries[page.offset : page.offset + page.limit]
    following = page.offset + len(entries)
    return CaseHistoryOut(
        case_number=found.case_number,
        opened_at=found.opened_at,
        opened_by=found.opened_by,
        searches=[s.search_id for s in found.searches],
        verifications=[v.search_id for v in found.verifications],
        history=[HistoryEntryOut.of(e) for e in entries],
        total=len(found.entries),
        limit=page.limit,
        offset=page.offset,
        next_offset=following if entries and following < len(found.entries) else None,
    )
