"""Galleries: create, list, show, enrol images with their provenance, purge.

Creating a gallery needs ``manage_galleries``, enrolling ``enrol``, purging ``purge``
(gallery administrators of the gallery's owner unit): the gallery services that take the
person (``create_gallery_for``, ``may_change``, ``purge_for``, ``subjects_for``) ask the one
door (:func:`faceledger.services.authorization.authorize`); listing the subjects of a gallery
(the external ids of people) needs ``manage_galleries`` or ``read_audit``. Gallery names
and counts are visible to anyone signed in: an examiner chooses galleries by them.
Enrolment and purges are written to the audit log by their services, in the transaction
that makes them.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile, status
from starlette.concurrency import run_in_threadpool

from faceledger.domain.roles import Action
from faceledger.errors import ValidationError
from faceledger.services import enrolment
from faceledger.services import galleries as gallery_service
from faceledger.services.accounts import Principal
from faceledger.services.datadir import DataDir
from faceledger.web.deps import DataDirDep, EngineDep, NowDep, PageDep, PrincipalDep
from faceledger.web.engine import FaceEngine
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.common import VISIBLE_LINE, Page, documented, slice_page
from faceledger.web.models.galleries import (
    GALLERY_NAME,
    EnrolledOut,
    GalleryCreate,
    GalleryOut,
    PurgeOut,
    SubjectOut,
    TurnedDownOut,
)
from faceledger.web.uploads import NOT_EMPTY, read_upload

router = APIRouter(prefix="/api/v1/galleries", tags=["galleries"], responses=COMMON_RESPONSES)

#: Uploads wait here (inside the data directory, beside the images) until they are enrolled.
UPLOAD_PREFIX = ".upload-"

GalleryName = Annotated[
    str, Path(min_length=1, max_length=gallery_service.NAME_MAX, json_schema_extra=documented(GALLERY_NAME))
]
SubjectId = Annotated[
    str,
    Path(min_length=1, max_length=gallery_service.SUBJECT_ID_MAX, json_schema_extra=documented(VISIBLE_LINE)),
]
PurgeReasonQuery = Annotated[
    gallery_service.PurgeReason, Query(description="Why the images are purged (recorded).")
]
AuthorityQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=gallery_service.AUTHORITY_MAX,
        description="The authority for the purge, e.g. 'Order 2026-123' (recorded).",
        json_schema_extra=documented(VISIBLE_LINE),
    ),
]
ConfirmQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=gallery_service.NAME_MAX,
        description="The gallery's name again. A whole-gallery purge is never a side effect of a "
        "mistyped or client-resolved subject path (``.../subjects/..`` resolves to this route).",
    ),
]
ReEnrolForm = Annotated[
    str | None,
    Form(
        min_length=1,
        max_length=2000,
        description="Why a photo a purge removed from this gallery may be enrolled again (recorded); "
        "without it such a photo is refused with 409.",
        json_schema_extra=documented(VISIBLE_LINE),
    ),
]


def sweep_uploads(dd: DataDir) -> int:
    """Remove uploads a stopped server left behind (called at start-up)."""
    stale = [p for p in dd.path.glob(f"{UPLOAD_PREFIX}*") if p.is_dir()]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)


@router.get("", response_model=Page[GalleryOut])
def list_galleries(principal: PrincipalDep, dd: DataDirDep, page: PageDep) -> Page[GalleryOut]:
    """Every gallery with its legal basis, retention rule and counts."""
    found = [GalleryOut.of(info) for info in gallery_service.list_galleries(dd)]
    return slice_page(found, limit=page.limit, offset=page.offset)


@router.post("", response_model=GalleryOut, status_code=status.HTTP_201_CREATED)
async def create_gallery(
    body: GalleryCreate, principal: PrincipalDep, dd: DataDirDep, engine: EngineDep, now: NowDep
) -> GalleryOut:
    """Create a gallery: the unit of lawful holding (gallery administrators)."""
    await engine.run(
        gallery_service.create_gallery_for,
        dd,
        principal,
        body.name,
        legal_basis=body.legal_basis,
        source_description=body.source_description,
        retention_days=body.retention_days,
        required_provenance=tuple(body.required_provenance),
        now=now,
    )
    return GalleryOut.of(await run_in_threadpool(gallery_service.gallery_info, dd, body.name))


@router.get("/{name}", response_model=GalleryOut)
def show_gallery(principal: PrincipalDep, dd: DataDirDep, name: GalleryName) -> GalleryOut:
    return GalleryOut.of(gallery_service.gallery_info(dd, name))


@router.get("/{name}/subjects", response_model=Page[SubjectOut])
def list_subjects(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, page: PageDep, name: GalleryName
) -> Page[SubjectOut]:
    """The people in a gallery, by their external ids (gallery administrators and auditors)."""
    found = [SubjectOut.of(s) for s in gallery_service.subjects_for(dd, principal, name, now=now)]
    return slice_page(found, limit=page.limit, offset=page.offset)


@router.get("/{name}/turned-down", response_model=Page[TurnedDownOut])
def list_turned_down(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, page: PageDep, name: GalleryName
) -> Page[TurnedDownOut]:
    """The images enrolment turned down, with the reason, until they are enrolled (as ``list_subjects``)."""
    found = [TurnedDownOut.of(r) for r in gallery_service.turned_down_for(dd, principal, name, now=now)]
    return slice_page(found, limit=page.limit, offset=page.offset)


def _enrol(
    dd: DataDir,
    engine: FaceEngine,
    principal: Principal,
    gallery: str,
    data: bytes,
    item: enrolment.EnrolItem,
    re_enrol_purged: str | None = None,
) -> enrolment.EnrolledImage:
    """Enrol uploaded bytes: written to a private folder in the data directory, enrolled, removed.

    ``item`` carries the subject and the provenance given with the upload.
    """
    options = enrolment.EnrolOptions(
        enrolled_by=principal.username, workers=1, re_enrol_purged=re_enrol_purged
    )
    with tempfile.TemporaryDirectory(prefix=UPLOAD_PREFIX, dir=dd.path) as folder:
        path = FilePath(folder) / "image"
        path.write_bytes(data)
        return enrolment.enrol_image(
            dd,
            gallery,
            item.subject_id,
            path,
            options,
            pipeline=engine,
            source=item.source,
            record_id=item.record_id,
            collected_on=item.collected_on,
            retention_until=item.retention_until,
        )


@router.post("/{name}/images", response_model=EnrolledOut, status_code=status.HTTP_201_CREATED)
async def enrol_image(
    principal: PrincipalDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    name: GalleryName,
    image: Annotated[
        UploadFile, File(description="The photo: one face, of the subject.", json_schema_extra=NOT_EMPTY)
    ],
    subject_id: Annotated[
        str,
        Form(
            min_length=1,
            max_length=gallery_service.SUBJECT_ID_MAX,
            json_schema_extra=documented(VISIBLE_LINE),
        ),
    ],
    source: Annotated[
        str, Form(min_length=1, max_length=2000, description="The system of record the photo comes from.")
    ],
    collected_on: Annotated[date | None, Form(description="When the photo was taken or collected.")] = None,
    record_id: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    retention_until: Annotated[date | None, Form(description="Keep it no longer than this.")] = None,
    re_enrol_purged: ReEnrolForm = None,
) -> EnrolledOut:
    """Enrol one photo of one subject with its provenance; you are recorded as the person responsible."""
    await run_in_threadpool(gallery_service.may_change, dd, principal, Action.ENROL, name, now=now)
    data = await read_upload(image, "image", dd.settings.image)
    item = enrolment.EnrolItem(
        subject_id=subject_id,
        path=FilePath(image.filename or "upload"),
        source=source,
        record_id=record_id,
        collected_on=collected_on,
        retention_until=retention_until,
    )
    enrolled = await engine.run(_enrol, dd, engine, principal, name, data, item, re_enrol_purged)
    return EnrolledOut.of(name, enrolled)


@router.delete("/{name}", response_model=PurgeOut)
async def purge_gallery(
    principal: PrincipalDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    name: GalleryName,
    reason: PurgeReasonQuery,
    authority: AuthorityQuery,
    confirm: ConfirmQuery,
) -> PurgeOut:
    """Remove a gallery for good: image files, faces, vectors and records.

    ``reason`` and ``authority`` are required and recorded (audit log and ``purges`` table);
    ``confirm`` must repeat the gallery's name, or nothing is purged (422).
    """
    if confirm != name:
        raise ValidationError(f"confirm must repeat the gallery's name {name!r} to purge the whole gallery")
    return await _purge(dd, engine, principal, name, None, reason, authority, now)


@router.delete("/{name}/subjects/{subject_id:path}", response_model=PurgeOut)
async def purge_subject(
    principal: PrincipalDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    name: GalleryName,
    subject_id: SubjectId,
    reason: PurgeReasonQuery,
    authority: AuthorityQuery,
) -> PurgeOut:
    """Remove one subject from a gallery for good; ``reason`` and ``authority`` are recorded."""
    return await _purge(dd, engine, principal, name, subject_id, reason, authority, now)


async def _purge(
    dd: DataDir,
    engine: FaceEngine,
    principal: Principal,
    name: str,
    subject_id: str | None,
    reason: gallery_service.PurgeReason,
    authority: str,
    now: datetime,
) -> PurgeOut:
    why = gallery_service.purge_authority(reason, authority)  # a bad reason is refused before the door
    report = await engine.run(
        gallery_service.purge_for,
        dd,
        principal,
        name,
        subject_id,
        reason=why.reason,
        authority=why.authority,
        now=now,
    )
    what = f"gallery {name!r}" if subject_id is None else f"subject {subject_id!r} of gallery {name!r}"
    return PurgeOut.of(what, report, why)
