"""The ``faceledger`` command as a person and a script use it, on real photos and a real data directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceledger.cli.main import app

runner = CliRunner()
PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair")


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_help_lists_every_command_and_each_has_help() -> None:
    text = run("--help")
    for command in ("init", "gallery", "enroll", "search", "verify", "faces", "eval"):
        assert command in text
    for command in (
        ["init"], ["gallery", "create"], ["gallery", "list"], ["gallery", "show"], ["gallery", "purge"],
        ["enroll"], ["search"], ["verify"], ["faces"], ["eval", "lfw"], ["eval", "identify"],
    ):  # fmt: skip
        assert "Usage" in run(*command, "--help")


@pytest.fixture(scope="module")
def enrolment_folder(lfw_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("enrol")
    for person in PEOPLE:
        (folder / person).mkdir()
        for number in (1, 2):
            name = f"{person}_{number:04d}.jpg"
            shutil.copyfile(lfw_images / person / name, folder / person / name)
    return folder


@pytest.fixture(scope="module")
def data_dir(enrolment_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "data"
    run("init", str(path))
    run(
        "gallery", "create", "arrests", "-d", str(path),
        "--legal-basis", "State Code 12-34", "--source-description", "booking photos", "--retention-days", "3650",
    )  # fmt: skip
    out = run(
        "enroll", "arrests", str(enrolment_folder), "-d", str(path),
        "--enrolled-by", "examiner.one", "--collected-on", "2020-02-03", "--workers", "1", "--json",
    )  # fmt: skip
    summary = json.loads(out)
    assert summary["enrolled"] == 6, summary
    return path


def test_gallery_list_and_show_report_what_was_enrolled(data_dir: Path) -> None:
    rows = json.loads(run("gallery", "list", "-d", str(data_dir), "--json"))
    assert [(r["name"], r["subjects"], r["images"], r["faces"]) for r in rows] == [("arrests", 3, 6, 6)]
    shown = json.loads(run("gallery", "show", "arrests", "--subjects", "-d", str(data_dir), "--json"))
    assert shown["legal_basis"] == "State Code 12-34"
    assert sorted(s["subject_id"] for s in shown["subject_list"]) == sorted(PEOPLE)


def test_search_jsonl_ranks_the_right_person_first(data_dir: Path, lfw_images: Path) -> None:
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    lines = run("search", str(probe), "-g", "arrests", "-d", str(data_dir), "--jsonl").splitlines()
    assert len(lines) == 1
    face = json.loads(lines[0])
    assert face["subjects"][0]["subject_id"] == "Colin_Powell"
    assert face["subjects"][0]["rank"] == 1
    assert face["subjects"][0]["score"] > face["subjects"][1]["score"]
    assert face["model"]["backend"] == "dlib"
    assert isinstance(face["threshold"], float)
    assert len({c["subject_id"] for c in face["subjects"]}) == len(face["subjects"])
    human = run("search", str(probe), "-g", "arrests", "-d", str(data_dir))
    assert "arrests/Colin_Powell" in human
    assert "leads only" in human


def test_verify_same_and_different_people(lfw_images: Path, data_dir: Path) -> None:
    a = lfw_images / "George_W_Bush" / "George_W_Bush_0010.jpg"
    b = lfw_images / "George_W_Bush" / "George_W_Bush_0011.jpg"
    c = lfw_images / "Tony_Blair" / "Tony_Blair_0010.jpg"
    same = json.loads(run("verify", str(a), str(b), "-d", str(data_dir), "--json"))
    different = json.loads(run("verify", str(a), str(c), "-d", str(data_dir), "--json"))
    assert same["same_person"] is True
    assert different["same_person"] is False
    assert same["score"] > different["score"]


def test_faces_jsonl_prints_one_line_per_face_with_a_unit_embedding(lfw_images: Path) -> None:
    photo = lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg"
    lines = run("faces", str(photo), "--jsonl").splitlines()
    assert len(lines) >= 1
    face = json.loads(lines[0])
    assert face["path"] == str(photo)
    assert set(face["box"]) == {"left", "top", "right", "bottom"}
    assert {"right_eye", "left_eye", "nose"} <= set(face["landmarks"])
    assert 0 <= face["quality"]["score"] <= 100
    assert len(face["model"]["weights_sha256"]) == 64
    vector = np.asarray(face["embedding"])
    assert vector.shape == (128,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_purge_subject_removes_it_from_search(data_dir: Path, lfw_images: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    report = json.loads(
        run("gallery", "purge", "arrests", "--subject", "Tony_Blair", "--yes", "-d", str(copy), "--json")
    )
    assert (report["subjects"], report["images"], report["faces"], report["vectors"]) == (1, 2, 2, 2)
    probe = lfw_images / "Tony_Blair" / "Tony_Blair_0010.jpg"
    face = json.loads(run("search", str(probe), "-g", "arrests", "-d", str(copy), "--jsonl"))
    assert "Tony_Blair" not in {c["subject_id"] for c in face["candidates"]}


def test_bad_input_gets_one_clear_line_and_no_traceback(data_dir: Path, tmp_path: Path, lfw_images: Path) -> None:
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a photo")
    out = runner.invoke(app, ["search", str(text_file), "-g", "arrests", "-d", str(data_dir)])
    assert out.exit_code == 1
    assert "not a supported image format" in out.output
    assert "Traceback" not in out.output
    photo = lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg"
    missing = runner.invoke(app, ["search", str(photo), "-g", "nope", "-d", str(data_dir)])
    assert missing.exit_code == 1
    assert "nope" in missing.output
    uninitialised = runner.invoke(app, ["gallery", "list", "-d", str(tmp_path / "empty")])
    assert uninitialised.exit_code == 1
    assert "faceledger init" in uninitialised.output


def test_faces_jsonl_reports_a_broken_file_and_goes_on(lfw_images: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    photo = lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg"
    out = runner.invoke(app, ["faces", str(broken), str(photo), "--jsonl"])
    assert out.exit_code == 1
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert lines[0]["path"] == str(broken)
    assert lines[0]["error"]["code"] == "bad_image"
    assert lines[1]["path"] == str(photo)


def test_the_installed_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("faceledger")
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("faceledger ")
