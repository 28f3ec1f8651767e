"""The pages in a real headless Chromium (Playwright) against a real server on a loopback port.

First sign-in of a new account, as its owner does it: activation with the administrator's
code and her own password, TOTP enrolment from the page's key, a supervisor's vouch, sign-in
with the authenticator's code, the home page's frame, sign-out. Every page visited is scanned
with axe-core (no serious or critical violation) and checked for horizontal scrolling at phone
(390 px) and tablet (768 px) widths, and the browser must report no Content-Security-Policy
violation. Skipped, saying so, only when no Chromium is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
import uvicorn
from served import free_port
from web_helpers import ORG, PASSWORD, UNIT, VOUCHER, audit_rows, open_installation, template

from faceledger.services import accounts
from faceledger.services.datadir import DataDir
from faceledger.web import create_app
from faceledger.web.pages.rendering import SOURCE_ASSETS

__all__ = ["template"]  # fixtures

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")

CHROMIUM = next(
    (path for path in ("/usr/bin/chromium", shutil.which("chromium") or "") if path and Path(path).is_file()),
    None,
)
AXE = SOURCE_ASSETS / "axe-core" / "axe.min.js"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_SOURCE = AXE.read_text(encoding="utf-8") if AXE.is_file() else ""
WIDTHS = (390, 768)
NEWCOMER = "nia.new"

pytestmark = pytest.mark.slow
#: CI sets this (like FACELEDGER_REQUIRE_POSTGRES): there a missing Chromium fails instead of skipping.
REQUIRE = os.environ.get("FACELEDGER_REQUIRE_CHROMIUM") == "1"
MISSING = (
    "no Chromium found at /usr/bin/chromium: install it with `apt-get install -y chromium` "
    "(scripts/setup does, when run as root)"
)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Served:
    url: str
    dd: DataDir
    admin: accounts.Principal
    supervisor: accounts.Principal


@pytest.fixture
def served(tmp_path: Path, template: Path) -> Iterator[Served]:
    """A real uvicorn server (in a thread) on a free loopback port, over a new installation."""
    dd = open_installation(tmp_path / "data", template)
    secret = accounts.bootstrap_admin(dd, now=now())
    _, admin_uri = accounts.claim_bootstrap(
        dd, secret, "ada.admin", PASSWORD, organisation=ORG, unit="IT", now=now()
    )
    admin = accounts.authenticate(
        dd, username="ada.admin", password=PASSWORD, totp=_code(admin_uri), device=None, now=now()
    )
    made = accounts.create_user(
        dd,
        admin,
        username=VOUCHER,
        display_name="Una Unitlead",
        organisation=ORG,
        unit=UNIT,
        roles=["supervisor"],
        now=now(),
    )
    una_uri = accounts.activate(dd, username=VOUCHER, code=made.code, password=PASSWORD, now=now())
    accounts.vouch_as_installer(dd, VOUCHER, now=now())
    supervisor = accounts.authenticate(
        dd, username=VOUCHER, password=PASSWORD, totp=_code(una_uri), device=None, now=now()
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(dd), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", dd, admin, supervisor)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        dd.close()


def _activated(dd: DataDir) -> bool:
    """Whether the log records that the newcomer activated her account."""
    return any(
        row["actor"] == NEWCOMER and row["details"].get("change") == "activated"
        for row in audit_rows(dd, "account_changed")
    )


def _code(uri: str) -> str:
    return accounts.totp.current_code(accounts.totp.seed_from_uri(uri), now())


class Checked:
    """A browser page whose every visited page is checked: axe, widths, CSP violations."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        self.visited: list[str] = []

    def check(self) -> None:
        page = self.page
        self.visited.append(page.url)
        violations = [text for text in self.console if "Content Security Policy" in text]
        assert not violations, f"CSP violations on {page.url}: {violations}"
        # Not page.add_script_tag: the pages' CSP (rightly) refuses an inline script tag. Evaluated
        # through the DevTools protocol, as a person's console would, axe runs under the real CSP.
        page.evaluate(AXE_SOURCE)
        result = page.evaluate("async () => await axe.run(document)")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in result["violations"]
            if v["impact"] in {"serious", "critical"}
        ]
        assert not bad, f"axe on {page.url}:\n" + "\n".join(bad)
        size = page.viewport_size
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, f"{page.url} scrolls sideways at {width} px ({scroll} > {inner})"
        page.set_viewport_size(size)


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Checked]:
    if CHROMIUM is None:
        if REQUIRE:
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing at {AXE}: run ./scripts/setup (npm ci in web-assets/)")
    with playwright_sync.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            bypass_csp=False,
        )
        try:
            yield Checked(context.new_page())
        finally:
            context.close()


def test_first_sign_in_activation_totp_home_and_sign_out(browser_page: Checked, served: Served) -> None:
    made = accounts.create_user(
        served.dd,
        served.admin,
        username=NEWCOMER,
        display_name="Nia New",
        organisation=ORG,
        unit=UNIT,
        roles=["examiner"],
        now=now(),
    )
    page = browser_page.page

    page.goto(served.url + "/")
    assert page.url.endswith("/signin")
    assert page.title() == "Sign in - faceledger"
    browser_page.check()

    page.get_by_role("link", name="Activate it with the code from your administrator").click()
    page.wait_for_url("**/activate")
    browser_page.check()
    page.get_by_label("Username").fill(NEWCOMER)
    page.get_by_label("Activation code").fill(made.code)
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password again").fill("short")
    page.get_by_role("button", name="Activate").click()
    page.wait_for_load_state()
    # The browser's own minlength check, or the service's refusal: either way no activation yet.
    assert not _activated(served.dd)
    chosen = "nia's own long passphrase"
    page.get_by_label("New password", exact=True).fill(chosen)
    page.get_by_label("New password again").fill(chosen)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Enrol your authenticator app", level=1).is_visible()
    assert page.locator(".qr svg").is_visible()
    browser_page.check()
    secret = re.sub(r"\s", "", page.locator(".totp-secret").inner_text())
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    assert _activated(served.dd)

    accounts.vouch(served.dd, served.supervisor, NEWCOMER, now=now())  # the supervisor's part

    page.get_by_role("link", name="Go to sign-in").click()
    page.wait_for_url("**/signin?notice=activated")
    # A wrong code first: the page says why, and the refusal is recorded.
    right = pyotp.TOTP(secret).now()
    page.get_by_label("Username").fill(NEWCOMER)
    page.get_by_label("Password").fill(chosen)
    page.get_by_label("Code from your authenticator app").fill(f"{(int(right) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "wrong second-factor code" in page.get_by_role("alert").inner_text()
    assert audit_rows(served.dd, "sign_in_failed")[-1]["details"]["reason"] == "totp_wrong"
    browser_page.check()
    page.get_by_label("Username").fill(NEWCOMER)
    page.get_by_label("Password").fill(chosen)
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(served.url + "/")
    browser_page.check()
    who = page.get_by_role("region", name="Signed in")
    assert "Nia New" in who.inner_text()
    assert NEWCOMER in who.inner_text()
    assert UNIT in who.inner_text()
    assert "examiner" in who.inner_text()
    assert "not a registered device" in who.inner_text()
    assert "none loaded" in page.locator("footer").inner_text()
    confirmed = [
        r for r in audit_rows(served.dd, "account_changed") if r["details"].get("change") == "totp_confirmed"
    ]
    assert confirmed
    assert confirmed[-1]["actor"] == NEWCOMER
    assert audit_rows(served.dd, "sign_in")[-1]["actor"] == NEWCOMER

    # Keyboard: the skip link is the first stop and moves focus to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"

    # Cases: the navigation opens the case form; with no policy in force, the door refuses, and
    # the page says so with the rule.
    page.get_by_role("link", name="Cases").click()
    page.wait_for_url(served.url + "/cases")
    browser_page.check()
    page.get_by_label("Case number").fill("2025/CID/000001")
    page.get_by_role("button", name="Open").click()
    page.wait_for_url("**/cases/2025%2FCID%2F000001")
    refusal = page.locator("main").inner_text()
    assert "Rule: policy.none" in refusal
    assert "no policy is in force" in refusal
    browser_page.check()
    page.goto(served.url + "/")

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["faceledger_session"]["httpOnly"] is True
    assert cookies["faceledger_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script on the page can read it

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin?notice=signed_out")
    assert page.get_by_role("status").inner_text() == "You are signed out."
    browser_page.check()
    assert audit_rows(served.dd, "account_changed")[-1]["details"]["change"] == "signed_out"
    page.goto(served.url + "/")
    assert page.url.endswith("/signin")


def test_an_unknown_page_is_an_accessible_html_404(browser_page: Checked, served: Served) -> None:
    page = browser_page.page
    answer = page.goto(served.url + "/no/such/page")
    assert answer is not None
    assert answer.status == 404
    assert page.get_by_role("heading", name="Page not found").is_visible()
    browser_page.check()
