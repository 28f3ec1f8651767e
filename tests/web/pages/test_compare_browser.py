"""The comparison viewer in a real headless Chromium, on a real search of LFW photos.

Zoom, pan, the overlay and its opacity slider, and the wipe, all from the keyboard; both
images move together; every state is scanned with axe-core, checked at 390 and 768 px for
horizontal scrolling and for Content-Security-Policy violations (``Checked.check``). The
images come through the services that record their viewing. The browser is the unit's
workstation: it sends the device credential with every request, as the API's clients do
(the WebAuthn enrolment of a browser is test_web_browser.py's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pages_helpers import LOCAL
from served import free_port
from test_web_browser import Checked, browser_page, playwright_sync
from web_helpers import (
    CUSTODY,
    PASSWORD,
    UNIT,
    Agency,
    Clock,
    audit_rows,
    enrol_people,
    open_installation,
    search_photo,
    shared_pipeline,
    template,
)

from faceledger.services import galleries
from faceledger.services.devices import DEVICE_HEADER
from faceledger.web import create_app

__all__ = ["browser_page", "template"]  # fixtures

pytestmark = [pytest.mark.slow, pytest.mark.faces]

SAM = "sam.examiner"


@dataclass
class Viewer:
    url: str
    agency: Agency
    search_id: int
    face_id: int


@pytest.fixture
def viewer(tmp_path: Path, template: Path, lfw_images: Path) -> Iterator[Viewer]:
    """An installation with a search by SAM, served by uvicorn on a loopback port (its clock fixed)."""
    clock = Clock()
    dd = open_installation(tmp_path / "data", template)
    app = create_app(dd, analyzer=shared_pipeline(), clock=clock)
    try:
        with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client:
            agency = Agency.start(client, dd, clock)
            agency.load_example_policy()
            galleries.create_gallery(dd, CUSTODY, legal_basis="PACE s.64A", source_description="LFW")
            agency.add("gil.galleries", "gallery_admin")
            agency.add(SAM, "examiner")
            enrol_people(agency, agency.login("gil.galleries"), lfw_images)
            found = search_photo(agency, agency.login(SAM), lfw_images, "Tony_Blair", 2)
            assert found.status_code == 201, found.text
            body = found.json()
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            deadline = time.monotonic() + 30
            while not server.started:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            try:
                yield Viewer(
                    f"http://127.0.0.1:{port}",
                    agency,
                    int(body["search_id"]),
                    int(body["candidates"][0]["face_id"]),
                )
            finally:
                server.should_exit = True
                thread.join(timeout=30)
    finally:
        dd.close()


def _transforms(page: playwright_sync.Page) -> list[str]:
    transforms: list[str] = page.evaluate(
        "[...document.querySelectorAll('.compare img.layer')].map((img) => img.style.transform)"
    )
    return transforms


def test_the_comparison_viewer_by_keyboard(browser_page: Checked, viewer: Viewer) -> None:
    page = browser_page.page
    agency = viewer.agency
    page.context.set_extra_http_headers({DEVICE_HEADER: agency.device_of(UNIT)})
    agency.clock.advance(seconds=31)
    page.goto(viewer.url + "/signin")
    page.get_by_label("Username").fill(SAM)
    page.get_by_label("Password").fill(PASSWORD)
    code = agency.code(SAM)
    assert code is not None
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(viewer.url + "/")

    page.goto(f"{viewer.url}/reviews/{viewer.search_id}/compare/{viewer.face_id}")
    page.wait_for_function(
        "[...document.querySelectorAll('.compare img.layer')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    browser_page.check()
    shown = [(r["actor"], r["object"]) for r in audit_rows(agency.dd, "probe_viewed")]
    assert shown == [(SAM, f"search:{viewer.search_id}")]
    assert audit_rows(agency.dd, "candidate_viewed")[-1]["actor"] == SAM

    # Zoom from the keyboard, on the focused probe: both images scale together.
    page.get_by_role("group", name="The probe").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.locator("output.zoom-value").inner_text() == "1.5×"
    probe, candidate = _transforms(page)
    assert "scale(1.5)" in probe
    assert probe == candidate
    page.keyboard.press("ArrowLeft")
    panned, candidate = _transforms(page)
    assert panned != probe
    assert panned == candidate

    # The overlay: O, then the labelled opacity slider with the arrow keys, then ] anywhere.
    page.keyboard.press("o")
    assert page.get_by_label("Overlay (O)").is_checked()
    assert page.evaluate(
        "document.querySelector('img.candidate').parentElement.closest('.pane-probe') !== null"
    )
    slider = page.get_by_label("Candidate opacity ([ / ])")
    assert slider.is_visible()
    slider.focus()
    page.keyboard.press("ArrowRight")
    playwright_sync.expect(slider).to_have_value("55")
    assert page.evaluate("document.querySelector('img.candidate').style.opacity") == "0.55"
    page.get_by_role("group", name="The probe").focus()
    page.keyboard.press("]")
    playwright_sync.expect(slider).to_have_value("60")
    assert page.locator("output.opacity-value").inner_text() == "60%"
    browser_page.check()

    # The wipe, and back to side by side; 0 resets zoom and pan.
    page.keyboard.press("w")
    assert "inset(0px 0px 0px 50%)" in page.evaluate("document.querySelector('img.candidate').style.clipPath")
    page.keyboard.press("s")
    assert page.evaluate(
        "document.querySelector('img.candidate').parentElement.closest('.pane-candidate') !== null"
    )
    page.keyboard.press("0")
    assert page.locator("output.zoom-value").inner_text() == "1×"
    browser_page.check()

    # The review page it came from, with the feature worksheet open, passes the same checks.
    page.get_by_role("link", name="Back to the review").click()
    page.wait_for_url(f"{viewer.url}/reviews/{viewer.search_id}")
    page.locator("details.worksheet summary").first.click()
    assert page.get_by_label(f"Ears of face {viewer.face_id}", exact=True).is_visible()
    browser_page.check()
