"""Human review of a search's candidates: examiner findings, blind peer review, supervisor decision.

Each step is allowed by the policy (``propose``, ``peer_review``, ``approve``) and by the
review's own rules: nobody peer-reviews or approves a search they ran or examined, and the
peer reviewer sees the candidates without the examiner's findings until they have recorded
their own. Refusals are 403 with ``rule_id`` (``review.separation_of_duties`` for the
latter), steps in the wrong state 409; both are recorded.
"""

from __future__ import annotations

from fastapi import APIRouter

from faceledger.services import reviews
from faceledger.web.api.searches import SearchId
from faceledger.web.deps import DataDirDep, NowDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.reviews import (
    ApproveIn,
    FindingsIn,
    PeerViewOut,
    RejectIn,
    ReviewOut,
    ReviewStepOut,
    VerdictIn,
)

router = APIRouter(prefix="/api/v1/reviews", tags=["review"], responses=COMMON_RESPONSES)


@router.get("/{search_id}", response_model=ReviewOut)
def show_review(principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId) -> ReviewOut:
    """The review so far, as you may see it (``view_case``)."""
    return ReviewOut.of(reviews.show_review(dd, principal, search_id, now=now))


@router.post("/{search_id}/examination", response_model=ReviewStepOut)
def examine(
    body: FindingsIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> ReviewStepOut:
    """The examiner's finding for every candidate (a possible match needs notes on what supports it)."""
    return ReviewStepOut.of(reviews.examine(dd, principal, search_id, body.parsed(), now=now))


@router.get("/{search_id}/peer", response_model=PeerViewOut)
def peer_view(principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId) -> PeerViewOut:
    """The candidates for the peer reviewer: blind until they record their own findings (recorded)."""
    return PeerViewOut.of(reviews.peer_view(dd, principal, search_id, now=now))


@router.post("/{search_id}/peer", response_model=PeerViewOut)
def peer_assess(
    body: FindingsIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> PeerViewOut:
    """The peer reviewer's own findings, made blind; the answer then shows the examiner's beside them."""
    reviews.peer_assess(dd, principal, search_id, body.parsed(), now=now)
    return PeerViewOut.of(reviews.peer_view(dd, principal, search_id, now=now))


@router.post("/{search_id}/verdict", response_model=ReviewStepOut)
def record_verdict(
    body: VerdictIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> ReviewStepOut:
    """The peer reviewer agrees or disagrees with the examiner, once both findings are known."""
    review = reviews.record_verdict(dd, principal, search_id, body.verdict, body.notes, now=now)
    return ReviewStepOut.of(review)


@router.post("/{search_id}/approval", response_model=ReviewStepOut)
def approve(
    body: ApproveIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> ReviewStepOut:
    """A supervisor approves the lead (it stays an investigative lead only)."""
    return ReviewStepOut.of(reviews.approve(dd, principal, search_id, body.notes, now=now))


@router.post("/{search_id}/rejection", response_model=ReviewStepOut)
def reject(
    body: RejectIn, principal: PrincipalDep, dd: DataDirDep, now: NowDep, search_id: SearchId
) -> ReviewStepOut:
    """A supervisor rejects the lead, giving the reason."""
    return ReviewStepOut.of(reviews.reject(dd, principal, search_id, body.reason, now=now))
