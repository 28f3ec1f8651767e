"""A search through the pages in a real headless Chromium, on real LFW photos.

The browser is enrolled as a registered device with Chromium's virtual authenticator and the
session bound to it (as in test_web_browser.py); the examiner fills the new-search form (the
case number checked live), picks the probe file, changes its brightness and contrast in the
page's editor, searches, sees the candidate grid with the gallery photos, and opens the faces page.
A search tried before the browser is a registered device is refused on the page with its rule.
Every page visited is scanned with axe, checked at 390 and 768 px, and for CSP violations; the
audit log must hold the search, its edits, the candidates shown and the candidates viewed.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from test_web_browser import (
    WORKSTATION,
    Checked,
    Served,
    _issue_code,
    _person,
    _sign_in_page,
    browser_page,
    now,
    playwright_sync,
    served,
)
from web_helpers import CASE, CUSTODY, ORG, PAROLE, PASSWORD, PEOPLE, UNIT, audit_rows, photo, template

from faceledger.adapters.policy_file import example_policy_text
from faceledger.services import accounts, devices, galleries, policies
from faceledger.services.devices import DEVICE_HEADER

__all__ = ["browser_page", "served", "template"]  # fixtures

pytestmark = [pytest.mark.slow, pytest.mark.faces]

EXAMINER = "eve.browser"
GALLERIES = "gil.browser"


def _enrol_gallery(served: Served, url: str, lfw_images: Path) -> None:
    """A gallery administrator on the workstation enrols photo 1 of each of PEOPLE over the API."""
    _, credential = devices.register_device(
        served.dd, served.admin, device_id=WORKSTATION, name="FIU workstation 7", unit=UNIT, now=now()
    )
    made = accounts.create_user(
        served.dd, served.admin, username=GALLERIES, display_name="Gil", organisation=ORG,
        unit=UNIT, roles=["gallery_admin"], now=now(),
    )  # fmt: skip
    uri = accounts.activate(served.dd, username=GALLERIES, code=made.code, password=PASSWORD, now=now())
    accounts.vouch(served.dd, served.supervisor, GALLERIES, now=now())
    code = accounts.totp.current_code(accounts.totp.seed_from_uri(uri), now())
    gil = accounts.authenticate(
        served.dd, username=GALLERIES, password=PASSWORD, totp=code, device=credential, now=now()
    )
    assert gil.session_token is not None
    headers = {"Authorization": f"Bearer {gil.session_token}", DEVICE_HEADER: credential.header_value()}
    for name in PEOPLE:
        answer = httpx2.post(
            f"{url}/api/v1/galleries/{CUSTODY}/images",
            data={"subject_id": name, "source": f"custody record {name}", "collected_on": "2024-05-01"},
            files={"image": (f"{name}.jpg", photo(lfw_images, name, 1).read_bytes(), "image/jpeg")},
            headers=headers,
            timeout=300,
        )
        assert answer.status_code == 201, answer.text


def test_a_search_through_the_page_shows_the_candidate_grid(
    browser_page: Checked, served: Served, lfw_images: Path
) -> None:
    policies.load_policy_text(served.dd, served.admin, example_policy_text(), source="test", now=now())
    for name in (CUSTODY, PAROLE):
        galleries.create_gallery(served.dd, name, legal_basis="PACE s.64A", source_description="LFW")
    url = served.url.replace("127.0.0.1", "localhost")  # WebAuthn needs a secure context
    _enrol_gallery(served, url, lfw_images)
    seed = _person(served, EXAMINER)
    page = browser_page.page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    _sign_in_page(page, url, EXAMINER, seed)
    # Off a device, the form says searches are refused and where to enrol.
    page.get_by_role("link", name="New search").click()
    page.wait_for_url("**/search")
    playwright_sync.expect(page.locator("#no-device")).to_contain_text("device.unregistered")
    browser_page.check()
    page.get_by_label("Case number").fill(CASE)
    page.locator('input[name="purpose"][value="criminal_investigation"]').check()
    page.locator(f'input[name="galleries"][value="{CUSTODY}"]').check()
    page.set_input_files("#probe", str(photo(lfw_images, "Tony_Blair", 2)))
    page.get_by_role("button", name="Search", exact=True).click()
    playwright_sync.expect(page.get_by_role("heading", name="Search refused")).to_be_visible()
    playwright_sync.expect(page.locator(".rule-id")).to_have_text("device.unregistered")
    playwright_sync.expect(page.locator(".policy-version-refused")).to_have_text("example-2025.1")
    browser_page.check()

    code = _issue_code(served, url)
    page.goto(url + "/devices/enrol")
    page.get_by_label("Enrolment code").fill(code)
    page.get_by_role("button", name="Enrol this browser").click()
    playwright_sync.expect(page.get_by_role("status")).to_contain_text(f"enrolled as device {WORKSTATION}")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin?notice=signed_out")
    _sign_in_page(page, url, EXAMINER, seed, step=1)
    page.get_by_role("button", name="Confirm this browser's device").click()
    playwright_sync.expect(page.locator(".who .device")).to_have_text(WORKSTATION)

    page.get_by_role("link", name="New search").click()
    page.wait_for_url("**/search")
    assert page.locator("#no-device").count() == 0
    case = page.get_by_label("Case number")
    case.fill("2025-1")
    playwright_sync.expect(page.locator("#case-status")).to_contain_text("is not in the agency's format")
    case.fill(CASE)
    playwright_sync.expect(page.locator("#case-status")).to_contain_text("In the agency's format.")
    page.locator('input[name="purpose"][value="deceased_or_incapacitated"]').check()
    playwright_sync.expect(page.locator(f'label.gallery[data-gallery="{PAROLE}"]')).to_be_hidden()
    page.locator('input[name="purpose"][value="criminal_investigation"]').check()
    page.locator(f'input[name="galleries"][value="{CUSTODY}"]').check()
    page.locator("#justification").fill("robbery at the post office")
    page.set_input_files("#probe", str(photo(lfw_images, "Tony_Blair", 2)))
    playwright_sync.expect(page.locator("#editor")).to_be_visible()
    page.get_by_label("Brightness (factor)").fill("1.2")
    page.get_by_label("Contrast (factor)").fill("1.5")
    playwright_sync.expect(page.locator("#edit-summary")).to_contain_text("brightness 1.2; contrast 1.5")
    browser_page.check()
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url("**/searches/*", timeout=300_000)
    playwright_sync.expect(page.get_by_role("heading", name="Rank 1: Tony_Blair")).to_be_visible()
    playwright_sync.expect(page.locator(".lead-notice")).to_contain_text("investigative lead only")
    page.wait_for_load_state("networkidle")
    loaded = page.evaluate(
        "[...document.querySelectorAll('.candidate img')].every((i) => i.complete && i.naturalWidth > 0)"
    )
    assert loaded, "a probe or candidate image did not load"
    playwright_sync.expect(page.locator(".face-box")).to_be_visible()
    browser_page.check()

    search_id = page.url.rsplit("/", 1)[-1]
    page.goto(f"{url}/searches/{search_id}/faces")  # every face of the probe, with its quality
    playwright_sync.expect(page.locator(".face-box.searched")).to_be_visible()
    browser_page.check()
    made = audit_rows(served.dd, "search")[-1]
    assert (made["actor"], made["object"]) == (EXAMINER, f"search:{search_id}")
    assert made["details"]["device_id"] == WORKSTATION
    assert [e["kind"] for e in made["details"]["probe_edits"]] == ["brightness", "contrast"]
    assert any(r["actor"] == EXAMINER for r in audit_rows(served.dd, "candidates_shown"))
    viewed = [r for r in audit_rows(served.dd, "candidate_viewed") if r["details"]["search_id"] == search_id]
    assert {r["details"]["subject_id"] for r in viewed} >= {"Tony_Blair"}
