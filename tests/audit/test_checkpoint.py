"""Signed checkpoints: the text form, signatures, and the append-only file operators ship."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from faceledger.adapters.signing import LogSigner
from faceledger.audit import verify
from faceledger.audit.checkpoint import (
    Checkpoint,
    append_checkpoint,
    checkpoint_body,
    checkpoint_is_valid,
    read_checkpoints,
    sign_checkpoint,
)
from faceledger.audit.merkle import leaf_hash
from faceledger.errors import StoreError, ValidationError

ROOT = leaf_hash(b"root")
TIME = "2024-05-01T09:00:00.000000Z"


@pytest.fixture
def signer(tmp_path: Path) -> LogSigner:
    return LogSigner.generate(tmp_path / "audit.key")


@pytest.fixture
def checkpoint(signer: LogSigner) -> Checkpoint:
    return sign_checkpoint(log_id="unit-7", tree_size=42, root_hash=ROOT, timestamp=TIME, signer=signer)


def test_text_form() -> None:
    assert checkpoint_body("unit-7", 42, ROOT, TIME).decode() == (
        f"faceledger.audit.checkpoint/v1\nlog unit-7\nsize 42\nroot {ROOT.hex()}\ntime {TIME}\n"
    )


def test_the_standalone_verifier_signs_the_same_text(checkpoint: Checkpoint) -> None:
    parsed = verify.parse_checkpoint(json.loads(json.dumps(checkpoint.to_json())), "checkpoint 1")
    assert parsed.body() == checkpoint.body


def test_signature_verifies_with_the_log_key(signer: LogSigner, checkpoint: Checkpoint) -> None:
    assert checkpoint.key_fingerprint == signer.fingerprint
    assert checkpoint_is_valid(checkpoint, signer.public_key)


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 43},
        {"root_hash": leaf_hash(b"other")},
        {"timestamp": "2024-05-01T09:00:00.000001Z"},
        {"log_id": "unit-8"},
        {"signature": bytes(64)},
    ],
)
def test_any_change_breaks_the_signature(
    signer: LogSigner, checkpoint: Checkpoint, change: dict[str, Any]
) -> None:
    assert not checkpoint_is_valid(dataclasses.replace(checkpoint, **change), signer.public_key)


def test_another_key_does_not_verify(tmp_path: Path, checkpoint: Checkpoint) -> None:
    other = LogSigner.generate(tmp_path / "other.key")
    assert not checkpoint_is_valid(checkpoint, other.public_key)
    forged = dataclasses.replace(checkpoint, signature=other.sign(checkpoint.body))
    assert not checkpoint_is_valid(forged, other.public_key)  # names the log's key, not this one


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad id", 1, ROOT, TIME), "log id"),
        (("two\nlines", 1, ROOT, TIME), "log id"),
        (("unit-7", -1, ROOT, TIME), "tree size"),
        (("unit-7", 1, b"short", TIME), "32 bytes"),
        (("unit-7", 1, ROOT, "2024-05-01 09:00"), "timestamp"),
    ],
)
def test_body_refuses_malformed_fields(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        checkpoint_body(*args)


def test_json_round_trip(checkpoint: Checkpoint) -> None:
    assert Checkpoint.from_json(json.loads(json.dumps(checkpoint.to_json())), where="x") == checkpoint


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("root_hash", "zz", "malformed root hash"),
        ("signature", "not base64!", "malformed root hash or signature"),
        ("key_fingerprint", "md5:abc", "key fingerprint"),
        ("tree_size", "42", "tree size"),
        ("extra", 1, "exactly the fields"),
    ],
)
def test_malformed_json_is_refused(checkpoint: Checkpoint, field: str, value: Any, message: str) -> None:
    data = checkpoint.to_json()
    data[field] = value
    with pytest.raises(ValidationError, match=f"cp.jsonl, line 3: .*{message}"):
        Checkpoint.from_json(data, where="cp.jsonl, line 3")


def test_checkpoint_file_is_appended_not_rewritten(
    tmp_path: Path, signer: LogSigner, checkpoint: Checkpoint
) -> None:
    path = tmp_path / "ship" / "checkpoints.jsonl"
    append_checkpoint(path, checkpoint)
    first = path.read_bytes()
    later = sign_checkpoint(
        log_id="unit-7", tree_size=50, root_hash=leaf_hash(b"r2"), timestamp=TIME, signer=signer
    )
    append_checkpoint(path, later)
    assert path.read_bytes().startswith(first)
    assert path.read_text().count("\n") == 2
    assert read_checkpoints(path) == [checkpoint, later]


def test_reading_a_damaged_checkpoint_file_names_the_line(tmp_path: Path, checkpoint: Checkpoint) -> None:
    path = tmp_path / "checkpoints.jsonl"
    append_checkpoint(path, checkpoint)
    with path.open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(ValidationError, match=r"checkpoints.jsonl, line 2: not JSON"):
        read_checkpoints(path)


def test_unreadable_checkpoint_file(tmp_path: Path, checkpoint: Checkpoint) -> None:
    with pytest.raises(StoreError, match="cannot read the checkpoint file"):
        read_checkpoints(tmp_path / "missing.jsonl")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot append to the checkpoint file"):
        append_checkpoint(blocker / "checkpoints.jsonl", checkpoint)
