"""The case page (TestClient): the case's recorded history in order, refusals included, and its door."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pages_helpers import page_agency, sign_in
from web_helpers import API, Agency, audit_rows, template

from faceledger.domain.roles import Role

__all__ = ["template"]  # fixtures

EVE, GINA = "eve.examiner", "gina.galleries"
CASE = "2025/CID/004211"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template) as made:
        made.add(EVE, Role.EXAMINER)
        made.add(GINA, Role.GALLERY_ADMIN)
        made.load_example_policy()
        yield made


def _refused_search(agency: Agency) -> None:
    """A search for a prohibited purpose: refused before any probe is read, and recorded."""
    answer = agency.client.post(
        f"{API}/searches",
        data={"case_number": CASE, "purpose": "civil_immigration_enforcement", "galleries": "custody"},
        files={"probe": ("p.jpg", b"never read", "image/jpeg")},
        headers=agency.login(EVE).headers,
    )
    assert answer.status_code == 403, answer.text


def test_the_case_page_lists_what_was_recorded_with_who_and_when(agency: Agency) -> None:
    _refused_search(agency)
    assert sign_in(agency, EVE).status_code == 303
    opened = agency.client.get("/cases", params={"number": CASE}, follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/cases/2025%2FCID%2F004211"
    page = agency.client.get(opened.headers["location"])
    assert page.status_code == 200, page.text
    text = " ".join(page.text.split())
    assert f"<h1>Case {CASE}</h1>" in text
    assert "Opened never (refusals only)" in text
    assert "REFUSED search (purpose.prohibited" in text
    assert f"<td>{EVE}</td>" in text
    assert "BST" in text or "GMT" in text  # the policy's time zone
    assert "data-print" in text  # printable: a print button and a print stylesheet
    # The same door as the API: a gallery administrator may not view cases, and that is recorded.
    agency.client.cookies.clear()
    assert sign_in(agency, GINA).status_code == 303
    refused = agency.client.get(f"/cases/{CASE}")
    assert refused.status_code == 403
    assert "view_case" in refused.text or "Refused" in refused.text
    assert any(row["actor"] == GINA for row in audit_rows(agency.dd, "policy_denied"))


def test_a_case_number_with_control_characters_or_too_long_gets_a_clear_page(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    for bad in ("2025/CID/\x1b[31m", "9" * 201):
        answer = agency.client.get("/cases/" + quote(bad, safe=""))
        assert answer.status_code == 422, answer.text
        assert "text/html" in answer.headers["content-type"]
        assert "Traceback" not in answer.text
    assert agency.client.get("/cases").status_code == 200  # the form
    assert agency.client.get("/cases", follow_redirects=False, params={"number": " "}).status_code == 200
