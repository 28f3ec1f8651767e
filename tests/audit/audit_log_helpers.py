"""A small real audit log for the tests: entries sealed with a real key, checkpoints every 8 and at the end.

A plain module rather than a conftest, so that test files can import its types and mypy sees
one module by that name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faceledger.adapters.signing import LogSigner
from faceledger.audit import events as ev
from faceledger.audit.canonical import format_timestamp
from faceledger.audit.checkpoint import Checkpoint, sign_checkpoint
from faceledger.audit.export import SealedEntry, build_export, export_text, seal_entry
from faceledger.audit.merkle import MerkleAccumulator
from faceledger.audit.verify import load_json

LOG_ID = "unit-7.test"
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@dataclass
class Log:
    signer: LogSigner
    entries: list[SealedEntry]
    checkpoints: list[Checkpoint]
    accumulator: MerkleAccumulator

    def append(self, event: ev.AuditEvent) -> SealedEntry:
        seq = len(self.entries) + 1
        sealed = seal_entry(event.at(seq, stamp(seq)), log_id=LOG_ID, signer=self.signer)
        self.entries.append(sealed)
        self.accumulator.append(sealed.leaf_hash)
        return sealed

    def checkpoint(self) -> Checkpoint:
        cp = sign_checkpoint(
            log_id=LOG_ID,
            tree_size=self.accumulator.size,
            root_hash=self.accumulator.root(),
            timestamp=stamp(self.accumulator.size),
            signer=self.signer,
        )
        self.checkpoints.append(cp)
        return cp

    def export(self) -> dict[str, Any]:
        """The export as an auditor's verifier reads it: written out as text, then parsed back."""
        document = build_export(
            log_id=LOG_ID,
            key_fingerprint=self.signer.fingerprint,
            entries=self.entries,
            checkpoints=self.checkpoints,
            exported_at=stamp(0),
        )
        parsed: dict[str, Any] = load_json(export_text(document))
        return parsed


def stamp(seconds: int) -> str:
    return format_timestamp(START + timedelta(seconds=seconds))


def sample_event(n: int) -> ev.AuditEvent:
    """A varied mix of real event kinds, so entries differ in shape as well as in number."""
    makers: list[Callable[[], ev.AuditEvent]] = [
        lambda: ev.sign_in(f"examiner{n % 3}", device_id="dev-1", mfa=True),
        lambda: ev.search(
            f"examiner{n % 3}",
            search_id=f"s{n}",
            probe_sha256=f"{n:064x}",
            galleries=["arrests", "missing"],
            model_key="dlib/resnet/1/abcdef012345",
            threshold=ev.decimal_string(0.93),
            score_normalisation="none",
            top_k=10,
            case_ref=f"CASE-{n}",
            purpose="investigation",
        ),
        lambda: ev.candidates_shown(
            f"examiner{n % 3}",
            search_id=f"s{n}",
            candidates=[{"rank": 1, "subject_id": "S-1", "face_id": n, "score": "0.951000"}],
        ),
        lambda: ev.policy_denied("auditor1", attempted="search", target="gallery:arrests", reason="role"),
        lambda: ev.purged(
            "admin",
            gallery="arrests",
            face_ids=[n, n + 1],
            reason="retention",
            authority="Records schedule 7",
            scope="expired",
            purge_id=n,
        ),
    ]
    return makers[n % len(makers)]()


def build_log(signer: LogSigner, size: int = 20, every: int = 8) -> Log:
    log = Log(signer, [], [], MerkleAccumulator())
    for n in range(1, size + 1):
        log.append(sample_event(n))
        if n % every == 0:
            log.checkpoint()
    if size % every:
        log.checkpoint()
    return log
