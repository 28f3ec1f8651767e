"""The audit page (TestClient): entries with filters and paging, the log's state, and "verify now"
running the standalone verifier over a fresh export; only auditors, as the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pages_helpers import csrf_of, page_agency, sign_in
from web_helpers import Agency, audit_rows, template

from faceledger.domain.roles import Role

__all__ = ["template"]  # fixtures

ANN, EVE = "ann.auditor", "eve.examiner"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template) as made:
        made.add(ANN, Role.AUDITOR)
        made.add(EVE, Role.EXAMINER)
        made.load_example_policy()
        yield made


def test_an_auditor_filters_the_log_pages_through_it_and_sees_its_state(agency: Agency) -> None:
    assert sign_in(agency, ANN).status_code == 303
    page = agency.client.get("/audit")
    assert page.status_code == 200, page.text
    total = len(audit_rows(agency.dd))
    assert f'<dd class="log-size">{total}</dd>' in page.text
    assert f"{total} entries match; showing 1 to {min(total, 50)}." in " ".join(page.text.split())
    mine = agency.client.get("/audit", params={"actor": ANN, "action": "sign_in"})
    rows = [r for r in audit_rows(agency.dd, "sign_in") if r["actor"] == ANN]
    assert f"{len(rows)} entr" in mine.text
    assert mine.text.count("<td>sign_in</td>") == len(rows)
    assert EVE not in mine.text.split("<tbody>", 1)[1]  # only ann's entries are listed
    # Days are read in the policy's time zone; a bad one is a page saying why.
    none = agency.client.get("/audit", params={"since": "2099-01-01"})
    assert "0 entries match." in " ".join(none.text.split())
    bad = agency.client.get("/audit", params={"until": "01/02/2025"})
    assert bad.status_code == 422
    assert "is not a date written YYYY-MM-DD" in bad.text


def test_verify_now_exports_the_log_and_the_standalone_verifier_accepts_it(agency: Agency) -> None:
    assert sign_in(agency, ANN).status_code == 303
    page = agency.client.get("/audit")
    answer = agency.client.post("/audit/verify", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 200, answer.text
    text = " ".join(answer.text.split())
    assert "Verified: " in text
    exports = sorted((agency.dd.path / "exports").glob("audit-*.json"))
    assert len(exports) == 1
    assert exports[0].name in text
    exported = json.loads(exports[0].read_text())
    assert f"Verified: {len(exported['entries'])} entries" in text
    assert audit_rows(agency.dd, "export")[-1]["actor"] == ANN  # the export is recorded
    assert agency.client.post("/audit/verify", data={}).status_code == 403  # no CSRF token


def test_a_tampered_log_does_not_verify_and_the_page_says_where(agency: Agency) -> None:
    from sqlalchemy import update

    from faceledger.adapters.store.tables_audit import audit_entries

    assert sign_in(agency, ANN).status_code == 303
    with agency.dd.store.begin() as conn:  # an insider with database access rewrites an entry
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 2).values(actor="someone.else"))
    answer = agency.client.post("/audit/verify", data={"csrf_token": csrf_of(agency.client.get("/audit"))})
    text = " ".join(answer.text.split())
    assert answer.status_code == 200
    assert "The export did not verify" in text
    assert "entry 2 was altered (or forged): its content does not match its signature" in text


def test_only_auditors_read_the_log_and_a_refusal_is_recorded(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    refused = agency.client.get("/audit")
    assert refused.status_code == 403
    assert "read_audit" in refused.text or "Rule:" in refused.text
    assert audit_rows(agency.dd, "policy_denied")[-1]["actor"] == EVE
