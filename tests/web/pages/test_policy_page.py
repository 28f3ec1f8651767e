"""The policy page (TestClient): the policy in force, its diff against the version before, its
history, and loading a new version as a system administrator, through the policy service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pages_helpers import csrf_of, page_agency, sign_in
from web_helpers import ADMIN, Agency, audit_rows, template

from faceledger.adapters.policy_file import example_policy_text
from faceledger.domain.roles import Role

__all__ = ["template"]  # fixtures

EVE = "eve.examiner"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template) as made:
        made.add(EVE, Role.EXAMINER)
        yield made


def test_an_administrator_loads_a_new_version_and_the_page_shows_its_diff_and_history(agency: Agency) -> None:
    agency.load_example_policy()
    assert sign_in(agency, ADMIN).status_code == 303
    page = agency.client.get("/admin/policy")
    assert page.status_code == 200, page.text
    assert "Version example-2025.1 (in force)" in page.text
    assert "This was the first version loaded." in page.text
    stricter = example_policy_text().replace('version = "example-2025.1"', 'version = "example-2025.2"')
    stricter = stricter.replace("daily_limit_per_user = 25", "daily_limit_per_user = 10")
    loaded = agency.client.post(
        "/admin/policy",
        data={"csrf_token": csrf_of(page)},
        files={"policy_file": ("policy.toml", stricter.encode(), "application/toml")},
    )
    assert loaded.status_code == 200, loaded.text  # after the redirect: the page again
    text = loaded.text
    assert "Version example-2025.2 (in force)" in text
    assert '<span class="removed">-daily_limit_per_user = 25</span>' in text
    assert '<span class="added">+daily_limit_per_user = 10</span>' in text
    assert text.count("/admin/policy?version=") == 2  # both versions in the history
    older = agency.client.get("/admin/policy", params={"version": 1})
    assert "Version example-2025.1</h2>" in older.text
    changed = audit_rows(agency.dd, "policy_changed")
    assert changed[-1]["actor"] == ADMIN


def test_a_broken_file_or_a_reused_version_is_refused_with_the_reason(agency: Agency) -> None:
    agency.load_example_policy()
    assert sign_in(agency, ADMIN).status_code == 303
    token = csrf_of(agency.client.get("/admin/policy"))
    broken = agency.client.post("/admin/policy", data={"csrf_token": token, "policy_text": "version = \n[x"})
    assert broken.status_code == 422
    assert "the policy was not loaded" in broken.text
    reused = example_policy_text().replace("daily_limit_per_user = 25", "daily_limit_per_user = 99")
    again = agency.client.post("/admin/policy", data={"csrf_token": token, "policy_text": reused})
    assert again.status_code in (409, 422), again.text
    assert "example-2025.1" in again.text
    binary = agency.client.post(
        "/admin/policy",
        data={"csrf_token": token},
        files={"policy_file": ("p.toml", b"\xff\xfe\x00", "text/plain")},
    )
    assert binary.status_code == 422
    assert "not UTF-8 text" in binary.text
    empty = agency.client.post("/admin/policy", data={"csrf_token": token})
    assert "choose a policy file or paste its text" in empty.text
    assert len(audit_rows(agency.dd, "policy_changed")) == 1  # only the first load


def test_everyone_reads_the_policy_but_only_a_system_administrator_loads_one(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    page = agency.client.get("/admin/policy")
    assert page.status_code == 200
    assert "No policy is in force" in page.text
    assert "Load a new version" not in page.text
    refused = agency.client.post(
        "/admin/policy", data={"csrf_token": csrf_of(page), "policy_text": example_policy_text()}
    )
    assert refused.status_code == 403
    assert audit_rows(agency.dd, "policy_denied")[-1]["actor"] == EVE
