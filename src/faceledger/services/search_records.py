"""Stored searches read back, and the rows and JSON forms the search and review services share.

A :class:`SearchRecord` is what a person is shown with a result and what a case history
lists: who searched, for which case and purpose, under which policy version and rules,
which probe (as submitted and as searched, with every edit), which model and threshold,
and the candidates shown, and the score normalisation that produced their scores (a key of
:mod:`faceledger.domain.normalisation`, kept with the row and refused on reading when this
version does not know it). Audit details carry no floats, so scores and edit parameters go
to the log as decimal strings (:func:`candidate_json`, :func:`edit_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from faceledger.adapters.store.tables_cases import cases, probe_edits, probes, search_candidates, searches
from faceledger.audit.events import JsonValue, decimal_string
from faceledger.domain import normalisation
from faceledger.domain.models import Candidate, FaceInfo, SearchResult
from faceledger.domain.normalisation import ScoreNormalisation
from faceledger.errors import NotFoundError, StoreError, ValidationError
from faceledger.pipeline.edit import AppliedEdit, make_edit
from faceledger.services.policies import from_db, stored_policy

KIND_SEARCH = "search"
KIND_VERIFY = "verify"


@dataclass(frozen=True, slots=True, eq=False)
class SearchRecord:
    """A stored accountable search, complete enough to show with its result and to audit.

    ``result`` is the full pipeline output, present only on the record the search itself
    returns; a record read back later has everything else.
    """

    search_id: int
    case_number: str
    purpose: str
    justification: str | None
    on_behalf_of: str | None
    agreement_ref: str | None
    username: str
    device_id: str | None
    created_at: datetime
    policy_version: str
    policy_sha256: str
    rule_ids: tuple[str, ...]
    probe_sha256: str
    searched_sha256: str
    probe_purged: bool
    edits: tuple[AppliedEdit, ...]
    model_key: str
    threshold: float
    threshold_fmr: float | None
    #: What produced every candidate's score (and the scale ``threshold`` is on).
    score_normalisation: ScoreNormalisation
    #: Mean-template searches: template size -> the threshold applied to it; None otherwise.
    template_thresholds: dict[int, float] | None
    top_k: int | None
    galleries: tuple[str, ...]
    faces_found: int
    probe_face: dict[str, Any] | None
    candidates: tuple[Candidate, ...]
    timings_ms: dict[str, float]
    probe_retain_until: datetime
    review_state: str | None
    lead_notice: str
    result: SearchResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "search_id": self.search_id,
            "case_number": self.case_number,
            "purpose": self.purpose,
            "justification": self.justification,
            "on_behalf_of": self.on_behalf_of,
            "agreement_ref": self.agreement_ref,
            "searched_by": self.username,
            "device_id": self.device_id,
            "created_at": self.created_at.isoformat(),
            "policy": {
                "version": self.policy_version,
                "sha256": self.policy_sha256,
                "rule_ids": list(self.rule_ids),
            },
            "probe": {
                "sha256": self.probe_sha256,
                "searched_sha256": self.searched_sha256,
                "edits": [e.to_dict() for e in self.edits],
                "purged": self.probe_purged,
                "retain_until": self.probe_retain_until.isoformat(),
                "faces_found": self.faces_found,
                "face": self.probe_face,
            },
            "model": self.model_key,
            "threshold": self.threshold,
            "threshold_fmr": self.threshold_fmr,
            "score_normalisation": self.score_normalisation.key,
            "template_thresholds": thresholds_json(self.template_thresholds),
            "top_k": self.top_k,
            "galleries": list(self.galleries),
            "candidates": [c.to_dict() for c in self.candidates],
            "timings_ms": self.timings_ms,
            "review_state": self.review_state,
            "lead_notice": self.lead_notice,
        }


@dataclass(frozen=True, slots=True)
class VerifyRecord:
    """A stored accountable 1:1 comparison."""

    search_id: int
    case_number: str
    purpose: str
    username: str
    device_id: str | None
    created_at: datetime
    policy_version: str
    rule_ids: tuple[str, ...]
    probe_sha256s: tuple[str, str]
    model_key: str
    score: float
    threshold: float
    threshold_fmr: float | None
    same_person: bool
    #: What produced ``score`` (and the scale ``threshold`` is on).
    score_normalisation: ScoreNormalisation
    lead_notice: str
    #: How often two different people score this high (None: recorded before it was kept).
    estimated_fmr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "search_id": self.search_id,
            "case_number": self.case_number,
            "purpose": self.purpose,
            "verified_by": self.username,
            "device_id": self.device_id,
            "created_at": self.created_at.isoformat(),
            "policy": {"version": self.policy_version, "rule_ids": list(self.rule_ids)},
            "probe_sha256s": list(self.probe_sha256s),
            "model": self.model_key,
            "score": round(self.score, 6),
            "threshold": self.threshold,
            "threshold_fmr": self.threshold_fmr,
            "same_person": self.same_person,
            "estimated_fmr": self.estimated_fmr,
            "score_normalisation": self.score_normalisation.key,
            "lead_notice": self.lead_notice,
        }


@dataclass(frozen=True, slots=True)
class CandidateView:
    """One candidate of a search, opened by a person; ``face`` is None once the face was purged."""

    search_id: int
    candidate: Candidate
    face: FaceInfo | None


def _json_number(value: Any) -> JsonValue:
    if isinstance(value, float):
        return decimal_string(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    raise StoreError(f"cannot record {value!r} in the audit log")


def edit_json(step: AppliedEdit) -> dict[str, JsonValue]:
    """A probe edit for the audit log."""
    return {
        "seq": step.seq,
        "kind": step.edit.kind,
        "params": {k: _json_number(v) for k, v in step.edit.params().items()},
        "width": step.width,
        "height": step.height,
        "sha256": step.sha256,
    }


def thresholds_json(thresholds: Mapping[int, float] | None) -> dict[str, float] | None:
    """Template size -> threshold as JSON stores it (object keys are strings), smallest size first."""
    return None if thresholds is None else {str(n): float(t) for n, t in sorted(thresholds.items())}


def _stored_thresholds(value: Any) -> dict[int, float] | None:
    return None if value is None else {int(n): float(t) for n, t in dict(value).items()}


def candidate_json(candidate: Candidate) -> dict[str, JsonValue]:
    """A candidate as the audit log records it."""
    return {
        "rank": candidate.rank,
        "subject_id": candidate.subject_id,
        "face_id": candidate.face_id,
        "gallery": candidate.gallery,
        "score": decimal_string(candidate.score),
        "above_threshold": candidate.above_threshold,
        "template_images": candidate.template_images,
    }


def insert_row(conn: Connection, table: Table, **values: Any) -> int:
    key = conn.execute(insert(table).values(**values)).inserted_primary_key
    if key is None or key[0] is None:
        raise StoreError(f"the database did not return the id of a new {table.name} row")
    return int(key[0])


def insert_or_get(conn: Connection, table: Table, key: str, value: str, **values: Any) -> int:
    """The id of the row whose ``key`` is ``value``, inserting it first if there is none.

    SQLite admits one writer at a time, so the plain insert cannot race there; on a server
    a concurrent insert of the same key is absorbed by a savepoint and read back.
    """
    column = table.c[key]
    found = conn.execute(select(table.c.id).where(column == value)).scalar_one_or_none()
    if found is not None:
        return int(found)
    if conn.dialect.name == "sqlite":
        return insert_row(conn, table, **{key: value}, **values)
    try:
        with conn.begin_nested():
            return insert_row(conn, table, **{key: value}, **values)
    except IntegrityError:
        return int(conn.execute(select(table.c.id).where(column == value)).scalar_one())


def ensure_case(conn: Connection, case_number: str, by: str, now: datetime) -> int:
    return insert_or_get(conn, cases, "case_number", case_number, opened_at=now, opened_by=by)


def find_case_id(conn: Connection, case_number: str) -> int | None:
    found = conn.execute(select(cases.c.id).where(cases.c.case_number == case_number)).scalar_one_or_none()
    return None if found is None else int(found)


def _search_row(conn: Connection, search_id: int) -> Row[Any]:
    row = conn.execute(
        select(searches, cases.c.case_number, probes.c.sha256.label("probe_sha256"), probes.c.purged_at)
        .join(cases, cases.c.id == searches.c.case_id)
        .join(probes, probes.c.id == searches.c.probe_id)
        .where(searches.c.id == search_id)
    ).first()
    if row is None:
        raise NotFoundError(f"there is no search {search_id}")
    return row


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """Who ran a search (or comparison), when, and for which case."""

    search_id: int
    kind: str
    case_number: str
    username: str
    created_at: datetime


def search_header(conn: Connection, search_id: int) -> SearchHeader:
    row = conn.execute(
        select(searches.c.kind, searches.c.username, searches.c.created_at, cases.c.case_number)
        .join(cases, cases.c.id == searches.c.case_id)
        .where(searches.c.id == search_id)
    ).first()
    if row is None:
        raise NotFoundError(f"there is no search {search_id}")
    return SearchHeader(search_id, row.kind, row.case_number, row.username, from_db(row.created_at))


def stored_edits(conn: Connection, search_id: int) -> tuple[AppliedEdit, ...]:
    rows = conn.execute(
        select(probe_edits).where(probe_edits.c.search_id == search_id).order_by(probe_edits.c.seq)
    )
    return tuple(
        AppliedEdit(int(r.seq), make_edit(r.kind, r.params), int(r.width), int(r.height), r.sha256)
        for r in rows
    )


def stored_candidates(conn: Connection, search_id: int) -> tuple[Candidate, ...]:
    rows = conn.execute(
        select(search_candidates)
        .where(search_candidates.c.search_id == search_id)
        .order_by(search_candidates.c.rank)
    )
    return tuple(
        Candidate(
            rank=int(r.rank),
            subject_id=r.subject_id,
            face_id=int(r.face_id),
            gallery=r.gallery,
            score=float(r.score),
            estimated_fmr=None if r.estimated_fmr is None else float(r.estimated_fmr),
            above_threshold=bool(r.above_threshold),
            template_images=int(r.template_images),
        )
        for r in rows
    )


def stored_normalisation(row: Row[Any]) -> ScoreNormalisation:
    """The normalisation a stored search or comparison names; :class:`StoreError` if unknown here.

    A key this version does not know was written by a newer one: its scores are on a scale
    this version cannot describe, so they are not shown as if they were raw similarities.
    """
    try:
        return normalisation.by_key(row.score_normalisation)
    except ValidationError as exc:
        raise StoreError(
            f"record {row.id} was scored under a normalisation this version does not know: {exc}"
        ) from None


def load_search(conn: Connection, search_id: int) -> SearchRecord:
    """A stored 1:N search, by id (:class:`NotFoundError` if there is none)."""
    row = _search_row(conn, search_id)
    if row.kind != KIND_SEARCH:
        raise NotFoundError(f"record {search_id} is a 1:1 comparison, not a 1:N search")
    policy = stored_policy(conn, int(row.policy_id))
    return SearchRecord(
        search_id=int(row.id),
        case_number=row.case_number,
        purpose=row.purpose,
        justification=row.justification,
        on_behalf_of=row.on_behalf_of,
        agreement_ref=row.agreement_ref,
        username=row.username,
        device_id=row.device_id,
        created_at=from_db(row.created_at),
        policy_version=row.policy_version,
        policy_sha256=policy.sha256,
        rule_ids=tuple(row.rule_ids),
        probe_sha256=row.probe_sha256,
        searched_sha256=row.searched_sha256,
        probe_purged=row.purged_at is not None,
        edits=stored_edits(conn, search_id),
        model_key=row.model_key,
        threshold=float(row.threshold),
        threshold_fmr=None if row.threshold_fmr is None else float(row.threshold_fmr),
        score_normalisation=stored_normalisation(row),
        template_thresholds=_stored_thresholds(row.template_thresholds),
        top_k=row.top_k,
        galleries=tuple(row.galleries),
        faces_found=int(row.faces_found),
        probe_face=row.probe_face,
        candidates=stored_candidates(conn, search_id),
        timings_ms=dict(row.timings),
        probe_retain_until=from_db(row.probe_retain_until),
        review_state=row.review_state,
        lead_notice=policy.policy().lead_notice,
    )


def load_verification(conn: Connection, search_id: int) -> VerifyRecord:
    row = _search_row(conn, search_id)
    if row.kind != KIND_VERIFY or row.second_probe_id is None:
        raise NotFoundError(f"record {search_id} is a 1:N search, not a 1:1 comparison")
    second = conn.execute(select(probes.c.sha256).where(probes.c.id == row.second_probe_id)).scalar_one()
    policy = stored_policy(conn, int(row.policy_id))
    score = float(row.score)
    return VerifyRecord(
        search_id=int(row.id),
        case_number=row.case_number,
        purpose=row.purpose,
        username=row.username,
        device_id=row.device_id,
        created_at=from_db(row.created_at),
        policy_version=row.policy_version,
        rule_ids=tuple(row.rule_ids),
        probe_sha256s=(row.probe_sha256, second),
        model_key=row.model_key,
        score=score,
        threshold=float(row.threshold),
        threshold_fmr=None if row.threshold_fmr is None else float(row.threshold_fmr),
        same_person=bool(row.same_person),
        score_normalisation=stored_normalisation(row),
        lead_notice=policy.policy().lead_notice,
        estimated_fmr=None if row.estimated_fmr is None else float(row.estimated_fmr),
    )


def search_ids_of_case(conn: Connection, case_id: int) -> list[tuple[int, str]]:
    """(id, kind) of every search and comparison of a case, oldest first."""
    rows = conn.execute(
        select(searches.c.id, searches.c.kind).where(searches.c.case_id == case_id).order_by(searches.c.id)
    )
    return [(int(r.id), r.kind) for r in rows]


def case_of(conn: Connection, search_id: int) -> str:
    return str(_search_row(conn, search_id).case_number)


def case_if_any(conn: Connection, search_id: int) -> str | None:
    """The case number of search ``search_id``, or None when there is no such search.

    For the door, which decides (and records) before anyone is told whether it exists.
    """
    found = conn.execute(
        select(cases.c.case_number)
        .join(searches, searches.c.case_id == cases.c.id)
        .where(searches.c.id == search_id)
    ).first()
    return None if found is None else str(found.case_number)
