"""The agency's policy: the version in force, every version loaded, and loading a new one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from faceledger.errors import ConfigError, NotFoundError
from faceledger.services import policies
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES, InvalidPolicyError
from faceledger.web.models.common import Page, slice_page
from faceledger.web.models.policies import PolicyOut, PolicyUpload, PolicyVersionOut

router = APIRouter(prefix="/api/v1/policy", tags=["policy"], responses=COMMON_RESPONSES)


def _active(dd: DataDirDep, *, text: bool) -> PolicyOut:
    stored = policies.active_stored_policy(dd)
    if stored is None:
        raise NotFoundError(policies.no_policy_decision().reason)
    return PolicyOut.full(stored, text=text)


@router.get("", response_model=PolicyOut)
def show_policy(
    principal: PrincipalDep,
    dd: DataDirDep,
    text: Annotated[bool, Query(description="Include the policy file itself.")] = False,
) -> PolicyOut:
    """The policy in force: its version, who loaded it, purposes, galleries and limits."""
    return _active(dd, text=text)


@router.get("/versions", response_model=Page[PolicyVersionOut])
def policy_versions(principal: PrincipalDep, dd: DataDirDep, page: PageDep) -> Page[PolicyVersionOut]:
    """Every version ever loaded, oldest first."""
    versions = [PolicyVersionOut.of(v) for v in policies.policy_history(dd)]
    return slice_page(versions, limit=page.limit, offset=page.offset)


@router.put("", response_model=PolicyOut)
def load_policy(body: PolicyUpload, principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> PolicyOut:
    """Make this policy file the one in force (system administrators; recorded in the audit log).

    Loading the text already in force changes nothing; a version string already used for
    different text is refused.
    """
    try:
        policies.load_policy_text(dd, principal, body.text, source=body.source, now=now)
    except ConfigError as exc:
        raise InvalidPolicyError(str(exc)) from None
    return _active(dd, text=False)


@router.post("/example", response_model=PolicyOut)
def load_example_policy(principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> PolicyOut:
    """Make the shipped example policy the one in force, explicitly (trials and demos)."""
    policies.load_example_policy(dd, principal, now=now)
    return _active(dd, text=False)
