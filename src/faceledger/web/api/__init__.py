"""The REST API's routes, one small module per area; :func:`routers` lists them in document order."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from faceledger.web.api import (
        audit,
        auth,
        candidates,
        cases,
        devices,
        galleries,
        meta,
        policies,
        reviews,
        searches,
        tokens,
        users,
        verify,
        work,
    )

    modules = (
        meta, auth, users, devices, tokens, policies, galleries,
        searches, candidates, verify, reviews, work, cases, audit,
    )  # fmt: skip
    return [module.router for module in modules]
