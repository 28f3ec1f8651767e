"""The standalone verifier: every way of tampering with an export is caught and named."""

from __future__ import annotations

import ast
import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from audit_log_helpers import LOG_ID, Log, build_log, sample_event, stamp

from faceledger.adapters.signing import LogSigner
from faceledger.audit import verify
from faceledger.audit.checkpoint import append_checkpoint, sign_checkpoint
from faceledger.audit.export import export_text, write_export
from faceledger.audit.merkle import MerkleAccumulator

VERIFY_PY = Path(verify.__file__)
Export = dict[str, Any]


@pytest.fixture
def signer(tmp_path: Path) -> LogSigner:
    return LogSigner.generate(tmp_path / "keys" / "audit-signing.pem")


@pytest.fixture
def log(signer: LogSigner) -> Log:
    return build_log(signer, size=20, every=8)  # checkpoints at 8, 16 and 20


@pytest.fixture
def export(log: Log) -> Export:
    return log.export()


def check(export: Export, signer: LogSigner, earlier: list[Any] | None = None) -> verify.Summary:
    key = verify.load_public_key(_public_pem(signer))
    return verify.verify_export(export, key, earlier or [])


def _public_pem(signer: LogSigner) -> Path:
    path = signer.path.parent / "public.pem"
    if not path.exists():
        signer.public_key.write(path)
    return path


def fails(export: Export, signer: LogSigner, earlier: list[Any] | None = None) -> str:
    with pytest.raises(verify.VerificationError) as caught:
        check(export, signer, earlier)
    return str(caught.value)


def renumber(export: Export) -> None:
    """What a careful tamperer does after removing or inserting rows: close the gap."""
    for position, item in enumerate(export["entries"], start=1):
        item["entry"]["seq"] = position


def test_an_untouched_export_verifies(export: Export, signer: LogSigner) -> None:
    summary = check(export, signer)
    assert (summary.entries, summary.checkpoints, summary.latest.size) == (20, 3, 20)
    assert summary.line().startswith("OK: 20 entries and 3 signed checkpoint(s) verified")


def test_altered_entry(export: Export, signer: LogSigner) -> None:
    export["entries"][4]["entry"]["actor"] = "someone-else"
    assert (
        fails(export, signer) == "entry 5 was altered (or forged): its content does not match its signature"
    )


def test_altered_details_deep_inside(export: Export, signer: LogSigner) -> None:
    export["entries"][5]["entry"]["details"]["galleries"].append("extra")  # entry 6 is a search
    assert fails(export, signer).startswith("entry 6 was altered")


def test_altered_sequence_number(export: Export, signer: LogSigner) -> None:
    export["entries"][4]["entry"]["seq"] = 50
    assert fails(export, signer) == "entry 5 was altered: its sequence number was changed to 50"


def test_the_first_alteration_is_named(export: Export, signer: LogSigner) -> None:
    export["entries"][11]["entry"]["object"] = "x"
    export["entries"][2]["entry"]["object"] = "y"
    assert fails(export, signer).startswith("entry 3 was altered")


def test_signature_swapped_from_another_entry(export: Export, signer: LogSigner) -> None:
    export["entries"][4]["signature"] = export["entries"][5]["signature"]
    assert fails(export, signer).startswith("entry 5 was altered")


def test_removed_entry(export: Export, signer: LogSigner) -> None:
    del export["entries"][4]
    assert fails(export, signer) == "entry 5 was removed: entry 6 is at its place"


def test_removed_entry_with_the_rest_renumbered(export: Export, signer: LogSigner) -> None:
    del export["entries"][4]
    renumber(export)
    assert fails(export, signer) == (
        "entry 5 was removed: entry 6 is at its place (the entries after it were renumbered)"
    )


def test_removed_run_of_entries(export: Export, signer: LogSigner) -> None:
    del export["entries"][4:7]
    assert fails(export, signer) == "entries 5..7 were removed: entry 8 is at their place"


def test_removed_first_entry(export: Export, signer: LogSigner) -> None:
    del export["entries"][0]
    assert fails(export, signer) == "entry 1 was removed: entry 2 is at its place"


def test_reordered_entries(export: Export, signer: LogSigner) -> None:
    entries = export["entries"]
    entries[9], entries[10] = entries[10], entries[9]
    assert fails(export, signer) == "entries were reordered: entry 11 appears before entry 10"


def test_reordered_entries_with_numbers_swapped_back(export: Export, signer: LogSigner) -> None:
    entries = export["entries"]
    entries[9], entries[13] = entries[13], entries[9]
    renumber(export)
    assert fails(export, signer) == "entries were reordered: entry 14 appears before entry 10"


def test_inserted_forged_entry(export: Export, signer: LogSigner) -> None:
    forged = copy.deepcopy(export["entries"][4])
    forged["entry"]["details"] = {"note": "never happened"}
    export["entries"].insert(4, forged)
    assert fails(export, signer) == (
        "an entry was inserted at position 5: it is not signed by the log key, and entry 5 follows it"
    )


def test_inserted_entry_with_the_rest_renumbered(export: Export, signer: LogSigner) -> None:
    forged = copy.deepcopy(export["entries"][0])
    forged["entry"]["actor"] = "mallory"
    export["entries"].insert(3, forged)
    renumber(export)
    assert fails(export, signer) == (
        "an entry was inserted at position 4: it is not signed by the log key, and entry 4 follows it "
        "(the entries after it were renumbered)"
    )


def test_inserted_copy_of_a_real_entry(export: Export, signer: LogSigner) -> None:
    export["entries"].insert(6, copy.deepcopy(export["entries"][2]))
    assert fails(export, signer) == "an entry was inserted at position 7: a copy of entry 3"


def test_truncated_tail_against_the_exports_own_checkpoint(export: Export, signer: LogSigner) -> None:
    del export["entries"][17:]
    assert fails(export, signer) == "truncated: checkpoint 3 covers 20 entries, the export has 17"


def test_truncation_hidden_from_the_export_is_caught_by_an_earlier_checkpoint(
    log: Log, export: Export, signer: LogSigner
) -> None:
    held = [log.checkpoints[-1].to_json()]  # the auditor kept the size-20 checkpoint
    del export["entries"][16:]
    export["checkpoints"] = export["checkpoints"][:2]  # and the tamperer dropped the checkpoint too
    assert check(export, signer).entries == 16  # on its own the cut export looks whole
    assert (
        fails(export, signer, held)
        == "truncated: the earlier checkpoint covers 20 entries, the export has 16"
    )


def test_history_rewritten_with_the_key_is_caught_by_an_earlier_checkpoint(
    log: Log, signer: LogSigner
) -> None:
    """Someone who holds the key re-signs a rewritten log: only a checkpoint kept elsewhere shows it."""
    held = [cp.to_json() for cp in log.checkpoints]
    rewritten = Log(signer, [], [], MerkleAccumulator())
    for n in range(1, 21):
        rewritten.append(sample_event(n + 1 if n == 3 else n))  # entry 3 now says something else
    rewritten.checkpoint()
    forged_export = rewritten.export()
    assert check(forged_export, signer).entries == 20
    message = fails(forged_export, signer, held)
    assert message.startswith("the export's entries 1..8 differ from earlier checkpoint 1 (size 8")
    assert message.endswith("the history it covers was rewritten (by someone holding the log key)")


def test_earlier_checkpoint_that_the_export_extends(log: Log, signer: LogSigner) -> None:
    held = [log.checkpoints[0].to_json()]
    for n in range(21, 31):
        log.append(sample_event(n))
    log.checkpoint()
    summary = check(log.export(), signer, held)
    assert summary.entries == 30
    assert "consistent with 1 earlier checkpoint(s) (size 8)" in summary.line()


def test_forged_checkpoint(export: Export, signer: LogSigner) -> None:
    export["checkpoints"][1]["tree_size"] = 17
    assert fails(export, signer) == (
        "checkpoint 2 (size 17, signed 2024-05-01T09:00:16.000000Z) does not carry a valid signature "
        "of this key: forged or altered"
    )


def test_checkpoint_signed_by_another_key(
    tmp_path: Path, log: Log, export: Export, signer: LogSigner
) -> None:
    mallory = LogSigner.generate(tmp_path / "mallory.pem")
    forged = sign_checkpoint(
        log_id=LOG_ID, tree_size=20, root_hash=log.accumulator.root(), timestamp=stamp(99), signer=mallory
    ).to_json()
    forged["key_fingerprint"] = signer.fingerprint  # claims to be the log's
    export["checkpoints"].append(forged)
    assert fails(export, signer).startswith("checkpoint 4 (size 20, signed 2024-05-01T09:01:39.000000Z)")


def test_earlier_checkpoint_with_a_bad_signature(log: Log, export: Export, signer: LogSigner) -> None:
    held = log.checkpoints[0].to_json()
    held["root_hash"] = "00" * 32
    assert "earlier checkpoint 1 (size 8" in fails(export, signer, [held])


def test_earlier_checkpoint_of_another_log(log: Log, export: Export, signer: LogSigner) -> None:
    other = sign_checkpoint(
        log_id="other-log",
        tree_size=8,
        root_hash=log.checkpoints[0].root_hash,
        timestamp=stamp(8),
        signer=signer,
    )
    assert "belongs to log 'other-log'" in fails(export, signer, [other.to_json()])


def test_entries_past_the_last_checkpoint(log: Log, signer: LogSigner) -> None:
    log.append(sample_event(21))
    assert fails(log.export(), signer) == "entry 21 is covered by no signed checkpoint in the export"


def test_no_checkpoint_at_all(export: Export, signer: LogSigner) -> None:
    export["checkpoints"] = []
    assert "holds no signed checkpoint" in fails(export, signer)


def test_wrong_key(tmp_path: Path, export: Export) -> None:
    stranger = LogSigner.generate(tmp_path / "stranger.pem")
    message = fails(export, stranger)
    assert message.startswith(f"the export was signed by key {export['key_fingerprint']}")
    assert message.endswith(f"the key given is {stranger.fingerprint}")


def test_malformed_entry_is_named_by_position(export: Export, signer: LogSigner) -> None:
    export["entries"][2]["entry"]["details"]["score"] = 0.5
    assert fails(export, signer) == (
        "the entry at position 3 is malformed (non-integer number 0.5): it was altered"
    )


def test_not_an_export(signer: LogSigner) -> None:
    with pytest.raises(verify.InputError, match="not a faceledger audit export"):
        check({"format": "something else"}, signer)


# --- the command line, as an auditor runs it ------------------------------------------


@pytest.fixture
def files(tmp_path: Path, log: Log, signer: LogSigner) -> dict[str, Path]:
    export_path = tmp_path / "audit-export.json"
    from faceledger.audit.export import build_export

    write_export(
        export_path,
        build_export(
            log_id=LOG_ID,
            key_fingerprint=signer.fingerprint,
            entries=log.entries,
            checkpoints=log.checkpoints,
            exported_at=stamp(0),
        ),
    )
    checkpoints = tmp_path / "shipped" / "checkpoints.jsonl"
    for cp in log.checkpoints:
        append_checkpoint(checkpoints, cp)
    return {"export": export_path, "key": _public_pem(signer), "checkpoints": checkpoints}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def test_module_entry_point_succeeds(files: dict[str, Path]) -> None:
    result = run("-m", "faceledger.audit.verify", files["export"], "--key", files["key"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("OK: 20 entries")


def test_without_a_checkpoint_it_warns_that_truncation_cannot_be_detected(files: dict[str, Path]) -> None:
    plain = run("-m", "faceledger.audit.verify", files["export"], "--key", files["key"])
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.strip() == verify.NO_CHECKPOINT_WARNING
    assert "cannot be detected" in plain.stderr
    held = run(
        "-m",
        "faceledger.audit.verify",
        files["export"],
        "--key",
        files["key"],
        "--checkpoint",
        files["checkpoints"],
    )
    assert held.returncode == 0, held.stderr
    assert held.stderr == ""
    assert (
        held.stdout
        == plain.stdout.replace("\n", "") + "; consistent with 3 earlier checkpoint(s) (size 8, 16, 20)\n"
    )


def test_module_entry_point_reports_tampering(files: dict[str, Path]) -> None:
    export = verify.load_export(files["export"])
    export["entries"][4]["entry"]["actor"] = "mallory"
    files["export"].write_text(json.dumps(export))
    result = run("-m", "faceledger.audit.verify", files["export"], "--key", files["key"])
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "FAILED: entry 5 was altered (or forged): its content does not match its signature"
    )


def test_unusable_input_exits_2(tmp_path: Path, files: dict[str, Path]) -> None:
    result = run("-m", "faceledger.audit.verify", files["export"], "--key", files["export"])
    assert result.returncode == 2
    assert "is not a PEM public key" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "faceledger-audit-export", "format": 1}')
    result = run("-m", "faceledger.audit.verify", broken, "--key", files["key"])
    assert result.returncode == 2
    assert "duplicate key 'format'" in result.stderr


def test_copied_file_runs_without_faceledger(tmp_path: Path, files: dict[str, Path]) -> None:
    """An auditor copies verify.py alone; it must run with faceledger made unimportable."""
    copied = tmp_path / "auditor" / "verify.py"
    copied.parent.mkdir()
    shutil.copy(VERIFY_PY, copied)
    block = (
        "import runpy, sys; sys.modules['faceledger'] = None; "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    args: list[str | Path] = [copied, files["export"], "--key", files["key"]]
    args += ["--checkpoint", files["checkpoints"]]
    result = run("-I", "-c", block, *args, cwd=copied.parent)
    assert result.returncode == 0, result.stderr
    assert "consistent with 3 earlier checkpoint(s) (size 8, 16, 20)" in result.stdout
    direct = run("-I", *args, cwd=copied.parent)
    assert (direct.returncode, direct.stdout) == (0, result.stdout)


def test_cut_export_fails_against_the_shipped_checkpoint_file(files: dict[str, Path], log: Log) -> None:
    export = verify.load_export(files["export"])
    del export["entries"][16:]
    export["checkpoints"] = export["checkpoints"][:2]
    files["export"].write_text(export_text(export))
    result = run(VERIFY_PY, files["export"], "--key", files["key"], "--checkpoint", files["checkpoints"])
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "FAILED: truncated: the earlier checkpoint covers 20 entries, the export has 16"
    )


def test_verify_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(VERIFY_PY.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would tie verify.py to its package"
            imported.add((node.module or "").split(".")[0])
    outside = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    assert outside == {"cryptography"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: e["entries"].pop(),
        lambda e: e["entries"].insert(0, copy.deepcopy(e["entries"][0])),
        lambda e: e["entries"].reverse(),
        lambda e: e["entries"][19]["entry"]["details"].clear(),
        lambda e: e.update(log_id="another-log"),
        lambda e: e["checkpoints"][0].update(timestamp="2030-01-01T00:00:00.000000Z"),
    ],
)
def test_no_tampering_goes_unnoticed(
    export: Export, signer: LogSigner, tamper: Callable[[Export], Any]
) -> None:
    tamper(export)
    fails(export, signer)


def test_text_that_is_not_unicode_is_named_as_malformed(export: Export, signer: LogSigner) -> None:
    export["entries"][1]["entry"]["actor"] = "\ud800"
    assert fails(export, signer).startswith("the entry at position 2 is malformed (")
