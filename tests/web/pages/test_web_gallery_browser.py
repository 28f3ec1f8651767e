"""The gallery pages in a real headless Chromium against a real server: a gallery administrator
binds her browser to a registered device (virtual authenticator), creates a gallery, enrols a
folder of real photos with the live progress bar and its summary, and purges the gallery with a
reason and a confirmation. Every page is checked as in test_web_browser.py (axe, 390/768 px
widths, no CSP violation); the audit log must record each step.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from test_gallery_pages import GatedPipeline
from test_web_browser import Checked, Served, browser_page, now, playwright_sync, serving
from web_helpers import ORG, PASSWORD, UNIT, audit_rows, open_installation, photo, template

from faceledger.config import WebSettings
from faceledger.services import accounts, browser_devices, devices, policies
from faceledger.services.datadir import init_data_dir

__all__ = ["browser_page", "template"]  # fixtures

pytestmark = pytest.mark.slow

WORKSTATION = "fiu-ws-08"
GINA = "gina.galleries"
GALLERY = "custody-browser"


@pytest.fixture
def gated() -> GatedPipeline:
    return GatedPipeline()


@pytest.fixture
def served(tmp_path: Path, template: Path, gated: GatedPipeline) -> Iterator[Served]:
    """As test_web_browser.py's ``served``, with the face engine analysing through ``gated``."""
    made_dd = open_installation(tmp_path / "data", template)
    made_dd.close()
    web = WebSettings(enrol_root=tmp_path)
    dd = init_data_dir(tmp_path / "data", settings=made_dd.settings.with_overrides(web=web))
    with serving(dd, analyzer=gated) as started:
        try:
            yield started
        finally:
            gated.gate.set()  # let a held enrolment finish before the server stops


def _gallery_admin(served: Served) -> str:
    made = accounts.create_user(
        served.dd,
        served.admin,
        username=GINA,
        display_name="Gina Galleries",
        organisation=ORG,
        unit=UNIT,
        roles=["gallery_admin"],
        now=now(),
    )
    uri = accounts.activate(served.dd, username=GINA, code=made.code, password=PASSWORD, now=now())
    accounts.vouch(served.dd, served.supervisor, GINA, now=now())
    return accounts.totp.seed_from_uri(uri)


def test_gallery_creation_enrolment_with_progress_and_purge_in_a_browser(
    browser_page: Checked, served: Served, gated: GatedPipeline, tmp_path: Path, lfw_images: Path
) -> None:
    folder = tmp_path / "people"
    for name in ("Colin_Powell", "Tony_Blair"):
        (folder / name).mkdir(parents=True)
        shutil.copy(photo(lfw_images, name, 1), folder / name / f"{name}_0001.jpg")
    (folder / "Nobody").mkdir()
    (folder / "Nobody" / "broken.jpg").write_bytes(b"this is not a photo")
    policies.load_example_policy(served.dd, served.admin, now=now())
    devices.register_device(
        served.dd, served.admin, device_id=WORKSTATION, name="FIU workstation 8", unit=UNIT, now=now()
    )
    seed = _gallery_admin(served)
    url = served.url.replace("127.0.0.1", "localhost")  # a secure context for WebAuthn
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
    page.goto(url + "/signin")
    page.get_by_label("Username").fill(GINA)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(seed).now())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")

    # Without a device, the gallery page says why enrolment would be refused and links to enrolment.
    page.get_by_role("link", name="Galleries").click()
    page.wait_for_url("**/galleries")
    browser_page.check()
    page.get_by_label("Name (lowercase").fill(GALLERY)
    page.get_by_label("Legal basis").fill("PACE 1984 s.64A")
    page.get_by_label("Where its images come from").fill("custody suite photos")
    page.get_by_label("Retention in days").fill("365")
    page.get_by_role("button", name="Create the gallery").click()
    page.wait_for_url(f"**/galleries/{GALLERY}?created=1")
    playwright_sync.expect(page.get_by_role("status")).to_contain_text("The gallery was created.")
    browser_page.check()
    page.get_by_role("link", name="Enrol this browser as a device").click()
    page.wait_for_url("**/devices/enrol")
    code = browser_devices.issue_enrolment(served.dd, served.admin, WORKSTATION, now=now()).code
    page.get_by_label("Enrolment code").fill(code)
    page.get_by_role("button", name="Enrol this browser").click()
    playwright_sync.expect(page.get_by_role("status")).to_contain_text(f"enrolled as device {WORKSTATION}")
    page.goto(url + "/")
    if page.locator(".who .device").inner_text() != WORKSTATION:
        page.get_by_role("button", name="Confirm this browser's device").click()
    playwright_sync.expect(page.locator(".who .device")).to_have_text(WORKSTATION)

    # Enrol the folder: the progress bar polls until done, then the summary names the skipped photo.
    page.goto(f"{url}/galleries/{GALLERY}")
    page.get_by_label("Folder or manifest path on the server").fill(str(folder))
    page.get_by_label("Collected on").fill("2024-05-01")
    page.get_by_role("button", name="Start the enrolment").click()
    page.wait_for_url(f"**/galleries/{GALLERY}/enrolments/*")
    assert page.locator("progress").count() == 1
    # Held at its first photo: the page polls and shows it running; once let go, htmx swaps in done.
    playwright_sync.expect(page.locator(".job-state")).to_contain_text("Running: ")
    browser_page.check()
    gated.gate.set()
    playwright_sync.expect(page.locator(".job-state")).to_contain_text(
        "Done: enrolled 2 of 3 image(s)", timeout=180_000
    )
    playwright_sync.expect(page.locator("tr.skipped")).to_contain_text("broken.jpg")
    browser_page.check()
    page.get_by_role("link", name="Back to the gallery").click()
    page.wait_for_url(f"**/galleries/{GALLERY}")
    playwright_sync.expect(page.locator(".counts")).to_have_text("2 subjects, 2 images, 2 faces")
    playwright_sync.expect(page.locator("tr.turned-down")).to_contain_text("broken.jpg")
    browser_page.check()

    # Purge the whole gallery: a reason, an authority, the name typed again.
    page.get_by_label("Reason", exact=True).select_option("court_order")
    page.get_by_label("Authority").fill("Order 2026-123")
    page.get_by_role("button", name="Purge").click()
    page.wait_for_url(f"**/galleries/{GALLERY}/purge")
    browser_page.check()
    page.get_by_label("to confirm").fill(GALLERY)
    page.get_by_role("button", name="Purge for good").click()
    playwright_sync.expect(page.locator(".purged")).to_contain_text(f"The gallery {GALLERY} was purged")
    browser_page.check()

    assert [r["actor"] for r in audit_rows(served.dd, "gallery_created")] == [GINA]
    assert [r["actor"] for r in audit_rows(served.dd, "enrol")][:1] == [GINA]
    (purge,) = audit_rows(served.dd, "purge")
    assert purge["actor"] == GINA
    assert "Order 2026-123" in str(purge["details"])
