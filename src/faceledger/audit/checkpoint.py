"""Signed checkpoints: the log key's statement "log L had N entries with root R at time T".

A checkpoint is only useful if it leaves the machine: an operator ships the checkpoint file
(one JSON object per line, appended) to somewhere the database's administrators cannot
write, and an auditor who holds one can later prove that the history it covers is still
the history the log shows. The signed bytes are a short text form, readable by a person::

    faceledger.audit.checkpoint/v1
    log <log id>
    size <number of entries>
    root <hex SHA-256 Merkle root of entries 1..size>
    time <UTC timestamp>

Signing and verifying go through the small :class:`Signer` / :class:`Verifier` interfaces
(implemented by :mod:`faceledger.adapters.signing`), which keeps this module pure.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from faceledger.audit.canonical import canonical_json, check_log_id, parse_timestamp
from faceledger.audit.events import JsonValue
from faceledger.errors import StoreError, ValidationError

CHECKPOINT_DOMAIN = "faceledger.audit.checkpoint/v1"
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
CHECKPOINT_KEYS = frozenset({"log_id", "tree_size", "root_hash", "timestamp", "key_fingerprint", "signature"})


class Signer(Protocol):
    """Holds the log's private key."""

    @property
    def fingerprint(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """Holds the log's public key."""

    @property
    def fingerprint(self) -> str: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


def checkpoint_body(log_id: str, tree_size: int, root_hash: bytes, timestamp: str) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    check_log_id(log_id)
    parse_timestamp(timestamp)
    if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
        raise ValidationError(f"a checkpoint's tree size is a whole number >= 0, got {tree_size!r}")
    if len(root_hash) != 32:
        raise ValidationError(f"a checkpoint's root hash is 32 bytes, got {len(root_hash)}")
    text = f"{CHECKPOINT_DOMAIN}\nlog {log_id}\nsize {tree_size}\nroot {root_hash.hex()}\ntime {timestamp}\n"
    return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log_id: str
    tree_size: int
    root_hash: bytes
    timestamp: str
    key_fingerprint: str
    signature: bytes

    @property
    def body(self) -> bytes:
        return checkpoint_body(self.log_id, self.tree_size, self.root_hash, self.timestamp)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "timestamp": self.timestamp,
            "key_fingerprint": self.key_fingerprint,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> Checkpoint:
        """A checkpoint from its JSON object; ``where`` names the source in error messages."""
        if not isinstance(value, Mapping) or set(value) != CHECKPOINT_KEYS:
            got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise ValidationError(
                f"{where}: a checkpoint has exactly the fields {sorted(CHECKPOINT_KEYS)}, got {got}"
            )
        try:
            root = bytes.fromhex(value["root_hash"])
            signature = base64.b64decode(value["signature"], validate=True)
        except (TypeError, ValueError, binascii.Error) as exc:
            raise ValidationError(f"{where}: malformed root hash or signature ({exc})") from None
        if not isinstance(value["key_fingerprint"], str) or not _FINGERPRINT.match(value["key_fingerprint"]):
            raise ValidationError(
                f"{where}: key fingerprint {value['key_fingerprint']!r} is not sha256:<64 hex digits>"
            )
        checkpoint = cls(
            value["log_id"], value["tree_size"], root, value["timestamp"], value["key_fingerprint"], signature
        )
        try:
            checkpoint.body  # noqa: B018 - validates every field the signature covers
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
        return checkpoint


def sign_checkpoint(
    *, log_id: str, tree_size: int, root_hash: bytes, timestamp: str, signer: Signer
) -> Checkpoint:
    body = checkpoint_body(log_id, tree_size, root_hash, timestamp)
    return Checkpoint(log_id, tree_size, root_hash, timestamp, signer.fingerprint, signer.sign(body))


def checkpoint_is_valid(checkpoint: Checkpoint, verifier: Verifier) -> bool:
    """Whether the log key ``verifier`` holds signed exactly this checkpoint."""
    return checkpoint.key_fingerprint == verifier.fingerprint and verifier.verify(
        checkpoint.body, checkpoint.signature
    )


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Add a checkpoint to an append-only JSON-lines file, durably, before returning."""
    line = canonical_json(checkpoint.to_json()) + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while line:
                line = line[os.write(fd, line) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot append to the checkpoint file {path}: {exc.strerror or exc}") from None


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a checkpoint file, in file order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read the checkpoint file {path}: {exc}") from None
    return parse_checkpoint_lines(lines, path)


def parse_checkpoint_lines(lines: Sequence[str], path: Path, *, first: int = 1) -> list[Checkpoint]:
    """The checkpoints on ``lines`` of the checkpoint file ``path`` (numbered from ``first``).

    Blank lines are skipped; a line that is not a checkpoint raises :class:`ValidationError`
    naming the file and the line.
    """
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        checkpoints.append(Checkpoint.from_json(value, where=f"{path}, line {number}"))
    return checkpoints
