"""Every role against every endpoint: allowed where the role table and policy say so, refused elsewhere.

One installation (example policy in force, every person on the registered device) serves
the whole table. A refused request must be a 403 with the JSON error shape and leave a
``policy_denied`` entry in the audit log; anonymous requests to anything but the public
endpoints are 401. An allowed request gets the endpoint's own answer: its success status,
or, where the request is deliberately unusable (a photo that is not an image, a review step
in the wrong state), the error that comes *after* the permission check, which proves the
person was let through.

The endpoints that read a stored search need one: made from real LFW photos (enrolled over
the API, then searched), and skipped, saying why, when the photos are not there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from web_helpers import (
    API,
    CASE,
    CUSTODY,
    ORG,
    PURPOSE,
    UNIT,
    Agency,
    Session,
    audit_rows,
    error_of,
    photo,
    running,
    shared_pipeline,
    template,
)

from faceledger.services import galleries

__all__ = ["template"]  # fixtures

ROLES = ("examiner", "reviewer", "supervisor", "gallery_admin", "auditor", "system_admin")
ANONYMOUS = "anonymous"
SIGNED_IN = frozenset(ROLES)
PUBLIC = SIGNED_IN | {ANONYMOUS}
ADMIN_ROLE = frozenset({"system_admin"})
VIEW_CASE = frozenset({"examiner", "reviewer", "supervisor", "auditor"})
TARGET = "olga.other"
NOT_AN_IMAGE = b"this is not a photo of anyone"
_serial = itertools.count(1)
PURGE_WHY = {"reason": "court_order", "authority": "Order 2026-123"}


@dataclass
class World:
    """The installation, one signed-in session per role, and what the cases act on."""

    agency: Agency
    sessions: dict[str, Session] = field(default_factory=dict)
    search_id: int | None = None
    face_id: int | None = None

    @property
    def client(self) -> TestClient:
        return self.agency.client

    def headers(self, role: str) -> dict[str, str]:
        return {} if role == ANONYMOUS else self.sessions[role].headers

    def fresh_user(self, *, suspended: bool = False) -> str:
        name = f"tmp.user{next(_serial)}"
        self.agency.add(name, "reviewer")
        if suspended:
            answer = self.client.post(
                f"{API}/users/{name}/suspend", json={"reason": "test"}, headers=self.agency.admin().headers
            )
            assert answer.status_code == 200
        return name


Call = Callable[[World, str], httpx2.Response]


@dataclass(frozen=True)
class Case:
    name: str
    operation: str  # "METHOD /path/{template}" as in the OpenAPI document, without /api/v1
    allowed: frozenset[str]
    call: Call
    ok: int = 200
    ok_code: str | None = None  # the error an allowed, deliberately unusable request gets
    needs_search: bool = False


def _get(path: str) -> Call:
    return lambda w, role: w.client.get(f"{API}{path}", headers=w.headers(role))


def _post(path: str, json: object | None = None) -> Call:
    return lambda w, role: w.client.post(f"{API}{path}", json=json, headers=w.headers(role))


def _logout(w: World, role: str) -> httpx2.Response:
    headers = {} if role == ANONYMOUS else w.agency.login(w.sessions[role].username).headers
    return w.client.post(f"{API}/auth/logout", headers=headers)


def _own_account(w: World, role: str) -> httpx2.Response:
    name = w.sessions[role].username if role != ANONYMOUS else "anyone.at.all"
    return w.client.get(f"{API}/users/{name}", headers=w.headers(role))


def _create_user(w: World, role: str) -> httpx2.Response:
    body = {
        "username": f"new.user{next(_serial)}",
        "display_name": "New User",
        "organisation": "Example Constabulary",
        "unit": "facial-identification",
        "roles": ["reviewer"],
    }
    return w.client.post(f"{API}/users", json=body, headers=w.headers(role))


def _vouch(w: World, role: str) -> httpx2.Response:
    """Vouch for a freshly activated account of the unit (the supervisor is not its creator)."""
    name = f"new.user{next(_serial)}"
    body = {"username": name, "display_name": "New", "organisation": ORG, "unit": UNIT, "roles": ["reviewer"]}
    w.agency.create_activated(body)
    return w.client.post(f"{API}/users/{name}/vouch", headers=w.headers(role))


def _on_fresh_user(action: str, json: object | None = None, *, suspended: bool = False) -> Call:
    def call(w: World, role: str) -> httpx2.Response:
        name = w.fresh_user(suspended=suspended)
        return w.client.post(f"{API}/users/{name}/{action}", json=json, headers=w.headers(role))

    return call


def _register_device(w: World, role: str) -> httpx2.Response:
    body = {"device_id": f"dev-{next(_serial)}", "name": "Spare laptop", "unit": "IT"}
    return w.client.post(f"{API}/devices", json=body, headers=w.headers(role))


def _revoke_device(w: World, role: str) -> httpx2.Response:
    made = _register_device(w, "system_admin").json()["device"]["id"]
    return w.client.post(f"{API}/devices/{made}/revoke", json={"reason": "lost"}, headers=w.headers(role))


def _issue_browser_enrolment(w: World, role: str) -> httpx2.Response:
    made = _register_device(w, "system_admin").json()["device"]["id"]
    return w.client.post(f"{API}/devices/{made}/browser-enrolments", headers=w.headers(role))


def _create_token(w: World, role: str) -> httpx2.Response:
    scope = role if role != ANONYMOUS else "reviewer"
    body = {"name": f"script {next(_serial)}", "scopes": [scope], "days": 5}
    return w.client.post(f"{API}/tokens", json=body, headers=w.headers(role))


def _revoke_others_token(w: World, role: str) -> httpx2.Response:
    owner = w.agency.login(TARGET)
    made = w.client.post(f"{API}/tokens", json={"name": "t", "scopes": ["reviewer"]}, headers=owner.headers)
    token_id = made.json()["token"]["id"]
    return w.client.post(f"{API}/tokens/{token_id}/revoke", headers=w.headers(role))


def _put_policy(w: World, role: str) -> httpx2.Response:
    from faceledger.adapters.policy_file import example_policy_text

    body = {"text": example_policy_text(), "source": "matrix"}
    return w.client.put(f"{API}/policy", json=body, headers=w.headers(role))


def _create_gallery(w: World, role: str) -> httpx2.Response:
    body = {"name": f"g{next(_serial)}", "legal_basis": "PACE s.64A", "source_description": "custody suite"}
    return w.client.post(f"{API}/galleries", json=body, headers=w.headers(role))


def _purge_gallery(w: World, role: str) -> httpx2.Response:
    name = f"doomed{next(_serial)}"
    galleries.create_gallery(w.agency.dd, name, legal_basis="test", source_description="test")
    params = {**PURGE_WHY, "confirm": name}
    return w.client.delete(f"{API}/galleries/{name}", params=params, headers=w.headers(role))


def _enrol_garbage(w: World, role: str) -> httpx2.Response:
    form = {"subject_id": "S-1", "source": "custody record 1", "collected_on": "2024-05-01"}
    files = {"image": ("s1.jpg", NOT_AN_IMAGE, "image/jpeg")}
    return w.client.post(f"{API}/galleries/{CUSTODY}/images", data=form, files=files, headers=w.headers(role))


SEARCH_FORM = {"case_number": CASE, "purpose": PURPOSE, "galleries": [CUSTODY], "justification": "robbery"}


def _search_garbage(w: World, role: str) -> httpx2.Response:
    files = {"probe": ("probe.jpg", NOT_AN_IMAGE, "image/jpeg")}
    return w.client.post(f"{API}/searches", data=SEARCH_FORM, files=files, headers=w.headers(role))


def _verify_garbage(w: World, role: str) -> httpx2.Response:
    form = {"case_number": CASE, "purpose": PURPOSE}
    files = {"first": ("a.jpg", NOT_AN_IMAGE, "image/jpeg"), "second": ("b.jpg", NOT_AN_IMAGE, "image/jpeg")}
    return w.client.post(f"{API}/verify", data=form, files=files, headers=w.headers(role))


def _on_search(method: str, suffix: str, json: object | None = None) -> Call:
    def call(w: World, role: str) -> httpx2.Response:
        path = suffix.format(search=w.search_id, face=w.face_id)
        return w.client.request(method, f"{API}{path}", json=json, headers=w.headers(role))

    return call


FINDINGS = {"findings": [{"face_id": 999_999, "outcome": "no_match"}]}
VERDICT = {"verdict": "agree"}
REASON = {"reason": "not the person"}

CASES = [
    Case("health", "GET /health", PUBLIC, _get("/health")),
    Case("bootstrap status", "GET /auth/bootstrap", PUBLIC, _get("/auth/bootstrap")),
    Case("audit public key", "GET /audit/public-key", PUBLIC, _get("/audit/public-key")),
    Case("who am I", "GET /auth/me", SIGNED_IN, _get("/auth/me")),
    Case("my work queues", "GET /work", SIGNED_IN, _get("/work")),
    Case("sign out", "POST /auth/logout", SIGNED_IN, _logout, ok=204),
    Case("list accounts", "GET /users", frozenset({"system_admin", "auditor"}), _get("/users")),
    Case("create account", "POST /users", ADMIN_ROLE, _create_user, ok=201),
    Case(
        "read another account",
        "GET /users/{username}",
        frozenset({"system_admin", "auditor"}),
        _get(f"/users/{TARGET}"),
    ),
    Case("read own account", "GET /users/{username}", SIGNED_IN, _own_account),
    Case(
        "update account",
        "PATCH /users/{username}",
        ADMIN_ROLE,
        lambda w, r: w.client.patch(
            f"{API}/users/{TARGET}", json={"display_name": f"Olga {next(_serial)}"}, headers=w.headers(r)
        ),
    ),
    Case(
        "set roles",
        "PUT /users/{username}/roles",
        ADMIN_ROLE,
        lambda w, r: w.client.put(
            f"{API}/users/{TARGET}/roles", json={"roles": ["reviewer"]}, headers=w.headers(r)
        ),
    ),
    Case(
        "suspend", "POST /users/{username}/suspend", ADMIN_ROLE, _on_fresh_user("suspend", {"reason": "test"})
    ),
    Case(
        "unsuspend",
        "POST /users/{username}/unsuspend",
        ADMIN_ROLE,
        _on_fresh_user("unsuspend", suspended=True),
    ),
    Case(
        "set expiry",
        "PUT /users/{username}/expiry",
        ADMIN_ROLE,
        lambda w, r: w.client.put(
            f"{API}/users/{TARGET}/expiry", json={"expires_at": None}, headers=w.headers(r)
        ),
    ),
    Case(
        "reset password",
        "POST /users/{username}/password",
        ADMIN_ROLE,
        _on_fresh_user("password"),
    ),
    Case("vouch", "POST /users/{username}/vouch", frozenset({"supervisor"}), _vouch),
    Case("enrol totp", "POST /users/{username}/totp", ADMIN_ROLE, _on_fresh_user("totp")),
    Case("unlock", "POST /users/{username}/unlock", ADMIN_ROLE, _post(f"/users/{TARGET}/unlock")),
    Case("list devices", "GET /devices", frozenset({"system_admin", "auditor"}), _get("/devices")),
    Case("register device", "POST /devices", ADMIN_ROLE, _register_device, ok=201),
    Case("revoke device", "POST /devices/{device_id}/revoke", ADMIN_ROLE, _revoke_device),
    Case(
        "issue a browser enrolment",
        "POST /devices/{device_id}/browser-enrolments",
        ADMIN_ROLE,
        _issue_browser_enrolment,
        ok=201,
    ),
    Case("list own tokens", "GET /tokens", SIGNED_IN, _get("/tokens")),
    Case(
        "list another's tokens",
        "GET /tokens",
        frozenset({"system_admin", "auditor"}),
        _get(f"/tokens?username={TARGET}"),
    ),
    Case("create token", "POST /tokens", SIGNED_IN, _create_token, ok=201),
    Case("revoke another's token", "POST /tokens/{token_id}/revoke", ADMIN_ROLE, _revoke_others_token),
    Case("show policy", "GET /policy", SIGNED_IN, _get("/policy")),
    Case("policy versions", "GET /policy/versions", SIGNED_IN, _get("/policy/versions")),
    Case("load policy", "PUT /policy", ADMIN_ROLE, _put_policy),
    Case("load example policy", "POST /policy/example", ADMIN_ROLE, _post("/policy/example")),
    Case("list galleries", "GET /galleries", SIGNED_IN, _get("/galleries")),
    Case("show gallery", "GET /galleries/{name}", SIGNED_IN, _get(f"/galleries/{CUSTODY}")),
    Case("create gallery", "POST /galleries", frozenset({"gallery_admin"}), _create_gallery, ok=201),
    Case(
        "list subjects",
        "GET /galleries/{name}/subjects",
        frozenset({"gallery_admin", "auditor"}),
        _get(f"/galleries/{CUSTODY}/subjects"),
    ),
    Case(
        "list turned-down images",
        "GET /galleries/{name}/turned-down",
        frozenset({"gallery_admin", "auditor"}),
        _get(f"/galleries/{CUSTODY}/turned-down"),
    ),
    Case(
        "enrol image",
        "POST /galleries/{name}/images",
        frozenset({"gallery_admin"}),
        _enrol_garbage,
        ok=422,
        ok_code="bad_image",
    ),
    Case("purge gallery", "DELETE /galleries/{name}", frozenset({"gallery_admin"}), _purge_gallery),
    Case(
        "purge subject",
        "DELETE /galleries/{name}/subjects/{subject_id}",
        frozenset({"gallery_admin"}),
        lambda w, r: w.client.delete(
            f"{API}/galleries/{CUSTODY}/subjects/nobody", params=PURGE_WHY, headers=w.headers(r)
        ),
        ok=404,
        ok_code="not_found",
    ),
    Case("search", "POST /searches", frozenset({"examiner"}), _search_garbage, ok=422, ok_code="bad_image"),
    Case("verify", "POST /verify", frozenset({"examiner"}), _verify_garbage, ok=422, ok_code="bad_image"),
    Case("case history", "GET /cases/{case_number}", VIEW_CASE, _get(f"/cases/{CASE}")),
    Case("audit entries", "GET /audit/entries", frozenset({"auditor"}), _get("/audit/entries?limit=5")),
    Case("audit export", "POST /audit/export", frozenset({"auditor"}), _post("/audit/export")),
    Case("take checkpoint", "POST /audit/checkpoints", frozenset({"auditor"}), _post("/audit/checkpoints")),
    Case("list checkpoints", "GET /audit/checkpoints", frozenset({"auditor"}), _get("/audit/checkpoints")),
    Case(
        "prove an entry",
        "GET /audit/proofs/entries/{seq}",
        frozenset({"auditor"}),
        _get("/audit/proofs/entries/1?tree_size=999999"),
        ok=404,
        ok_code="not_found",
    ),
    Case(
        "prove consistency",
        "GET /audit/proofs/consistency",
        frozenset({"auditor"}),
        _get("/audit/proofs/consistency?old_size=999999"),
        ok=404,
        ok_code="not_found",
    ),
    Case(
        "oversight report", "GET /audit/report", frozenset({"supervisor", "auditor"}), _get("/audit/report")
    ),
    # A stored search (real photos).
    Case(
        "show search",
        "GET /searches/{search_id}",
        VIEW_CASE,
        _on_search("GET", "/searches/{search}"),
        needs_search=True,
    ),
    Case(
        "view candidate",
        "GET /searches/{search_id}/candidates/{face_id}",
        VIEW_CASE,
        _on_search("GET", "/searches/{search}/candidates/{face}"),
        needs_search=True,
    ),
    Case(
        "candidate image",
        "GET /searches/{search_id}/candidates/{face_id}/image",
        VIEW_CASE,
        _on_search("GET", "/searches/{search}/candidates/{face}/image"),
        needs_search=True,
    ),
    Case(
        "show review",
        "GET /reviews/{search_id}",
        VIEW_CASE,
        _on_search("GET", "/reviews/{search}"),
        needs_search=True,
    ),
    Case(
        "examine",
        "POST /reviews/{search_id}/examination",
        frozenset({"examiner"}),
        _on_search("POST", "/reviews/{search}/examination", FINDINGS),
        ok=422,
        ok_code="invalid_input",
        needs_search=True,
    ),
    Case(
        "peer view",
        "GET /reviews/{search_id}/peer",
        frozenset({"reviewer"}),
        _on_search("GET", "/reviews/{search}/peer"),
        ok=409,
        ok_code="review_error",
        needs_search=True,
    ),
    Case(
        "peer assess",
        "POST /reviews/{search_id}/peer",
        frozenset({"reviewer"}),
        _on_search("POST", "/reviews/{search}/peer", FINDINGS),
        ok=409,
        ok_code="invalid_transition",
        needs_search=True,
    ),
    Case(
        "verdict",
        "POST /reviews/{search_id}/verdict",
        frozenset({"reviewer"}),
        _on_search("POST", "/reviews/{search}/verdict", VERDICT),
        ok=409,
        ok_code="invalid_transition",
        needs_search=True,
    ),
    Case(
        "approve",
        "POST /reviews/{search_id}/approval",
        frozenset({"supervisor"}),
        _on_search("POST", "/reviews/{search}/approval", {}),
        ok=409,
        ok_code="invalid_transition",
        needs_search=True,
    ),
    Case(
        "reject",
        "POST /reviews/{search_id}/rejection",
        frozenset({"supervisor"}),
        _on_search("POST", "/reviews/{search}/rejection", REASON),
        ok=409,
        ok_code="invalid_transition",
        needs_search=True,
    ),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[World]:
    pipeline = shared_pipeline()
    with running(tmp_path_factory.mktemp("matrix") / "data", template, analyzer=pipeline) as agency:
        agency.load_example_policy()
        for name in ("custody_arrest_photos", "parole_photos"):
            galleries.create_gallery(agency.dd, name, legal_basis="PACE s.64A", source_description="LFW")
        state = World(agency)
        for role in ROLES:
            username = f"{role.replace('_', '.')}.one"
            agency.add(username, role)
            state.sessions[role] = agency.login(username)
        agency.add(TARGET, "reviewer")
        # A refused search leaves the case number on record, so the case has a history.
        refused = _search_garbage(state, "reviewer")
        assert refused.status_code == 403
        yield state


@pytest.fixture(scope="module")
def searched(world: World, lfw_images: Path) -> World:
    """A real search of the custody gallery: three people enrolled over the API, one searched for."""
    admin = world.sessions["gallery_admin"]
    for name in ("Colin_Powell", "Tony_Blair", "Jean_Chretien"):
        form = {
            "subject_id": name,
            "source": f"custody record {name}",
            "collected_on": date(2024, 5, 1).isoformat(),
        }
        files = {"image": (f"{name}.jpg", photo(lfw_images, name, 1).read_bytes(), "image/jpeg")}
        enrolled = world.client.post(
            f"{API}/galleries/{CUSTODY}/images", data=form, files=files, headers=admin.headers
        )
        assert enrolled.status_code == 201, enrolled.text
    files = {"probe": ("probe.jpg", photo(lfw_images, "Tony_Blair", 2).read_bytes(), "image/jpeg")}
    found = world.client.post(
        f"{API}/searches", data=SEARCH_FORM, files=files, headers=world.sessions["examiner"].headers
    )
    assert found.status_code == 201, found.text
    world.search_id = found.json()["search_id"]
    world.face_id = found.json()["candidates"][0]["face_id"]
    return world


def _denials(world: World) -> int:
    return len(audit_rows(world.agency.dd, "policy_denied"))


PARAMS = [pytest.param(c, id=c.name, marks=[pytest.mark.faces] if c.needs_search else []) for c in CASES]


@pytest.mark.parametrize("role", [*ROLES, ANONYMOUS])
@pytest.mark.parametrize("case", PARAMS)
def test_each_role_is_allowed_or_refused(
    case: Case, role: str, world: World, request: pytest.FixtureRequest
) -> None:
    if case.needs_search:
        request.getfixturevalue("searched")
    before = _denials(world)
    world.agency.clock.advance(seconds=1)
    answer = case.call(world, role)
    if role in case.allowed:
        assert answer.status_code == case.ok, answer.text
        if case.ok_code is not None:
            assert error_of(answer)["code"] == case.ok_code
    elif role == ANONYMOUS:
        assert answer.status_code == 401, answer.text
        assert error_of(answer)["code"] == "unauthenticated"
    else:
        assert answer.status_code == 403, answer.text
        assert error_of(answer)["code"] == "forbidden"
        assert error_of(answer).get("rule_id"), "the refusal cites no rule"  # one door, one kind of answer
        assert _denials(world) == before + 1, "each refused request leaves exactly one policy_denied entry"


def test_every_endpoint_of_the_api_is_in_the_table(world: World) -> None:
    """Adding a route without deciding who may use it fails here."""
    spec = world.client.get("/openapi.json").json()
    operations = {
        f"{method.upper()} {path.removeprefix(API)}" for path, ops in spec["paths"].items() for method in ops
    }
    # Sign-in, activation and creating the first administrator are for people who are not signed
    # in yet (test_auth, security/test_redteam_activation).
    untabled = {"POST /auth/login", "POST /auth/bootstrap", "POST /auth/activate"}
    assert {case.operation for case in CASES} == operations - untabled


def test_refusals_cite_the_rule_and_the_policy_version(world: World) -> None:
    answer = _search_garbage(world, "auditor")
    error = error_of(answer)
    assert error["rule_id"] == "role.not_permitted"
    assert error["policy_version"] == "example-2025.1"
    assert (
        audit_rows(world.agency.dd, "policy_denied")[-1]["details"]["decision"]["rule_id"]
        == "role.not_permitted"
    )


def test_a_gallery_administrator_off_the_registered_device_may_not_enrol(world: World) -> None:
    away = world.agency.login(world.sessions["gallery_admin"].username, device=None)
    answer = _enrol_garbage(World(world.agency, {"gallery_admin": away}), "gallery_admin")
    assert answer.status_code == 403
    assert error_of(answer)["rule_id"] == "device.unregistered"
