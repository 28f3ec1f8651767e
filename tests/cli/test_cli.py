"""The ``faceledger`` command as a unit's people and scripts use it, on real photos and a real data directory.

One unit is set up per module, as a new installation is (see ``signed_in_unit``), under the
shipped example policy: a system administrator, a gallery administrator, an examiner and an
auditor, each signed in on a registered workstation. Gallery work, searches and audit
reading act as them and are decided by the policy; ``faces`` works without an account.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from signed_in_unit import ADMIN, CASE, GALLERY, PURPOSE, SignedInUnit, build_unit, runner

from faceledger.cli.main import app

pytestmark = pytest.mark.faces

GINA, EVE, OTTO = "gina.gallery", "eve.examiner", "otto.auditor"
PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair")
BOUND = ("--case", CASE, "--purpose", PURPOSE)  # what every search and comparison must carry
PURGE_WHY = ("--reason", "court_order", "--authority", "Order 2026-123")


def _copy_people(lfw_images: Path, folder: Path, people: tuple[str, ...]) -> Path:
    for person in people:
        (folder / person).mkdir(parents=True)
        for number in (1, 2):
            name = f"{person}_{number:04d}.jpg"
            shutil.copyfile(lfw_images / person / name, folder / person / name)
    return folder


@pytest.fixture(scope="module")
def unit(lfw_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    root = tmp_path_factory.mktemp("cli")
    people = [(GINA, "gallery_admin"), (EVE, "examiner"), (OTTO, "auditor")]
    unit = build_unit(root, people, example_policy=True)
    unit.run(
        GINA, "gallery", "create", GALLERY,
        "--legal-basis", "PACE s.64A", "--source-description", "custody photos", "--retention-days", "2190",
    )  # fmt: skip
    folder = _copy_people(lfw_images, root / "enrol", PEOPLE)
    summary = json.loads(
        unit.stdout(
            GINA, "enroll", GALLERY, str(folder), "--collected-on", "2020-02-03", "--workers", "1", "--json"
        )
    )
    assert summary["enrolled"] == 6, summary
    yield unit
    unit.close()


def _one_line_error(out: str) -> str:
    assert out.startswith("error: "), out
    assert len(out.strip().splitlines()) == 1, out
    return out


def test_help_lists_every_command_and_each_has_help() -> None:
    text = runner.invoke(app, ["--help"]).output
    for name in (
        "init",
        "gallery",
        "enroll",
        "search",
        "verify",
        "faces",
        "eval",
        "audit",
        "login",
        "policy",
    ):
        assert name in text
    for command in (
        ["init"], ["gallery", "create"], ["gallery", "list"], ["gallery", "show"], ["gallery", "purge"],
        ["enroll"], ["search"], ["verify"], ["faces"], ["eval", "lfw"], ["eval", "identify"],
        ["eval", "quality"], ["audit", "log"], ["audit", "verify"],
    ):  # fmt: skip
        # An unknown command also prints "Usage" (of its group) but exits 2: check the code and the name.
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: faceledger {' '.join(command)} "), result.output


def test_gallery_work_is_recorded_as_the_gallery_administrator(unit: SignedInUnit) -> None:
    created = json.loads(unit.stdout(OTTO, "audit", "log", "--action", "gallery_created", "--json"))
    assert [(e["actor"], e["object"]) for e in created["entries"]] == [(GINA, f"gallery:{GALLERY}")]
    assert created["entries"][0]["details"]["legal_basis"] == "PACE s.64A"
    enrolments = unit.entries(action="enrol")
    assert len(enrolments) >= 6  # one per image (more once the purge test has enrolled its own)
    assert {e.actor for e in enrolments} == {GINA}
    assert {e.details["provenance"]["enrolled_by"] for e in enrolments} == {GINA}


def test_every_role_may_list_and_show_galleries_but_only_some_see_who_is_in_them(unit: SignedInUnit) -> None:
    for who in (EVE, OTTO, ADMIN):
        rows = json.loads(unit.stdout(who, "gallery", "list", "--json"))
        assert [(r["name"], r["subjects"], r["images"], r["faces"]) for r in rows] == [(GALLERY, 3, 6, 6)]
    shown = json.loads(unit.stdout(EVE, "gallery", "show", GALLERY, "--json"))
    assert shown["legal_basis"] == "PACE s.64A"
    assert "subject_list" not in shown
    for who in (GINA, OTTO):  # the people in it: gallery administrators and auditors, as over the API
        shown = json.loads(unit.stdout(who, "gallery", "show", GALLERY, "--subjects", "--json"))
        assert sorted(s["subject_id"] for s in shown["subject_list"]) == sorted(PEOPLE)
    refused = _one_line_error(unit.run(EVE, "gallery", "show", GALLERY, "--subjects", code=1))
    assert "'manage_galleries' needs one of the roles: gallery_admin" in refused
    assert _denials(unit, EVE)[-1]["object"] == f"gallery:{GALLERY}"
    out = _one_line_error(unit.run(None, "gallery", "list", code=1))
    assert "not signed in" in out
    assert "faceledger login" in out


def test_gallery_show_lists_what_enrolment_turned_down_for_those_who_may_fix_it(
    unit: SignedInUnit, tmp_path: Path
) -> None:
    from PIL import Image

    folder = tmp_path / "more" / "NEW-1"
    folder.mkdir(parents=True)
    Image.new("RGB", (250, 250), (128, 128, 128)).save(folder / "grey.png")
    text = unit.stdout(
        GINA, "enroll", GALLERY, str(folder.parent), "--collected-on", "2020-02-03", "--workers", "1"
    )
    assert "skipped (no_face): 1" in text
    assert "--turned-down' lists them" in text
    shown = json.loads(unit.stdout(GINA, "gallery", "show", GALLERY, "--turned-down", "--json"))
    mine = [r for r in shown["turned_down"] if r["subject_id"] == "NEW-1"]
    assert [(Path(r["source"]).name, r["reason"], r["detail"]) for r in mine] == [
        ("grey.png", "no_face", "no face found")
    ]
    assert "subject_list" not in shown
    text = "".join(unit.stdout(OTTO, "gallery", "show", GALLERY, "--turned-down").splitlines())
    assert "grey.png (subject NEW-1): no_face: no face found" in text
    refused = _one_line_error(unit.run(EVE, "gallery", "show", GALLERY, "--turned-down", code=1))
    assert "'manage_galleries' needs one of the roles: gallery_admin" in refused


def test_all_faces_searches_a_face_at_the_photo_edge_too(
    unit: SignedInUnit, lfw_images: Path, tmp_path: Path
) -> None:
    """Two people side by side, the smaller cut off near the right edge: both are searched and shown."""
    from PIL import Image

    big = Image.open(lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg").convert("RGB")
    # The smaller face (so the one searched second), cut off near the right edge of the photo.
    small = Image.open(lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg").convert("RGB")
    small = small.crop((0, 0, 185, 250)).resize((130, 176))
    canvas = Image.new("RGB", (big.width + small.width, 250), "white")
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, 40))
    probe = tmp_path / "two.png"
    canvas.save(probe)
    before = len(unit.entries(actor=EVE, action="search"))
    lines = unit.stdout(
        EVE, "search", str(probe), "-g", GALLERY, *BOUND, "--all-faces", "--jsonl"
    ).splitlines()
    faces = [json.loads(line) for line in lines]
    assert len(faces) == 2, lines
    crop = faces[1]["probe"]["edits"][0]
    assert crop["kind"] == "crop"
    assert crop["params"]["right"] <= canvas.width
    assert crop["params"]["bottom"] <= canvas.height
    assert len(unit.entries(actor=EVE, action="search")) == before + 2  # every recorded search was shown
    assert crop["params"]["right"] == canvas.width  # the margin would have run past the edge


def test_a_json_search_that_fails_part_way_still_shows_what_it_recorded(
    unit: SignedInUnit, lfw_images: Path, tmp_path: Path
) -> None:
    """Two probes, the second no image: the first search is recorded, so it is printed before the error."""
    broken = tmp_path / "notes.jpg"
    broken.write_text("not a photo")
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    before = len(unit.entries(actor=EVE, action="search"))
    result = unit.invoke(EVE, "search", str(probe), str(broken), "-g", GALLERY, *BOUND, "--json")
    assert result.exit_code == 1, result.output
    shown = json.loads(result.stdout)
    recorded = unit.entries(actor=EVE, action="search")[-1].object
    assert [f"search:{doc['search_id']}" for doc in shown] == [recorded]
    assert shown[0]["score_normalisation"] == "mean-template"
    assert len(unit.entries(actor=EVE, action="search")) == before + 1
    assert "not a supported image" in result.stderr


def test_search_jsonl_ranks_the_right_person_first(unit: SignedInUnit, lfw_images: Path) -> None:
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    lines = unit.stdout(EVE, "search", str(probe), "-g", GALLERY, *BOUND, "--jsonl").splitlines()
    assert len(lines) == 1
    face = json.loads(lines[0])
    assert face["subjects"][0]["subject_id"] == "Colin_Powell"
    assert face["subjects"][0]["rank"] == 1
    assert face["subjects"][0]["score"] > face["subjects"][1]["score"]
    assert face["model"]["backend"] == "dlib"
    assert isinstance(face["threshold"], float)
    assert face["score_normalisation"] == "mean-template"
    thresholds = face["template_thresholds"]
    assert list(thresholds) == ["1", "2", "3", "4"]
    assert thresholds["1"] == face["threshold"] < thresholds["4"]  # a bigger template needs more
    assert all(1 <= c["template_images"] <= 4 for c in face["subjects"])  # each says its template's size
    assert len({c["subject_id"] for c in face["subjects"]}) == len(face["subjects"])
    assert (face["case_number"], face["purpose"]) == (CASE, PURPOSE)
    assert face["policy"]["version"] == "example-2025.1"
    searches = unit.entries(actor=EVE, action="search")
    assert searches[-1].object == f"search:{face['search_id']}"
    assert searches[-1].details["device_id"] == f"ws-{EVE}"
    assert searches[-1].details["score_normalisation"] == "mean-template"
    assert searches[-1].details["template_thresholds"]["1"] == searches[-1].details["threshold"]

    human = " ".join(unit.run(EVE, "search", str(probe), "-g", GALLERY, *BOUND).split())  # unwrapped
    assert f"{GALLERY}/Colin_Powell" in human
    assert f"case {CASE}" in human
    assert "investigative lead only" in human
    assert f"quality: {face['quality']['explanation']}" in human  # which aspect lowered the score
    assert "mean of up to 4 of the subject's enrolled embeddings" in human
    assert '(score normalisation "mean-template")' in human
    assert f"{face['threshold']:.4f} for 1 image, " in human


def test_verify_same_and_different_people(lfw_images: Path, unit: SignedInUnit) -> None:
    a = lfw_images / "George_W_Bush" / "George_W_Bush_0010.jpg"
    b = lfw_images / "George_W_Bush" / "George_W_Bush_0011.jpg"
    c = lfw_images / "Tony_Blair" / "Tony_Blair_0010.jpg"
    same = json.loads(unit.stdout(EVE, "verify", str(a), str(b), *BOUND, "--json"))
    different = json.loads(unit.stdout(EVE, "verify", str(a), str(c), *BOUND, "--json"))
    assert same["same_person"] is True
    assert different["same_person"] is False
    assert 0 <= same["estimated_fmr"] < different["estimated_fmr"] <= 1  # kept with the record
    assert same["score"] > different["score"]
    assert same["verified_by"] == EVE
    assert same["score_normalisation"] == different["score_normalisation"] == "none"
    recorded = [e.object for e in unit.entries(actor=EVE, action="verify")]
    assert recorded[-2:] == [f"search:{same['search_id']}", f"search:{different['search_id']}"]
    # In words: a possible match above the threshold; below it, never "not the same person".
    above = " ".join(unit.run(EVE, "verify", str(a), str(b), *BOUND).split())
    below = " ".join(unit.run(EVE, "verify", str(a), str(c), *BOUND).split())
    assert "a possible match, a lead for review, not an identification" in above
    assert "below the threshold" in below
    assert "does not show that they are different people" in below
    assert "different people score this high at a rate of" in below
    assert "not the same person" not in above + below
    assert (
        above.count('cosine similarity of unit embeddings; no normalisation (score normalisation "none")')
        == 1
    )


def test_faces_needs_no_account_and_prints_one_line_per_face(lfw_images: Path, tmp_path: Path) -> None:
    photo = lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg"
    result = runner.invoke(
        app, ["faces", str(photo), "--jsonl"], env={"FACELEDGER_CONFIG_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) >= 1
    face = json.loads(lines[0])
    assert face["path"] == str(photo)
    assert set(face["box"]) == {"left", "top", "right", "bottom"}
    assert {"right_eye", "left_eye", "nose"} <= set(face["landmarks"])
    assert 0 <= face["quality"]["score"] <= 100
    assert set(face["quality"]["factors"]) == {"size", "sharpness", "pose", "exposure"}
    assert face["quality"]["explanation"].startswith(f"score {face['quality']['score']:.0f}")
    assert len(face["model"]["weights_sha256"]) == 64
    vector = np.asarray(face["embedding"])
    assert vector.shape == (128,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_faces_says_which_aspect_lowered_the_quality(lfw_images: Path, tmp_path: Path) -> None:
    photo = lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg"
    env = {"FACELEDGER_CONFIG_DIR": str(tmp_path)}
    face = json.loads(runner.invoke(app, ["faces", str(photo), "--jsonl"], env=env).stdout.splitlines()[0])
    shown = runner.invoke(app, ["faces", str(photo)], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"quality: {face['quality']['explanation']}" in " ".join(shown.output.split())


def test_purge_subject_removes_it_from_search(unit: SignedInUnit, lfw_images: Path, tmp_path: Path) -> None:
    person = "Jean_Chretien"
    folder = _copy_people(lfw_images, tmp_path / "enrol", (person,))
    unit.run(GINA, "enroll", GALLERY, str(folder), "--collected-on", "2021-05-06", "--workers", "1", "--json")
    probe = lfw_images / person / f"{person}_0003.jpg"
    shown = json.loads(unit.stdout(GINA, "gallery", "show", GALLERY, "--subjects", "--json"))
    assert person in {s["subject_id"] for s in shown["subject_list"]}
    assert shown["subjects"] < unit.dd.settings.top_k  # so every subject is a candidate of any search

    report = json.loads(
        unit.stdout(GINA, "gallery", "purge", GALLERY, "--subject", person, *PURGE_WHY, "--yes", "--json")
    )
    assert (report["subjects"], report["images"], report["faces"], report["vectors"]) == (1, 2, 2, 2)
    after = json.loads(unit.stdout(EVE, "search", str(probe), "-g", GALLERY, *BOUND, "--jsonl"))
    assert len(after["candidates"]) == 3
    assert person not in {c["subject_id"] for c in after["candidates"]}
    purge = unit.entries(action="purge")[-1]
    assert (purge.actor, purge.object, purge.details["count"]) == (GINA, f"gallery:{GALLERY}", 2)
    assert person not in json.dumps(purge.details)
    assert (purge.details["reason"], purge.details["authority"]) == ("court_order", "Order 2026-123")


def test_bad_input_gets_one_clear_line_and_no_traceback(
    unit: SignedInUnit, tmp_path: Path, lfw_images: Path
) -> None:
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a photo")
    out = _one_line_error(unit.run(EVE, "search", str(text_file), "-g", GALLERY, *BOUND, code=1))
    assert "not a supported image format" in out
    photo = lfw_images / "Tony_Blair" / "Tony_Blair_0003.jpg"
    assert "'nope'" in _one_line_error(unit.run(EVE, "search", str(photo), "-g", "nope", *BOUND, code=1))
    uninitialised = runner.invoke(app, ["gallery", "list", "-d", str(tmp_path / "empty")])
    assert uninitialised.exit_code == 1
    assert "faceledger init" in _one_line_error(uninitialised.output)


def test_enrolled_by_is_no_longer_an_option(unit: SignedInUnit, tmp_path: Path) -> None:
    out = unit.run(GINA, "enroll", GALLERY, str(tmp_path), "--enrolled-by", "someone.else", code=2)
    assert "recorded as the person signed in" in _one_line_error(out)


# --- refusals ---------------------------------------------------------------------------


def _denials(unit: SignedInUnit, who: str) -> list[dict[str, Any]]:
    """``policy_denied`` entries of ``who``, as the auditor reads them."""
    listed = json.loads(
        unit.stdout(OTTO, "audit", "log", "--action", "policy_denied", "--actor", who, "--json")
    )
    return list(listed["entries"])


def test_a_search_needs_a_signed_in_person(unit: SignedInUnit, lfw_images: Path) -> None:
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    out = _one_line_error(unit.run(None, "search", str(probe), "-g", GALLERY, *BOUND, code=1))
    assert "not signed in" in out
    assert "faceledger login" in out


@pytest.mark.parametrize(
    ("leave_out", "reason"),
    [("--case", "every search must carry a case number"), ("--purpose", "every search must state a purpose")],
)
def test_a_search_without_case_or_purpose_is_refused_and_recorded(
    unit: SignedInUnit, lfw_images: Path, leave_out: str, reason: str
) -> None:
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    bound = dict(zip(BOUND[::2], BOUND[1::2], strict=True))
    del bound[leave_out]
    before = len(_denials(unit, EVE))
    args = [a for option, value in bound.items() for a in (option, value)]
    out = _one_line_error(unit.run(EVE, "search", str(probe), "-g", GALLERY, *args, code=1))
    assert f"refused: {reason}" in out
    denials = _denials(unit, EVE)
    assert len(denials) == before + 1
    assert denials[-1]["details"]["attempted"] == "search"


def test_an_auditor_cannot_search(unit: SignedInUnit, lfw_images: Path) -> None:
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0005.jpg"
    out = _one_line_error(unit.run(OTTO, "search", str(probe), "-g", GALLERY, *BOUND, code=1))
    assert "'search' needs one of the roles: examiner" in out
    denial = _denials(unit, OTTO)[-1]
    assert (denial["object"], denial["details"]["attempted"]) == (f"gallery:{GALLERY}", "search")
    assert not unit.entries(actor=OTTO, action="search")


def test_an_examiner_can_neither_enrol_nor_purge(
    unit: SignedInUnit, lfw_images: Path, tmp_path: Path
) -> None:
    folder = _copy_people(lfw_images, tmp_path / "enrol", ("Ariel_Sharon",))
    out = unit.run(
        EVE, "enroll", GALLERY, str(folder), "--collected-on", "2021-05-06", "--workers", "1", code=1
    )
    assert "'enrol' needs one of the roles: gallery_admin" in _one_line_error(out)
    out = unit.run(EVE, "gallery", "purge", GALLERY, "--subject", "Tony_Blair", *PURGE_WHY, "--yes", code=1)
    assert "'purge' needs one of the roles: gallery_admin" in _one_line_error(out)
    out = unit.run(
        EVE, "gallery", "create", "private", "--legal-basis", "x", "--source-description", "y", code=1
    )
    assert "'manage_galleries' needs one of the roles: gallery_admin" in _one_line_error(out)
    attempted = [d["details"]["attempted"] for d in _denials(unit, EVE)[-3:]]
    assert attempted == ["enrol", "purge", "manage_galleries"]
    rows = json.loads(unit.stdout(EVE, "gallery", "list", "--json"))
    assert [(r["name"], r["subjects"]) for r in rows] == [(GALLERY, 3)]


def test_retention_purge_is_for_gallery_administrators(unit: SignedInUnit, tmp_path: Path) -> None:
    out = unit.run(EVE, "gallery", "purge-expired", code=1)
    assert "'purge' needs one of the roles: gallery_admin" in _one_line_error(out)
    assert _denials(unit, EVE)[-1]["object"] == "retention"
    copy = unit.copy(tmp_path / "copy")  # the purge is real: keep the shared unit whole
    before = json.loads(copy.stdout(GINA, "gallery", "list", "--json"))[0]["images"]
    # The unit's first photos were collected on 2020-02-03 into a gallery that keeps them 2,190 days.
    counts = json.loads(copy.stdout(GINA, "gallery", "purge-expired", "--json"))
    assert counts["images"] >= 6
    assert counts["faces"] == counts["vectors"] == counts["images"]
    after = json.loads(copy.stdout(GINA, "gallery", "list", "--json"))[0]["images"]
    assert after == before - counts["images"]
    again = json.loads(copy.stdout(GINA, "gallery", "purge-expired", "--json"))
    assert again["images"] == 0


def test_the_installed_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("faceledger")
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("faceledger ")
