"""Scoping by unit: what one unit's search, case and review records are to another unit.

A search belongs to the unit of the person who made it (``searches.unit``, recorded when
it is made), and so do its case entries, its candidates and their gallery photos, its
probe images and its review. Others are told nothing: a person of another unit gets the
same :class:`NotFoundError` as for a record that does not exist, and the attempt is
recorded (a decision row and a ``policy_denied`` audit entry with rule ``scope.other_unit``).

Oversight reads across units: a person holding a role that may read the audit log
(``auditor``) may *read* every unit's searches, cases and reviews (``view_case``), as the
role table grants; nobody may *act* on another unit's record (review steps, peer views).
See docs/cases-and-review.md.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from faceledger.adapters.store.tables_cases import searches
from faceledger.domain.roles import Action, Actor
from faceledger.errors import NotFoundError, PermissionDeniedError
from faceledger.services.authorization import OTHER_UNIT_RULE as OTHER_UNIT_RULE
from faceledger.services.authorization import refuse_other_unit
from faceledger.services.datadir import DataDir
from faceledger.services.policies import Principal


def sees_all_units(actor: Actor) -> bool:
    """Whether ``actor`` may read every unit's records (oversight: the audit-reading roles)."""
    return actor.can(Action.READ_AUDIT)


def search_unit(conn: Connection, search_id: int) -> str | None:
    """The unit a stored search belongs to (None: the search does not exist or has no unit)."""
    found = conn.execute(select(searches.c.unit).where(searches.c.id == search_id)).first()
    return None if found is None or found.unit is None else str(found.unit)


def units_of(conn: Connection, search_ids: list[int]) -> dict[int, str | None]:
    """The unit of each of ``search_ids``."""
    if not search_ids:
        return {}
    rows = conn.execute(select(searches.c.id, searches.c.unit).where(searches.c.id.in_(search_ids)))
    return {int(r.id): None if r.unit is None else str(r.unit) for r in rows}


def may_see(actor: Actor, unit: str | None, *, read_only: bool) -> bool:
    """Whether ``actor`` may see (``read_only``) or act on a record of ``unit``.

    A record without a unit (a search recorded before units were, by an unknown account)
    is treated as every unit's.
    """
    if unit is None or unit == actor.unit:
        return True
    return read_only and sees_all_units(actor)


def require_unit(
    dd: DataDir,
    principal: Principal,
    unit: str | None,
    *,
    action: Action,
    target: str,
    missing: str,
    now: datetime,
    read_only: bool,
    case_number: str | None = None,
    search_id: int | None = None,
) -> None:
    """Pass if ``principal`` may see or act on a record of ``unit``; else record and raise not-found.

    ``missing`` is the message a record that does not exist gets, so that the answer tells
    a person of another unit nothing.
    """
    if may_see(principal.actor, unit, read_only=read_only):
        return
    try:
        refuse_other_unit(
            dd,
            principal,
            f"{target} belongs to another unit than {principal.actor.unit!r}",
            action=action,
            target=target,
            now=now,
            case_number=case_number,
            search_id=search_id,
        )
    except PermissionDeniedError:
        raise NotFoundError(missing) from None


def require_search_unit(
    dd: DataDir,
    principal: Principal,
    search_id: int,
    *,
    action: Action,
    now: datetime,
    read_only: bool,
    case_number: str | None = None,
) -> None:
    """:func:`require_unit` for stored search (or comparison) ``search_id``."""
    with dd.store.read() as conn:
        unit = search_unit(conn, search_id)
    require_unit(
        dd,
        principal,
        unit,
        action=action,
        target=f"search:{search_id}",
        missing=f"there is no search {search_id}",
        now=now,
        read_only=read_only,
        case_number=case_number,
        search_id=search_id,
    )
