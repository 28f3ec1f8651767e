"""A witness: a second party that countersigns the log's checkpoints, but only while the log only grows.

The log's own checkpoints prove nothing against someone who holds the log key and can also
rewrite the checkpoint file: they can sign a shorter or different history. A witness runs
elsewhere (another machine, the oversight body), with its own key, and remembers the last
checkpoint it countersigned. It countersigns a new checkpoint only with an RFC 6962
consistency proof (``faceledger audit prove-extension``) from that last one, checked with the
standalone verifier's code; the first checkpoint it sees is taken on trust and pinned. An
auditor then verifies an export against the witness's countersignatures
(``faceledger audit verify EXPORT --key LOG.pem --witness-key WITNESS.pem --countersigned FILE``):
a history rewritten after the witness saw it no longer matches them.

The witness's folder holds ``witness.key`` (private, 0600), ``witness.pub``, ``log.pub`` (the
log key it was set up for), ``state.json`` (the last checkpoint countersigned) and
``countersigned.jsonl`` (every countersignature, one per line, appended).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceledger.adapters.signing import LogPublicKey, LogSigner
from faceledger.audit import verify as standalone
from faceledger.errors import ConflictError, NotInitializedError, ValidationError

WITNESS_DOMAIN = standalone.WITNESS_DOMAIN
KEY, PUBLIC, LOG_KEY, STATE, COUNTERSIGNED = (
    "witness.key",
    "witness.pub",
    "log.pub",
    "state.json",
    "countersigned.jsonl",
)


@dataclass(frozen=True, slots=True)
class Countersigned:
    """What the witness signed: a checkpoint of the log, by its size and root."""

    tree_size: int
    root_hash: str
    line: dict[str, Any]


def countersignature_message(checkpoint: standalone.Checkpoint) -> bytes:
    """The bytes a witness signs: its domain tag, then the checkpoint's own signed text."""
    return WITNESS_DOMAIN + checkpoint.body()


def init_witness(folder: Path, log_key: Path) -> LogPublicKey:
    """Make a witness for the log whose public key is ``log_key``; returns the witness's public key."""
    folder = folder.expanduser()
    if (folder / KEY).exists():
        raise ConflictError(f"{folder} already holds a witness; each witness has one key, made once")
    pinned = LogPublicKey.load(log_key.expanduser())
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = LogSigner.generate(folder / KEY)
    signer.public_key.write(folder / PUBLIC)
    pinned.write(folder / LOG_KEY)
    return signer.public_key


def _state(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE
    if not path.exists():
        return None
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def countersign(folder: Path, document: Any) -> Countersigned:
    """Countersign the newest checkpoint ``document`` shows, if it extends the last one countersigned.

    ``document`` is a consistency proof from the last countersigned checkpoint (its ``old``),
    or, for the witness's first countersignature only, a bare checkpoint. Raises
    :class:`ValidationError` with the reason when the log did not only grow.
    """
    folder = folder.expanduser()
    if not (folder / KEY).exists():
        raise NotInitializedError(
            f"{folder} holds no witness; run `faceledger witness init {folder} --log-key ...`"
        )
    log_key = standalone.load_public_key(folder / LOG_KEY)
    last = _state(folder)
    try:
        if isinstance(document, dict) and document.get("kind") == "consistency":
            standalone.verify_proof(document, log_key)
            old = standalone.parse_checkpoint(document["old"], "the proof's older checkpoint")
            new = standalone.parse_checkpoint(document["new"], "the proof's newer checkpoint")
            if last is None:
                raise ValidationError("a new witness starts from one checkpoint it is given, not a proof")
            if (old.size, old.root.hex(), old.log_id) != (
                last["tree_size"],
                last["root_hash"],
                last["log_id"],
            ):
                raise ValidationError(
                    f"the proof starts from the log of {old.size} entries; this witness last "
                    f"countersigned {last['tree_size']} entries (root {last['root_hash'][:16]}...): "
                    "ask for a proof from that one"
                )
            chosen, raw = new, document["new"]
        else:
            if last is not None:
                raise ValidationError(
                    f"this witness already countersigned the log at {last['tree_size']} entries: give a "
                    "consistency proof from there (`faceledger audit prove-extension "
                    f"{last['tree_size']}`)"
                )
            chosen = standalone.parse_checkpoint(document, "the checkpoint")
            standalone.check_checkpoint_signature(chosen, log_key)
            raw = document
    except (standalone.VerificationError, standalone.InputError) as exc:
        raise ValidationError(f"not countersigned: {exc}") from None
    signer = LogSigner.load(folder / KEY)
    signature = signer.sign(countersignature_message(chosen))
    line: dict[str, Any] = {
        "checkpoint": raw,
        "witness_fingerprint": signer.fingerprint,
        "countersignature": base64.b64encode(signature).decode("ascii"),
    }
    _append_line(folder / COUNTERSIGNED, line)
    state = {"log_id": chosen.log_id, "tree_size": chosen.size, "root_hash": chosen.root.hex()}
    _replace(folder / STATE, state)
    return Countersigned(chosen.size, chosen.root.hex(), line)


def _append_line(path: Path, value: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(value, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())


def _replace(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)
