"""``faceledger policy | case | review`` as signed-in people use them, on real data and real photos.

Each person signs in with ``faceledger login`` (password and authenticator code) on their own
registered device, in their own CLI configuration folder; the commands then act as them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from signed_in_unit import CASE, GALLERY, PURPOSE, SignedInUnit, build_unit, runner

from faceledger.adapters.policy_file import example_policy_text
from faceledger.cli.cases import review_step_details
from faceledger.cli.main import app
from faceledger.config import Settings
from faceledger.pipeline.run import Pipeline
from faceledger.services import galleries, policies
from faceledger.services.datadir import DataDir
from faceledger.services.enrolment import EnrolOptions, enrol_image
from faceledger.services.probes import Probe
from faceledger.services.search_records import SearchRecord
from faceledger.services.searches import SearchInput, accountable_search

pytestmark = pytest.mark.faces

PEOPLE = ("Colin_Powell", "Tony_Blair", "Jean_Chretien")


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory, lfw_images: Path) -> Iterator[SignedInUnit]:
    """The unit with no policy loaded yet (loading one is what the tests below do)."""
    people = [("eve.examiner", "examiner"), ("rita.reviewer", "reviewer"), ("sue.super", "supervisor")]
    unit = build_unit(tmp_path_factory.mktemp("cases-cli"), people, example_policy=False)
    _gallery(unit.dd, lfw_images)
    yield unit
    unit.close()


def _gallery(dd: DataDir, lfw_images: Path) -> None:
    galleries.create_gallery(
        dd, GALLERY, legal_basis="PACE s.64A", source_description="LFW", retention_days=2190
    )
    with Pipeline.from_settings(Settings(), parallel_flip=False) as pipeline:
        options = EnrolOptions(enrolled_by="gina.galleries", collected_on=date(2024, 5, 1), workers=1)
        for name in PEOPLE:
            enrol_image(dd, GALLERY, name, lfw_images / name / f"{name}_0001.jpg", options, pipeline=pipeline)


def _search(unit: SignedInUnit, lfw_images: Path) -> SearchRecord:
    """A search by the examiner, through the service, as `faceledger search` makes it."""
    dd = unit.dd
    principal = unit.principal("eve.examiner")
    assert principal.actor.device_id == "ws-eve.examiner"
    probe = Probe.from_path(lfw_images / "Colin_Powell" / "Colin_Powell_0002.jpg")
    with Pipeline.from_settings(Settings(), parallel_flip=False) as pipeline:
        return accountable_search(
            dd, pipeline, principal, probe, SearchInput(CASE, PURPOSE, (GALLERY,)), now=_now()
        )


def test_help_lists_the_commands() -> None:
    for group, commands in (
        ("policy", ("load", "show", "history")),
        ("case", ("show",)),
        ("review", ("show", "examine", "peer", "approve", "reject")),
    ):
        text = runner.invoke(app, [group, "--help"]).output
        for command in commands:
            assert command in text
            result = runner.invoke(app, [group, command, "--help"])  # an unknown command exits 2
            assert result.exit_code == 0, result.output
            assert result.output.startswith(f"Usage: faceledger {group} {command} "), result.output


def test_commands_need_a_signed_in_person(unit: SignedInUnit) -> None:
    out = unit.run(None, "policy", "history", code=1)
    assert "not signed in" in out
    assert "faceledger login" in out


def test_policy_load_show_and_history(unit: SignedInUnit, tmp_path: Path) -> None:
    out = unit.run("eve.examiner", "policy", "show", code=1)
    assert "no policy is in force" in out
    refused = unit.run("eve.examiner", "policy", "load", "--example", code=1)
    assert "refused" in refused
    assert "system_admin" in refused

    file = tmp_path / "agency.toml"
    file.write_text(example_policy_text(), encoding="utf-8")
    loaded = json.loads(unit.run("ada.admin", "policy", "load", str(file), "--json"))
    assert (loaded["version"], loaded["active"], loaded["loaded_by"]) == ("example-2025.1", True, "ada.admin")
    assert "policy 'example-2025.1' of Example Constabulary" in unit.run("eve.examiner", "policy", "show")
    assert unit.run("eve.examiner", "policy", "show", "--text").strip() == example_policy_text().strip()
    history = json.loads(unit.run("sue.super", "policy", "history", "--json"))
    assert [(v["version"], v["source"]) for v in history] == [("example-2025.1", str(file))]
    assert "give a policy FILE" in unit.run("ada.admin", "policy", "load", code=2)


def test_a_search_is_reviewed_from_the_command_line(unit: SignedInUnit, lfw_images: Path) -> None:
    if policies.active_stored_policy(unit.dd) is None:  # when run on its own
        unit.run("ada.admin", "policy", "load", "--example")
    record = _search(unit, lfw_images)
    sid = str(record.search_id)
    top, *rest = record.candidates
    assert top.subject_id == "Colin_Powell"

    shown = json.loads(unit.run("eve.examiner", "review", "show", sid, "--json"))
    assert [c["face_id"] for c in shown["candidates"]] == [c.face_id for c in record.candidates]
    assert shown["allowed_next"] == ["record_no_lead", "propose_match"]

    findings = [f"{top.face_id}=possible_match:ear shape and hairline agree"]
    findings += [f"{c.face_id}=no_match" for c in rest]
    args = [a for f in findings for a in ("-f", f)]
    assert "awaiting_peer_assessment" in unit.run("eve.examiner", "review", "examine", sid, *args)

    blind = unit.run("rita.reviewer", "review", "peer", sid)
    assert "without the examiner's findings" in blind
    assert "ear shape" not in blind
    assert "possible_match" not in blind
    own = [f"{top.face_id}=possible:same scar", *(f"{c.face_id}=no" for c in rest)]
    revealed = json.loads(
        unit.run("rita.reviewer", "review", "peer", sid, *[a for f in own for a in ("-f", f)], "--json")
    )
    assert not revealed["blind"]
    assert revealed["examiner_findings"][0]["notes"] == "ear shape and hairline agree"
    assert "awaiting_approval" in unit.run("rita.reviewer", "review", "peer", sid, "--agree")

    refused = unit.run("eve.examiner", "review", "approve", sid, code=1)
    assert "'approve' needs one of the roles: supervisor" in refused
    approved = json.loads(unit.run("sue.super", "review", "approve", sid, "--notes", "lead only", "--json"))
    assert approved["state"] == "approved"
    assert [s["by"] for s in approved["steps"]] == [
        "eve.examiner",
        "rita.reviewer",
        "rita.reviewer",
        "sue.super",
    ]

    history = json.loads(unit.run("sue.super", "case", "show", CASE, "--json"))
    kinds = [e["kind"] for e in history["history"]]
    assert kinds.count("review") == 4
    assert kinds.index("search") < kinds.index("review")
    assert any(e["kind"] == "decision" and "REFUSED approve" in e["summary"] for e in history["history"])
    [searched] = [e for e in history["history"] if e["kind"] == "search"]
    assert searched["details"]["score_normalisation"] == "mean-template"
    assert 'score normalisation "mean-template"' in searched["summary"]
    assert [s["score_normalisation"] for s in history["searches"]] == ["mean-template"]
    text = unit.run("sue.super", "case", "show", CASE)
    assert f"case {CASE}: opened" in text
    assert "review of search" in text
    assert "mean of up to 4 of the subject's enrolled embeddings" in " ".join(text.split())


def test_a_malformed_finding_is_refused_with_the_form_to_use(unit: SignedInUnit) -> None:
    out = unit.run("eve.examiner", "review", "examine", "1", "-f", "seven=match", code=1)
    assert "FACE_ID=OUTCOME[:NOTES]" in out
    out = unit.run("eve.examiner", "review", "examine", "1", code=1)
    assert "one --finding per candidate" in out


# --- what `review show` and `case show` print of the stored steps -----------------------------

#: Stored text with a terminal escape, rich markup and a newline: printed as escapes, never obeyed.
HOSTILE = "ear shape \x1b[31m[red]agrees\nforged line"
HOSTILE_SHOWN = "ear shape \\x1b[31m[red]agrees\\nforged line"


def _cli_search(unit: SignedInUnit, lfw_images: Path) -> tuple[str, list[dict[str, Any]]]:
    """A search made with `faceledger search --json` by the examiner: its id and candidates."""
    if policies.active_stored_policy(unit.dd) is None:  # when run on its own
        unit.run("ada.admin", "policy", "load", "--example")
    probe = lfw_images / "Colin_Powell" / "Colin_Powell_0002.jpg"
    made = json.loads(
        unit.stdout(
            "eve.examiner",
            "search",
            str(probe),
            "-g",
            GALLERY,
            "--case",
            CASE,
            "--purpose",
            PURPOSE,
            "--json",
        )
    )
    candidates: list[dict[str, Any]] = made["candidates"]
    assert candidates[0]["subject_id"] == "Colin_Powell"
    assert len(candidates) >= 2
    return str(made["search_id"]), candidates


def _args(findings: list[str]) -> list[str]:
    return [a for f in findings for a in ("-f", f)]


def _face(c: dict[str, Any]) -> str:
    """How a finding names its candidate: face id, rank, gallery/subject."""
    return f"face {c['face_id']} (rank {c['rank']}, {c['gallery']}/{c['subject_id']})"


def _printed(text: str) -> str:
    """The output as one line of words: rich wraps long lines at the terminal's width."""
    return " ".join(text.split())


def _assert_readable(text: str) -> None:
    assert "{'" not in text, text  # never a Python dict's repr
    assert "'face_id'" not in text, text
    assert "\x1b" not in text, text  # hostile text is shown as escapes, never obeyed
    assert "\nforged line" not in text, text


def test_review_and_case_show_print_every_finding_note_and_approval(
    unit: SignedInUnit, lfw_images: Path
) -> None:
    sid, candidates = _cli_search(unit, lfw_images)
    top, second, *rest = candidates
    others = [second, *rest]
    examined = [f"{top['face_id']}=possible_match:{HOSTILE}", *(f"{c['face_id']}=no_match" for c in others)]
    unit.run("eve.examiner", "review", "examine", sid, *_args(examined))
    own = [f"{top['face_id']}=possible:same scar", *(f"{c['face_id']}=inconclusive" for c in others)]
    unit.run("rita.reviewer", "review", "peer", sid, *_args(own))
    unit.run("rita.reviewer", "review", "peer", sid, "--agree", "--notes", "corroborated by the ears")
    unit.run("sue.super", "review", "approve", sid, "--notes", "lead only; arrange an identity parade")

    expected = [
        "step 1: examination, a possible match proposed",
        f"{_face(top)}: possible match; notes: {HOSTILE_SHOWN}",
        f"{_face(second)}: no match",
        "step 2: blind peer assessment",
        f"{_face(top)}: possible match; notes: same scar",
        f"{_face(second)}: inconclusive",
        "step 3: peer verdict: agrees with the examiner",
        "notes: corroborated by the ears",
        "step 4: supervisor approved the lead",
        "(awaiting_approval -> approved) notes: lead only; arrange an identity parade",
    ]
    review = unit.run("sue.super", "review", "show", sid)
    case = unit.run("sue.super", "case", "show", CASE)
    for text in (review, case):
        _assert_readable(text)
        for line in expected:
            assert line in _printed(text), f"{line!r} not in:\n{text}"
    for who in (
        "step 1: examination, a possible match proposed by eve.examiner at",
        "blind peer assessment by rita.reviewer at",
        "agrees with the examiner by rita.reviewer at",
        "approved the lead by sue.super at",
    ):
        assert who in _printed(review), f"{who!r} not in:\n{review}"


def test_a_disputed_lead_shows_the_disagreement_and_the_rejection_reason(
    unit: SignedInUnit, lfw_images: Path
) -> None:
    sid, candidates = _cli_search(unit, lfw_images)
    top, *others = candidates
    examined = [f"{top['face_id']}=possible_match:hairline agrees", *(f"{c['face_id']}=no" for c in others)]
    unit.run("eve.examiner", "review", "examine", sid, *_args(examined))

    # While the blind assessment is awaited, the reviewer sees neither the examiner's findings nor notes.
    blind = unit.run("rita.reviewer", "review", "show", sid)
    assert "findings: withheld until the blind peer assessment is recorded" in _printed(blind)
    assert "hairline agrees" not in blind
    assert "hairline agrees" not in unit.run("rita.reviewer", "case", "show", CASE)

    unit.run("rita.reviewer", "review", "peer", sid, *_args([f"{c['face_id']}=no_match" for c in candidates]))
    unit.run("rita.reviewer", "review", "peer", sid, "--disagree", "--notes", "the nose bridge differs")
    unit.run("sue.super", "review", "reject", sid, "--reason", "the peer review disputes it")

    for text in (unit.run("sue.super", "review", "show", sid), unit.run("sue.super", "case", "show", CASE)):
        _assert_readable(text)
        for line in (
            f"{_face(top)}: possible match; notes: hairline agrees",
            f"{_face(top)}: no match",
            "peer verdict: disagrees with the examiner",
            "notes: the nose bridge differs",
            "supervisor rejected the lead",
            "(disputed -> rejected) reason: the peer review disputes it",
        ):
            assert line in _printed(text), f"{line!r} not in:\n{text}"


def test_an_approval_without_notes_says_so(unit: SignedInUnit, lfw_images: Path) -> None:
    sid, candidates = _cli_search(unit, lfw_images)
    top, *others = candidates
    findings = [f"{top['face_id']}=possible_match:same ears", *(f"{c['face_id']}=no" for c in others)]
    unit.run("eve.examiner", "review", "examine", sid, *_args(findings))
    unit.run("rita.reviewer", "review", "peer", sid, *_args(findings))
    unit.run("rita.reviewer", "review", "peer", sid, "--agree")
    unit.run("sue.super", "review", "approve", sid)
    assert "(awaiting_approval -> approved) notes: (none)" in _printed(
        unit.run("sue.super", "review", "show", sid)
    )


def test_a_findings_worksheet_is_printed_row_by_row_escaped() -> None:
    step = {
        "findings": [
            {
                "face_id": 7,
                "outcome": "possible_match",
                "notes": "scar",
                "worksheet": {
                    "ears": {"comparison": "similar", "notes": "attached lobes"},
                    "scars_marks_tattoos": {"comparison": "not_visible", "notes": "\x1b[31m"},
                },
            },
            {"face_id": 8, "outcome": "no_match", "notes": ""},
        ]
    }
    assert review_step_details(step, {}) == [
        "face 7: possible match; notes: scar",
        "  worksheet, ears: similar; notes: attached lobes",
        "  worksheet, scars marks tattoos: not visible; notes: \\x1b[31m",
        "face 8: no match",
    ]
