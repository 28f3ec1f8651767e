"""The case page: everything recorded about one case number, in order, printable.

``GET /cases`` opens a case by its number (a form); ``GET /cases/{number}`` shows its history
through the same service as ``GET /api/v1/cases/{number}`` (:func:`faceledger.services.cases.case_history`,
which asks the door for ``view_case`` and records a refusal): every search, refusal, probe edit,
candidate shown and viewed, finding and review step, with who and when, in the policy's time
zone. Searches are listed by id and outcome; their candidates stay behind the search itself.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain import text
from faceledger.services import cases
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.pages.routes import PagesDep, SignedIn, signed_in, signed_in_page, to_sign_in

router = APIRouter(include_in_schema=False)

#: The longest case number the page accepts (the API's limit).
MAX_CASE_CHARS = 200


@router.get("/cases", response_class=HTMLResponse)
def open_case(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    number: Annotated[str | None, Query(max_length=MAX_CASE_CHARS)] = None,
) -> Response:
    """A form for a case number; with ``number``, the case page of that number."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    if number is not None and number.strip():
        return RedirectResponse(f"/cases/{quote(number.strip(), safe='')}", status_code=303)
    return signed_in_page(request, pages, dd, now, current, "case_open.html")


@router.get("/cases/{case_number:path}", response_class=HTMLResponse)
def case_page(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, case_number: str) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    number = text.identifier(case_number, "case number", max_chars=MAX_CASE_CHARS)  # as the API's path rule
    history = cases.case_history(dd, current.principal, number, now=now)
    return signed_in_page(request, pages, dd, now, current, "case.html", history=history)
