"""What is waiting for the signed-in person: the searches they may examine, peer-review or approve."""

from __future__ import annotations

from fastapi import APIRouter

from faceledger.services import work_queues
from faceledger.web.deps import DataDirDep, NowDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.work import WorkQueuesOut

router = APIRouter(prefix="/api/v1/work", tags=["reviews"], responses=COMMON_RESPONSES)


@router.get("", response_model=WorkQueuesOut)
def my_work(principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> WorkQueuesOut:
    """The caller's work queues in their own unit, their recent cases and today's searches.

    A queue the caller's roles do not give them is null. An item names the search, its case,
    purpose, who ran it and when, never its candidates or findings (a blind peer reviewer
    learns nothing from it). Reading it is not recorded; acting on an item is decided and
    recorded as always.
    """
    return WorkQueuesOut.of(work_queues.work_queues(dd, principal, now=now))
