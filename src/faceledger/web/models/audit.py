"""Responses of the audit log: entries, checkpoints, the public key, the oversight report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from faceledger.audit.checkpoint import Checkpoint
from faceledger.services.audit import LogEntry, OversightReport


class EntryOut(BaseModel):
    """One stored entry, as stored: verify an export to trust it."""

    seq: int
    ts: str = Field(description="When it was recorded, UTC.")
    actor: str
    action: str
    object: str
    details: Any

    @classmethod
    def of(cls, entry: LogEntry) -> EntryOut:
        return cls(
            seq=entry.seq,
            ts=entry.timestamp,
            actor=entry.actor,
            action=entry.action,
            object=entry.object,
            details=entry.details,
        )


class CheckpointOut(BaseModel):
    """A signed tree head: the log's first ``tree_size`` entries hash to ``root_hash``."""

    log_id: str
    tree_size: int
    root_hash: str
    timestamp: str
    key_fingerprint: str
    signature: str

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> CheckpointOut:
        return cls.model_validate(checkpoint.to_json())


class ProofOut(BaseModel):
    """An inclusion or consistency proof over stored checkpoints (check it: ``audit verify --proof``)."""

    format: str = Field(description="Always 'faceledger-audit-proof'.")
    version: int
    kind: str = Field(description="'inclusion' (one entry is in a checkpoint's log) or 'consistency'.")
    log_id: str
    seq: int | None = Field(default=None, description="inclusion: the entry's sequence number")
    entry: dict[str, Any] | None = Field(default=None, description="inclusion: the entry as stored, signed")
    leaf_hash: str | None = Field(default=None, description="inclusion: the entry's Merkle leaf hash (hex)")
    checkpoint: CheckpointOut | None = Field(default=None, description="inclusion: the checkpoint")
    old: CheckpointOut | None = Field(default=None, description="consistency: the older checkpoint")
    new: CheckpointOut | None = Field(default=None, description="consistency: the newer checkpoint")
    proof: list[str] = Field(description="The proof's nodes (SHA-256, hex), leaf or old tree side first.")


class PublicKeyOut(BaseModel):
    log_id: str
    fingerprint: str
    pem: str = Field(description="The Ed25519 public key exports are verified with (PEM).")


class ReportOut(BaseModel):
    """Who searched, from which unit, for what purpose, with what outcome; and what was refused."""

    since: datetime | None
    until: datetime | None
    searches: int
    searches_by_user: dict[str, int]
    searches_by_unit: dict[str, int]
    searches_by_purpose: dict[str, int]
    searches_by_outcome: dict[str, int]
    denials: int
    denials_by_rule: dict[str, int]
    failed_sign_ins: int

    @classmethod
    def of(cls, report: OversightReport) -> ReportOut:
        return cls.model_validate(report, from_attributes=True)
