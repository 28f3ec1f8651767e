"""Red team: someone holding the log key and the server's files cuts the log and re-signs it.

They delete the tail, fix the log's size, delete the stored checkpoints and the service's
checkpoint file, then let the service sign fresh checkpoints of the shorter log: the export
verifies on its own. A witness on another machine, which countersigned the longer log
earlier, refuses to countersign the cut one, and an auditor who verifies against the
witness's countersignatures sees the cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import append, data_dir
from cases_helpers import T0, person
from sqlalchemy import text
from typer.testing import CliRunner

from faceledger.cli.main import app
from faceledger.domain.roles import Role
from faceledger.errors import ValidationError
from faceledger.services import audit, audit_proofs, witness
from faceledger.services.datadir import DataDir

runner = CliRunner()
AUDITOR = person("ann.auditor", Role.AUDITOR)


@pytest.fixture
def dd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DataDir]:
    with data_dir("sqlite", tmp_path / "data", request=request) as opened:
        yield opened


def _cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def _witnessed_longer_log(dd: DataDir, folder: Path, tmp_path: Path) -> int:
    """The witness countersigns a first checkpoint, then (with a proof) a later one; returns its size."""
    _cli("witness", "init", str(folder), "--log-key", str(dd.audit_public_key_path))
    append(dd, 5)
    first = audit.checkpoint(dd)
    bare = tmp_path / "first.json"
    bare.write_text(json.dumps(first.to_json()))
    assert f"countersigned the log at {first.tree_size} entries" in _cli(
        "witness", "countersign", str(folder), str(bare)
    )
    append(dd, 5, first=6)
    later = audit.checkpoint(dd)
    proof = tmp_path / "grew.json"
    proof.write_text(json.dumps(audit_proofs.prove_extension(dd, AUDITOR, first.tree_size, now=T0).document))
    assert f"at {later.tree_size} entries" in _cli("witness", "countersign", str(folder), str(proof))
    return later.tree_size


def _cut(dd: DataDir, keep: int) -> None:
    with dd.store.begin() as conn:
        conn.execute(text(f"DELETE FROM audit_entries WHERE seq > {keep}"))
        conn.execute(text("DELETE FROM audit_checkpoints"))
        conn.execute(text(f"UPDATE audit_log SET size = {keep}"))
    dd.checkpoint_path.unlink()


def test_a_cut_and_re_signed_log_fails_against_the_witness(dd: DataDir, tmp_path: Path) -> None:
    folder = tmp_path / "witness"
    size = _witnessed_longer_log(dd, folder, tmp_path)
    _cut(dd, 4)
    export = tmp_path / "export.json"
    audit.export_log(dd, export, actor="mallory")  # the service signs the short log: it knows no better
    key = str(dd.audit_public_key_path)
    alone = _cli("audit", "verify", str(export), "--key", key)
    assert alone.startswith("OK: 5 entries")  # consistent in itself
    caught = _cli(
        "audit", "verify", str(export), "--key", key,
        "--witness-key", str(folder / witness.PUBLIC), "--countersigned", str(folder / witness.COUNTERSIGNED),
        code=1,
    )  # fmt: skip
    assert "truncated: the earlier checkpoint covers" in caught
    assert "the export has 5" in caught
    assert size > 5


def test_the_witness_will_not_countersign_the_cut_log(dd: DataDir, tmp_path: Path) -> None:
    folder = tmp_path / "witness"
    size = _witnessed_longer_log(dd, folder, tmp_path)
    _cut(dd, 4)
    fresh = audit.checkpoint(dd)
    with pytest.raises(ValidationError, match=f"already countersigned the log at {size} entries"):
        witness.countersign(folder, fresh.to_json())
    append(dd, 3, first=5)
    audit.checkpoint(dd)
    from_the_cut = audit_proofs.prove_extension(dd, AUDITOR, fresh.tree_size, now=T0).document
    with pytest.raises(ValidationError, match="starts from the log of"):
        witness.countersign(folder, from_the_cut)
    lines = (folder / witness.COUNTERSIGNED).read_text().splitlines()
    assert len(lines) == 2  # nothing countersigned since the cut


def test_a_proof_altered_on_its_way_is_not_countersigned(dd: DataDir, tmp_path: Path) -> None:
    folder = tmp_path / "witness"
    size = _witnessed_longer_log(dd, folder, tmp_path)
    append(dd, 2, first=11)
    audit.checkpoint(dd)
    document = audit_proofs.prove_extension(dd, AUDITOR, size, now=T0).document
    bent = json.loads(json.dumps(document))
    bent["proof"][0] = "ab" * 32
    with pytest.raises(ValidationError, match=r"not countersigned: the log of .* does not extend"):
        witness.countersign(folder, bent)
    assert witness.countersign(folder, document).tree_size > size
