"""What ``faceledger`` loads to answer ``--help``, and where its questions go.

The help of every command group, ``--version`` and a bad option are answered in a fresh Python
process (this one has long loaded everything), which then lists the modules it imported: none
of the face models, the HTTP framework, the database layer, the image, plot or crypto
libraries may be among them (each is loaded by the commands that need it). A module check,
not a timed one: ``bench/cli_startup.py`` measures the time.

Questions (passwords, codes, confirmations) go to stderr, so that with ``--json`` stdout is
exactly the JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from signed_in_unit import ADMIN, GALLERY, PASSWORD, VOUCHER, SignedInUnit, code_for, governed_unit

from faceledger.cli.common import EXIT_INTERRUPTED, ask

SRC = Path(__file__).resolve().parents[2] / "src"

#: Top-level packages a help text must not load, and faceledger's own heavy layers. (pydantic is
#: not among them: typer itself loads it to parse a command's parameters.)
HEAVY = (
    "numpy", "dlib", "faiss", "onnxruntime", "face_recognition_models", "face_recognition",
    "fastapi", "uvicorn", "starlette", "httpx", "jinja2", "segno", "limits", "multipart",
    "sqlalchemy", "alembic", "psycopg", "psycopg2", "matplotlib", "PIL", "pillow_heif",
    "cryptography", "argon2", "pyotp",
    "faceledger.services", "faceledger.adapters", "faceledger.pipeline", "faceledger.library",
    "faceledger.web", "faceledger.audit",
)  # fmt: skip

#: Every command line answered here without work: the help of each group and command, --version.
QUICK = [
    ["--help"],
    ["--version"],
    *(
        [group, "--help"]
        for group in (
            "user",
            "device",
            "token",
            "gallery",
            "eval",
            "audit",
            "witness",
            "policy",
            "case",
            "review",
        )
    ),
    *(
        [command, "--help"]
        for command in ("login", "logout", "init", "enroll", "search", "verify", "faces", "serve")
    ),
    ["review", "show", "--help"],
    ["audit", "verify", "--help"],
    ["gallery", "purge", "--help"],
    ["search", "--no-such-option"],
]

_PROBE = """
import json, sys
from typer.testing import CliRunner
from faceledger.cli.main import app

codes = [CliRunner().invoke(app, args).exit_code for args in json.loads(sys.argv[1])]
import faceledger

print(json.dumps({"codes": codes, "modules": sorted(sys.modules), "from": faceledger.__file__}))
"""


def _loaded(command_lines: list[list[str]]) -> tuple[list[int], list[str]]:
    """Exit codes of ``command_lines`` run in one fresh process, and every module it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(command_lines)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert Path(answer["from"]).is_relative_to(SRC)  # this tree, not another installed one
    return answer["codes"], answer["modules"]


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY)]


def test_help_and_version_load_no_heavy_module() -> None:
    codes, modules = _loaded(QUICK)
    assert codes == [0] * (len(QUICK) - 1) + [2]  # the bad option: a usage error, still without them
    assert "faceledger.cli.main" in modules
    assert _heavy(modules) == []


def test_a_command_that_opens_the_data_directory_loads_the_database_but_no_face_model(tmp_path: Path) -> None:
    """``audit public-key`` needs the database layer (which the check sees), not the vectors or models."""
    data = tmp_path / "data"
    codes, modules = _loaded([["init", str(data)], ["audit", "public-key", "-d", str(data)]])
    assert codes == [0, 0]
    loaded = {m.split(".")[0] for m in _heavy(modules)}
    assert {"sqlalchemy", "cryptography"} <= loaded
    face_and_web = {"numpy", "faiss", "dlib", "onnxruntime", "face_recognition_models", "PIL", "matplotlib"}
    assert loaded.isdisjoint(face_and_web | {"fastapi", "uvicorn", "starlette"})


# --- questions go to stderr -------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    with governed_unit(tmp_path_factory.mktemp("cli-prompts"), [("gina.gallery", "gallery_admin")]) as built:
        yield built


def test_login_with_json_prints_only_the_document(unit: SignedInUnit) -> None:
    uri = unit.create_and_activate("ivy.examiner", "examiner")
    unit.run(VOUCHER, "user", "vouch", "ivy.examiner")
    result = unit.invoke(
        "ivy.examiner", "login", "ivy.examiner", "--json", input=f"{PASSWORD}\n{code_for(uri)}\n"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["username"] == "ivy.examiner"
    assert result.stdout.startswith("{")
    assert "Password" not in result.stdout
    assert "Authenticator code" not in result.stdout
    assert "Password" in result.stderr
    assert "Authenticator code" in result.stderr


def test_a_question_without_an_answer_is_one_clear_error(unit: SignedInUnit) -> None:
    result = unit.invoke(ADMIN, "login", ADMIN, "--json", input="")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error: no answer to 'Password': standard input ended" in result.stderr
    assert "Traceback" not in result.output


def test_purge_asks_on_stderr_and_prints_only_json(unit: SignedInUnit) -> None:
    purge = ("gallery", "purge", GALLERY, "--reason", "court_order", "--authority", "Order 2026-1", "--json")
    declined = unit.invoke("gina.gallery", *purge, input="n\n")
    assert declined.exit_code == 1
    assert declined.stdout == ""
    assert "Permanently remove the whole gallery" in declined.stderr
    assert "nothing removed" in declined.stderr

    unanswered = unit.invoke("gina.gallery", *purge, input="")
    assert unanswered.exit_code == 1
    assert unanswered.stdout == ""
    assert "pass --yes to purge without asking" in unanswered.stderr

    done = unit.invoke("gina.gallery", *purge, input="y\n")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("{")
    assert json.loads(done.stdout)["galleries"] == 1
    assert "Permanently remove" in done.stderr


def test_ctrl_c_at_a_question_is_an_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> str:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise typer.Abort() from None  # what typer's prompt does on Ctrl-C

    monkeypatch.setattr(typer, "prompt", interrupted)
    with pytest.raises(typer.Exit) as stopped:
        ask("Password", hide_input=True)
    assert stopped.value.exit_code == EXIT_INTERRUPTED
    assert "error: interrupted" in capsys.readouterr().err
