"""Opening one candidate of a search to compare it with the probe (recorded as ``candidate_viewed``)."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from PIL import Image, UnidentifiedImageError

from faceledger.services import searches
from faceledger.web.api.searches import SearchId
from faceledger.web.deps import DataDirDep, NowDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.common import MAX_ID
from faceledger.web.models.searches import CandidateViewOut

router = APIRouter(prefix="/api/v1/searches", tags=["searches"], responses=COMMON_RESPONSES)

FaceId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/{search_id}/candidates/{face_id}", response_model=CandidateViewOut)
def view_candidate(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId, face_id: FaceId
) -> CandidateViewOut:
    """One candidate with its gallery record (needs ``view_case``; recorded)."""
    return CandidateViewOut.of(searches.view_candidate(dd, principal, search_id, face_id, now=now))


def media_type(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError):
        return "application/octet-stream"


@router.get(
    "/{search_id}/candidates/{face_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "The enrolled gallery photo, as stored."}},
)
def candidate_image(
    principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId, face_id: FaceId
) -> Response:
    """The candidate's gallery photo, to compare with the probe (recorded).

    Needs ``view_face_image`` (second factor and a registered device, whatever the policy's
    ``[devices]`` table says) as well as ``view_case``; a refusal cites its rule id.
    """
    data = searches.candidate_image(dd, principal, search_id, face_id, now=now)
    return Response(content=data, media_type=media_type(data), headers={"Cache-Control": "no-store"})
