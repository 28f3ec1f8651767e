"""The pages over HTTP (TestClient): sign-in, cookies, CSRF, idle timeout, sign-out, activation, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pages_helpers import csrf_of, page_agency, sign_in
from web_helpers import API, ORG, PASSWORD, UNIT, Agency, audit_rows, error_of, template

from faceledger.config import WebSettings, load_settings
from faceledger.domain.roles import Role
from faceledger.errors import ConfigError, StoreError
from faceledger.services.accounts import totp
from faceledger.web.pages.rendering import PAGE_POLICY

__all__ = ["template"]  # fixtures

EVE = "eve.examiner"


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with page_agency(tmp_path / "data", template) as made:
        made.add(EVE, Role.EXAMINER)
        yield made


def _set_cookie(response_headers: list[str], name: str) -> SimpleCookie:
    for header in response_headers:
        if header.startswith(f"{name}="):
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            return cookie
    raise AssertionError(f"no Set-Cookie for {name}: {response_headers}")


def _changes(agency: Agency, change: str) -> list[dict[str, Any]]:
    """The details of each ``account_changed`` entry of this kind of change, oldest first."""
    return [
        row["details"]
        for row in audit_rows(agency.dd, "account_changed")
        if row["details"].get("change") == change
    ]


# --- sign-in, the frame, cookies -----------------------------------------------------------------


def test_home_sends_a_stranger_to_sign_in(agency: Agency) -> None:
    answer = agency.client.get("/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin"
    page = agency.client.get("/signin")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert "'unsafe-inline'" not in PAGE_POLICY
    assert "<script>" not in page.text  # no inline script: every script is a file


def test_sign_in_sets_the_session_cookie_and_home_shows_who_where_and_which_policy(agency: Agency) -> None:
    agency.load_example_policy()
    answer = sign_in(agency, EVE)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"
    cookie = _set_cookie(answer.headers.get_list("set-cookie"), "faceledger_session")["faceledger_session"]
    assert cookie.value.startswith("fls_")
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/"
    assert not cookie["max-age"]  # a browser-session cookie: gone when the browser closes
    assert not cookie["expires"]
    assert not cookie["secure"]  # plain HTTP to 127.0.0.1 under secure_cookies = "auto"
    home = agency.client.get("/")
    assert home.status_code == 200, home.text
    assert EVE in home.text
    assert EVE.title() in home.text
    assert UNIT in home.text
    assert ORG in home.text
    assert "examiner" in home.text
    assert "not a registered device" in home.text
    assert "example-2025.1" in home.text or "Policy in force" in home.text
    # Times in the policy's time zone (the example policy's is Europe/London: BST in June).
    assert "Europe/London" in home.text
    assert "BST" in home.text
    # The same session token works on the API: the page and the API share the session.
    me = agency.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {cookie.value}"})
    assert me.status_code == 200
    assert me.json()["username"] == EVE
    assert any(row["actor"] == EVE for row in audit_rows(agency.dd, "sign_in"))


def test_home_shows_the_work_queues_of_the_persons_roles_and_today_against_the_limit(agency: Agency) -> None:
    """The queues' contents are tested on real searches in tests/services/test_work_queues.py."""
    agency.load_example_policy()
    agency.add("rita.reviewer", Role.REVIEWER)
    assert sign_in(agency, EVE).status_code == 303
    home = " ".join(agency.client.get("/").text.split())
    assert 'Searches awaiting examination <span class="count">(0)</span>' in home
    assert "Nothing waiting." in home
    assert "Searches today: <strong>0</strong> of your daily limit of 25." in home
    assert "Blind peer reviews" not in home  # not an examiner's queue
    assert "Approvals for my unit" not in home
    agency.client.cookies.clear()
    assert sign_in(agency, "rita.reviewer").status_code == 303
    home = " ".join(agency.client.get("/").text.split())
    assert 'Blind peer reviews <span class="count">(0)</span>' in home
    assert "Searches awaiting examination" not in home
    assert "daily limit" not in home  # a reviewer does not search
    work = agency.client.get(
        f"{API}/work", headers={"Authorization": f"Bearer {agency.client.cookies.get('faceledger_session')}"}
    )
    assert work.status_code == 200, work.text
    assert work.json()["to_peer_review"] == {"items": [], "total": 0}
    assert work.json()["to_examine"] is None


def test_home_without_a_policy_shows_why_the_queues_are_refused(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    home = agency.client.get("/")
    assert home.status_code == 200  # who and where are still shown
    assert "Your work queues cannot be shown" in home.text
    assert "(rule policy.none, policy none)" in home.text
    assert audit_rows(agency.dd, "policy_denied")[-1]["object"] == "work_queues"


def test_home_without_a_policy_says_so_and_uses_utc(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    home = agency.client.get("/")
    assert "none loaded" in home.text
    assert "Times are in UTC" in home.text


def test_the_cookie_is_secure_off_loopback(tmp_path: Path, template: Path) -> None:
    with page_agency(tmp_path / "data", template, base_url="https://faceledger.example") as agency:
        agency.add(EVE, Role.EXAMINER)
        answer = sign_in(agency, EVE)
        assert answer.status_code == 303, answer.text
        cookie = _set_cookie(answer.headers.get_list("set-cookie"), "faceledger_session")
        assert cookie["faceledger_session"]["secure"] is True


def test_plain_http_to_another_host_is_refused_saying_https_is_needed(tmp_path: Path, template: Path) -> None:
    with page_agency(tmp_path / "data", template, base_url="http://faceledger.example") as agency:
        agency.add(EVE, Role.EXAMINER)
        form = agency.client.get("/signin")
        cookie = _set_cookie(form.headers.get_list("set-cookie"), "faceledger_presession")
        assert cookie["faceledger_presession"]["secure"] is True  # so the client does not send it back
        answer = sign_in(agency, EVE)
        assert answer.status_code == 403
        assert "over HTTPS" in answer.text


def test_the_cookie_is_secure_always_when_set_so(tmp_path: Path, template: Path) -> None:
    with page_agency(tmp_path / "data", template, web=WebSettings(secure_cookies="always")) as agency:
        form = agency.client.get("/signin")
        cookie = _set_cookie(form.headers.get_list("set-cookie"), "faceledger_presession")
        assert cookie["faceledger_presession"]["secure"] is True


def test_a_wrong_password_shows_the_reason_and_is_recorded(agency: Agency) -> None:
    answer = sign_in(agency, EVE, password="not the password at all")
    assert answer.status_code == 401
    assert "Sign-in refused" in answer.text
    assert "wrong username or password" in answer.text
    assert "faceledger_session" not in answer.headers.get("set-cookie", "")
    failed = audit_rows(agency.dd, "sign_in_failed")
    assert failed
    assert failed[-1]["actor"] == EVE


def test_a_wrong_totp_code_shows_the_reason(agency: Agency) -> None:
    right = agency.code(EVE)
    assert right is not None
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    answer = sign_in(agency, EVE, code=wrong)
    assert answer.status_code == 401
    assert "wrong second-factor code" in answer.text
    missing = sign_in(agency, EVE, code="")
    assert missing.status_code == 401
    assert "must give the code from its authenticator app" in missing.text


def test_failed_page_sign_ins_are_throttled_like_the_api(agency: Agency) -> None:
    for _ in range(10):
        assert sign_in(agency, "nobody.here", password="guess").status_code == 401
    answer = sign_in(agency, "nobody.here", password="guess")
    assert answer.status_code == 429
    assert "text/html" in answer.headers["content-type"]
    assert "too many failed sign-ins for this username" in answer.text


# --- CSRF -------------------------------------------------------------------------------------------


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(agency: Agency) -> None:
    agency.client.get("/signin")
    agency.clock.advance(seconds=31)
    form = {"username": EVE, "password": PASSWORD, "totp": agency.code(EVE) or ""}
    missing = agency.client.post("/signin", data=form, follow_redirects=False)
    assert missing.status_code == 403
    assert "text/html" in missing.headers["content-type"]
    assert "security token is missing or out of date" in missing.text
    forged = agency.client.post("/signin", data={**form, "csrf_token": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    assert not any(row["actor"] == EVE for row in audit_rows(agency.dd, "sign_in"))  # nothing was tried
    # Another browser's token (bound to its own pre-session cookie) is refused too.
    other = csrf_of(agency.client.get("/signin"))
    agency.client.cookies.clear()
    stolen = agency.client.post("/signin", data={**form, "csrf_token": other}, follow_redirects=False)
    assert stolen.status_code == 403


def test_sign_out_needs_the_session_csrf_token_and_ends_the_session(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    token = agency.client.cookies["faceledger_session"]
    home = agency.client.get("/")
    refused = agency.client.post("/signout", data={"csrf_token": "f" * 64}, follow_redirects=False)
    assert refused.status_code == 403
    assert agency.client.get("/").status_code == 200  # still signed in
    out = agency.client.post("/signout", data={"csrf_token": csrf_of(home)}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/signin?notice=signed_out"
    assert "faceledger_session" not in agency.client.cookies
    # Ended on the server: the token no longer works anywhere, and the sign-out is recorded.
    me = agency.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    assert "signed out" in error_of(me)["message"]
    assert set(_changes(agency, "signed_out")[-1]["values"]) == {"session_id"}  # no reason: she signed out
    agency.client.cookies.set("faceledger_session", token)
    again = agency.client.get("/", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/signin?notice=ended"


# --- idle timeout ------------------------------------------------------------------------------------


def test_a_session_idle_longer_than_the_setting_is_ended(agency: Agency) -> None:
    assert sign_in(agency, EVE).status_code == 303
    token = agency.client.cookies["faceledger_session"]
    agency.clock.advance(minutes=29)
    assert agency.client.get("/").status_code == 200  # used within 30 minutes: still open
    agency.clock.advance(minutes=29)
    assert agency.client.get("/").status_code == 200  # 29 minutes after the last use, not the first
    agency.clock.advance(minutes=31)
    idle = agency.client.get("/", follow_redirects=False)
    assert idle.status_code == 303
    assert idle.headers["location"] == "/signin?notice=idle"
    notice = agency.client.get(idle.headers["location"])
    assert "not used for a while" in notice.text
    me = agency.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401  # ended on the server, not only forgotten by the browser
    assert _changes(agency, "signed_out")[-1]["values"]["reason"] == "idle"


def test_the_idle_limit_is_a_setting(tmp_path: Path, template: Path) -> None:
    with page_agency(tmp_path / "data", template, web=WebSettings(idle_minutes=5)) as agency:
        agency.add(EVE, Role.EXAMINER)
        assert sign_in(agency, EVE).status_code == 303
        agency.clock.advance(minutes=6)
        assert agency.client.get("/", follow_redirects=False).headers["location"] == "/signin?notice=idle"


def test_an_api_token_in_the_cookie_is_not_a_page_session(agency: Agency) -> None:
    session = agency.login(EVE)
    made = agency.client.post(
        f"{API}/tokens", json={"name": "t", "days": 1, "scopes": ["examiner"]}, headers=session.headers
    )
    assert made.status_code == 201, made.text
    api_token = made.json()["secret"]
    assert api_token.startswith("flt_")
    agency.client.cookies.set("faceledger_session", api_token)
    assert agency.client.get("/", follow_redirects=False).status_code == 303


# --- activation ---------------------------------------------------------------------------------------


def _created(agency: Agency, username: str) -> str:
    body = {
        "username": username,
        "display_name": "Nia New",
        "organisation": ORG,
        "unit": UNIT,
        "roles": ["examiner"],
    }
    answer = agency.client.post(f"{API}/users", json=body, headers=agency.admin().headers)
    assert answer.status_code == 201, answer.text
    code: str = answer.json()["activation_code"]
    return code


def _activate(agency: Agency, **fields: str) -> object:
    form = agency.client.get("/activate")
    assert form.status_code == 200
    return agency.client.post("/activate", data={**fields, "csrf_token": csrf_of(form)})


def test_activation_sets_the_password_and_shows_the_totp_qr_code_and_key(agency: Agency) -> None:
    code = _created(agency, "nia.new")
    password = "my very own passphrase"
    answer = agency.client.post(
        "/activate",
        data={
            "username": "nia.new",
            "code": code,
            "password": password,
            "password_again": password,
            "csrf_token": csrf_of(agency.client.get("/activate")),
        },
    )
    assert answer.status_code == 200, answer.text
    assert "<svg" in answer.text
    assert 'class="qr"' in answer.text
    shown = re.search(r'<code class="totp-secret">([A-Z2-7 ]+)</code>', answer.text)
    assert shown is not None
    secret = shown.group(1).replace(" ", "")
    assert audit_rows(agency.dd, "account_changed")[-1]["actor"] == "nia.new"
    assert _changes(agency, "activated")
    # The supervisor vouches (over the API), then the first sign-in with the app's code confirms it.
    vouched = agency.client.post(f"{API}/users/nia.new/vouch", headers=agency.login("una.unitlead").headers)
    assert vouched.status_code == 200, vouched.text
    agency.seeds["nia.new"] = totp.provisioning_uri(secret, username="nia.new", organisation=ORG)
    signed = sign_in(agency, "nia.new", password=password)
    assert signed.status_code == 303, signed.text
    assert "Nia New" in agency.client.get("/").text
    assert _changes(agency, "totp_confirmed")


def test_activation_refusals_show_their_reason(agency: Agency) -> None:
    code = _created(agency, "nia.new")
    short = agency.client.post(
        "/activate",
        data={
            "username": "nia.new",
            "code": code,
            "password": "short",
            "password_again": "short",
            "csrf_token": csrf_of(agency.client.get("/activate")),
        },
    )
    assert short.status_code == 422
    assert "Activation refused" in short.text
    assert "at least 12 characters" in short.text
    differ = agency.client.post(
        "/activate",
        data={
            "username": "nia.new",
            "code": code,
            "password": PASSWORD,
            "password_again": PASSWORD + "x",
            "csrf_token": csrf_of(agency.client.get("/activate")),
        },
    )
    assert differ.status_code == 422
    assert "the two passwords differ" in differ.text
    wrong = agency.client.post(
        "/activate",
        data={
            "username": "nia.new",
            "code": "fla_wrong",
            "password": PASSWORD,
            "password_again": PASSWORD,
            "csrf_token": csrf_of(agency.client.get("/activate")),
        },
    )
    assert wrong.status_code == 401
    assert "wrong, expired or already used" in wrong.text
    assert audit_rows(agency.dd, "sign_in_failed")[-1]["details"]["reason"] == "activation_wrong"


# --- hostile input and unknown pages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "status", "reason"),
    [
        ("username", "eve\x00\x1b[31m.examiner", 401, "wrong username or password"),
        ("username", "e" * 100_000, 422, "it takes at most 64"),
        ("password", "p" * 50_000, 422, "it takes at most 1024"),
        ("totp", "1\n2\r3", 401, "wrong second-factor code"),
    ],
)
def test_hostile_sign_in_input_gets_a_clear_page(
    agency: Agency, field: str, value: str, status: int, reason: str
) -> None:
    form = {"username": EVE, "password": PASSWORD, "totp": agency.code(EVE) or ""}
    form[field] = value
    answer = agency.client.post(
        "/signin", data={**form, "csrf_token": csrf_of(agency.client.get("/signin"))}, follow_redirects=False
    )
    assert answer.status_code == status, answer.text[:500]
    assert "text/html" in answer.headers["content-type"]
    assert reason in answer.text
    assert "Traceback" not in answer.text
    assert "\x00" not in answer.text
    assert "\x1b" not in answer.text


def test_a_body_over_the_limit_gets_a_page(agency: Agency) -> None:
    huge = "u" * (3 * 1024 * 1024)
    answer = agency.client.post("/signin", data={"username": huge, "csrf_token": "x"})
    assert answer.status_code == 413
    assert "text/html" in answer.headers["content-type"]
    assert "larger than this endpoint accepts" in answer.text


def test_a_missing_page_is_html_for_browsers_and_the_api_keeps_json(agency: Agency) -> None:
    page = agency.client.get("/no/such/page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert "Page not found" in page.text
    assert page.headers["content-security-policy"] == PAGE_POLICY
    api = agency.client.get(f"{API}/no-such-thing", headers={"Accept": "text/html"})
    assert api.status_code == 404
    assert error_of(api)["code"] == "not_found"
    wrong_method = agency.client.get("/signout")
    assert wrong_method.status_code == 405
    assert "text/html" in wrong_method.headers["content-type"]


def test_the_project_files_are_served_and_missing_vendor_files_are_a_404(agency: Agency) -> None:
    css = agency.client.get("/static/faceledger/faceledger.css")
    assert css.status_code == 200
    assert "focus-visible" in css.text
    assert agency.client.get("/static/vendor/not-a-file.js").status_code == 404


def test_vendor_files_are_served_from_the_assets_folder(tmp_path: Path, template: Path) -> None:
    assets = tmp_path / "node_modules"
    (assets / "htmx.org" / "dist").mkdir(parents=True)
    (assets / "htmx.org" / "dist" / "htmx.min.js").write_text("/* htmx stand-in */", encoding="utf-8")
    with page_agency(tmp_path / "data", template, web=WebSettings(assets_dir=assets)) as agency:
        page = agency.client.get("/signin")
        assert '<script src="/static/vendor/htmx.min.js" defer></script>' in page.text
        served = agency.client.get("/static/vendor/htmx.min.js")
        assert served.status_code == 200
        assert served.text == "/* htmx stand-in */"
        assert served.headers["content-type"].startswith("text/javascript")


def test_without_the_vendor_files_the_pages_work_and_the_log_names_the_setup_step(
    tmp_path: Path, template: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level("WARNING", logger="faceledger.web"),
        page_agency(tmp_path / "data", template, web=WebSettings(assets_dir=tmp_path / "empty")) as agency,
    ):
        agency.add(EVE, Role.EXAMINER)
        page = agency.client.get("/signin")
        assert page.status_code == 200
        assert "/static/vendor/" not in page.text  # no script tag for a file that is not there
        assert sign_in(agency, EVE).status_code == 303
        assert agency.client.get("/").status_code == 200
    warned = [r.getMessage() for r in caplog.records if "htmx.min.js" in r.getMessage()]
    assert warned, caplog.text
    assert "./scripts/setup" in warned[0]
    assert "npm ci" in warned[0]


def test_an_unexpected_failure_on_a_page_is_a_page_with_the_log_reference(
    agency: Agency, caplog: pytest.LogCaptureFixture
) -> None:
    app = agency.client.app
    assert isinstance(app, FastAPI)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    with caplog.at_level("ERROR", logger="faceledger.web"):
        answer = agency.client.get("/boom")
    assert answer.status_code == 500
    assert "text/html" in answer.headers["content-type"]
    assert "hunter2" not in answer.text
    assert "Traceback" not in answer.text
    found = re.search(r"reference ([0-9a-f]{12})", answer.text)
    assert found is not None
    assert any(found.group(1) in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_server_side_failure_on_a_page_shows_no_server_path(agency: Agency) -> None:
    app = agency.client.app
    assert isinstance(app, FastAPI)
    root = agency.dd.path

    @app.get("/boom-store")
    def boom_store() -> None:
        raise StoreError(f"cannot read the image file {root}/images/ab/cd/abcd: No such file or directory")

    answer = agency.client.get("/boom-store")
    assert answer.status_code == 503
    assert "text/html" in answer.headers["content-type"]
    assert str(root) not in answer.text
    assert "cannot read the image file &lt;data directory&gt;" in answer.text


# --- the [web] settings -----------------------------------------------------------------------------


def test_the_web_settings_are_read_from_config_toml_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[web]\nsecure_cookies = "always"\nidle_minutes = 10\n', "utf-8")
    chosen = load_settings(tmp_path, env={"FACELEDGER_WEB__IDLE_MINUTES": "15"})
    assert chosen.web == WebSettings(secure_cookies="always", idle_minutes=15)
    moved = load_settings(tmp_path, env={"FACELEDGER_WEB__ASSETS_DIR": "~/js"})
    assert moved.web.assets_dir == Path("~/js").expanduser()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[web]\nsecure_cookies = "sometimes"\n', "is not one of auto, always, never"),
        ("[web]\nidle_minutes = 0\n", "must be 1-1440 minutes"),
        ("[web]\ncookie = 1\n", "unknown setting web.'cookie'"),
    ],
)
def test_a_bad_web_setting_is_refused_saying_why(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "config.toml").write_text(text, "utf-8")
    with pytest.raises(ConfigError, match=re.escape(reason)):
        load_settings(tmp_path, env={})
