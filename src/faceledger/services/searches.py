"""Accountable 1:N search and 1:1 verification: every search bound to a case, a purpose and a person.

The order of work is the point of this module:

1. The policy in force decides the request (account, device, case number, purpose,
   justification, galleries, agreement, today's count) *before the probe is touched*: a
   refused request is recorded (``policy_denied``, committed) and raised as
   :class:`PermissionDeniedError`, and its photo is never decoded, stored or analysed.
   Reading the policy and today's count, deciding, and keeping an allowed decision happen
   in ONE write transaction (:meth:`Store.begin_write`, which serialises the searches of
   one person), and that kept decision *reserves* one of the day's searches: parallel
   searches cannot all read the same count and all pass the daily limit. The reservation
   counts from then on, whatever happens to the probe: a search that passed the policy and
   then fails on its image (no face, quality below the floor, an unreadable file, a crash)
   has still spent one of the day's searches, and its allowed decision stays on record
   with no search id (see :func:`searches_today`).
2. The probe is decoded, the examiner's edits (crop, rotate, brightness, contrast) are applied, and
   the face is analysed; the probe's quality is then decided against the policy's floor.
3. The galleries are searched (:func:`faceledger.services.identification.search`).
4. The original probe file is kept, content-addressed under ``<data_dir>/probes/``, for as
   long as the policy's retention says; then, in ONE transaction: the case (opened on its
   first search), the probe's record, the search (case, purpose, justification, person,
   device, policy version and rule ids, probe hashes, model, threshold, galleries,
   timings), each edit, each candidate shown, both decisions, and the ``search`` and
   ``candidates_shown`` audit entries. They commit together or not at all.

An accountable search searches the largest face of the probe; an examiner who wants
another face crops the probe to it (the crop is recorded). The candidates are the ranked
subjects of that face: an investigative lead for human review (:mod:`.reviews`), never an
identification.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from faceledger.adapters.store import repository
from faceledger.adapters.store.tables_cases import (
    CASE_LEN,
    candidate_views,
    policy_decisions,
    probe_edits,
    search_candidates,
    searches,
)
from faceledger.audit import events as ev
from faceledger.audit.events import decimal_string
from faceledger.domain import text
from faceledger.domain.models import (
    AnalyzedFace,
    Candidate,
    DecodedImage,
    ImageAnalysis,
    ModelRef,
    SearchResult,
    VerificationResult,
)
from faceledger.domain.policy import (
    Decision,
    Policy,
    RuleId,
    SearchRequest,
    VerifyRequest,
    decide_probe_quality,
    decide_search,
    decide_verify,
    search_day,
)
from faceledger.domain.roles import Action
from faceledger.errors import FaceLedgerError, NotFoundError, StoreError
from faceledger.pipeline.edit import AppliedEdit, Edit, EditResult, apply_edits
from faceledger.pipeline.ingest import decode_image
from faceledger.services import audit, identification
from faceledger.services.authorization import authorize
from faceledger.services.datadir import DataDir
from faceledger.services.identification import Analyzer
from faceledger.services.policies import (
    Principal,
    StoredPolicy,
    find_active,
    no_policy_decision,
    refuse,
    store_decision,
    utc,
)
from faceledger.services.probes import Probe, ensure_probe, keep_probe_file, probe_images
from faceledger.services.scoping import require_search_unit
from faceledger.services.search_records import (
    KIND_SEARCH,
    KIND_VERIFY,
    CandidateView,
    SearchRecord,
    VerifyRecord,
    candidate_json,
    case_if_any,
    case_of,
    edit_json,
    ensure_case,
    insert_row,
    load_search,
    load_verification,
    stored_candidates,
    thresholds_json,
)


@dataclass(frozen=True, slots=True)
class SearchInput:
    """What a person asks for: the search and the reasons for it."""

    case_number: str | None
    purpose: str | None
    galleries: tuple[str, ...]
    justification: str | None = None
    on_behalf_of: str | None = None
    agreement_ref: str | None = None
    top_k: int | None = None
    edits: tuple[Edit, ...] = ()

    def __post_init__(self) -> None:
        _normalise_reasons(self)


@dataclass(frozen=True, slots=True)
class VerifyInput:
    """A 1:1 comparison's case, purpose and reasons (as for a search, without galleries)."""

    case_number: str | None
    purpose: str | None
    justification: str | None = None
    on_behalf_of: str | None = None
    agreement_ref: str | None = None

    def __post_init__(self) -> None:
        _normalise_reasons(self)


def _normalise_reasons(request: SearchInput | VerifyInput) -> None:
    """Blank means absent, and no hidden characters (faceledger.domain.text); else ValidationError.

    The case number is checked as an identifier (stripped, NFC, no control or format
    characters, not "." or ".."); whether it is in the agency's format stays the policy's
    decision. The justification may span lines; the agency and agreement are single-line.
    """
    values = {
        "case_number": text.optional_identifier(request.case_number, "case number"),
        "justification": text.optional_text(request.justification, "the justification", multiline=True),
        "on_behalf_of": text.optional_text(request.on_behalf_of, "the agency searched for (on_behalf_of)"),
        "agreement_ref": text.optional_text(request.agreement_ref, "the agreement reference"),
    }
    for name, value in values.items():
        object.__setattr__(request, name, value)


class _Analysed:
    """An analyzer that hands back analyses already made, so no probe is analysed twice."""

    def __init__(self, analyzer: Analyzer, done: Sequence[tuple[DecodedImage, ImageAnalysis]]) -> None:
        self._analyzer = analyzer
        self._done = done

    @property
    def model(self) -> ModelRef:
        return self._analyzer.model

    def analyze(self, image: DecodedImage) -> ImageAnalysis:
        for known, analysis in self._done:
            if known is image:
                return analysis
        return self._analyzer.analyze(image)


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    """A probe decoded, edited and analysed, with the face that will be searched."""

    decoded: DecodedImage
    searched: DecodedImage
    edits: EditResult
    analysis: ImageAnalysis
    face: AnalyzedFace
    timings: dict[str, float]


#: The allowed search decisions that reserve one of the day's searches until their search is stored.
RESERVING_RULES = (RuleId.SEARCH_ALLOWED_PENDING_QUALITY.value, RuleId.SEARCH_ALLOWED.value)


def searches_today(conn: Connection, username: str, policy: Policy, now: datetime) -> int:
    """Searches ``username`` made or reserved in the policy's current day (the daily limit counts these).

    That is the stored searches, plus the allowed search decisions not (yet) attached to a
    search: one whose search is still running, or whose probe failed after the policy had
    allowed it. Read it inside :meth:`Store.begin_write` (keyed by :func:`_limit_key`) and
    reserve in the same transaction, or the count can be stale by the time it is acted on.
    """
    start, end = search_day(policy, now)
    made = conn.execute(
        select(func.count())
        .select_from(searches)
        .where(
            searches.c.kind == KIND_SEARCH,
            searches.c.username == username,
            searches.c.created_at >= utc(start),
            searches.c.created_at < utc(end),
        )
    ).scalar_one()
    reserved = conn.execute(
        select(func.count())
        .select_from(policy_decisions)
        .where(
            policy_decisions.c.action == KIND_SEARCH,
            policy_decisions.c.allowed.is_(True),
            policy_decisions.c.search_id.is_(None),
            policy_decisions.c.rule_id.in_(RESERVING_RULES),
            policy_decisions.c.username == username,
            policy_decisions.c.at >= utc(start),
            policy_decisions.c.at < utc(end),
        )
    ).scalar_one()
    return int(made) + int(reserved)


def _search_request(principal: Principal, request: SearchInput, count: int) -> SearchRequest:
    return SearchRequest(
        actor=principal.actor,
        case_number=request.case_number,
        purpose=request.purpose,
        galleries=tuple(request.galleries),
        justification=request.justification,
        on_behalf_of=request.on_behalf_of,
        agreement_ref=request.agreement_ref,
        searches_today=count,
    )


def _prepare(dd: DataDir, analyzer: Analyzer, probe: Probe, edits: Sequence[Edit]) -> _Prepared:
    started = time.perf_counter()
    decoded = decode_image(probe.data, source=probe.source, limits=dd.settings.image)
    decoded_at = time.perf_counter()
    edited = apply_edits(decoded.pixels, edits)
    searched = decoded
    if edited.steps:
        searched = dataclasses.replace(
            decoded, pixels=edited.pixels, sha256=edited.sha256, source=f"{probe.source} (edited)"
        )
    edited_at = time.perf_counter()
    analysis = analyzer.analyze(searched)
    analysed_at = time.perf_counter()
    timings = {
        "decode": round((decoded_at - started) * 1000, 2),
        "edit": round((edited_at - decoded_at) * 1000, 2),
        "analyse": round((analysed_at - edited_at) * 1000, 2),
    }
    face = identification.best_face(analysis, probe.source)
    return _Prepared(decoded, searched, edited, analysis, face, timings)


@dataclass(frozen=True, slots=True, eq=False)
class _Search:
    """Everything one allowed search produced, on its way into the database."""

    principal: Principal
    probe: Probe
    request: SearchInput
    stored: StoredPolicy
    policy: Policy
    decisions: tuple[Decision, ...]
    prepared: _Prepared
    result: SearchResult
    top_k: int
    now: datetime
    reservation: int
    """The id of the allowed decision (``decisions[0]``) kept when the policy was decided."""

    @property
    def rule_ids(self) -> list[str]:
        return [d.rule_id for d in self.decisions]

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self.result.faces[0].subjects


def accountable_search(
    dd: DataDir,
    analyzer: Analyzer,
    principal: Principal,
    probe: Probe,
    request: SearchInput,
    *,
    now: datetime,
) -> SearchRecord:
    """Decide (reserving one of today's searches), then search, then record it all in one transaction.

    See the module docstring. Raises :class:`PermissionDeniedError` (with ``.decision``) when
    the policy refuses, after recording the refusal; :class:`NoFaceError` / :class:`ImageError`
    for a probe without a usable face (nothing is searched or stored then, but the search the
    policy allowed has been spent: its reservation stays).
    """
    moment = utc(now)
    target = _target(request.galleries)
    stored, decision, reservation = _decide_search(dd, principal, request, moment)
    if stored is None or reservation is None:
        refuse(
            dd,
            principal,
            decision,
            action=KIND_SEARCH,
            target=target,
            now=moment,
            case_number=request.case_number,
        )
    policy = stored.policy()
    try:
        prepared = _prepare(dd, analyzer, probe, request.edits)
    except FaceLedgerError as exc:
        _record_failure(dd, principal, probe, request, reservation, exc, target=target, now=moment)
        raise
    quality = decide_probe_quality(
        policy, prepared.face.quality.score, why=prepared.face.quality.lowered_by(shown=100.0)
    )
    if not quality.allowed:
        refuse(
            dd,
            principal,
            quality,
            action=KIND_SEARCH,
            target=target,
            now=moment,
            case_number=request.case_number,
        )
    top_k = dd.settings.top_k if request.top_k is None else request.top_k
    result = identification.search(
        dd,
        _Analysed(analyzer, [(prepared.searched, prepared.analysis)]),
        prepared.searched,
        request.galleries,
        top_k=top_k,
    )
    done = _Search(
        principal, probe, request, stored, policy, (decision, quality), prepared, result, top_k, moment,
        reservation,
    )  # fmt: skip
    keep_probe_file(dd, probe)
    with dd.store.begin() as conn:
        search_id = _record_search(dd, conn, done)
    keep_probe_file(dd, probe)  # a probe purge that raced this search cannot leave it without its file
    with dd.store.read() as conn:
        record = load_search(conn, search_id)
    return dataclasses.replace(record, result=result)


def _record_failure(
    dd: DataDir,
    principal: Principal,
    probe: Probe,
    request: SearchInput,
    reservation: int,
    error: FaceLedgerError,
    *,
    target: str,
    now: datetime,
) -> None:
    """Record a search the policy allowed that then failed on its probe (its reservation stays spent)."""
    event = ev.action_failed(
        principal.actor.username,
        attempted=KIND_SEARCH,
        target=target,
        code=error.code,
        reason=str(error),
        details={
            "case_ref": request.case_number,
            "purpose": request.purpose,
            "probe_sha256": probe.sha256,
            "decision_id": reservation,
        },
    )
    with dd.store.begin() as conn:
        audit.record(dd, conn, event, now=now)


def _decide_search(
    dd: DataDir, principal: Principal, request: SearchInput, now: datetime
) -> tuple[StoredPolicy | None, Decision, int | None]:
    """The policy in force, its decision, and (when allowed) the id of the decision reserving the search.

    One write transaction, serialised per person, so the count the decision rests on is
    still true when the reservation commits. A refusal is returned, not recorded: the
    caller records it with :func:`refuse` once this lock is released.
    """
    username = principal.actor.username
    with dd.store.begin_write(_limit_key(username)) as conn:
        stored = find_active(conn)
        if stored is None:
            return None, no_policy_decision(), None
        policy = stored.policy()
        count = searches_today(conn, username, policy, now)
        decision = decide_search(policy, _search_request(principal, request, count), now=now)
        if not decision.allowed:
            return stored, decision, None
        return stored, decision, _reserve(conn, principal, decision, request.case_number, now)


def _limit_key(username: str) -> str:
    """The write lock searches by ``username`` take while counting and reserving (PostgreSQL)."""
    return f"faceledger.search.daily_limit:{username}"


def _reserve(
    conn: Connection, principal: Principal, decision: Decision, case_number: str | None, now: datetime
) -> int:
    """Keep the allowed decision (no search id yet) and return its id; it counts as today's search."""
    return insert_row(
        conn,
        policy_decisions,
        at=now,
        username=principal.actor.username,
        user_id=principal.user_id,
        action=KIND_SEARCH,
        allowed=True,
        rule_id=decision.rule_id,
        policy_version=decision.policy_version,
        reason=decision.reason,
        case_number=None if case_number is None else case_number[:CASE_LEN],
        search_id=None,
    )


def _target(galleries: Sequence[str]) -> str:
    return ",".join(f"gallery:{name}" for name in galleries) or "search"


def _record_search(dd: DataDir, conn: Connection, done: _Search) -> int:
    actor, request, prepared, result = done.principal.actor, done.request, done.prepared, done.result
    assert request.case_number is not None  # the policy checked it
    assert request.purpose is not None
    face = result.faces[0]
    search_id = insert_row(
        conn,
        searches,
        kind=KIND_SEARCH,
        case_id=ensure_case(conn, request.case_number, actor.username, done.now),
        purpose=request.purpose,
        justification=request.justification,
        on_behalf_of=request.on_behalf_of,
        agreement_ref=request.agreement_ref,
        username=actor.username,
        user_id=done.principal.user_id,
        device_id=actor.device_id,
        unit=actor.unit,
        policy_id=done.stored.id,
        policy_version=done.policy.version,
        rule_ids=done.rule_ids,
        probe_id=ensure_probe(conn, prepared.decoded, len(done.probe.data), done.now),
        searched_sha256=prepared.searched.sha256,
        model_key=result.model.key,
        threshold=result.threshold,
        threshold_fmr=result.threshold_fmr,
        score_normalisation=result.score_normalisation.key,
        template_thresholds=thresholds_json(result.template_thresholds),
        top_k=done.top_k,
        galleries=list(result.galleries),
        faces_found=len(result.faces),
        probe_face=_face_json(face.probe),
        probe_quality=face.probe.quality.score,
        timings={**result.timings_ms, **prepared.timings},  # the probe was analysed once, here
        created_at=done.now,
        probe_retain_until=done.now + timedelta(days=done.policy.probe_retention_for("default")),
        review_state="awaiting_examination",
    )
    _insert_details(conn, search_id, prepared.edits.steps, done.candidates)
    claimed = conn.execute(
        update(policy_decisions)
        .where(policy_decisions.c.id == done.reservation, policy_decisions.c.search_id.is_(None))
        .values(search_id=search_id)
    )
    if claimed.rowcount != 1:
        raise StoreError(f"the policy decision {done.reservation} reserving this search is gone or used")
    for decision in done.decisions[1:]:  # the first is the reservation, now this search's
        store_decision(
            conn, done.principal, decision, action=KIND_SEARCH, now=done.now,
            case_number=request.case_number, search_id=search_id,
        )  # fmt: skip
    audit.record(dd, conn, _search_event(done, search_id), now=done.now)
    shown = [candidate_json(c) for c in done.candidates]
    audit.record(
        dd,
        conn,
        ev.candidates_shown(actor.username, search_id=str(search_id), candidates=shown),
        now=done.now,
    )
    return search_id


def _insert_details(
    conn: Connection, search_id: int, steps: Sequence[AppliedEdit], candidates: Sequence[Candidate]
) -> None:
    for step in steps:
        conn.execute(
            insert(probe_edits).values(
                search_id=search_id, seq=step.seq, kind=step.edit.kind, params=step.edit.params(),
                width=step.width, height=step.height, sha256=step.sha256,
            )
        )  # fmt: skip
    for c in candidates:
        conn.execute(
            insert(search_candidates).values(
                search_id=search_id, rank=c.rank, subject_id=c.subject_id, face_id=c.face_id,
                gallery=c.gallery, score=c.score, estimated_fmr=c.estimated_fmr,
                above_threshold=c.above_threshold, template_images=c.template_images,
            )
        )  # fmt: skip


def _search_event(done: _Search, search_id: int) -> ev.AuditEvent:
    edited = bool(done.prepared.edits.steps)
    return ev.search(
        done.principal.actor.username,
        search_id=str(search_id),
        probe_sha256=done.probe.sha256,
        galleries=done.result.galleries,
        model_key=done.result.model.key,
        threshold=decimal_string(done.result.threshold),
        score_normalisation=done.result.score_normalisation.key,
        template_thresholds=(
            None
            if done.result.template_thresholds is None
            else {str(n): decimal_string(t) for n, t in sorted(done.result.template_thresholds.items())}
        ),
        top_k=done.top_k,
        case_ref=done.request.case_number,
        purpose=done.request.purpose,
        device_id=done.principal.actor.device_id,
        justification=done.request.justification,
        policy_version=done.policy.version,
        rule_ids=done.rule_ids,
        searched_sha256=done.prepared.searched.sha256 if edited else None,
        probe_edits=[edit_json(step) for step in done.prepared.edits.steps],
    )


def _face_json(face: AnalyzedFace) -> dict[str, Any]:
    return {
        "index": face.index,
        "box": face.face.box.to_dict(),
        "detector": face.face.detector,
        "detector_score": round(face.face.score, 4),
        "quality": face.quality.to_dict(),
    }


def get_search(dd: DataDir, principal: Principal, search_id: int, *, now: datetime) -> SearchRecord:
    """A stored search for a person allowed to see cases; showing its candidates is recorded."""
    moment = utc(now)
    with dd.store.read() as conn:
        case_number = case_if_any(conn, search_id)
    authorize(  # before anything is said about whether the search exists
        dd, principal, [Action.VIEW_CASE], target=f"search:{search_id}", now=moment, case_number=case_number
    )
    require_search_unit(dd, principal, search_id, action=Action.VIEW_CASE, now=moment, read_only=True)
    with dd.store.begin() as conn:
        record = load_search(conn, search_id)
        shown = [candidate_json(c) for c in record.candidates]
        event = ev.candidates_shown(principal.actor.username, search_id=str(search_id), candidates=shown)
        audit.record(dd, conn, event, now=moment)
    return record


def view_candidate(
    dd: DataDir, principal: Principal, search_id: int, face_id: int, *, now: datetime
) -> CandidateView:
    """Open one candidate of a search (to compare it with the probe); recorded as ``candidate_viewed``."""
    moment = utc(now)
    with dd.store.read() as conn:
        case_number = case_if_any(conn, search_id)
    # The door first (a refusal tells nothing of what exists), then the unit: another unit's
    # search is answered as if it did not exist, before anything about its candidates.
    authorize(
        dd, principal, [Action.VIEW_CASE], target=f"face:{face_id}", now=moment, case_number=case_number
    )
    require_search_unit(dd, principal, search_id, action=Action.VIEW_CASE, now=moment, read_only=True)
    with dd.store.read() as conn:
        case_of(conn, search_id)  # there is no search: not found
        candidate = next((c for c in stored_candidates(conn, search_id) if c.face_id == face_id), None)
    if candidate is None:
        raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
    with dd.store.begin() as conn:
        face = repository.describe_faces(conn, [face_id]).get(face_id)
        conn.execute(
            insert(candidate_views).values(
                search_id=search_id, face_id=face_id, username=principal.actor.username,
                user_id=principal.user_id, at=moment,
            )
        )  # fmt: skip
        event = ev.candidate_viewed(
            principal.actor.username,
            search_id=str(search_id),
            subject_id=candidate.subject_id,
            face_id=face_id,
        )
        audit.record(dd, conn, event, now=moment)
    return CandidateView(search_id, candidate, face)


def candidate_records(
    dd: DataDir, principal: Principal, search_id: int, face_ids: Sequence[int], *, now: datetime
) -> list[CandidateView]:
    """The gallery records (provenance) of candidates of a search, to list beside them.

    Asks what :func:`view_candidate` asks (``view_case``, then the search's unit), once, but
    records no view: listing candidates is recorded when the list is read (:func:`get_search`,
    ``candidates_shown``), and opening one, or fetching its photo, is recorded as a view.
    """
    moment = utc(now)
    with dd.store.read() as conn:
        case_number = case_if_any(conn, search_id)
    authorize(
        dd, principal, [Action.VIEW_CASE], target=f"search:{search_id}", now=moment, case_number=case_number
    )
    require_search_unit(dd, principal, search_id, action=Action.VIEW_CASE, now=moment, read_only=True)
    with dd.store.read() as conn:
        case_of(conn, search_id)
        by_face = {c.face_id: c for c in stored_candidates(conn, search_id)}
        missing = [f for f in face_ids if f not in by_face]
        if missing:
            raise NotFoundError(f"face {missing[0]} is not a candidate of search {search_id}")
        described = repository.describe_faces(conn, list(face_ids))
    return [CandidateView(search_id, by_face[f], described.get(f)) for f in face_ids]


def candidate_image(
    dd: DataDir, principal: Principal, search_id: int, face_id: int, *, now: datetime
) -> bytes:
    """The candidate's enrolled gallery photo, as stored, to compare with the probe.

    Needs ``view_face_image`` (second factor and a registered device, whatever the policy's
    ``[devices]`` table says), asked before anything about the search is looked up, and then
    what :func:`view_candidate` needs; recorded as ``candidate_viewed``.
    """
    authorize(
        dd,
        principal,
        [Action.VIEW_FACE_IMAGE],
        target=f"search:{search_id}/face:{face_id}",
        now=utc(now),
        search_id=search_id,
    )
    view = view_candidate(dd, principal, search_id, face_id, now=now)
    if view.face is None:
        raise NotFoundError(f"face {face_id} was purged from its gallery after search {search_id}")
    return dd.images.read(view.face.image_sha256)


def viewed_probe(
    dd: DataDir, principal: Principal, search_id: int, *, now: datetime
) -> tuple[SearchRecord, DecodedImage]:
    """The stored search and its probe as it was searched (its recorded edits applied), to show.

    Asks the door as :func:`candidate_image` does: ``view_face_image`` first (second factor and a
    registered device), then ``view_case`` in the search's unit; the probe is re-derived from its
    file and checked against every recorded hash (:func:`~faceledger.services.probes.probe_images`),
    and showing it is recorded as ``probe_viewed``. :class:`NotFoundError` once retention has
    removed the probe file.
    """
    moment = utc(now)
    with dd.store.read() as conn:
        case_number = case_if_any(conn, search_id)
    for action in (Action.VIEW_FACE_IMAGE, Action.VIEW_CASE):
        authorize(
            dd,
            principal,
            [action],
            target=f"search:{search_id}/probe",
            now=moment,
            case_number=case_number,
            search_id=search_id if case_number is not None else None,
        )
    require_search_unit(dd, principal, search_id, action=Action.VIEW_CASE, now=moment, read_only=True)
    with dd.store.read() as conn:
        record = load_search(conn, search_id)
    images = probe_images(dd, record)
    with dd.store.begin() as conn:
        event = ev.probe_viewed(
            principal.actor.username,
            search_id=str(search_id),
            probe_sha256=record.probe_sha256,
            searched_sha256=record.searched_sha256,
        )
        audit.record(dd, conn, event, now=moment)
    searched = dataclasses.replace(
        images.original, pixels=images.searched.pixels, sha256=images.searched.sha256
    )
    return record, searched


def probe_image(dd: DataDir, principal: Principal, search_id: int, *, now: datetime) -> bytes:
    """The probe of a 1:N search as it was searched, as PNG, to compare with a candidate.

    What :func:`viewed_probe` asks and records.
    """
    _, searched = viewed_probe(dd, principal, search_id, now=now)
    buffer = io.BytesIO()
    PILImage.fromarray(searched.pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def accountable_verify(
    dd: DataDir,
    analyzer: Analyzer,
    principal: Principal,
    first: Probe,
    second: Probe,
    request: VerifyInput,
    *,
    now: datetime,
) -> VerifyRecord:
    """A 1:1 comparison under the same rules: decided first, both probes kept, recorded once."""
    moment = utc(now)
    with dd.store.read() as conn:
        stored = find_active(conn)
    decision = (
        no_policy_decision()
        if stored is None
        else decide_verify(stored.policy(), _verify_request(principal, request), now=moment)
    )
    if stored is None or not decision.allowed:
        refuse(
            dd,
            principal,
            decision,
            action=KIND_VERIFY,
            target="verify",
            now=moment,
            case_number=request.case_number,
        )
    policy = stored.policy()
    prepared = [_prepare(dd, analyzer, probe, ()) for probe in (first, second)]
    worst = min(prepared, key=lambda p: p.face.quality.score)
    quality = decide_probe_quality(
        policy, worst.face.quality.score, why=worst.face.quality.lowered_by(shown=100.0)
    )
    if not quality.allowed:
        refuse(
            dd,
            principal,
            quality,
            action=KIND_VERIFY,
            target="verify",
            now=moment,
            case_number=request.case_number,
        )
    analysed = _Analysed(analyzer, [(p.searched, p.analysis) for p in prepared])
    result = identification.verify(analysed, dd.settings, prepared[0].searched, prepared[1].searched)
    threshold_fmr = identification.decision_for(dd.settings, analyzer.model).threshold_fmr
    done = _Verification(
        principal, (first, second), request, stored, policy, (decision, quality), prepared, result
    )
    for probe in done.probes:
        keep_probe_file(dd, probe)
    with dd.store.begin() as conn:
        search_id = _record_verification(dd, conn, done, threshold_fmr, moment)
    with dd.store.read() as conn:
        return load_verification(conn, search_id)


@dataclass(frozen=True, slots=True, eq=False)
class _Verification:
    """Everything one allowed comparison produced, on its way into the database."""

    principal: Principal
    probes: tuple[Probe, Probe]
    request: VerifyInput
    stored: StoredPolicy
    policy: Policy
    decisions: tuple[Decision, ...]
    prepared: list[_Prepared]
    result: VerificationResult


def _record_verification(
    dd: DataDir, conn: Connection, done: _Verification, threshold_fmr: float | None, now: datetime
) -> int:
    actor, request, result, first = done.principal.actor, done.request, done.result, done.prepared[0]
    assert request.case_number is not None  # the policy checked it
    assert request.purpose is not None
    ids = [
        ensure_probe(conn, p.decoded, len(f.data), now)
        for p, f in zip(done.prepared, done.probes, strict=True)
    ]
    rule_ids = [d.rule_id for d in done.decisions]
    search_id = insert_row(
        conn, searches, kind=KIND_VERIFY,
        case_id=ensure_case(conn, request.case_number, actor.username, now),
        purpose=request.purpose, justification=request.justification, on_behalf_of=request.on_behalf_of,
        agreement_ref=request.agreement_ref, username=actor.username, user_id=done.principal.user_id,
        device_id=actor.device_id, unit=actor.unit, policy_id=done.stored.id,
        policy_version=done.policy.version,
        rule_ids=rule_ids, probe_id=ids[0], searched_sha256=first.searched.sha256, second_probe_id=ids[1],
        model_key=result.model.key, threshold=result.threshold, threshold_fmr=threshold_fmr, top_k=None,
        galleries=[], faces_found=len(first.analysis.faces), probe_face=_face_json(first.face),
        probe_quality=min(p.face.quality.score for p in done.prepared), score=result.score,
        same_person=result.same_person, estimated_fmr=result.estimated_fmr,
        score_normalisation=result.score_normalisation.key, timings=first.timings, created_at=now,
        probe_retain_until=now + timedelta(days=done.policy.probe_retention_for("default")),
    )  # fmt: skip
    for decision in done.decisions:
        store_decision(
            conn, done.principal, decision, action=KIND_VERIFY, now=now, case_number=request.case_number,
            search_id=search_id,
        )  # fmt: skip
    event = ev.verified(
        actor.username, search_id=str(search_id), probe_sha256s=[p.sha256 for p in done.probes],
        model_key=result.model.key, threshold=decimal_string(result.threshold),
        score=decimal_string(result.score), score_normalisation=result.score_normalisation.key,
        case_ref=request.case_number, purpose=request.purpose,
        device_id=actor.device_id, policy_version=done.policy.version, rule_ids=rule_ids,
    )  # fmt: skip
    audit.record(dd, conn, event, now=now)
    return search_id


def _verify_request(principal: Principal, request: VerifyInput) -> VerifyRequest:
    return VerifyRequest(
        actor=principal.actor,
        case_number=request.case_number,
        purpose=request.purpose,
        justification=request.justification,
        on_behalf_of=request.on_behalf_of,
        agreement_ref=request.agreement_ref,
    )
