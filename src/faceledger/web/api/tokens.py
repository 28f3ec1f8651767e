"""API tokens for scripts: made from a signed-in session, scoped to some of the owner's roles."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from faceledger.services import accounts
from faceledger.web.deps import DataDirDep, NowDep, PageDep, PrincipalDep
from faceledger.web.errors import COMMON_RESPONSES
from faceledger.web.models.accounts import TokenCreate, TokenCreated, TokenOut
from faceledger.web.models.common import MAX_ID, Page, slice_page

router = APIRouter(prefix="/api/v1/tokens", tags=["API tokens"], responses=COMMON_RESPONSES)


@router.get("", response_model=Page[TokenOut])
def list_tokens(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    page: PageDep,
    username: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Another account's (administrators, auditors)."),
    ] = None,
) -> Page[TokenOut]:
    """Your API tokens, or another account's."""
    found = [TokenOut.of(t) for t in accounts.list_tokens(dd, principal, username=username, now=now)]
    return slice_page(found, limit=page.limit, offset=page.offset)


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, principal: PrincipalDep, dd: DataDirDep, now: NowDep) -> TokenCreated:
    """A new API token for your own account (from a session, never from another token).

    Bound to the registered device your session is on (send that device's header with it),
    or, with ``server: true`` and where the policy allows it, a server token bound to none.
    """
    token, secret = accounts.create_token(
        dd,
        principal,
        name=body.name,
        scopes=body.scopes,
        expires_at=now + timedelta(days=body.days),
        now=now,
        server=body.server,
    )
    return TokenCreated(token=TokenOut.of(token), secret=secret)


@router.post("/{token_id}/revoke", response_model=TokenOut)
def revoke_token(
    principal: PrincipalDep,
    dd: DataDirDep,
    now: NowDep,
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> TokenOut:
    """Revoke a token: its owner may, and so may a system administrator."""
    return TokenOut.of(accounts.revoke_token(dd, principal, token_id, now=now))
