"""Enrolment, search, candidate views and verification over HTTP, on real LFW photos.

Three people are enrolled by a gallery administrator through the upload endpoint; an
examiner on the registered device searches with another photo of one of them. What comes
back (candidates, scores, threshold, decision, search id) and what is recorded (the
search, each showing of candidates, each candidate opened) are checked against each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    PAROLE,
    PEOPLE,
    PURPOSE,
    THRESHOLD,
    Agency,
    Session,
    audit_rows,
    enrol_people,
    enrol_photo,
    error_of,
    photo,
    running,
    search_photo,
    shared_pipeline,
    template,
)

from faceledger.adapters.policy_file import example_policy_text
from faceledger.services import galleries

__all__ = ["template"]  # fixtures

pytestmark = pytest.mark.faces


@dataclass
class Unit:
    agency: Agency
    gil: Session  # gallery administrator
    eve: Session  # examiner


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory, template: Path, lfw_images: Path) -> Iterator[Unit]:
    pipeline = shared_pipeline()
    with running(tmp_path_factory.mktemp("search") / "data", template, analyzer=pipeline) as agency:
        agency.load_example_policy()
        for name in (CUSTODY, PAROLE):
            galleries.create_gallery(agency.dd, name, legal_basis="PACE s.64A", source_description="LFW")
        agency.add("gil.galleries", "gallery_admin")
        agency.add("eve.examiner", "examiner")
        gil = agency.login("gil.galleries")
        enrol_people(agency, gil, lfw_images)
        yield Unit(agency, gil, agency.login("eve.examiner"))


def test_enrolment_over_the_api_records_who_and_where_from(unit: Unit) -> None:
    agency = unit.agency
    shown = agency.client.get(f"{API}/galleries/{CUSTODY}", headers=unit.eve.headers).json()
    assert (shown["subjects"], shown["images"], shown["faces"]) == (3, 3, 3)
    subjects = agency.client.get(f"{API}/galleries/{CUSTODY}/subjects", headers=unit.gil.headers).json()
    assert sorted(s["subject_id"] for s in subjects["items"]) == sorted(PEOPLE)
    enrolments = audit_rows(agency.dd, "enrol")
    assert [e["actor"] for e in enrolments] == ["gil.galleries"] * 3
    assert {e["details"]["provenance"]["collected_on"] for e in enrolments} == {"2024-05-01"}


def test_enrolment_refusals_say_why(unit: Unit, lfw_images: Path) -> None:
    agency = unit.agency
    again = enrol_photo(agency, unit.gil, lfw_images, "Tony_Blair")
    assert again.status_code == 409
    assert error_of(again)["code"] == "conflict"
    undated = enrol_photo(agency, unit.gil, lfw_images, "George_W_Bush", collected_on="")
    assert undated.status_code == 422
    assert error_of(undated)["code"] == "missing_provenance"
    noise = np.random.default_rng(3).integers(0, 256, (120, 120, 3), dtype=np.uint8)
    blank = agency.dd.path.parent / "noise.png"
    Image.fromarray(noise).save(blank)
    files = {"image": ("noise.png", blank.read_bytes(), "image/png")}
    form = {"subject_id": "S-9", "source": "custody record 9", "collected_on": "2024-05-01"}
    faceless = agency.client.post(
        f"{API}/galleries/{CUSTODY}/images", data=form, files=files, headers=unit.gil.headers
    )
    assert faceless.status_code == 422
    assert error_of(faceless)["code"] == "no_face"


def _search(unit: Unit, lfw_images: Path, **form: Any) -> dict[str, Any]:
    answer = search_photo(unit.agency, unit.eve, lfw_images, "Tony_Blair", 2, **form)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_a_search_returns_ranked_leads_with_everything_that_explains_them(
    unit: Unit, lfw_images: Path
) -> None:
    found = _search(unit, lfw_images)
    top = found["candidates"][0]
    assert (top["subject_id"], top["gallery"], top["rank"]) == ("Tony_Blair", CUSTODY, 1)
    assert top["above_threshold"] is True
    assert all(c["score"] < top["score"] for c in found["candidates"][1:])
    assert found["threshold"] == THRESHOLD
    # Subjects are scored by mean templates (each person here has one photo: templates of one).
    assert found["score_normalisation"] == "mean-template"
    assert {c["template_images"] for c in found["candidates"]} == {1}
    assert (found["case_number"], found["purpose"], found["searched_by"]) == (CASE, PURPOSE, "eve.examiner")
    assert found["device_id"] == "ws-01"
    assert found["decision"]["allowed"] is True
    assert found["decision"]["policy_version"] == "example-2025.1"
    assert found["decision"]["rule_ids"] == ["search.allowed_pending_quality", "probe.quality_ok"]
    probe_bytes = photo(lfw_images, "Tony_Blair", 2).read_bytes()
    assert found["probe"]["sha256"] == hashlib.sha256(probe_bytes).hexdigest()
    assert "investigative lead" in found["lead_notice"]

    recorded = audit_rows(unit.agency.dd, "search")[-1]
    assert recorded["object"] == f"search:{found['search_id']}"
    assert recorded["details"]["case_ref"] == CASE
    shown = audit_rows(unit.agency.dd, "candidates_shown")[-1]
    assert shown["object"] == f"search:{found['search_id']}"


def test_reading_a_search_back_shows_the_same_leads_and_is_recorded(unit: Unit, lfw_images: Path) -> None:
    found = _search(unit, lfw_images)
    before = len(audit_rows(unit.agency.dd, "candidates_shown"))
    again = unit.agency.client.get(f"{API}/searches/{found['search_id']}", headers=unit.eve.headers)
    assert again.status_code == 200
    assert again.json()["candidates"] == found["candidates"]
    assert again.json()["score_normalisation"] == "mean-template"  # read back from the stored row
    assert len(audit_rows(unit.agency.dd, "candidates_shown")) == before + 1


def test_opening_a_candidate_shows_its_gallery_photo_and_is_recorded(unit: Unit, lfw_images: Path) -> None:
    found = _search(unit, lfw_images)
    face_id = found["candidates"][0]["face_id"]
    base = f"{API}/searches/{found['search_id']}/candidates/{face_id}"
    view = unit.agency.client.get(base, headers=unit.eve.headers)
    assert view.status_code == 200
    assert view.json()["face"]["subject_id"] == "Tony_Blair"
    image = unit.agency.client.get(f"{base}/image", headers=unit.eve.headers)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content == photo(lfw_images, "Tony_Blair", 1).read_bytes()
    viewed = audit_rows(unit.agency.dd, "candidate_viewed")
    assert [v["details"]["face_id"] for v in viewed[-2:]] == [face_id, face_id]
    not_a_candidate = unit.agency.client.get(
        f"{API}/searches/{found['search_id']}/candidates/999999", headers=unit.eve.headers
    )
    assert not_a_candidate.status_code == 404


def test_probe_edits_are_applied_and_recorded(unit: Unit, lfw_images: Path) -> None:
    edits = '[{"kind": "crop", "params": {"left": 25, "top": 25, "right": 225, "bottom": 225}}]'
    found = _search(unit, lfw_images, edits=edits)
    (edit,) = found["probe"]["edits"]
    assert (edit["kind"], edit["width"], edit["height"]) == ("crop", 200, 200)
    assert found["probe"]["searched_sha256"] == edit["sha256"]
    assert found["candidates"][0]["subject_id"] == "Tony_Blair"


def test_verification_compares_two_photos_under_the_policy(unit: Unit, lfw_images: Path) -> None:
    def verify(first: tuple[str, int], second: tuple[str, int]) -> dict[str, Any]:
        files = {
            name: (f"{p}.jpg", photo(lfw_images, *p).read_bytes(), "image/jpeg")
            for name, p in (("first", first), ("second", second))
        }
        form = {"case_number": CASE, "purpose": PURPOSE}
        answer = unit.agency.client.post(f"{API}/verify", data=form, files=files, headers=unit.eve.headers)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    same = verify(("Tony_Blair", 1), ("Tony_Blair", 2))
    other = verify(("Tony_Blair", 1), ("Colin_Powell", 1))
    assert same["same_person"] is True
    assert other["same_person"] is False
    assert same["score"] > other["score"]
    assert same["threshold"] == THRESHOLD
    assert same["score_normalisation"] == other["score_normalisation"] == "none"
    assert [v["object"] for v in audit_rows(unit.agency.dd, "verify")[-2:]] == [
        f"search:{same['search_id']}",
        f"search:{other['search_id']}",
    ]


def test_the_schema_says_every_search_and_comparison_names_its_score_normalisation(unit: Unit) -> None:
    schemas = unit.agency.client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("SearchOut", "VerifyOut"):
        assert "score_normalisation" in schemas[name]["required"]
        field = schemas[name]["properties"]["score_normalisation"]
        assert field["type"] == "string"
        assert '"none": cosine similarity of unit embeddings; no normalisation' in field["description"]


def test_a_probe_below_the_quality_floor_is_refused_after_analysis(unit: Unit, lfw_images: Path) -> None:
    agency = unit.agency
    strict = example_policy_text().replace('version = "example-2025.1"', 'version = "strict-1"')
    strict = strict.replace("probe_quality_floor = 30.0", "probe_quality_floor = 100.0")
    admin = agency.admin()
    assert agency.client.put(f"{API}/policy", json={"text": strict}, headers=admin.headers).status_code == 200
    try:
        searches_before = len(audit_rows(agency.dd, "search"))
        answer = search_photo(agency, agency.login("eve.examiner"), lfw_images, "Tony_Blair", 2)
        assert answer.status_code == 403
        error = error_of(answer)
        assert (error["rule_id"], error["policy_version"]) == ("probe.quality_below_floor", "strict-1")
        assert len(audit_rows(agency.dd, "search")) == searches_before
        denied = audit_rows(agency.dd, "policy_denied")[-1]["details"]["decision"]
        assert denied["rule_id"] == "probe.quality_below_floor"
    finally:
        agency.load_example_policy()
