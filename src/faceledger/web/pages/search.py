"""The search pages: a new search (case, purpose, galleries, probe and its edits) and its results.

``GET /search`` shows the form, built from the policy in force: its purposes with their
descriptions (and whether each needs a justification), the galleries each purpose may reach
for the person's unit, the agreements searches may be made under, and the case number's
format with its example (checked as it is typed by ``GET /search/case-check``, an htmx
fragment, with the policy's own rule). ``POST /search`` searches through the same code as
``POST /api/v1/searches`` (:func:`faceledger.web.api.searches.run_search`, which runs
:func:`faceledger.services.searches.accountable_search` on the face pool): the policy decides
first and everything is recorded. A refusal is a page with the rule id, the policy version and
the reason; a refusal for the device links to the browser's device enrolment.

``GET /searches/{id}`` shows a stored search through :func:`faceledger.services.searches.get_search`
(recorded as ``candidates_shown``, as the API's ``GET /api/v1/searches/{id}``): the searched
probe with its face box and quality, the recorded edits, the policy's lead notice, and the
candidate grid, :data:`PER_PAGE` candidates a page, each with its provenance from
:func:`~faceledger.services.searches.candidate_records` (listing is not a view); fetching a
candidate's photo is recorded as ``candidate_viewed``. The pictures come from ``/searches/{id}/probe`` and
``/searches/{id}/candidates/{face}/image``, which stream the bytes only after the services
decided (``view_face_image``, a registered device), with ``Cache-Control: no-store``.

``GET /searches/{id}/faces`` draws every face of the searched probe with its quality
(:func:`faceledger.services.probe_view.probe_faces`, on the face pool), and
``POST /searches/{id}/faces/{index}`` searches another of them as a new accountable search of
the same probe with a crop to it appended (:func:`~faceledger.services.probe_view.search_face`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain.policy import Policy, case_number_problem
from faceledger.domain.roles import Action, permits
from faceledger.errors import ImageError, NoFaceError, PermissionDeniedError, ValidationError
from faceledger.services import policies, probe_view, searches
from faceledger.services.accounts import Principal
from faceledger.services.search_records import CandidateView
from faceledger.web.api.candidates import media_type
from faceledger.web.api.searches import parse_edits, run_search
from faceledger.web.deps import DataDirDep, EngineDep, NowDep
from faceledger.web.models.common import MAX_ID
from faceledger.web.pages.routes import PagesDep, SignedIn, check_csrf, signed_in, signed_in_page, to_sign_in

router = APIRouter(include_in_schema=False)

#: Candidates shown on one results page.
PER_PAGE = 12
NO_STORE = {"Cache-Control": "no-store"}

SearchId = Annotated[int, Path(ge=1, le=MAX_ID)]
FaceId = Annotated[int, Path(ge=1, le=MAX_ID)]
OneLine = Annotated[str, Form(max_length=200)]


@dataclass(frozen=True, slots=True)
class PurposeChoice:
    """A purpose as the form offers it: with the galleries it may reach for the person's unit."""

    id: str
    description: str
    justification_required: bool
    galleries: tuple[str, ...]


def purpose_choices(policy: Policy, unit: str) -> list[PurposeChoice]:
    """Every allowed purpose with the galleries of it that ``unit`` may search (the policy's rules)."""
    out = []
    for purpose in policy.purposes:
        reachable = []
        for name in sorted(purpose.galleries):
            rule = policy.gallery(name)
            if rule is not None and (rule.units is None or unit in rule.units):
                reachable.append(name)
        out.append(
            PurposeChoice(purpose.id, purpose.description, purpose.justification_required, tuple(reachable))
        )
    return out


def fmr_in_words(fmr: float | None) -> str:
    """An estimated false match rate as a person reads it."""
    if fmr is None:
        return "no estimate (the model has no calibration for this score)"
    if fmr <= 0:
        return "rarer than any impostor pair in the calibration set"
    if fmr >= 1:
        return "every impostor pair in the calibration set scored this high: no evidence of a match"
    one_in = 1 / fmr
    return f"about 1 in {one_in:,.0f} comparisons of two different people score this high"


def _may_search(principal: Principal) -> bool:
    return permits(principal.scopes, Action.SEARCH)


def _form(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    current: SignedIn,
) -> HTMLResponse:
    stored = policies.active_stored_policy(dd)
    policy = None if stored is None else stored.policy()
    unit = current.principal.actor.unit
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "search.html",
        rules=policy,
        purposes=[] if policy is None else purpose_choices(policy, unit),
        agreements=[] if policy is None or not policy.inter_agency_allowed else policy.agreements,
        on_device=current.principal.actor.device_id is not None,
        may_search=_may_search(current.principal),
    )


@router.get("/search", response_class=HTMLResponse)
def search_form(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    return _form(request, pages, dd, now, current)


@router.get("/search/case-check", response_class=HTMLResponse)
def case_check(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    case_number: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """An htmx fragment: whether ``case_number`` is in the policy's format (the search rule's own check)."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return HTMLResponse('<span class="bad">You are signed out: sign in again.</span>', status_code=401)
    stored = policies.active_stored_policy(dd)
    if stored is None:
        return HTMLResponse('<span class="bad">No policy is loaded: searches are refused.</span>')
    policy = stored.policy()
    if not case_number.strip():
        problem: str | None = f"Type the case number, for example {policy.case_number_example}."
    else:
        problem = case_number_problem(policy, case_number.strip())
    html = pages.env.get_template("case_check.html").render(problem=problem)
    return HTMLResponse(html)


def _refused(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    current: SignedIn,
    exc: PermissionDeniedError | NoFaceError | ImageError,
) -> HTMLResponse:
    """The page of a refused search: the policy's rule, version and reason; or why the probe failed."""
    if not isinstance(exc, PermissionDeniedError):
        return signed_in_page(
            request, pages, dd, now, current, "search_refused.html", status_code=422,
            title="The probe could not be searched", reason=str(exc), rule_id=None, policy_version=None,
            device_rule=False,
        )  # fmt: skip
    decision = exc.decision
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "search_refused.html",
        status_code=403,
        title="Search refused",
        reason=decision.reason if decision is not None else str(exc),
        rule_id=None if decision is None else decision.rule_id,
        policy_version=None if decision is None else decision.policy_version,
        device_rule=decision is not None and decision.rule_id.startswith("device."),
    )


@router.post("/search", response_class=HTMLResponse)
async def search(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    probe: Annotated[UploadFile | None, File()] = None,
    case_number: OneLine = "",
    purpose: OneLine = "",
    galleries: Annotated[list[Annotated[str, Form(max_length=200)]], Form(max_length=50)] = [],  # noqa: B006
    justification: Annotated[str, Form(max_length=20_000)] = "",
    on_behalf_of: OneLine = "",
    agreement_ref: OneLine = "",
    edits: Annotated[str, Form(max_length=10_000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    wanted = searches.SearchInput(
        case_number=case_number or None,
        purpose=purpose or None,
        galleries=tuple(galleries),
        justification=justification or None,
        on_behalf_of=on_behalf_of or None,
        agreement_ref=agreement_ref or None,
        edits=parse_edits(edits),
    )
    if probe is None or not probe.filename:
        raise ValidationError("choose the probe photo (a file, or drop it on the form)")
    try:
        record = await run_search(dd, engine, current.principal, probe, wanted, now=now)
    except (PermissionDeniedError, NoFaceError, ImageError) as exc:
        return _refused(request, pages, dd, now, current, exc)
    return RedirectResponse(f"/searches/{record.search_id}", status_code=303)


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def results(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    search_id: SearchId,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    record = searches.get_search(dd, current.principal, search_id, now=now)
    pages_total = max(1, math.ceil(len(record.candidates) / PER_PAGE))
    page = min(page, pages_total)
    shown = record.candidates[(page - 1) * PER_PAGE : page * PER_PAGE]
    views: list[CandidateView] = searches.candidate_records(
        dd, current.principal, search_id, [c.face_id for c in shown], now=now
    )
    face = record.probe_face or {}
    quality = face.get("quality") or {}
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "results.html",
        record=record,
        views=views,
        page=page,
        pages_total=pages_total,
        box=face.get("box"),
        quality=quality,
        fmr_in_words=fmr_in_words,
    )


@router.get("/searches/{search_id}/faces", response_class=HTMLResponse)
async def faces_page(
    request: Request, pages: PagesDep, dd: DataDirDep, engine: EngineDep, now: NowDep, search_id: SearchId
) -> Response:
    """Every face of the searched probe drawn with its quality; another one can be searched."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    found = await engine.run(probe_view.probe_faces, dd, engine, current.principal, search_id, now=now)
    return signed_in_page(request, pages, dd, now, current, "faces.html", found=found)


@router.post("/searches/{search_id}/faces/{face_index}", response_class=HTMLResponse)
async def search_face(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    search_id: SearchId,
    face_index: Annotated[int, Path(ge=0, le=10_000)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """A new search of the same probe, case and reasons, cropped to face ``face_index``."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    try:
        record = await engine.run(
            probe_view.search_face, dd, engine, current.principal, search_id, face_index, now=now
        )
    except (PermissionDeniedError, NoFaceError, ImageError) as exc:
        return _refused(request, pages, dd, now, current, exc)
    return RedirectResponse(f"/searches/{record.search_id}", status_code=303)


@router.get("/searches/{search_id}/probe")
def probe_image(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    search_id: SearchId,
    face: Annotated[bool, Query()] = False,
) -> Response:
    """The searched probe as PNG (the face alone with ``?face=true``), after the service decided."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    data = probe_view.probe_png(dd, current.principal, search_id, face_only=face, now=now)
    return Response(content=data, media_type="image/png", headers=NO_STORE)


@router.get("/searches/{search_id}/candidates/{face_id}/image")
def candidate_image(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    search_id: SearchId,
    face_id: FaceId,
) -> Response:
    """The candidate's gallery photo as stored, after :func:`searches.candidate_image` decided (recorded)."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    data = searches.candidate_image(dd, current.principal, search_id, face_id, now=now)
    return Response(content=data, media_type=media_type(data), headers=NO_STORE)
