"""The gallery pages: list and create galleries, browse a gallery, enrol into it, purge from it.

``GET /galleries`` lists every gallery with its legal basis, source, retention, owning unit and
counts (anyone signed in: examiners choose galleries by them); a gallery administrator creates
one there through :func:`galleries.create_gallery_for` (owned by their unit), as the API does.
``GET /galleries/{name}`` shows one gallery: its subjects (paged, searchable by id), each with
the provenance of its images, and the images enrolment turned down with the reason, for gallery
administrators and auditors (the services ask the door); a form to enrol a folder or CSV
manifest on the server, and the purge forms. An enrolment runs as a background job on the
app's face engine: it goes on when the page is closed, its page polls its progress (htmx)
and shows the summary of what was skipped and why; the gallery page links to the person's
latest enrolment into it. The jobs are kept in this server process's memory: a restart forgets
them (the enrolment runs and the skips stay in the database, and the turned-down list shows
the skips).

Enrolment and purges are asked of the door first (:func:`galleries.may_change`), so a refusal,
such as a browser session not bound to a registered device, is a page with the rule and, when
the session has no device, a link to the device enrolment page. A purge needs a reason and an
authority (:func:`galleries.purge_authority`) and a confirmation: the gallery's name (or the
subject's id) typed again on the confirmation page. Every POST carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from faceledger.domain import text
from faceledger.domain.roles import Action, Role
from faceledger.errors import FaceLedgerError, NotFoundError, PermissionDeniedError, ValidationError
from faceledger.services import enrolment
from faceledger.services import galleries as gallery_service
from faceledger.services.datadir import DataDir
from faceledger.web.deps import DataDirDep, EngineDep, NowDep
from faceledger.web.engine import FaceEngine
from faceledger.web.errors import without_paths
from faceledger.web.pages.devices import ENROL_PATH
from faceledger.web.pages.routes import (
    PagesDep,
    SignedIn,
    check_csrf,
    current_or_sign_in,
    signed_in_page,
)

log = logging.getLogger("faceledger.web")

router = APIRouter(include_in_schema=False)

Field = Annotated[str, Form()]
#: The longest value any field of these forms takes (the services check the real rules).
MAX_FIELD = 2000
#: Subjects per page of a gallery's subject list.
SUBJECTS_PER_PAGE = 50
PURGE_REASONS = tuple(reason.value for reason in gallery_service.PurgeReason)
#: Who the gallery page lists subjects for (others would only be refused and recorded).
READERS = frozenset({Role.GALLERY_ADMIN, Role.AUDITOR})


def _checked(**fields: str) -> dict[str, str]:
    for name, value in fields.items():
        if len(value) > MAX_FIELD:
            raise ValidationError(
                f"the field {name.replace('_', ' ')!r} takes at most {MAX_FIELD} characters"
            )
    return fields


def _gallery_url(name: str) -> str:
    return f"/galleries/{quote(name, safe='')}"


# --- enrolment jobs --------------------------------------------------------------------------


@dataclass
class EnrolmentJob:
    """One enrolment started from a page, as it goes: its progress, then its result or error."""

    id: str
    gallery: str
    source: str
    started_by: str
    started_at: datetime
    progress: enrolment.Progress | None = None
    result: enrolment.EnrolmentResult | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def percent(self) -> int:
        if self.result is not None:
            return 100
        if self.progress is None or self.progress.total == 0:
            return 0
        return min(100, round(100 * self.progress.done / self.progress.total))


#: The most finished enrolment jobs kept in memory; older finished ones are forgotten first.
KEEP_FINISHED = 200


class EnrolmentJobs:
    """The enrolment jobs of one app, by id (in memory; running ones are always kept)."""

    def __init__(self) -> None:
        self._jobs: dict[str, EnrolmentJob] = {}
        self._lock = threading.Lock()

    def add(self, job: EnrolmentJob) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.finished]  # oldest first: insertion order
            for old in finished[: max(0, len(finished) - KEEP_FINISHED + 1)]:
                del self._jobs[old.id]
            self._jobs[job.id] = job

    def get(self, job_id: str, username: str) -> EnrolmentJob:
        """The job, if ``username`` started it (another person's job is not shown)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.started_by != username:
            raise NotFoundError(
                "no such enrolment of yours on this server (enrolments started before the server "
                "last restarted are not kept here; the gallery page lists what they turned down)"
            )
        return job

    def latest(self, gallery: str, username: str) -> EnrolmentJob | None:
        """The job ``username`` started last into ``gallery``, if it is still kept."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.gallery == gallery and j.started_by == username]
        return mine[-1] if mine else None


def jobs_of(request: Request) -> EnrolmentJobs:
    state = request.app.state
    jobs: EnrolmentJobs | None = getattr(state, "faceledger_enrolment_jobs", None)
    if jobs is None:
        jobs = EnrolmentJobs()
        state.faceledger_enrolment_jobs = jobs
    return jobs


def _run_enrolment(
    job: EnrolmentJob, dd: DataDir, engine: FaceEngine, path: Path, options: enrolment.EnrolOptions
) -> None:
    """The job's work, on the face engine's pool: the same services as ``faceledger gallery enroll``."""

    def report(progress: enrolment.Progress) -> None:
        job.progress = progress

    try:
        if path.suffix.lower() == ".csv":
            job.result = enrolment.enrol_manifest(
                dd, job.gallery, path, options, progress=report, pipeline=engine
            )
        else:
            job.result = enrolment.enrol_folder(
                dd, job.gallery, path, options, progress=report, pipeline=engine
            )
    except FaceLedgerError as exc:
        job.error = str(exc)
    except Exception:
        reference = secrets.token_hex(6)
        log.exception("enrolment job %s failed unexpectedly (reference %s)", job.id, reference)
        job.error = (
            f"the enrolment stopped on an unexpected error, logged with reference {reference}; "
            "what it had committed stays, and starting it again continues where it stopped"
        )


async def _in_background(
    job: EnrolmentJob, dd: DataDir, engine: FaceEngine, path: Path, options: enrolment.EnrolOptions
) -> None:
    try:
        await engine.run(_run_enrolment, job, dd, engine, path, options)
    except FaceLedgerError as exc:  # the engine is busy
        job.error = str(exc)


# --- shared page parts ---------------------------------------------------------------------------


def _refused(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    current: SignedIn,
    exc: PermissionDeniedError,
    gallery: str,
) -> Response:
    """The door's refusal as a page: the reason, the rule, and where to enrol a device if none."""
    decision = exc.decision
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "gallery_refused.html",
        gallery=gallery,
        gallery_url=_gallery_url(gallery),
        message=without_paths(request, str(exc)),
        rule_id=decision.rule_id if decision is not None else None,
        no_device=current.principal.actor.device_id is None,
        enrol_device_url=ENROL_PATH,
        status_code=403,
    )


def _date(value: str, what: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        shown = text.escape_control(value[:20])
        raise ValidationError(f"{what} {shown!r} is not a date written YYYY-MM-DD") from None


def _enrol_source(path: str, root: Path | None) -> Path:
    """The folder or manifest to enrol: an absolute path under ``[web] enrol_root`` (links resolved)."""
    where = path.strip()
    hidden = text.first_hidden(where)
    if hidden is not None:
        raise ValidationError(f"the path contains the invisible character {text.describe(hidden)}")
    if root is None:
        raise ValidationError(
            "this server does not enrol from its disk through the pages: an administrator sets "
            "[web] enrol_root to the folder people may enrol from (docs/web.md), or use "
            "`faceledger gallery enroll` on the server"
        )
    if not where or not Path(where).is_absolute():
        raise ValidationError(
            f"give the absolute path of a folder with one sub-folder per subject, or of a CSV manifest "
            f"(*.csv), under {root}"
        )
    resolved = Path(where).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValidationError(f"the pages enrol only from under {root} ([web] enrol_root), not {where}")
    return resolved


# --- list and create -------------------------------------------------------------------------------


@router.get("/galleries", response_class=HTMLResponse)
def gallery_list(request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "galleries.html",
        galleries=gallery_service.list_galleries(dd),
        may_create=Role.GALLERY_ADMIN in current.principal.scopes,
        gallery_url=_gallery_url,
    )


@router.post("/galleries", response_class=HTMLResponse)
async def create_gallery(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    name: Field = "",
    legal_basis: Field = "",
    source_description: Field = "",
    retention_days: Field = "",
    csrf_token: Field = "",
) -> Response:
    current = await run_in_threadpool(current_or_sign_in, request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(name=name, legal_basis=legal_basis, source_description=source_description)
    days: int | None = None
    if retention_days.strip():
        if not retention_days.strip().isdigit() or len(retention_days.strip()) > 6:
            shown = text.escape_control(retention_days[:20])
            raise ValidationError(f"the retention {shown!r} is not a whole number of days (empty: no limit)")
        days = int(retention_days.strip())
    await engine.run(
        gallery_service.create_gallery_for,
        dd,
        current.principal,
        name.strip(),
        legal_basis=legal_basis,
        source_description=source_description,
        retention_days=days,
        now=now,
    )
    return RedirectResponse(_gallery_url(name.strip()) + "?created=1", status_code=303)


# --- one gallery ---------------------------------------------------------------------------------


@router.get("/galleries/{name}", response_class=HTMLResponse)
def gallery_page(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    now: NowDep,
    name: str,
    q: str = "",
    page: int = 1,
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    gallery_service.validate_gallery_name(name)
    _checked(q=q)
    info = gallery_service.gallery_info(dd, name)
    principal = current.principal
    reads = bool(READERS & set(principal.scopes))
    subjects: list[Any] = []
    turned_down: list[Any] = []
    not_listed: str | None = None
    if reads:
        try:
            everyone = gallery_service.subjects_for(dd, principal, name, now=now)
            turned_down = gallery_service.turned_down_for(dd, principal, name, now=now)
        except PermissionDeniedError as exc:  # e.g. another unit's gallery: the rest of the page stands
            everyone, not_listed = [], without_paths(request, str(exc))
        needle = q.strip().casefold()
        subjects = [s for s in everyone if needle in s.external_id.casefold()] if needle else everyone
    pages_count = max(1, -(-len(subjects) // SUBJECTS_PER_PAGE))
    page = min(max(page, 1), pages_count)
    shown = subjects[(page - 1) * SUBJECTS_PER_PAGE : page * SUBJECTS_PER_PAGE]
    images: dict[str, list[Any]] = {}
    if shown:
        ids = [s.external_id for s in shown]
        images = gallery_service.subject_images_for(dd, principal, name, ids, now=now)
    return signed_in_page(
        request,
        pages,
        dd,
        now,
        current,
        "gallery.html",
        info=info,
        gallery_url=_gallery_url(name),
        reads=reads and not_listed is None,
        not_listed=not_listed,
        may_change=Role.GALLERY_ADMIN in principal.scopes,
        subjects=shown,
        images=images,
        matching=len(subjects),
        q=q,
        page=page,
        pages_count=pages_count,
        turned_down=turned_down,
        job=jobs_of(request).latest(name, principal.username),
        enrol_root=pages.settings.enrol_root,
        created=request.query_params.get("created") == "1",
        purge_reasons=PURGE_REASONS,
        no_device=principal.actor.device_id is None,
        enrol_device_url=ENROL_PATH,
    )


@router.post("/galleries/{name}/enrolments", response_class=HTMLResponse)
async def start_enrolment(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    name: str,
    path: Field = "",
    collected_on: Field = "",
    re_enrol_purged: Field = "",
    csrf_token: Field = "",
) -> Response:
    current = await run_in_threadpool(current_or_sign_in, request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(path=path, re_enrol_purged=re_enrol_purged)
    source = _enrol_source(path, pages.settings.enrol_root)
    day = _date(collected_on, "the collection date")
    try:
        actor = await run_in_threadpool(
            gallery_service.may_change, dd, current.principal, Action.ENROL, name, now=now
        )
    except PermissionDeniedError as exc:
        return _refused(request, pages, dd, now, current, exc, name)
    options = enrolment.EnrolOptions(
        enrolled_by=actor, collected_on=day, workers=1, re_enrol_purged=re_enrol_purged.strip() or None
    )
    job = EnrolmentJob(
        id=secrets.token_urlsafe(12), gallery=name, source=str(source), started_by=actor, started_at=now
    )
    jobs_of(request).add(job)
    job.task = asyncio.get_running_loop().create_task(_in_background(job, dd, engine, source, options))
    return RedirectResponse(f"{_gallery_url(name)}/enrolments/{job.id}", status_code=303)


def _job_context(job: EnrolmentJob, name: str) -> dict[str, Any]:
    skipped = job.result.skipped_by_reason() if job.result is not None else {}
    return {
        "job": job,
        "gallery_url": _gallery_url(name),
        "progress_url": f"{_gallery_url(name)}/enrolments/{job.id}/progress",
        "skipped_by_reason": sorted((str(k), v) for k, v in skipped.items()),
    }


@router.get("/galleries/{name}/enrolments/{job_id}", response_class=HTMLResponse)
def enrolment_page(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, name: str, job_id: str
) -> Response:
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    job = jobs_of(request).get(job_id, current.principal.username)
    if job.gallery != name:
        raise NotFoundError("this enrolment is not into this gallery")
    return signed_in_page(
        request, pages, dd, now, current, "gallery_enrolment.html", **_job_context(job, name)
    )


@router.get("/galleries/{name}/enrolments/{job_id}/progress", response_class=HTMLResponse)
def enrolment_progress(
    request: Request, pages: PagesDep, dd: DataDirDep, now: NowDep, name: str, job_id: str
) -> Response:
    """The progress part of the enrolment page alone, which the page's htmx polls until it is done."""
    current = current_or_sign_in(request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    job = jobs_of(request).get(job_id, current.principal.username)
    if job.gallery != name:
        raise NotFoundError("this enrolment is not into this gallery")
    return pages.render(
        request, "gallery_progress.html", dd=dd, now=now, csrf_token="", **_job_context(job, name)
    )


# --- purge ---------------------------------------------------------------------------------------


@router.post("/galleries/{name}/purge", response_class=HTMLResponse)
async def purge(
    request: Request,
    pages: PagesDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    name: str,
    subject_id: Field = "",
    reason: Field = "",
    authority: Field = "",
    confirm: Field = "",
    csrf_token: Field = "",
) -> Response:
    """Without ``confirm``: the confirmation page (nothing is removed). With it: the purge."""
    current = await run_in_threadpool(current_or_sign_in, request, pages, dd, now)
    if not isinstance(current, SignedIn):
        return current
    check_csrf(request, pages, csrf_token, f"session:{current.token}")
    _checked(subject_id=subject_id, authority=authority, confirm=confirm)
    why = gallery_service.purge_authority(reason, authority)
    subject = gallery_service.validate_subject_id(subject_id) if subject_id.strip() else None
    expected = subject if subject is not None else name
    context: dict[str, Any] = {
        "gallery": name,
        "gallery_url": _gallery_url(name),
        "subject": subject,
        "why": why,
        "expected": expected,
    }
    if confirm != expected:
        try:
            await run_in_threadpool(
                gallery_service.may_change, dd, current.principal, Action.PURGE, name, now=now
            )
        except PermissionDeniedError as exc:
            return _refused(request, pages, dd, now, current, exc, name)
        wrong = bool(confirm)
        return signed_in_page(
            request,
            pages,
            dd,
            now,
            current,
            "gallery_purge.html",
            wrong=wrong,
            status_code=422 if wrong else 200,
            **context,
        )
    try:
        report = await engine.run(
            gallery_service.purge_for,
            dd,
            current.principal,
            name,
            subject,
            reason=why.reason,
            authority=why.authority,
            now=now,
        )
    except PermissionDeniedError as exc:
        return _refused(request, pages, dd, now, current, exc, name)
    return signed_in_page(request, pages, dd, now, current, "gallery_purged.html", report=report, **context)
