"""``faceledger policy | case | review`` as signed-in people use them, on real data and real photos.

Each person signs in with ``faceledger login`` (password and authenticator code) on their own
registered device, in their own CLI configuration folder; the commands then act as them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from signed_in_unit import CASE, GALLERY, PURPOSE, SignedInUnit, build_unit, runner

from faceledger.adapters.policy_file import example_policy_text
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
