"""The accounts pages (TestClient): a system administrator manages accounts through the service and
the door; an auditor reads; anyone else is refused; every change is recorded; bad input is a page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pages_helpers import csrf_of, page_agency, sign_in
from web_helpers import ADMIN, API, ORG, UNIT, Agency, audit_rows, template

from faceledger.domain.roles import Role

__all__ = ["template"]  # fixtures

EVE, ANN = "eve.examiner", "ann.auditor"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template) as made:
        made.add(EVE, Role.EXAMINER)
        made.add(ANN, Role.AUDITOR)
        made.load_example_policy()
        yield made


def _changes(agency: Agency) -> list[tuple[str, str, str]]:
    return [
        (r["actor"], r["object"], r["details"].get("change", ""))
        for r in audit_rows(agency.dd, "account_changed")
    ]


def test_an_administrator_creates_an_account_and_the_person_activates_it_with_the_code(
    agency: Agency,
) -> None:
    assert sign_in(agency, ADMIN).status_code == 303
    listing = agency.client.get("/admin/accounts")
    assert listing.status_code == 200, listing.text
    assert f'href="/admin/accounts/{EVE}"' in listing.text
    created = agency.client.post(
        "/admin/accounts",
        data={
            "username": "nia.new",
            "display_name": "Nia New",
            "organisation": ORG,
            "unit": UNIT,
            "roles": ["examiner", "reviewer"],
            "expires_on": "2025-09-30",
            "trial": "on",
            "csrf_token": csrf_of(listing),
        },
    )
    assert created.status_code == 200, created.text
    code = re.search(r'<p class="activation-code"><code>([^<]+)</code>', created.text)
    assert code is not None
    user = agency.client.get(f"{API}/users/nia.new", headers=agency.admin().headers).json()
    assert sorted(user["roles"]) == ["examiner", "reviewer"]
    assert user["trial"] is True
    assert user["expires_at"].startswith("2025-09-30T22:59:59")  # the end of that day in London (BST)
    assert [c for c in _changes(agency) if c[1] == "account:nia.new"] == [
        (ADMIN, "account:nia.new", "created")
    ]
    # The code works on the activation page's service, once.
    activated = agency.client.post(
        f"{API}/auth/activate",
        json={"username": "nia.new", "code": code.group(1), "password": "another long passphrase"},
    )
    assert activated.status_code == 200, activated.text


def test_the_account_page_changes_roles_suspension_expiry_and_issues_a_new_code(agency: Agency) -> None:
    assert sign_in(agency, ADMIN).status_code == 303
    page = agency.client.get(f"/admin/accounts/{EVE}")
    assert page.status_code == 200, page.text
    assert "active" in page.text
    token = csrf_of(page)
    base = f"/admin/accounts/{EVE}"

    answer = agency.client.post(
        f"{base}/roles", data={"roles": ["examiner", "reviewer"], "csrf_token": token}
    )
    assert answer.status_code == 200, answer.text  # after the redirect: the account page
    assert "The roles were replaced." in answer.text
    assert "examiner, reviewer" in answer.text
    answer = agency.client.post(f"{base}/suspend", data={"reason": "left the unit", "csrf_token": token})
    assert "suspended (left the unit)" in answer.text
    assert agency.client.post(f"{API}/auth/login", json={"username": EVE, "password": "x"}).status_code != 200
    answer = agency.client.post(f"{base}/unsuspend", data={"csrf_token": token})
    assert "The account is no longer suspended." in answer.text
    answer = agency.client.post(f"{base}/expiry", data={"expires_on": "2025-12-31", "csrf_token": token})
    assert "The expiry was saved." in answer.text
    assert 'value="2025-12-31"' in answer.text  # the form shows the day it holds
    issued = agency.client.post(f"{base}/password", data={"csrf_token": token})
    assert "New activation code" in issued.text
    changes = [c for _, obj, c in _changes(agency) if obj == f"account:{EVE}"]
    assert changes[-5:] == ["set_roles", "suspend", "unsuspend", "set_expiry", "reset_password"]
    assert {a for a, obj, c in _changes(agency) if c in changes[-5:]} == {ADMIN}


def test_refusals_and_bad_input_are_pages_with_the_reason_and_nothing_changes(agency: Agency) -> None:
    assert sign_in(agency, ADMIN).status_code == 303
    page = agency.client.get(f"/admin/accounts/{EVE}")
    token = csrf_of(page)
    base = f"/admin/accounts/{EVE}"
    no_csrf = agency.client.post(f"{base}/suspend", data={"reason": "x"})
    assert no_csrf.status_code == 403
    bad_day = agency.client.post(f"{base}/expiry", data={"expires_on": "31/12/2025", "csrf_token": token})
    assert bad_day.status_code == 422
    assert "is not a date written YYYY-MM-DD" in bad_day.text
    unknown = agency.client.post(f"{base}/promote", data={"csrf_token": token})
    assert unknown.status_code == 422
    assert "unknown change &#39;promote&#39;" in unknown.text
    hostile = agency.client.post(f"{base}/suspend", data={"reason": "ok\u202etxt", "csrf_token": token})
    assert hostile.status_code == 422, hostile.text
    assert "Traceback" not in hostile.text
    missing = agency.client.get("/admin/accounts/nobody.here")
    assert missing.status_code == 404
    user = agency.client.get(f"{API}/users/{EVE}", headers=agency.admin().headers).json()
    assert user["suspended"] is False  # nothing above changed the account

    # An auditor reads the list but gets no forms; an examiner is refused, and that is recorded.
    agency.client.cookies.clear()
    assert sign_in(agency, ANN).status_code == 303
    read = agency.client.get("/admin/accounts")
    assert read.status_code == 200
    assert "New account" not in read.text
    refused = agency.client.post(f"{base}/suspend", data={"reason": "x", "csrf_token": csrf_of(read)})
    assert refused.status_code == 403
    agency.client.cookies.clear()
    assert sign_in(agency, EVE).status_code == 303
    assert agency.client.get("/admin/accounts").status_code == 403
    assert [r["actor"] for r in audit_rows(agency.dd, "policy_denied")][-2:] == [ANN, EVE]
