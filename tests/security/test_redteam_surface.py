"""Red team, issue 7 section 5: the sign-in form, the headers of every answer, the files on disk.

Each test failed on the code before the fix: a locked account answered differently and about
25x faster than an unknown username; nothing throttled sign-in; locking an account ended
its owner's sessions; answers had no Cache-Control, nosniff or CSP; /docs loaded Swagger UI
from a CDN; error messages carried server paths; the data directory's files were readable
by every local user and a readable data directory was opened without a word.
"""

from __future__ import annotations

import os
import re
import stat
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from web_helpers import ADMIN, API, PASSWORD, Agency, Clock, error_of, running, settings, template

from faceledger.config import AccountSettings
from faceledger.errors import StoreError
from faceledger.services.datadir import init_data_dir, open_data_dir
from faceledger.web import create_app
from faceledger.web.limits import SignInLimits

__all__ = ["template"]  # fixtures

#: A password hash that costs tens of milliseconds, as a real one does (FAST costs one).
COSTLY = AccountSettings(
    argon2_time_cost=2, argon2_memory_kib=32768, argon2_parallelism=1, lockout_failures=3
)


@pytest.fixture
def agency(tmp_path: Path, template: Path) -> Iterator[Agency]:
    with running(tmp_path / "data", template) as started:
        yield started


def _costly_agency(folder: Path, **app_options: object) -> tuple[Agency, TestClient]:
    dd = init_data_dir(folder, settings=settings().with_overrides(accounts=COSTLY))
    clock = Clock()
    client = TestClient(create_app(dd, clock=clock, **app_options), raise_server_exceptions=False)  # type: ignore[arg-type]
    client.__enter__()
    return Agency.start(client, dd, clock), client


def _login(client: TestClient, username: str, password: str = PASSWORD) -> httpx2.Response:
    return client.post(f"{API}/auth/login", json={"username": username, "password": password})


def _lock(client: TestClient, username: str) -> None:
    for _ in range(COSTLY.lockout_failures):
        assert _login(client, username, "not the password at all").status_code == 401


# --- sign-in ---------------------------------------------------------------------------------


def test_a_locked_account_answers_like_an_unknown_username_in_the_same_time(tmp_path: Path) -> None:
    agency, client = _costly_agency(tmp_path / "data")
    try:
        _lock(client, ADMIN)
        locked, unknown = _login(client, ADMIN), _login(client, "nobody.here")  # the right password, even
        assert (locked.status_code, locked.json()) == (unknown.status_code, unknown.json())
        assert locked.status_code == 401
        assert error_of(locked)["message"] == "wrong username or password"

        def took(username: str) -> float:
            start = time.perf_counter()
            _login(client, username)
            return time.perf_counter() - start

        times: dict[str, list[float]] = {ADMIN: [], "nobody.here": []}
        for _ in range(3):  # interleaved, so a slow moment of the machine hits both alike
            for username in times:
                times[username].append(took(username))
        slow, fast = sorted(statistics.median(t) for t in times.values())[::-1]
        assert slow < 3 * fast, times
    finally:
        client.__exit__(None, None, None)
        agency.dd.close()


def test_locking_an_account_does_not_end_its_owners_sessions(agency: Agency) -> None:
    session = agency.admin()
    for _ in range(3):
        assert _login(agency.client, ADMIN, "a stranger's guess!!").status_code == 401
    assert _login(agency.client, ADMIN).status_code == 401  # locked: no new sign-in
    assert agency.client.get(f"{API}/auth/me", headers=session.headers).status_code == 200


def test_failed_sign_ins_are_throttled_per_username(tmp_path: Path, template: Path) -> None:
    clock = Clock()
    with running(tmp_path / "data", template) as agency:
        limits = SignInLimits(per_username="3 per minute", per_address="100 per minute")
        with TestClient(create_app(agency.dd, clock=clock, sign_in_limits=limits)) as client:
            answers = [_login(client, "nobody.here").status_code for _ in range(4)]
            assert answers == [401, 401, 401, 429]
            refused = _login(client, "NoBody.Here")
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert error_of(refused)["code"] == "too_many_attempts"
            assert _login(client, "someone.else").status_code == 401  # another username still tries


def test_failed_sign_ins_are_throttled_per_client_address(tmp_path: Path, template: Path) -> None:
    with running(tmp_path / "data", template) as agency:
        limits = SignInLimits(per_username="100 per minute", per_address="3 per minute")
        app = create_app(agency.dd, clock=Clock(), sign_in_limits=limits)
        with TestClient(app, client=("10.0.0.7", 5000)) as client:
            answers = [_login(client, f"guess.{n}").status_code for n in range(4)]
            assert answers == [401, 401, 401, 429]
            assert "from this address" in error_of(_login(client, "guess.9"))["message"]
        with TestClient(app, client=("10.0.0.8", 5000)) as other:
            assert _login(other, "guess.9").status_code == 401
        schema = app.openapi()["paths"][f"{API}/auth/login"]["post"]["responses"]
        assert "429" in schema


# --- responses -------------------------------------------------------------------------------


def test_every_answer_is_not_cached_not_sniffed_and_has_a_policy(agency: Agency) -> None:
    session = agency.admin()
    answers = [
        agency.client.get(f"{API}/auth/me", headers=session.headers),
        agency.client.get(f"{API}/auth/bootstrap"),
        agency.client.get(f"{API}/auth/me"),  # 401
        agency.client.get(f"{API}/no/such/route"),  # 404
        agency.client.get("/openapi.json"),
    ]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store", answer.url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.url
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"], answer.url


def test_the_docs_page_loads_swagger_ui_from_the_service_itself(agency: Agency) -> None:
    page = agency.client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text
    assert "http://" not in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert all(source.startswith("/docs/assets/") for source in sources), sources
    for source in sources:
        asset = agency.client.get(source)
        assert asset.status_code == 200, source
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert "SwaggerUIBundle" in agency.client.get("/docs/assets/swagger-ui-bundle.js").text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-eval" not in policy
    assert "https:" not in policy
    assert agency.client.get("/redoc").status_code == 404  # ReDoc loads from a CDN only: off


def test_error_messages_carry_no_server_paths(agency: Agency) -> None:
    root = agency.dd.path

    @agency.app.get(f"{API}/boom-store")  # under the API: a path outside it is a web page (HTML)
    def boom_store() -> None:
        raise StoreError(f"cannot read the image file {root}/images/ab/cd/abcd: No such file or directory")

    @agency.app.get(f"{API}/boom-model")
    def boom_model() -> None:
        raise StoreError("cannot load the model /opt/models/arcface/model.onnx")

    for route in (f"{API}/boom-store", f"{API}/boom-model"):
        answer = agency.client.get(route)
        assert answer.status_code == 503
        message = error_of(answer)["message"]
        assert str(root) not in message, message
        assert "/opt/models" not in message, message
        assert "<data directory>" in message or "<path>" in message


# --- files -------------------------------------------------------------------------------------


def _loose(root: Path) -> list[str]:
    """Every file or folder under ``root`` that others may read or change."""
    found = []
    for folder, _dirs, files in os.walk(root):
        for path in [Path(folder), *(Path(folder) / name for name in files)]:
            if stat.S_IMODE(path.lstat().st_mode) & 0o077:
                found.append(f"{path.relative_to(root)} {stat.S_IMODE(path.lstat().st_mode):04o}")
    return found


def test_a_new_data_directory_is_private_to_the_service(tmp_path: Path) -> None:
    old = os.umask(0o022)  # what a login shell usually has
    try:
        root = tmp_path / "fresh"
        with init_data_dir(root, settings=settings()) as dd:
            with dd.store.begin():
                pass
            created = {p.name for p in root.iterdir()}
    finally:
        os.umask(old)
    assert {"faceledger.db", "keys", "images", "index", "config.toml"} <= created
    assert _loose(root) == []
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


@pytest.mark.parametrize("relative", [".", "faceledger.db", "images", "config.toml"])
def test_a_data_directory_others_can_read_is_refused_saying_how_to_fix_it(
    tmp_path: Path, relative: str
) -> None:
    root = tmp_path / "data"
    init_data_dir(root, settings=settings()).close()
    target = root / relative
    target.chmod(stat.S_IMODE(target.stat().st_mode) | 0o044)
    with pytest.raises(StoreError) as refused:
        open_data_dir(root, settings=settings())
    message = str(refused.value)
    assert str(root if relative == "." else target) in message
    assert f"chmod -R go-rwx {root}" in message
