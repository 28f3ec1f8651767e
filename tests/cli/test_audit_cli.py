"""``faceledger audit ...`` as auditors, supervisors and outside verifiers use it, on real data.

One signed-in unit is set up per module under the example policy (see ``signed_in_unit``);
each test works on its own copy of it, since several change or damage the log on purpose.
Reading, exporting and checkpointing the log need an auditor, reports an auditor or a
supervisor; ``audit verify`` needs no account at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from signed_in_unit import ADMIN, SignedInUnit, build_unit, runner

from faceledger.audit import events as ev
from faceledger.audit.checkpoint import read_checkpoints
from faceledger.cli.main import app
from faceledger.services import audit
from faceledger.services.datadir import DataDir

OTTO, SUE, EVE = "otto.auditor", "sue.super", "eve.examiner"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    people = [(OTTO, "auditor"), (SUE, "supervisor"), (EVE, "examiner")]
    unit = build_unit(tmp_path_factory.mktemp("audit-cli"), people, example_policy=True)
    yield unit
    unit.close()


@pytest.fixture
def unit(template: SignedInUnit, tmp_path: Path) -> Iterator[SignedInUnit]:
    copied = template.copy(tmp_path / "unit")
    yield copied
    copied.close()


def verify(*args: str, code: int = 0) -> str:
    """``faceledger audit verify``, run by someone with no account (an outside auditor)."""
    result = runner.invoke(app, ["audit", "verify", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def _size(dd: DataDir) -> int:
    return audit.log_info(dd).size


def _fill(dd: DataDir) -> int:
    """Four entries by people outside the unit's accounts; returns the log's size after them."""
    events = [
        ev.search(
            "alice",
            search_id="1",
            probe_sha256="ab" * 32,
            galleries=["custody"],
            model_key="dlib/test",
            threshold="0.930000",
            score_normalisation="none",
            top_k=10,
            case_ref="CASE-1",
            purpose="investigation",
        ),
        ev.candidates_shown("alice", search_id="1", candidates=[{"rank": 1, "face_id": 3}]),
        ev.policy_denied("bob", attempted="search", target="gallery:custody", reason="unit not allowed"),
        ev.sign_in("carol", device_id=None, mfa=True),
    ]
    for event in events:
        with dd.store.begin() as conn:
            audit.record(dd, conn, event)
    return _size(dd)


def test_help_lists_every_audit_command() -> None:
    text = runner.invoke(app, ["audit", "--help"]).output
    for command in ("export", "verify", "checkpoint", "public-key", "log", "report"):
        assert command in text
        result = runner.invoke(app, ["audit", command, "--help"])  # an unknown command exits 2
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: faceledger audit {command} "), result.output


def test_public_key_prints_writes_and_names_its_fingerprint(unit: SignedInUnit, tmp_path: Path) -> None:
    dd = unit.dd
    assert unit.stdout(OTTO, "audit", "public-key") == dd.audit_public_key_path.read_text()
    out = tmp_path / "auditor" / "key.pem"
    assert "sha256:" in unit.run(OTTO, "audit", "public-key", "--out", str(out))
    assert out.read_bytes() == dd.audit_public_key_path.read_bytes()
    document = json.loads(unit.stdout(OTTO, "audit", "public-key", "--json"))
    assert document["fingerprint"] == audit.log_info(dd).key_fingerprint


def test_the_public_key_needs_no_account_as_over_the_api(unit: SignedInUnit) -> None:
    """The key is public (GET /audit/public-key needs no sign-in): no one is refused, nothing recorded."""
    size = _size(unit.dd)
    for who in (None, ADMIN, EVE):
        assert unit.stdout(who, "audit", "public-key") == unit.dd.audit_public_key_path.read_text()
    assert _size(unit.dd) == size


def test_export_then_verify_passes_and_a_changed_row_fails_naming_it(
    unit: SignedInUnit, tmp_path: Path
) -> None:
    dd = unit.dd
    size = _fill(dd)
    export, key = tmp_path / "export.json", str(dd.audit_public_key_path)
    shipped = tmp_path / "shipped.jsonl"
    unit.run(OTTO, "audit", "checkpoint")
    shipped.write_bytes(dd.checkpoint_path.read_bytes())

    summary = json.loads(unit.stdout(OTTO, "audit", "export", str(export), "--json"))
    assert summary["entries"] == size + 1  # the export records itself
    assert summary["checkpoint"]["tree_size"] == size + 1
    recorded = unit.entries(action="export")[-1]
    assert (recorded.actor, recorded.details["destination"]) == (OTTO, str(export.resolve()))
    assert verify(str(export), "--key", key, "--checkpoint", str(shipped)).startswith(
        f"OK: {size + 1} entries"
    )

    with sqlite3.connect(dd.path / "faceledger.db") as db:  # someone with access to the database file
        db.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3")
    unit.run(OTTO, "audit", "export", str(export))
    failed = verify(str(export), "--key", key, code=1)
    assert failed == "FAILED: entry 3 was altered (or forged): its content does not match its signature\n"


def test_the_service_refuses_a_cut_log_and_verify_catches_it_with_the_shipped_checkpoints(
    unit: SignedInUnit, tmp_path: Path
) -> None:
    dd = unit.dd
    size = _fill(dd)
    export, key = tmp_path / "export.json", str(dd.audit_public_key_path)
    unit.run(OTTO, "audit", "checkpoint")
    shipped = tmp_path / "shipped.jsonl"
    shipped.write_bytes(dd.checkpoint_path.read_bytes())
    with sqlite3.connect(dd.path / "faceledger.db") as db:
        db.execute("DELETE FROM audit_entries WHERE seq > 2")
        db.execute("DELETE FROM audit_checkpoints")
        db.execute("UPDATE audit_log SET size = 2")
    refused = unit.run(OTTO, "audit", "export", str(export), code=1)
    assert "the stored log has 2 entries, but the newest checkpoint" in refused
    assert f"covers {size}" in refused
    assert not export.exists()
    dd.checkpoint_path.unlink()  # the attacker with shell access deletes the service's file too
    unit.run(OTTO, "audit", "export", str(export))
    assert verify(str(export), "--key", key).startswith("OK: 3 entries")
    failed = verify(str(export), "--key", key, "--checkpoint", str(shipped), code=1)
    assert failed == f"FAILED: truncated: the earlier checkpoint covers {size} entries, the export has 3\n"


def test_verify_reports_unreadable_input_with_status_2(unit: SignedInUnit, tmp_path: Path) -> None:
    not_json = tmp_path / "export.json"
    not_json.write_text("{not json")
    out = verify(str(not_json), "--key", str(unit.dd.audit_public_key_path), code=2)
    assert out.startswith("error: ")
    assert "export.json" in out


def test_checkpoint_appends_to_the_file_outside_the_database(unit: SignedInUnit) -> None:
    dd = unit.dd
    size = _fill(dd)
    before = read_checkpoints(dd.checkpoint_path) if dd.checkpoint_path.exists() else []
    document = json.loads(unit.stdout(OTTO, "audit", "checkpoint", "--json"))
    assert document["tree_size"] == size
    assert document["file"] == str(dd.checkpoint_path)
    assert [c.tree_size for c in read_checkpoints(dd.checkpoint_path)] == [c.tree_size for c in before] + [
        size
    ]
    assert "ship this file" in unit.run(OTTO, "audit", "checkpoint")


def test_log_filters_and_pages(unit: SignedInUnit) -> None:
    size = _fill(unit.dd)
    page = json.loads(unit.stdout(OTTO, "audit", "log", "--json", "--per-page", "2", "--page", "2"))
    assert page["total"] == size
    assert [e["seq"] for e in page["entries"]] == [3, 4]
    lines = unit.stdout(OTTO, "audit", "log", "--jsonl", "--actor", "alice").splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["search", "candidates_shown"]
    assert json.loads(unit.stdout(OTTO, "audit", "log", "--json", "--object", "search:1"))["total"] == 2
    assert json.loads(unit.stdout(OTTO, "audit", "log", "--json", "--until", "2000-01-01"))["total"] == 0
    text = unit.run(OTTO, "audit", "log", "--action", "policy_denied")
    assert "bob" in text
    assert "1 matching entries" in text
    assert "is not a date" in unit.run(OTTO, "audit", "log", "--since", "yesterday", code=2)
    assert "no time zone" in unit.run(OTTO, "audit", "log", "--since", "2024-01-01T10:00:00", code=2)


@pytest.mark.parametrize("who", [OTTO, SUE])
def test_report_counts_searches_and_denials(unit: SignedInUnit, who: str) -> None:
    _fill(unit.dd)
    report = json.loads(unit.stdout(who, "audit", "report", "--json", "--since", "2000-01-01"))
    assert report["searches"] == 1
    assert report["searches_by_user"] == {"alice": 1}
    assert report["searches_by_purpose"] == {"investigation": 1}
    assert report["searches_by_outcome"] == {"candidates shown": 1}
    assert report["denials_by_rule"] == {"(not recorded)": 1}
    empty = json.loads(unit.stdout(who, "audit", "report", "--json", "--until", "2000-01-01"))
    assert (empty["searches"], empty["denials"]) == (0, 0)
    text = unit.run(who, "audit", "report")
    assert "searches by unit" in text
    assert "denials by rule" in text


def test_the_log_is_the_auditors_and_every_refusal_is_recorded_in_it(unit: SignedInUnit) -> None:
    out = unit.run(None, "audit", "log", code=1)
    assert "not signed in" in out
    assert "faceledger login" in out
    refusals = [
        (EVE, ("log",), "read_audit"),
        (SUE, ("checkpoint",), "export_audit"),
        (SUE, ("export", str(unit.root / "out.json")), "export_audit"),
        (EVE, ("report",), "reports"),
    ]
    for who, args, action in refusals:
        out = unit.run(who, "audit", *args, code=1)
        assert out.startswith(f"error: refused: '{action}' needs one of the roles: "), out
        assert len(out.strip().splitlines()) == 1
    denied = unit.entries(action="policy_denied")
    assert [(e.actor, e.object, e.details["attempted"]) for e in denied] == [
        (who, "audit_log", action) for who, _args, action in refusals
    ]
    assert not (unit.root / "out.json").exists()


def test_a_folder_that_is_not_a_data_directory_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "log", "-d", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "faceledger init" in result.output


def test_export_to_a_folder_is_refused_before_anything_is_recorded(
    unit: SignedInUnit, tmp_path: Path
) -> None:
    size = _size(unit.dd)
    out = unit.run(OTTO, "audit", "export", str(tmp_path), code=1)
    assert "is a folder; give the export a file name" in out
    assert _size(unit.dd) == size


def test_an_auditor_proves_an_entry_and_an_extension_and_verifies_both(
    unit: SignedInUnit, tmp_path: Path
) -> None:
    dd = unit.dd
    _fill(dd)
    first = json.loads(unit.stdout(OTTO, "audit", "checkpoint", "--json"))["tree_size"]
    _fill(dd)
    key = str(dd.audit_public_key_path)
    entry, extension = tmp_path / "entry.json", tmp_path / "extension.json"
    assert "inclusion proof written" in unit.run(
        OTTO, "audit", "prove", "2", "--tree-size", str(first), "-o", str(entry)
    )
    assert verify(str(entry), "--key", key, "--proof").startswith(
        f"OK: entry 2 is in the log of {first} entries"
    )
    unit.run(OTTO, "audit", "checkpoint")
    document = json.loads(unit.stdout(OTTO, "audit", "prove-extension", str(first)))
    extension.write_text(json.dumps(document))
    assert verify(str(extension), "--key", key, "--proof").startswith("OK: the log of ")
    refused = unit.run(EVE, "audit", "prove", "2", code=1)
    assert "'read_audit' needs one of the roles" in refused
