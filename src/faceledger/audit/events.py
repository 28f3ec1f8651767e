"""The typed records of the audit log: what happened (an event) and where it sits (an entry).

An :class:`AuditEvent` is what a service hands to the log inside the transaction of the
action it records; the log gives it a sequence number and a timestamp, making an
:class:`AuditEntry`. The builder functions below exist so that each kind of action records
the same details every time: an auditor comparing two searches must find the probe hash,
the galleries and the threshold under the same names in both.

Details hold JSON values only, and no floats: a float has no single canonical text, so a
score or threshold is recorded as a decimal string (see :func:`decimal_string`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TypeAlias

from faceledger.errors import ValidationError

JsonValue: TypeAlias = "bool | int | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"

#: The actor recorded for what the system does on its own (retention purges, checkpoints).
SYSTEM_ACTOR = "system"

#: The actor recorded for the Python library's work on a data directory without accounts.
LIBRARY_ACTOR = "library"

_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


class AuditAction(StrEnum):
    """Every kind of action the log records."""

    LOG_CREATED = "log_created"
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SEARCH = "search"
    VERIFY = "verify"
    CANDIDATES_SHOWN = "candidates_shown"
    CANDIDATE_VIEWED = "candidate_viewed"
    PROBE_VIEWED = "probe_viewed"
    POLICY_DENIED = "policy_denied"
    REVIEW = "review"
    GALLERY_CREATED = "gallery_created"
    ENROL = "enrol"
    PURGE = "purge"
    EXPORT = "export"
    ACCOUNT_CHANGED = "account_changed"
    POLICY_CHANGED = "policy_changed"
    DEVICE_REGISTERED = "device_registered"
    OFFLINE_USE = "offline_use"
    ACTION_FAILED = "action_failed"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something a person (or the system) did, before the log numbers it.

    ``object`` names what the action was done to (``gallery:arrests``, ``search:41``,
    ``account:alice``); ``details`` carries the rest, as JSON values without floats.
    """

    actor: str
    action: AuditAction
    object: str
    details: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.actor.strip():
            raise ValidationError("an audit event needs a non-empty actor")
        if not isinstance(self.action, AuditAction):
            raise ValidationError(f"audit action must be an AuditAction, got {self.action!r}")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def at(self, seq: int, timestamp: str) -> AuditEntry:
        """This event as the ``seq``-th entry of the log, recorded at ``timestamp``."""
        return AuditEntry(seq, timestamp, self.actor, self.action.value, self.object, self.details)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One numbered entry of the log, exactly as it is serialised and hashed.

    ``seq`` counts from 1 and has no gaps: entry ``n`` is leaf ``n - 1`` of the Merkle tree,
    so a checkpoint of size ``n`` covers entries 1..n. ``action`` is a plain string here so
    that an entry read back from storage or an export keeps whatever it says, even a name
    this version of the code does not know.
    """

    seq: int
    timestamp: str
    actor: str
    action: str
    object: str
    details: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ValidationError(f"audit entry sequence numbers start at 1, got {self.seq!r}")
        if not _NAME.match(self.action):
            raise ValidationError(f"audit entry {self.seq}: malformed action name {self.action!r}")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


def decimal_string(value: float, places: int = 6) -> str:
    """A float as a fixed-point decimal string, the form details use for non-integers."""
    if not math.isfinite(value):
        raise ValidationError(f"cannot record {value!r} in the audit log: not a finite number")
    text = f"{value:.{places}f}"
    # "-0.000000" and "0.000000" are the same number and must be the same text.
    return text.lstrip("-") if float(text) == 0 else text


# --- builders: one per kind of action, so each kind records the same details ------------


def log_created(*, log_id: str, key_fingerprint: str) -> AuditEvent:
    return AuditEvent(
        SYSTEM_ACTOR,
        AuditAction.LOG_CREATED,
        f"log:{log_id}",
        {"log_id": log_id, "key_fingerprint": key_fingerprint},
    )


def sign_in(actor: str, *, device_id: str | None, mfa: bool) -> AuditEvent:
    return AuditEvent(actor, AuditAction.SIGN_IN, f"account:{actor}", {"device_id": device_id, "mfa": mfa})


def sign_in_failed(username: str, *, reason: str, device_id: str | None) -> AuditEvent:
    """A refused sign-in; the actor is the name that was tried, which may not exist."""
    return AuditEvent(
        username or "(empty)",
        AuditAction.SIGN_IN_FAILED,
        f"account:{username}",
        {"reason": reason, "device_id": device_id},
    )


def search(
    actor: str,
    *,
    search_id: str,
    probe_sha256: str,
    galleries: Sequence[str],
    model_key: str,
    threshold: str,
    score_normalisation: str,
    top_k: int,
    case_ref: str | None,
    purpose: str | None,
    device_id: str | None = None,
    justification: str | None = None,
    policy_version: str | None = None,
    rule_ids: Sequence[str] = (),
    searched_sha256: str | None = None,
    probe_edits: Sequence[Mapping[str, JsonValue]] = (),
    template_thresholds: Mapping[str, str] | None = None,
) -> AuditEvent:
    """A 1:N search. ``threshold`` is a decimal string (see :func:`decimal_string`).

    ``score_normalisation`` is the key of the normalisation that produced the candidates'
    scores (``none``: raw cosine similarity; ``mean-template``: subjects scored by mean
    templates; faceledger.domain.normalisation). A mean-template search also records
    ``template_thresholds``, the threshold of each template size as decimal strings (the entry
    has the key only then, so entries of other searches keep their shape).

    ``searched_sha256`` is the hash of the pixels searched when an examiner edited the
    probe (``probe_edits``: each transformation with its parameters and resulting hash).
    """
    details: dict[str, JsonValue] = {
        "probe_sha256": probe_sha256,
        "galleries": list(galleries),
        "model": model_key,
        "threshold": threshold,
        "score_normalisation": score_normalisation,
        "top_k": top_k,
        "case_ref": case_ref,
        "purpose": purpose,
        "device_id": device_id,
        "justification": justification,
        "policy_version": policy_version,
        "rule_ids": list(rule_ids),
        "searched_sha256": searched_sha256,
        "probe_edits": [dict(e) for e in probe_edits],
    }
    if template_thresholds is not None:
        details["template_thresholds"] = dict(template_thresholds)
    return AuditEvent(actor, AuditAction.SEARCH, f"search:{search_id}", details)


def verified(
    actor: str,
    *,
    search_id: str,
    probe_sha256s: Sequence[str],
    model_key: str,
    threshold: str,
    score: str | None,
    score_normalisation: str,
    case_ref: str,
    purpose: str,
    device_id: str | None,
    policy_version: str,
    rule_ids: Sequence[str],
) -> AuditEvent:
    """A 1:1 comparison of two probe images; scores and thresholds are decimal strings.

    ``score_normalisation`` is the key of the normalisation that produced ``score``.
    """
    return AuditEvent(
        actor,
        AuditAction.VERIFY,
        f"search:{search_id}",
        {
            "probe_sha256s": list(probe_sha256s),
            "model": model_key,
            "threshold": threshold,
            "score": score,
            "score_normalisation": score_normalisation,
            "case_ref": case_ref,
            "purpose": purpose,
            "device_id": device_id,
            "policy_version": policy_version,
            "rule_ids": list(rule_ids),
        },
    )


def review_step(
    actor: str,
    *,
    search_id: str,
    case_ref: str,
    seq: int,
    event: str,
    from_state: str,
    to_state: str,
    details: Mapping[str, JsonValue],
) -> AuditEvent:
    """One step of the human review of a search (findings, verdict, approval or rejection)."""
    return AuditEvent(
        actor,
        AuditAction.REVIEW,
        f"search:{search_id}",
        {
            "case_ref": case_ref,
            "seq": seq,
            "event": event,
            "from_state": from_state,
            "to_state": to_state,
            "details": dict(details),
        },
    )


def candidates_shown(
    actor: str, *, search_id: str, candidates: Sequence[Mapping[str, JsonValue]]
) -> AuditEvent:
    """The candidate list a person saw; each item names rank, subject, face and score."""
    return AuditEvent(
        actor,
        AuditAction.CANDIDATES_SHOWN,
        f"search:{search_id}",
        {"count": len(candidates), "candidates": [dict(c) for c in candidates]},
    )


def candidate_viewed(actor: str, *, search_id: str, subject_id: str, face_id: int) -> AuditEvent:
    return AuditEvent(
        actor,
        AuditAction.CANDIDATE_VIEWED,
        f"face:{face_id}",
        {"search_id": search_id, "subject_id": subject_id, "face_id": face_id},
    )


def probe_viewed(actor: str, *, search_id: str, probe_sha256: str, searched_sha256: str) -> AuditEvent:
    """The searched probe image of a search was shown to ``actor`` (e.g. in the comparison viewer)."""
    return AuditEvent(
        actor,
        AuditAction.PROBE_VIEWED,
        f"search:{search_id}",
        {"search_id": search_id, "probe_sha256": probe_sha256, "searched_sha256": searched_sha256},
    )


def policy_denied(
    actor: str,
    *,
    attempted: str,
    target: str,
    reason: str,
    decision: Mapping[str, JsonValue] | None = None,
) -> AuditEvent:
    """A request the policy refused; recorded because refusals show what people tried.

    ``decision`` is the policy's Decision as a dict (allowed, rule_id, policy_version, reason).
    """
    return AuditEvent(
        actor,
        AuditAction.POLICY_DENIED,
        target,
        {"attempted": attempted, "reason": reason, "decision": None if decision is None else dict(decision)},
    )


def action_failed(
    actor: str,
    *,
    attempted: str,
    target: str,
    code: str,
    reason: str,
    details: Mapping[str, JsonValue] | None = None,
) -> AuditEvent:
    """A request refused or failed for a reason that is not a policy decision.

    A search the policy allowed whose probe then had no usable face, a review step the
    review's state does not allow, a session that had ended: recorded because what people
    tried matters as much as what the policy refused. ``code`` is the error's code (as the
    API answers it), ``reason`` its message; ``details`` what identifies the attempt.
    """
    return AuditEvent(
        actor,
        AuditAction.ACTION_FAILED,
        target,
        {"attempted": attempted, "code": code, "reason": reason, **dict(details or {})},
    )


def gallery_created(
    actor: str,
    *,
    gallery: str,
    legal_basis: str,
    source_description: str,
    retention_days: int | None,
    required_provenance: Sequence[str],
    owner_unit: str | None = None,
) -> AuditEvent:
    """A new gallery, with the legal basis and retention rule it was set up under.

    Recorded because what may be held, and for how long, is decided at this moment: an
    auditor reading later searches of the gallery needs to know who set those terms.
    ``owner_unit`` (the only unit whose gallery administrators may change it) is recorded
    when there is one.
    """
    details: dict[str, JsonValue] = {
        "legal_basis": legal_basis,
        "source_description": source_description,
        "retention_days": retention_days,
        "required_provenance": list(required_provenance),
    }
    if owner_unit is not None:
        details["owner_unit"] = owner_unit
    return AuditEvent(actor, AuditAction.GALLERY_CREATED, f"gallery:{gallery}", details)


def enrolled(
    actor: str,
    *,
    gallery: str,
    subject_id: str,
    face_ids: Sequence[int],
    image_sha256: str,
    provenance: Mapping[str, JsonValue],
) -> AuditEvent:
    return AuditEvent(
        actor,
        AuditAction.ENROL,
        f"gallery:{gallery}",
        {
            "subject_id": subject_id,
            "face_ids": list(face_ids),
            "image_sha256": image_sha256,
            "provenance": dict(provenance),
        },
    )


def purged(
    actor: str,
    *,
    gallery: str,
    face_ids: Sequence[int],
    reason: str,
    authority: str,
    scope: str,
    purge_id: int,
) -> AuditEvent:
    """Faces removed from a gallery: why (``reason``), on whose ``authority``, and what was purged.

    ``scope`` is ``subject:<internal id>``, ``gallery`` or ``expired``; ``purge_id`` is the
    purge's row in the ``purges`` table.
    """
    return AuditEvent(
        actor,
        AuditAction.PURGE,
        f"gallery:{gallery}",
        {
            "face_ids": list(face_ids),
            "count": len(face_ids),
            "reason": reason,
            "authority": authority,
            "scope": scope,
            "purge_id": purge_id,
        },
    )


def probes_purged(actor: str, *, sha256s: Sequence[str], reason: str) -> AuditEvent:
    """Probe image files removed by retention; their hashes stay on record."""
    return AuditEvent(
        actor,
        AuditAction.PURGE,
        "probes",
        {"sha256s": list(sha256s), "count": len(sha256s), "reason": reason},
    )


def exported(actor: str, *, what: str, destination: str, count: int) -> AuditEvent:
    return AuditEvent(actor, AuditAction.EXPORT, what, {"destination": destination, "count": count})


def account_changed(actor: str, *, account: str, change: str, values: Mapping[str, JsonValue]) -> AuditEvent:
    return AuditEvent(
        actor, AuditAction.ACCOUNT_CHANGED, f"account:{account}", {"change": change, "values": dict(values)}
    )


def policy_changed(
    actor: str,
    *,
    policy_sha256_before: str | None,
    policy_sha256_after: str,
    version_before: str | None = None,
    version_after: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        actor,
        AuditAction.POLICY_CHANGED,
        "policy",
        {
            "sha256_before": policy_sha256_before,
            "sha256_after": policy_sha256_after,
            "version_before": version_before,
            "version_after": version_after,
        },
    )


def device_registered(actor: str, *, device_id: str, description: str) -> AuditEvent:
    return AuditEvent(
        actor, AuditAction.DEVICE_REGISTERED, f"device:{device_id}", {"description": description}
    )


def offline_use(operation: str, *, target: str, details: Mapping[str, JsonValue]) -> AuditEvent:
    """The Python library used on a data directory made for offline work (one without accounts).

    ``operation`` is the library call (``search``, ``verify``); ``details`` what it was given
    and what it returned, without face images or descriptors.
    """
    return AuditEvent(LIBRARY_ACTOR, AuditAction.OFFLINE_USE, target, {"operation": operation, **details})
