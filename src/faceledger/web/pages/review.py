"""The review pages: the examiner's findings, the blind peer review, the supervisor's decision.

``GET /reviews/{search_id}`` shows a search's review as the person may see it
(:func:`faceledger.services.reviews.show_review`: the examiner's work withheld while the blind
peer assessment is outstanding) with its steps and their notes, and the form for the step the
person's roles and the review's state allow: the examiner's finding per candidate, with the
feature worksheet (``POST /reviews/{search_id}/examination``), or the supervisor's approval or
rejection (``POST /reviews/{search_id}/decision``). The peer reviewer works on
``GET /reviews/{search_id}/peer`` (:func:`~faceledger.services.reviews.peer_view`): the
candidates without the examiner's findings until their own are recorded
(``POST /reviews/{search_id}/peer``), then both side by side and the verdict form
(``POST /reviews/{search_id}/verdict``).

The sign-off steps (the peer verdict, approval, rejection) need the person's password and a
fresh TOTP code on the same form, checked by :func:`faceledger.services.accounts.reauthenticate`
before the step is asked for. Every refusal (role, separation of duties, state, re-authentication)
is the services' and recorded by them; the page shows its reason and rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain import review as rv
from faceledger.domain import text
from faceledger.domain.roles import Role
from faceledger.errors import AuthenticationError, NotFoundError, ValidationError
from faceledger.services import accounts, reviews, searches
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.models.common import MAX_ID
from faceledger.web.pages.errors import error_page
from faceledger.web.pages.routes import (
    PagesDep,
    SignedIn,
    check_csrf,
    signed_in,
    signed_in_page,
    to_sign_in,
)

router = APIRouter(include_in_schema=False)

#: The longest notes, reason or worksheet note a form takes (the API's limit).
MAX_NOTES = 4000
#: The longest password and TOTP code the re-authentication fields take (as the sign-in form's).
MAX_PASSWORD, MAX_CODE = 1024, 16
#: The most form fields a review form takes (a worksheet is 18 fields per candidate).
MAX_FIELDS = 5000

SearchId = Annotated[int, Path(ge=1, le=MAX_ID)]
FaceId = Annotated[int, Path(ge=1, le=MAX_ID)]
FEATURE_LABELS = {
    rv.Feature.FACE_SHAPE: "Face shape",
    rv.Feature.HAIRLINE: "Hairline",
    rv.Feature.EYEBROWS: "Eyebrows",
    rv.Feature.EYES: "Eyes",
    rv.Feature.NOSE: "Nose",
    rv.Feature.EARS: "Ears",
    rv.Feature.MOUTH: "Mouth",
    rv.Feature.CHIN: "Chin",
    rv.Feature.MARKS: "Scars, marks and tattoos",
}
OUTCOME_LABELS = {
    rv.Outcome.POSSIBLE_MATCH: "Possible match",
    rv.Outcome.NO_MATCH: "No match",
    rv.Outcome.INCONCLUSIVE: "Inconclusive",
}
COMPARISON_LABELS = {
    rv.Comparison.SIMILAR: "Similar",
    rv.Comparison.DISSIMILAR: "Dissimilar",
    rv.Comparison.NOT_VISIBLE: "Not visible",
}


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form as text fields (a file or too many fields is refused with the reason)."""
    form = await request.form(max_fields=MAX_FIELDS, max_files=0)
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise ValidationError(f"the field {key[:40]!r} must be text, not a file")
        fields[key] = value
    return fields


FormDep = Annotated[dict[str, str], Depends(form_fields)]


def _notes(fields: Mapping[str, str], name: str, what: str) -> str:
    value = fields.get(name, "")
    if len(value) > MAX_NOTES:
        raise ValidationError(f"the {what} are {len(value):,} characters long; at most {MAX_NOTES:,}")
    return text.optional_text(value, what, multiline=True) or ""


def _reauthenticate(
    request: Request, current: SignedIn, dd: DataDirDep, fields: Mapping[str, str], now: datetime
) -> HTMLResponse | None:
    """None when the person re-authenticated; else the page refusing the step, with the reason
    (403: the session stays signed in, only this step is refused)."""
    password, code = fields.get("password", ""), fields.get("totp", "")
    if len(password) > MAX_PASSWORD or len(code) > MAX_CODE:
        raise ValidationError(
            f"the password takes at most {MAX_PASSWORD} characters and the code at most {MAX_CODE}"
        )
    try:
        accounts.reauthenticate(dd, current.principal, password, code.strip(), now=now)
    except AuthenticationError as exc:
        return error_page(request, 403, f"The step was not taken: {exc}. Go back and try again.")
    return None


def parse_findings(fields: Mapping[str, str], face_ids: list[int], *, worksheet: bool) -> list[rv.Finding]:
    """One finding per candidate from the fields ``outcome-{face}``, ``notes-{face}`` and, with
    ``worksheet``, ``ws-{face}-{feature}`` / ``ws-notes-{face}-{feature}`` (a blank row is left out)."""
    found = []
    for face in face_ids:
        chosen = fields.get(f"outcome-{face}", "")
        try:
            outcome = rv.Outcome(chosen)
        except ValueError:
            raise ValidationError(
                f"choose possible match, no match or inconclusive for candidate face {face}"
            ) from None
        sheet: dict[str, Any] = {}
        if worksheet:
            for feature in rv.Feature:
                comparison = fields.get(f"ws-{face}-{feature.value}", "")
                notes = _notes(fields, f"ws-notes-{face}-{feature.value}", f"notes on {feature.value}")
                if comparison or notes:
                    sheet[feature.value] = {"comparison": comparison, "notes": notes}
        notes = _notes(fields, f"notes-{face}", f"notes on face {face}")
        found.append(rv.Finding(face, outcome, notes, rv.parse_worksheet(sheet)))
    return found


def shown_steps(steps: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The review's steps for the page: times as moments, findings keyed by face id."""
    shown = []
    for step in steps:
        item = dict(step, at=datetime.fromisoformat(str(step["at"])))
        if isinstance(step.get("findings"), list):
            item["findings"] = [_finding_of(f) for f in step["findings"]]
        shown.append(item)
    return shown


def _finding_of(data: Mapping[str, Any]) -> rv.Finding:
    return rv.Finding(
        int(data["face_id"]),
        rv.Outcome(data["outcome"]),
        str(data.get("notes", "")),
        rv.parse_worksheet(data.get("worksheet")),
    )


def _page(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    current: SignedIn,
    template: str,
    **context: Any,
) -> HTMLResponse:
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        template,
        features=FEATURE_LABELS,
        outcomes=OUTCOME_LABELS,
        comparisons=COMPARISON_LABELS,
        max_notes=MAX_NOTES,
        max_feature_notes=rv.MAX_FEATURE_NOTES,
        **context,
    )


@router.get("/reviews/{search_id}", response_class=HTMLResponse)
def review_page(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    view = reviews.show_review(dd, current.principal, search_id, now=now)
    roles = current.principal.actor.roles
    state = rv.State(view.state)
    return _page(
        request,
        pages,
        dd,
        now,
        current,
        "review.html",
        view=view,
        steps=shown_steps(view.steps),
        may_examine=state is rv.State.AWAITING_EXAMINATION and Role.EXAMINER in roles,
        may_peer_review=state in (rv.State.AWAITING_PEER_ASSESSMENT, rv.State.AWAITING_PEER_VERDICT)
        and Role.REVIEWER in roles,
        may_decide=state in (rv.State.AWAITING_APPROVAL, rv.State.DISPUTED) and Role.SUPERVISOR in roles,
        may_approve=state is rv.State.AWAITING_APPROVAL,
    )


@router.post("/reviews/{search_id}/examination")
def examination(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId, fields: FormDep
) -> Response:
    current = signed_in(request, pages, dd, now)
    check_csrf(request, pages, fields.get("csrf_token", ""), _binding(current))
    assert isinstance(current, SignedIn)
    view = reviews.show_review(dd, current.principal, search_id, now=now)
    findings = parse_findings(fields, [c.face_id for c in view.candidates], worksheet=True)
    reviews.examine(dd, current.principal, search_id, findings, now=now)
    return RedirectResponse(f"/reviews/{search_id}", status_code=303)


@router.get("/reviews/{search_id}/peer", response_class=HTMLResponse)
def peer_page(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    peer = reviews.peer_view(dd, current.principal, search_id, now=now)
    examiner = {f.face_id: f for f in peer.examiner_findings}
    own = {f.face_id: f for f in peer.own_findings}
    view = None if peer.blind else reviews.show_review(dd, current.principal, search_id, now=now)
    return _page(
        request,
        pages,
        dd,
        now,
        current,
        "review_peer.html",
        peer=peer,
        examiner=examiner,
        own=own,
        view=view,
        steps=shown_steps(view.steps) if view else [],
        awaiting_verdict=view is not None and view.state == rv.State.AWAITING_PEER_VERDICT.value,
    )


@router.post("/reviews/{search_id}/peer")
def peer_assessment(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId, fields: FormDep
) -> Response:
    current = signed_in(request, pages, dd, now)
    check_csrf(request, pages, fields.get("csrf_token", ""), _binding(current))
    assert isinstance(current, SignedIn)
    view = reviews.show_review(dd, current.principal, search_id, now=now)  # records no showing
    findings = parse_findings(fields, [c.face_id for c in view.candidates], worksheet=False)
    reviews.peer_assess(dd, current.principal, search_id, findings, now=now)
    return RedirectResponse(f"/reviews/{search_id}/peer", status_code=303)


@router.post("/reviews/{search_id}/verdict")
def verdict(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId, fields: FormDep
) -> Response:
    current = signed_in(request, pages, dd, now)
    check_csrf(request, pages, fields.get("csrf_token", ""), _binding(current))
    assert isinstance(current, SignedIn)
    try:
        chosen = rv.PeerVerdict(fields.get("verdict", ""))
    except ValueError:
        raise ValidationError("choose whether you agree or disagree with the examiner") from None
    notes = _notes(fields, "notes", "notes")
    refused = _reauthenticate(request, current, dd, fields, now)
    if refused is not None:
        return refused
    reviews.record_verdict(dd, current.principal, search_id, chosen, notes, now=now)
    return RedirectResponse(f"/reviews/{search_id}", status_code=303)


@router.post("/reviews/{search_id}/decision")
def decision(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId, fields: FormDep
) -> Response:
    current = signed_in(request, pages, dd, now)
    check_csrf(request, pages, fields.get("csrf_token", ""), _binding(current))
    assert isinstance(current, SignedIn)
    chosen = fields.get("decision", "")
    if chosen not in ("approve", "reject"):
        raise ValidationError("choose whether to approve or reject the lead")
    notes = _notes(fields, "notes", "notes")
    if chosen == "reject" and not notes:
        raise ValidationError("a rejection needs a reason: write it in the notes")
    refused = _reauthenticate(request, current, dd, fields, now)
    if refused is not None:
        return refused
    if chosen == "approve":
        reviews.approve(dd, current.principal, search_id, notes, now=now)
    else:
        reviews.reject(dd, current.principal, search_id, notes, now=now)
    return RedirectResponse(f"/reviews/{search_id}", status_code=303)


# --- the comparison viewer ----------------------------------------------------------------


@router.get("/reviews/{search_id}/compare/{face_id}", response_class=HTMLResponse)
def compare_page(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId, face_id: FaceId
) -> Response:
    """The probe and one candidate side by side, overlaid, wiped or flickered (``static/compare.js``)."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    view = reviews.show_review(dd, current.principal, search_id, now=now)
    candidate = next((c for c in view.candidates if c.face_id == face_id), None)
    if candidate is None:
        raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
    return _page(request, pages, dd, now, current, "compare.html", view=view, candidate=candidate)


@router.get("/reviews/{search_id}/compare/{face_id}/candidate-image")
def compare_candidate_image(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId, face_id: FaceId
) -> Response:
    """The candidate's gallery photo (:func:`faceledger.services.searches.candidate_image`: recorded)."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    data = searches.candidate_image(dd, current.principal, search_id, face_id, now=now)
    return _image(data)


@router.get("/reviews/{search_id}/probe-image")
def compare_probe_image(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> Response:
    """The probe as searched (:func:`faceledger.services.searches.probe_image`: recorded)."""
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    return _image(searches.probe_image(dd, current.principal, search_id, now=now))


def _image(data: bytes) -> Response:
    kinds = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}
    kind = next((k for magic, k in kinds.items() if data.startswith(magic)), "application/octet-stream")
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return Response(content=data, media_type=kind, headers=headers)


def _binding(current: SignedIn | str) -> str | None:
    """The CSRF binding of the session (None without one: :func:`check_csrf` then refuses)."""
    return f"session:{current.token}" if isinstance(current, SignedIn) else None
