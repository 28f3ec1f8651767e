"""Inclusion and consistency proofs from the service, checked by the standalone verifier's own code."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import append, data_dir
from cases_helpers import T0, person

from faceledger.audit import merkle
from faceledger.audit import verify as standalone
from faceledger.domain.roles import Role
from faceledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from faceledger.services import audit, audit_proofs
from faceledger.services.datadir import DataDir

AUDITOR = person("ann.auditor", Role.AUDITOR)


@pytest.fixture
def dd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DataDir]:
    with data_dir("sqlite", tmp_path / "data", request=request) as opened:
        append(opened, 6)
        audit.checkpoint(opened)  # size 7 (the log's first entry is its creation)
        append(opened, 6, first=7)
        audit.checkpoint(opened)  # size 13
        yield opened


def _key(dd: DataDir) -> Any:
    return standalone.load_public_key(dd.audit_public_key_path)


def _sizes(dd: DataDir) -> list[int]:
    return sorted({int(str(c["tree_size"])) for c in audit.stored_checkpoints(dd)})


def test_every_entry_proves_into_every_checkpoint_that_covers_it(dd: DataDir) -> None:
    key = _key(dd)
    for size in _sizes(dd):
        for seq in range(1, size + 1):
            document = json.loads(
                json.dumps(audit_proofs.prove_entry(dd, AUDITOR, seq, tree_size=size, now=T0).document)
            )
            assert standalone.verify_proof(document, key).startswith(
                f"OK: entry {seq} is in the log of {size}"
            )


def test_a_proof_changed_in_any_part_fails(dd: DataDir) -> None:
    key = _key(dd)
    good = json.loads(json.dumps(audit_proofs.prove_entry(dd, AUDITOR, 5, now=T0).document))
    node = copy.deepcopy(good)
    node["proof"][0] = "00" * 32
    entry = copy.deepcopy(good)
    entry["entry"]["entry"]["actor"] = "mallory"
    short = copy.deepcopy(good)
    short["proof"] = short["proof"][:-1]
    moved = copy.deepcopy(good)
    moved["seq"], moved["entry"]["entry"]["seq"] = 6, 6
    for bad, reason in (
        (node, "is not in the log"),
        (entry, "does not carry a valid signature"),
        (short, "shorter than the tree is deep"),
        (moved, "does not carry a valid signature"),
    ):
        with pytest.raises(standalone.VerificationError, match=reason):
            standalone.verify_proof(bad, key)


def test_the_later_checkpoint_extends_the_earlier_one(dd: DataDir) -> None:
    key = _key(dd)
    old, new = _sizes(dd)[0], _sizes(dd)[-1]
    document = json.loads(json.dumps(audit_proofs.prove_extension(dd, AUDITOR, old, now=T0).document))
    assert standalone.verify_proof(document, key).startswith(f"OK: the log of {new} entries")
    bent = copy.deepcopy(document)
    bent["proof"][-1] = "11" * 32
    with pytest.raises(standalone.VerificationError, match="does not extend"):
        standalone.verify_proof(bent, key)


@pytest.mark.parametrize("size", range(1, 18))
def test_the_verifiers_recursive_checks_agree_with_the_service_tree(size: int) -> None:
    """Every leaf of every small tree, and every prefix: two implementations, one answer."""
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
    root = merkle.root_from_leaf_hashes(leaves)
    for index in range(size):
        path = merkle.inclusion_proof(leaves, index)
        assert standalone.root_from_path(leaves[index], index, size, path) == root
    for old in range(1, size + 1):
        proof = merkle.consistency_proof(leaves, old)
        old_root = merkle.root_from_leaf_hashes(leaves[:old])
        assert standalone.roots_from_consistency(old, size, proof, old_root) == (old_root, root)


def test_proofs_name_what_is_missing(dd: DataDir) -> None:
    with pytest.raises(NotFoundError, match="checkpoint sizes: 7, 13"):
        audit_proofs.prove_entry(dd, AUDITOR, 2, tree_size=9, now=T0)
    with pytest.raises(ValidationError, match="does not cover entry 10"):
        audit_proofs.prove_entry(dd, AUDITOR, 10, tree_size=7, now=T0)
    with pytest.raises(ValidationError, match="not in the log"):
        audit_proofs.prove_entry(dd, AUDITOR, 999, now=T0)


def test_only_those_who_may_read_the_log_get_proofs(dd: DataDir) -> None:
    examiner = person("eve.examiner", Role.EXAMINER)
    with pytest.raises(PermissionDeniedError, match="read_audit"):
        audit_proofs.prove_entry(dd, examiner, 2, now=T0)
    with pytest.raises(PermissionDeniedError, match="read_audit"):
        audit_proofs.prove_extension(dd, examiner, 7, now=T0)
