#!/usr/bin/env python3
"""Verify a faceledger audit export without trusting faceledger.

Usage::

    python verify.py EXPORT --key LOG_PUBLIC_KEY.pem [--checkpoint EARLIER.jsonl ...]
    python -m faceledger.audit.verify EXPORT --key LOG_PUBLIC_KEY.pem
    python verify.py PROOF.json --key LOG_PUBLIC_KEY.pem --proof

This file imports only the Python standard library and ``cryptography``, so an auditor can
copy it out of the project, read it in one sitting and run it on their own machine. It
re-implements the canonical form, the RFC 6962 Merkle tree and the checkpoint text form
instead of importing them: checking a system with that system's own code proves little.

What it checks, in order: the export's header; that the key given is the key the export
names; every checkpoint's signature; every entry's signature and sequence number (naming
the first entry that was altered, removed, reordered or inserted); every checkpoint given
by the auditor (which must be covered by the export and match it); and every checkpoint
in the export (root recomputed from the entries). The export's last entry must be
covered by a checkpoint. Exit status: 0 verified, 1 verification failed, 2 unusable input.
With ``--proof`` the file is an inclusion or consistency proof (``faceledger audit prove``,
``prove-extension``), checked against the signed checkpoints it carries.

Verified without any ``--checkpoint``, it warns (on stderr) that truncation cannot be
detected: an export cut together with its checkpoints is consistent in itself.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXPORT_FORMAT = "faceledger-audit-export"
EXPORT_VERSION = 1
ENTRY_DOMAIN = b"faceledger.audit.entry/v1\n"
ENTRY_SIGNATURE_DOMAIN = b"faceledger.audit.entry-signature/v1\n"
CHECKPOINT_DOMAIN = "faceledger.audit.checkpoint/v1"
MAX_SAFE_INTEGER = 2**53 - 1
EMPTY_ROOT = hashlib.sha256(b"").digest()
ENTRY_KEYS = frozenset({"seq", "ts", "actor", "action", "object", "details"})
CHECKPOINT_KEYS = frozenset({"log_id", "tree_size", "root_hash", "timestamp", "key_fingerprint", "signature"})
EXPORT_KEYS = frozenset(
    {"format", "version", "log_id", "key_fingerprint", "exported_at", "entries", "checkpoints"}
)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
LOG_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
NO_CHECKPOINT_WARNING = (
    "warning: no --checkpoint given, so a log cut at its end (with its later checkpoints) "
    "cannot be detected; verify against a checkpoint held outside the database: the log's "
    "checkpoint file, or a witness copy of it"
)
# How far from its position the verifier looks for the number an entry was signed under.
RENUMBER_SEARCH = 256


class VerificationError(Exception):
    """The export does not verify; the message says where and how."""


class InputError(Exception):
    """An input file cannot be read or is not what it claims to be."""


# --- canonical JSON -------------------------------------------------------------------


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json(text: str) -> Any:
    """JSON that refuses duplicate keys; floats are read, and refused later by canonical_json."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; integers within +/-(2**53 - 1) are the only numbers."""
    _check_value(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check_value(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"integer {value} is outside the exact range")
    if isinstance(value, float):
        raise ValueError(f"non-integer number {value!r}")
    if isinstance(value, dict):
        for item in value.values():
            _check_value(item)
    elif isinstance(value, list):
        for item in value:
            _check_value(item)


# --- RFC 6962 Merkle tree -------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def roots_at(leaves: Sequence[bytes], sizes: set[int]) -> dict[int, bytes]:
    """The RFC 6962 root of the first n leaves, for each n in ``sizes``, in one pass.

    The leaves so far split into perfect subtrees, one per set bit of their count; the root
    folds those subtrees' roots from the smallest (rightmost) to the largest.
    """
    roots = {0: EMPTY_ROOT} if 0 in sizes else {}
    stack: list[bytes] = []
    for count, leaf in enumerate(leaves, start=1):
        node, merged = leaf, count - 1
        while merged & 1:
            node = node_hash(stack.pop(), node)
            merged >>= 1
        stack.append(node)
        if count in sizes:
            root = stack[-1]
            for left in reversed(stack[:-1]):
                root = node_hash(left, root)
            roots[count] = root
    return roots


# --- keys and signatures --------------------------------------------------------------


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read the public key {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path} holds a {type(key).__name__}; the audit log key is Ed25519")
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def signed(key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _b64(text: Any) -> bytes:
    try:
        return base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        return b""


# --- checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    name: str
    log_id: str
    size: int
    root: bytes
    timestamp: str
    fingerprint: str
    signature: bytes

    def body(self) -> bytes:
        lines = [CHECKPOINT_DOMAIN, f"log {self.log_id}", f"size {self.size}", f"root {self.root.hex()}"]
        return ("\n".join([*lines, f"time {self.timestamp}"]) + "\n").encode("ascii")

    def describe(self) -> str:
        return f"{self.name} (size {self.size}, signed {self.timestamp})"


def parse_checkpoint(value: Any, name: str) -> Checkpoint:
    """A checkpoint object; a malformed one is an error of the same kind as a forged one."""
    problem = _checkpoint_problem(value)
    if problem:
        raise VerificationError(f"{name} is malformed ({problem}): it was altered or forged")
    return Checkpoint(
        name,
        value["log_id"],
        value["tree_size"],
        bytes.fromhex(value["root_hash"]),
        value["timestamp"],
        value["key_fingerprint"],
        _b64(value["signature"]),
    )


def _checkpoint_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or set(value) != CHECKPOINT_KEYS:
        return f"expected the fields {sorted(CHECKPOINT_KEYS)}"
    size = value["tree_size"]
    checks = [
        (isinstance(value["log_id"], str) and LOG_ID.match(value["log_id"]), "log_id"),
        (isinstance(size, int) and not isinstance(size, bool) and size >= 0, "tree_size"),
        (
            isinstance(value["root_hash"], str) and re.fullmatch(r"[0-9a-f]{64}", value["root_hash"]),
            "root_hash",
        ),
        (isinstance(value["timestamp"], str) and TIMESTAMP.match(value["timestamp"]), "timestamp"),
        (
            isinstance(value["key_fingerprint"], str) and FINGERPRINT.match(value["key_fingerprint"]),
            "fingerprint",
        ),
    ]
    bad = [name for ok, name in checks if not ok]
    return f"bad {', '.join(bad)}" if bad else None


def load_checkpoint_file(path: Path) -> list[Any]:
    """Checkpoint objects from a file: one JSON object, a JSON array, or JSON lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the checkpoint file {path}: {exc}") from None
    try:
        whole = load_json(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    if isinstance(whole, list):
        return whole
    items: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(load_json(line))
            except ValueError as exc:
                raise InputError(f"{path}, line {number}: not a JSON checkpoint ({exc})") from None
    if not items:
        raise InputError(f"{path} holds no checkpoint")
    return items


# --- entries --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    position: int
    body: dict[str, Any]
    seq: int
    signature: bytes
    leaf: bytes
    authentic: bool


def entry_leaf(body: dict[str, Any]) -> bytes:
    """The Merkle leaf hash of an entry: SHA-256(0x00 || domain tag || canonical JSON)."""
    return leaf_hash(ENTRY_DOMAIN + canonical_json(body))


def entry_signature_message(log_id: str, leaf: bytes) -> bytes:
    return ENTRY_SIGNATURE_DOMAIN + f"{log_id}\n{leaf.hex()}\n".encode("ascii")


def parse_entry(value: Any, position: int, log_id: str, key: Ed25519PublicKey) -> Entry:
    problem = _entry_problem(value)
    if problem is None:
        try:
            leaf = entry_leaf(value["entry"])
        except ValueError as exc:  # a float, a huge integer, text that is not Unicode
            problem = str(exc)
    if problem is not None:
        raise VerificationError(f"the entry at position {position} is malformed ({problem}): it was altered")
    body: dict[str, Any] = value["entry"]
    signature = _b64(value["signature"])
    authentic = signed(key, entry_signature_message(log_id, leaf), signature)
    return Entry(position, body, body["seq"], signature, leaf, authentic)


def _entry_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or set(value) != {"entry", "signature"}:
        return "expected the fields ['entry', 'signature']"
    body = value["entry"]
    if not isinstance(body, dict) or set(body) != ENTRY_KEYS:
        return f"expected the fields {sorted(ENTRY_KEYS)}"
    seq = body["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return f"sequence number {seq!r}"
    if not all(isinstance(body[name], str) for name in ("ts", "actor", "action", "object")):
        return "ts, actor, action and object must be strings"
    if not TIMESTAMP.match(body["ts"]):
        return f"timestamp {body['ts']!r}"
    if not isinstance(body["details"], dict):
        return "details must be an object"
    return None


def _signed_as(entry: Entry, seq: int, log_id: str, key: Ed25519PublicKey) -> bool:
    """Whether this entry's content was signed under sequence number ``seq``."""
    if seq == entry.seq:
        return entry.authentic
    message = entry_signature_message(log_id, entry_leaf({**entry.body, "seq": seq}))
    return signed(key, message, entry.signature)


def _original_seq(entry: Entry, expected: int, log_id: str, key: Ed25519PublicKey) -> int | None:
    """The sequence number the log key signed this entry's content under, if one is near."""
    if entry.authentic:
        return entry.seq
    for distance in range(RENUMBER_SEARCH + 1):
        for seq in {expected + distance, expected - distance}:
            if seq >= 1 and seq != entry.seq and _signed_as(entry, seq, log_id, key):
                return seq
    return None


def check_entries(entries: Sequence[Entry], log_id: str, key: Ed25519PublicKey) -> None:
    """Entry n must sit at position n and carry the log key's signature over its content."""
    for index, entry in enumerate(entries):
        if entry.seq != index + 1 or not entry.authentic:
            raise VerificationError(_diagnose(entries, index, log_id, key))


def _diagnose(entries: Sequence[Entry], index: int, log_id: str, key: Ed25519PublicKey) -> str:
    entry, expected = entries[index], index + 1
    original = _original_seq(entry, expected, log_id, key)
    renumbered = " (the entries after it were renumbered)" if original != entry.seq else ""
    if original is None:
        following = entries[index + 1] if index + 1 < len(entries) else None
        if following is not None and _original_seq(following, expected, log_id, key) == expected:
            moved = " (the entries after it were renumbered)" if following.seq != expected else ""
            return (
                f"an entry was inserted at position {expected}: it is not signed by the log key, "
                f"and entry {expected} follows it{moved}"
            )
        if entry.seq != expected:
            return f"entry {expected} was altered: it now reads as entry {entry.seq} and its signature fails"
        return f"entry {expected} was altered (or forged): its content does not match its signature"
    if original == expected:
        return f"entry {expected} was altered: its sequence number was changed to {entry.seq}"
    if original < expected:
        return f"an entry was inserted at position {expected}: a copy of entry {original}"
    if _present_after(entries, index, expected, log_id, key):
        return f"entries were reordered: entry {original} appears before entry {expected}"
    if original == expected + 1:
        return f"entry {expected} was removed: entry {original} is at its place{renumbered}"
    return f"entries {expected}..{original - 1} were removed: entry {original} is at their place{renumbered}"


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}..{last} are"


def _present_after(
    entries: Sequence[Entry], index: int, seq: int, log_id: str, key: Ed25519PublicKey
) -> bool:
    later = entries[index + 1 :]
    if any(e.seq == seq and e.authentic for e in later):
        return True
    return any(_signed_as(e, seq, log_id, key) for e in later)


# --- the export -----------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    entries: int
    checkpoints: int
    latest: Checkpoint
    fingerprint: str
    earlier: tuple[Checkpoint, ...]

    def line(self) -> str:
        earlier = ""
        if self.earlier:
            sizes = ", ".join(str(c.size) for c in self.earlier)
            earlier = f"; consistent with {len(self.earlier)} earlier checkpoint(s) (size {sizes})"
        return (
            f"OK: {self.entries} entries and {self.checkpoints} signed checkpoint(s) verified; "
            f"latest covers {self.latest.size} entries, root {self.latest.root.hex()[:16]}, "
            f"signed {self.latest.timestamp}; key {self.fingerprint}{earlier}"
        )


def _check_header(export: Any) -> None:
    if not isinstance(export, dict) or export.get("format") != EXPORT_FORMAT:
        raise InputError(f"not a faceledger audit export (its 'format' is not {EXPORT_FORMAT!r})")
    if export.get("version") != EXPORT_VERSION:
        raise InputError(
            f"export format version {export.get('version')!r}; this verifier reads {EXPORT_VERSION}"
        )
    if set(export) != EXPORT_KEYS:
        raise VerificationError(
            f"the export's header is malformed: expected the fields {sorted(EXPORT_KEYS)}"
        )
    if not isinstance(export["log_id"], str) or not LOG_ID.match(export["log_id"]):
        raise VerificationError(f"the export's log id {export['log_id']!r} is malformed")
    if not isinstance(export["entries"], list) or not isinstance(export["checkpoints"], list):
        raise VerificationError("the export's entries and checkpoints must be lists")


def _check_checkpoint(cp: Checkpoint, log_id: str, key: Ed25519PublicKey, fingerprint: str) -> None:
    if cp.log_id != log_id:
        raise VerificationError(
            f"{cp.describe()} belongs to log {cp.log_id!r}, the export is of log {log_id!r}"
        )
    if cp.fingerprint != fingerprint or not signed(key, cp.body(), cp.signature):
        raise VerificationError(
            f"{cp.describe()} does not carry a valid signature of this key: forged or altered"
        )


def check_checkpoint_signature(cp: Checkpoint, key: Ed25519PublicKey) -> None:
    """Raise VerificationError unless ``cp`` is signed by ``key`` (any log id)."""
    _check_checkpoint(cp, cp.log_id, key, key_fingerprint(key))


# --- a witness's countersignatures ------------------------------------------------------

WITNESS_DOMAIN = b"faceledger.audit.witness/v1\n"


def witnessed(lines: Sequence[Any], witness_key: Ed25519PublicKey) -> list[Any]:
    """The checkpoints the witness countersigned, each countersignature checked with its key."""
    found: list[Any] = []
    for number, line in enumerate(lines, start=1):
        name = f"countersigned checkpoint {number}"
        if not isinstance(line, dict) or set(line) != {
            "checkpoint",
            "witness_fingerprint",
            "countersignature",
        }:
            raise VerificationError(
                f"{name} is malformed: expected checkpoint, witness_fingerprint, countersignature"
            )
        cp = parse_checkpoint(line["checkpoint"], name)
        if line["witness_fingerprint"] != key_fingerprint(witness_key) or not signed(
            witness_key, WITNESS_DOMAIN + cp.body(), _b64(line["countersignature"])
        ):
            raise VerificationError(f"{name} ({cp.describe()}) does not carry the witness's countersignature")
        found.append(line["checkpoint"])
    return found


def _check_covered(cp: Checkpoint, count: int, roots: dict[int, bytes], *, earlier: bool) -> None:
    if cp.size > count:
        which = "the earlier checkpoint" if earlier else cp.name
        raise VerificationError(f"truncated: {which} covers {cp.size} entries, the export has {count}")
    if roots[cp.size] != cp.root:
        if earlier:
            raise VerificationError(
                f"the export's entries 1..{cp.size} differ from {cp.describe()}: "
                "the history it covers was rewritten (by someone holding the log key)"
            )
        raise VerificationError(
            f"{cp.describe()} does not match entries 1..{cp.size}: "
            "the log was rewritten by someone holding the log key"
        )


def verify_export(export: Any, key: Ed25519PublicKey, earlier: Sequence[Any] = ()) -> Summary:
    """Verify a parsed export; raises VerificationError (or InputError) with the reason."""
    _check_header(export)
    log_id, fingerprint = export["log_id"], key_fingerprint(key)
    if export["key_fingerprint"] != fingerprint:
        raise VerificationError(
            f"the export was signed by key {export['key_fingerprint']}, the key given is {fingerprint}"
        )
    checkpoints = [
        parse_checkpoint(v, f"checkpoint {i}") for i, v in enumerate(export["checkpoints"], start=1)
    ]
    for cp in checkpoints:
        _check_checkpoint(cp, log_id, key, fingerprint)
    entries = [parse_entry(v, i, log_id, key) for i, v in enumerate(export["entries"], start=1)]
    check_entries(entries, log_id, key)
    held = [parse_checkpoint(v, f"earlier checkpoint {i}") for i, v in enumerate(earlier, start=1)]
    for cp in held:
        _check_checkpoint(cp, log_id, key, fingerprint)
    leaves = [e.leaf for e in entries]
    roots = roots_at(leaves, {cp.size for cp in [*checkpoints, *held] if cp.size <= len(entries)})
    for cp in held:
        _check_covered(cp, len(entries), roots, earlier=True)
    for cp in checkpoints:
        _check_covered(cp, len(entries), roots, earlier=False)
    if not checkpoints:
        raise VerificationError("the export holds no signed checkpoint, so nothing vouches for its entries")
    latest = max(checkpoints, key=lambda c: c.size)
    if latest.size < len(entries):
        raise VerificationError(
            f"{_span(latest.size + 1, len(entries))} covered by no signed checkpoint in the export"
        )
    return Summary(len(entries), len(checkpoints), latest, fingerprint, tuple(held))


# --- proofs ---------------------------------------------------------------------------

PROOF_FORMAT = "faceledger-audit-proof"
PROOF_VERSION = 1


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root a leaf and its audit path (leaf side first) give, following RFC 6962's PATH.

    Raises VerificationError when the path has the wrong length for ``index`` in ``size``.
    """
    if size == 1:
        if path:
            raise VerificationError("the inclusion proof is longer than the tree is deep")
        return leaf
    if not path:
        raise VerificationError("the inclusion proof is shorter than the tree is deep")
    k = _largest_power_of_two_below(size)
    if index < k:
        return node_hash(root_from_path(leaf, index, k, path[:-1]), path[-1])
    return node_hash(path[-1], root_from_path(leaf, index - k, size - k, path[:-1]))


def roots_from_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, *, whole: bool = True
) -> tuple[bytes, bytes]:
    """The (old, new) roots a consistency proof gives, following RFC 6962's SUBPROOF."""
    if old_size == new_size:
        if whole:
            if proof:
                raise VerificationError("the consistency proof has nodes it does not need")
            return old_root, old_root
        if len(proof) != 1:
            raise VerificationError("the consistency proof has the wrong number of nodes")
        return proof[0], proof[0]
    if not proof:
        raise VerificationError("the consistency proof is too short")
    k = _largest_power_of_two_below(new_size)
    if old_size <= k:
        old, new = roots_from_consistency(old_size, k, proof[:-1], old_root, whole=whole)
        return old, node_hash(new, proof[-1])
    old, new = roots_from_consistency(old_size - k, new_size - k, proof[:-1], old_root, whole=False)
    return node_hash(proof[-1], old), node_hash(proof[-1], new)


def _nodes(value: Any) -> list[bytes]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in value
    ):
        raise VerificationError("the proof's nodes must be a list of SHA-256 hashes in hex")
    return [bytes.fromhex(v) for v in value]


def verify_proof(document: Any, key: Ed25519PublicKey) -> str:
    """Verify an inclusion or consistency proof against the signed checkpoint(s) it carries."""
    if not isinstance(document, dict) or document.get("format") != PROOF_FORMAT:
        raise InputError(f"not a faceledger audit proof (its 'format' is not {PROOF_FORMAT!r})")
    if document.get("version") != PROOF_VERSION:
        raise InputError(
            f"proof format version {document.get('version')!r}; this verifier reads {PROOF_VERSION}"
        )
    log_id, fingerprint = document.get("log_id"), key_fingerprint(key)
    if not isinstance(log_id, str) or not LOG_ID.match(log_id):
        raise VerificationError("the proof's log id is malformed")
    if document.get("kind") == "inclusion":
        cp = parse_checkpoint(document.get("checkpoint"), "the proof's checkpoint")
        _check_checkpoint(cp, log_id, key, fingerprint)
        seq = document.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= cp.size:
            raise VerificationError(f"entry {seq!r} is not covered by {cp.describe()}")
        entry = parse_entry(document.get("entry"), seq, log_id, key)
        if not entry.authentic or entry.seq != seq:
            raise VerificationError(
                f"entry {seq} does not carry a valid signature of this key: altered or forged"
            )
        if root_from_path(entry.leaf, seq - 1, cp.size, _nodes(document.get("proof"))) != cp.root:
            raise VerificationError(f"entry {seq} is not in the log that {cp.describe()} signed")
        return f"OK: entry {seq} is in the log of {cp.size} entries signed {cp.timestamp}; key {fingerprint}"
    if document.get("kind") == "consistency":
        old = parse_checkpoint(document.get("old"), "the proof's older checkpoint")
        new = parse_checkpoint(document.get("new"), "the proof's newer checkpoint")
        for cp in (old, new):
            _check_checkpoint(cp, log_id, key, fingerprint)
        if not 0 < old.size <= new.size:
            raise VerificationError(f"{old.describe()} is not older than {new.describe()}")
        got = roots_from_consistency(old.size, new.size, _nodes(document.get("proof")), old.root)
        if got != (old.root, new.root):
            raise VerificationError(
                f"the log of {new.size} entries does not extend the log of {old.size} entries: "
                "the older history was rewritten"
            )
        return (
            f"OK: the log of {new.size} entries (signed {new.timestamp}) extends the log of "
            f"{old.size} entries (signed {old.timestamp}); key {fingerprint}"
        )
    raise InputError(f"unknown proof kind {document.get('kind')!r} (inclusion or consistency)")


def load_export(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the export {path}: {exc}") from None
    try:
        return load_json(text)
    except ValueError as exc:
        raise InputError(f"{path} is not a valid export: {exc}") from None


def verify_files(export: Path, key: Path, earlier: Sequence[Path] = ()) -> Summary:
    """Verify the export file with the public key file and any checkpoint files held earlier."""
    held = [item for path in earlier for item in load_checkpoint_file(path)]
    return verify_export(load_export(export), load_public_key(key), held)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify.py", description="Verify a faceledger audit export.")
    parser.add_argument("export", type=Path, help="the export file (JSON)")
    parser.add_argument("--key", type=Path, required=True, help="the audit log's public key (PEM)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a checkpoint (or checkpoint file) obtained earlier; may be given more than once",
    )
    parser.add_argument(
        "--proof", action="store_true", help="the file is an inclusion or consistency proof, not an export"
    )
    parser.add_argument("--witness-key", type=Path, help="a witness's public key (PEM), for --countersigned")
    parser.add_argument(
        "--countersigned",
        type=Path,
        action="append",
        default=[],
        help="a witness's countersigned checkpoints (JSON lines); each counts as an earlier checkpoint",
    )
    args = parser.parse_args(argv)
    try:
        if args.proof:
            print(verify_proof(load_export(args.export), load_public_key(args.key)))
            return 0
        if args.countersigned and args.witness_key is None:
            raise InputError("--countersigned needs the witness's public key: --witness-key")
        witness = [
            item
            for path in args.countersigned
            for item in witnessed(load_checkpoint_file(path), load_public_key(args.witness_key))
        ]
        held = [item for path in args.checkpoint for item in load_checkpoint_file(path)]
        summary = verify_export(load_export(args.export), load_public_key(args.key), [*held, *witness])
    except VerificationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    if not args.checkpoint and not args.countersigned:
        print(NO_CHECKPOINT_WARNING, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
