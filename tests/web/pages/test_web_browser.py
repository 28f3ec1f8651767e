"""The pages in a real headless Chromium (Playwright) against a real server on a loopback port.

First sign-in of a new account, as its owner does it: activation with the administrator's
code and her own password, TOTP enrolment from the page's key, a supervisor's vouch, sign-in
with the authenticator's code, the home page's frame, sign-out. Every page visited is scanned
with axe-core (no serious or critical violation) and checked for horizontal scrolling at phone
(390 px) and tablet (768 px) widths, and the browser must report no Content-Security-Policy
violation. Skipped, saying so, only when no Chromium is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pyotp
import pytest
import uvicorn
from served import free_port
from web_helpers import ORG, PASSWORD, UNIT, VOUCHER, audit_rows, open_installation, template

from faceledger.adapters.policy_file import load_policy
from faceledger.domain.policy import SearchRequest, decide_search
from faceledger.services import accounts, devices
from faceledger.services.datadir import DataDir
from faceledger.services.identification import Analyzer
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


@contextmanager
def serving(dd: DataDir, *, analyzer: Analyzer | None = None) -> Iterator[Served]:
    """A real uvicorn server (in a thread) on a free loopback port over ``dd``, a new installation:
    the first administrator and a supervisor of the unit are made first. Closes ``dd`` after."""
    try:
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
            uvicorn.Config(
                create_app(dd, analyzer=analyzer),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
            )
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
    finally:
        dd.close()


@pytest.fixture
def served(tmp_path: Path, template: Path) -> Iterator[Served]:
    """:func:`serving` over a new installation."""
    with serving(open_installation(tmp_path / "data", template)) as started:
        yield started


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

    def __init__(self, page: Any, other_profile: Callable[[], Any]) -> None:
        self.page = page
        #: A page in a second browser with its own fresh profile (no cookies, no authenticator).
        self.other_profile = other_profile
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
        contexts: list[Any] = []

        def launch() -> Any:
            context = driver.chromium.launch_persistent_context(
                str(tmp_path / f"chromium-profile-{len(contexts)}"),
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                bypass_csp=False,
            )
            contexts.append(context)
            return context.new_page()

        try:
            yield Checked(launch(), launch)
        finally:
            for context in contexts:
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
    page.get_by_role("link", name="Policy").click()
    page.wait_for_url(served.url + "/admin/policy")
    assert "No policy is in force" in page.locator("main").inner_text()
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


# --- a browser enrolled as a registered device (WebAuthn) ----------------------------------------

WORKSTATION = "fiu-ws-07"
SECOND = "sam.second"


def _person(served: Served, username: str) -> str:
    """A vouched examiner of the unit; their TOTP seed."""
    made = accounts.create_user(
        served.dd,
        served.admin,
        username=username,
        display_name=username.split(".")[0].title(),
        organisation=ORG,
        unit=UNIT,
        roles=["examiner"],
        now=now(),
    )
    uri = accounts.activate(served.dd, username=username, code=made.code, password=PASSWORD, now=now())
    accounts.vouch(served.dd, served.supervisor, username, now=now())
    return accounts.totp.seed_from_uri(uri)


def _sign_in_page(page: Any, url: str, username: str, seed: str, *, step: int = 0) -> None:
    page.goto(url + "/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    # A code is used once: a second sign-in in the same 30 s takes the next step's (accepted too).
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(seed).at(time.time() + 30 * step))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


def _issue_code(served: Served, url: str) -> str:
    """What a system administrator does: POST /api/v1/devices/{id}/browser-enrolments."""
    token = served.admin.session_token
    assert token is not None
    request = urllib.request.Request(
        f"{url}/api/v1/devices/{WORKSTATION}/browser-enrolments",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201
        body = json.loads(answer.read())
    assert body["device_id"] == WORKSTATION
    code: str = body["code"]
    return code


def _page_principal(served: Served, context: Any) -> accounts.Principal:
    """Who the browser's session cookie stands for, as the pages resolve it on every request."""
    token = next(c["value"] for c in context.cookies() if c["name"] == "faceledger_session")
    return accounts.principal_from_token(served.dd, token, None, now=now(), page=True)


def _search_rule(actor: Any) -> str:
    policy = load_policy(Path(str(resources.files("faceledger") / "data" / "example-policy.toml")))
    request = SearchRequest(
        actor=actor, case_number="2025/CID/004211", purpose="criminal_investigation",
        galleries=("custody_arrest_photos",),
    )  # fmt: skip
    return decide_search(policy, request, now=now()).rule_id


def test_a_browser_enrolled_with_a_one_time_code_signs_in_on_its_device(
    browser_page: Checked, served: Served
) -> None:
    devices.register_device(
        served.dd, served.admin, device_id=WORKSTATION, name="FIU workstation 7", unit=UNIT, now=now()
    )
    seed = _person(served, NEWCOMER)
    # WebAuthn needs a secure context: http://localhost is one (127.0.0.1 is not); rp id "localhost".
    url = served.url.replace("127.0.0.1", "localhost")
    page = browser_page.page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
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

    _sign_in_page(page, url, NEWCOMER, seed)
    assert "not a registered device" in page.get_by_role("region", name="Signed in").inner_text()
    browser_page.check()

    code = _issue_code(served, url)
    page.get_by_role("link", name="Enrol this browser as a device").click()
    page.wait_for_url("**/devices/enrol")
    browser_page.check()
    status = page.get_by_role("status")
    page.get_by_label("Enrolment code").fill("fle_not-the-code")
    page.get_by_role("button", name="Enrol this browser").click()
    playwright_sync.expect(status).to_contain_text("Not done: unknown browser enrolment code")
    page.get_by_label("Enrolment code").fill(code)
    page.get_by_role("button", name="Enrol this browser").click()
    playwright_sync.expect(status).to_contain_text(f"enrolled as device {WORKSTATION}")
    browser_page.check()
    held = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]})
    credentials = held["credentials"]
    assert len(credentials) == 1  # the private key is in the authenticator, not in the page or profile

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin?notice=signed_out")
    _sign_in_page(page, url, NEWCOMER, seed, step=1)
    before = _page_principal(served, page.context)
    assert before.actor.device_id is None
    page.get_by_role("button", name="Confirm this browser's device").click()
    playwright_sync.expect(page.locator(".who .device")).to_have_text(WORKSTATION)
    browser_page.check()
    bound = _page_principal(served, page.context)
    assert bound.actor.device_id == WORKSTATION
    assert bound.session_id == before.session_id
    assert _search_rule(bound.actor) == "search.allowed_pending_quality"
    assert _search_rule(before.actor) == "device.unregistered"

    changes = [
        (r["actor"], r["object"], r["details"]["change"]) for r in audit_rows(served.dd, "account_changed")
    ]
    target = f"device:{WORKSTATION}"
    assert ("ada.admin", target, "browser_enrolment_issued") in changes
    assert (NEWCOMER, target, "browser_enrolled") in changes
    assert (NEWCOMER, target, "browser_device_confirmed") in changes
    refused = [r["details"]["reason"] for r in audit_rows(served.dd, "policy_denied")]
    assert any("unknown browser enrolment code" in reason for reason in refused)

    # Another browser (no authenticator holding the key) signs in, but on no registered device.
    other_seed = _person(served, SECOND)
    other_page = browser_page.other_profile()
    _sign_in_page(other_page, url, SECOND, other_seed)
    assert other_page.locator(".who .device").inner_text() == "not a registered device"
    stranger = _page_principal(served, other_page.context)
    assert stranger.actor.device_id is None
    assert _search_rule(stranger.actor) == "device.unregistered"

    # Revoking the device ends the bound session at once.
    devices.revoke_device(served.dd, served.admin, WORKSTATION, reason="moved", now=now())
    page.goto(url + "/")
    assert page.url.endswith("/signin?notice=ended")
