"""The policy page: the policy in force as text, its changes against the version before, its history,
and (for system administrators) loading a new version.

``GET /admin/policy`` shows the version in force (or ``?version=ID``, any version ever loaded):
who loaded it and when, its SHA-256, its text, and a unified diff against the version loaded
before it; then every version, oldest first. Any signed-in person may read the policy, as over
the API (``GET /api/v1/policy``): it is the rulebook every decision cites. ``POST /admin/policy``
loads a policy file (uploaded, or pasted) through the same service as ``PUT /api/v1/policy``
(:func:`faceledger.services.policies.load_policy_text`: the door's ``manage_policy``, the file
checked before anything is stored, the load or the refusal recorded); a file that does not parse
is refused with the line and the reason.
"""

from __future__ import annotations

import difflib
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.domain.roles import Role
from faceledger.errors import ConfigError, NotFoundError, ValidationError
from faceledger.services import policies
from faceledger.services.policies import StoredPolicy
from faceledger.web.deps import DataDirDep, NowDep
from faceledger.web.pages.routes import PagesDep, SignedIn, check_csrf, signed_in, signed_in_page, to_sign_in

router = APIRouter(include_in_schema=False)

#: The largest policy file the page takes (a real one is a few kilobytes).
MAX_POLICY_BYTES = 256 * 1024


def _diff(before: StoredPolicy | None, after: StoredPolicy) -> list[str]:
    if before is None:
        return []
    return list(
        difflib.unified_diff(
            before.text.splitlines(),
            after.text.splitlines(),
            fromfile=f"{before.version} (sha256 {before.sha256[:12]})",
            tofile=f"{after.version} (sha256 {after.sha256[:12]})",
            lineterm="",
        )
    )


@router.get("/admin/policy", response_class=HTMLResponse)
def policy_page(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    version: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    history = policies.policy_history(dd)
    if version is None:
        shown = next((p for p in history if p.active), None)
    else:
        shown = next((p for p in history if p.id == version), None)
        if shown is None:
            raise NotFoundError(f"no policy version with id {version} was ever loaded")
    before = None
    if shown is not None:
        earlier = [p for p in history if p.id < shown.id]
        before = earlier[-1] if earlier else None
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "policy.html",
        shown=shown,
        before=before,
        diff=[] if shown is None else _diff(before, shown),
        history=history,
        may_load=Role.SYSTEM_ADMIN in current.principal.scopes,
    )


@router.post("/admin/policy", response_class=HTMLResponse)
def load_policy(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    policy_file: Annotated[UploadFile | None, File()] = None,
    policy_text: Annotated[str, Form(max_length=MAX_POLICY_BYTES)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    current = signed_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return to_sign_in(request, pages, current)
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    source = "pasted on the policy page"
    text = policy_text
    if policy_file is not None and policy_file.filename:
        data = policy_file.file.read(MAX_POLICY_BYTES + 1)
        if len(data) > MAX_POLICY_BYTES:
            raise ValidationError(f"a policy file is at most {MAX_POLICY_BYTES // 1024} KiB")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("the policy file is not UTF-8 text") from None
        source = f"uploaded on the policy page as {policy_file.filename[:100]!r}"
    if not text.strip():
        raise ValidationError("choose a policy file or paste its text")
    try:
        policies.load_policy_text(dd, current.principal, text, source=source, now=now)
    except ConfigError as exc:
        raise ValidationError(f"the policy was not loaded: {exc}") from None
    return RedirectResponse("/admin/policy", status_code=303)
