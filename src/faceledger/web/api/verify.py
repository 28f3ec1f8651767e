"""Accountable 1:1 verification: is the largest face of one photo the same person as another's?

Decided by the policy like a search (case number, purpose, device, ...), both photos kept,
recorded once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status

from faceledger.services import searches
from faceledger.services.probes import Probe
from faceledger.web.api.searches import AgreementRef, CaseNumber, Justification, OnBehalfOf, Purpose
from faceledger.web.deps import DataDirDep, EngineDep, NowDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.searches import VerifyOut
from faceledger.web.uploads import NOT_EMPTY, read_upload, upload_name

router = APIRouter(prefix="/api/v1/verify", tags=["searches"], responses=COMMON_RESPONSES)


@router.post("", response_model=VerifyOut, status_code=status.HTTP_201_CREATED)
async def verify(
    principal: PrincipalDep,
    dd: DataDirDep,
    engine: EngineDep,
    now: NowDep,
    first: Annotated[UploadFile, File(description="The first photo.", json_schema_extra=NOT_EMPTY)],
    second: Annotated[UploadFile, File(description="The second photo.", json_schema_extra=NOT_EMPTY)],
    case_number: CaseNumber = None,
    purpose: Purpose = None,
    justification: Justification = None,
    on_behalf_of: OnBehalfOf = None,
    agreement_ref: AgreementRef = None,
) -> VerifyOut:
    """Compare the largest face of each photo; the score is a lead for review, not a finding."""
    request = searches.VerifyInput(
        case_number=case_number,
        purpose=purpose,
        justification=justification,
        on_behalf_of=on_behalf_of,
        agreement_ref=agreement_ref,
    )
    limits = dd.settings.image
    probes = [
        Probe(await read_upload(upload, name, limits), upload_name(upload, name))
        for upload, name in ((first, "first"), (second, "second"))
    ]
    record = await engine.run(
        searches.accountable_verify, dd, engine, principal, probes[0], probes[1], request, now=now
    )
    return VerifyOut.of(record)
