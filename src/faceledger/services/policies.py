"""The policy in force: stored versions, loading by an administrator, and guarded decisions.

Every version ever loaded is kept (its file text, version string, sha256, who loaded it and
when) so that any past decision can be traced to the exact text that made it. Exactly one
version is active; the database itself refuses a second (see ``tables_cases``).

A fresh data directory has **no** policy in force, and every guarded request is refused
with rule ``policy.none`` until a system administrator loads one. The shipped example is
not made active silently: it names an example organisation, purposes and galleries, and a
unit that starts searching under a policy nobody chose has no policy at all.

Who may load a policy is decided by the policy in force (``manage_policy``, a system
administrator's action). When none is in force yet, the policy being loaded decides: its
organisation must be the administrator's, so the first load is also the moment an agency
puts its own written policy in place.

The other services use :func:`guard` (decide, and on a refusal record it and raise) and
:func:`store_decision` (keep an allowed decision with the action it allowed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.policy_file import MAX_POLICY_BYTES as MAX_POLICY_BYTES
from faceledger.adapters.policy_file import example_policy_text, parse_policy, read_policy_file
from faceledger.adapters.store.tables_cases import CASE_LEN, policy_decisions, policy_versions, searches
from faceledger.audit import events as ev

# The rule and version a decision cites before any policy is loaded live with the other
# decisions made without a policy, in the domain; re-exported here for the services' callers.
from faceledger.domain.access import NO_POLICY_RULE as NO_POLICY_RULE
from faceledger.domain.access import NO_POLICY_VERSION as NO_POLICY_VERSION
from faceledger.domain.access import no_policy_decision as no_policy_decision
from faceledger.domain.policy import Decision, Policy, decide_action
from faceledger.domain.roles import Action, Actor, require_aware
from faceledger.errors import ConflictError, NotFoundError, PermissionDeniedError
from faceledger.services import audit
from faceledger.services.datadir import DataDir


class Principal(Protocol):
    """Who is acting: what :mod:`faceledger.services.accounts` establishes at sign-in."""

    @property
    def actor(self) -> Actor: ...

    @property
    def user_id(self) -> int | None: ...


def utc(now: datetime, what: str = "the time 'now'") -> datetime:
    """An aware moment, in UTC (the form every time column is written in)."""
    return require_aware(now, what).astimezone(UTC)


def from_db(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every one here was written in UTC."""
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One loaded version of the policy file, as kept."""

    id: int
    version: str
    sha256: str
    organisation: str
    source: str
    loaded_by: str
    loaded_at: datetime
    active: bool
    text: str

    def policy(self) -> Policy:
        return parse_policy(self.text, source=f"stored policy {self.version!r} (sha256 {self.sha256[:12]})")

    def to_dict(self, *, text: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "sha256": self.sha256,
            "organisation": self.organisation,
            "source": self.source,
            "loaded_by": self.loaded_by,
            "loaded_at": self.loaded_at.isoformat(),
            "active": self.active,
        }
        if text:
            out["text"] = self.text
        return out


def _stored(row: Row[Any]) -> StoredPolicy:
    return StoredPolicy(
        id=int(row.id),
        version=row.version,
        sha256=row.sha256,
        organisation=row.organisation,
        source=row.source,
        loaded_by=row.loaded_by,
        loaded_at=from_db(row.loaded_at),
        active=bool(row.active),
        text=row.text,
    )


def find_active(conn: Connection) -> StoredPolicy | None:
    row = conn.execute(select(policy_versions).where(policy_versions.c.active.is_(True))).first()
    return None if row is None else _stored(row)


def stored_policy(conn: Connection, policy_id: int) -> StoredPolicy:
    row = conn.execute(select(policy_versions).where(policy_versions.c.id == policy_id)).first()
    if row is None:
        raise NotFoundError(f"no stored policy with id {policy_id}")
    return _stored(row)


def active_stored_policy(dd: DataDir) -> StoredPolicy | None:
    with dd.store.read() as conn:
        return find_active(conn)


def active_policy(dd: DataDir) -> Policy:
    """The policy in force; :class:`NotFoundError` saying how to load one if there is none."""
    stored = active_stored_policy(dd)
    if stored is None:
        raise NotFoundError(no_policy_decision().reason)
    return stored.policy()


def policy_history(dd: DataDir) -> list[StoredPolicy]:
    """Every version ever loaded, oldest first."""
    with dd.store.read() as conn:
        rows = conn.execute(select(policy_versions).order_by(policy_versions.c.id)).all()
    return [_stored(row) for row in rows]


# --- decisions: recorded, and refusals raised --------------------------------------------


def store_decision(
    conn: Connection,
    principal: Principal,
    decision: Decision,
    *,
    action: str,
    now: datetime,
    case_number: str | None = None,
    search_id: int | None = None,
) -> None:
    """Keep a decision (allowed or not) with the case it was about, in the caller's transaction."""
    conn.execute(
        insert(policy_decisions).values(
            at=utc(now),
            username=principal.actor.username,
            user_id=principal.user_id,
            action=action,
            allowed=decision.allowed,
            rule_id=decision.rule_id,
            policy_version=decision.policy_version,
            reason=decision.reason,
            case_number=None if case_number is None else case_number[:CASE_LEN],
            search_id=search_id,
        )
    )


def refuse(
    dd: DataDir,
    principal: Principal,
    decision: Decision,
    *,
    action: str,
    target: str,
    now: datetime,
    case_number: str | None = None,
    search_id: int | None = None,
) -> NoReturn:
    """Record a refusal (decision row and ``policy_denied`` audit entry, committed) and raise it.

    A ``search_id`` that names no search (a request may carry any number) is kept in the
    audit entry's target only, since the decision row can only point at a real search.
    """
    with dd.store.begin() as conn:
        if (
            search_id is not None
            and conn.execute(select(searches.c.id).where(searches.c.id == search_id)).first() is None
        ):
            search_id = None
        store_decision(
            conn, principal, decision, action=action, now=now, case_number=case_number, search_id=search_id
        )
        event = ev.policy_denied(
            principal.actor.username,
            attempted=action,
            target=target,
            reason=decision.reason,
            decision=decision.to_dict(),
        )
        audit.record(dd, conn, event, now=now)
    raise PermissionDeniedError(
        f"refused: {decision.reason} (rule {decision.rule_id}, policy {decision.policy_version})", decision
    )


# --- loading a policy ------------------------------------------------------------------


def load_policy(
    dd: DataDir, principal: Principal, path: Path | str, *, now: datetime | None = None
) -> Policy:
    """Make the policy file at ``path`` the one in force (a system administrator's action)."""
    file = Path(path).expanduser()
    return load_policy_text(dd, principal, read_policy_file(file), source=str(file), now=now)


def load_example_policy(dd: DataDir, principal: Principal, *, now: datetime | None = None) -> Policy:
    """Make the shipped example policy the one in force, explicitly (for trials and demos)."""
    return load_policy_text(
        dd, principal, example_policy_text(), source="faceledger/data/example-policy.toml", now=now
    )


def load_policy_text(
    dd: DataDir, principal: Principal, text: str, *, source: str, now: datetime | None = None
) -> Policy:
    """Check, store and activate a policy given as file text (the web upload uses this too).

    Loading the text already in force changes nothing and records nothing. A version string
    already used for a different text is refused: a version must name one text, for ever.
    """
    moment = utc(now or datetime.now(UTC))
    policy = parse_policy(text, source=source)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with dd.store.read() as conn:
        current = find_active(conn)
    deciding = policy if current is None else current.policy()
    decision = decide_action(deciding, principal.actor, Action.MANAGE_POLICY, now=moment)
    if not decision.allowed:
        refuse(dd, principal, decision, action=Action.MANAGE_POLICY.value, target="policy", now=moment)
    if policy.organisation != principal.actor.organisation:
        raise ConflictError(
            f"{source} governs {policy.organisation!r}, but {principal.actor.username!r} belongs to "
            f"{principal.actor.organisation!r}: every account would be refused under it"
        )
    if current is not None and current.sha256 == sha:
        return policy
    with _one_loader(dd) as conn:
        _check_version_unused(conn, policy.version, sha)
        previous = find_active(conn)
        conn.execute(update(policy_versions).where(policy_versions.c.active.is_(True)).values(active=None))
        conn.execute(
            insert(policy_versions).values(
                version=policy.version,
                sha256=sha,
                organisation=policy.organisation,
                text=text,
                source=source,
                loaded_by=principal.actor.username,
                loaded_by_user_id=principal.user_id,
                loaded_at=moment,
                active=True,
            )
        )
        store_decision(conn, principal, decision, action=Action.MANAGE_POLICY.value, now=moment)
        event = ev.policy_changed(
            principal.actor.username,
            policy_sha256_before=None if previous is None else previous.sha256,
            policy_sha256_after=sha,
            version_before=None if previous is None else previous.version,
            version_after=policy.version,
        )
        audit.record(dd, conn, event, now=moment)
    return policy


@contextmanager
def _one_loader(dd: DataDir) -> Iterator[Connection]:
    """A transaction in which a second concurrent activation fails cleanly instead of racing."""
    try:
        with dd.store.begin() as conn:
            yield conn
    except IntegrityError as exc:
        raise ConflictError(
            "another policy was activated at the same moment; check `faceledger policy show` and retry"
        ) from exc


def _check_version_unused(conn: Connection, version: str, sha: str) -> None:
    clash = conn.execute(
        select(policy_versions.c.sha256, policy_versions.c.loaded_at)
        .where(policy_versions.c.version == version, policy_versions.c.sha256 != sha)
        .limit(1)
    ).first()
    if clash is not None:
        raise ConflictError(
            f"policy version {version!r} was already loaded with different text "
            f"(sha256 {clash.sha256[:12]}..., loaded {from_db(clash.loaded_at).isoformat()}): "
            "raise `version` in the file and load it again"
        )
