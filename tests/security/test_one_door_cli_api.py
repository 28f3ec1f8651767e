"""The one door: the CLI and the web API give every person the same answer to the same request.

Before, "may this person do this?" was answered in several places and the answers differed
(``gallery show --subjects`` and ``GET /galleries/{name}/subjects`` had different rules).
Here one installation is set up through the CLI, each person's own CLI session is also used
as a bearer token against the real web app on the same data directory, and every request
of the table below is made both ways by every person. Allowed on one route means allowed on
the other; refused means refused on both, citing the same rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx2
import pytest
from signed_in_unit import GALLERY, ONE_OF_EACH, SignedInUnit, governed_unit
from starlette.testclient import TestClient

from faceledger.cli import accounts as accounts_cli
from faceledger.services.devices import DEVICE_HEADER
from faceledger.web.app import create_app

API = "/api/v1"
PEOPLE = ONE_OF_EACH
WHO = ["ada.admin", *(name for name, _role in PEOPLE)]
WHY = ("--reason", "court_order", "--authority", "Order 2026-9")


@dataclass(frozen=True)
class Case:
    """One request, as a CLI command and as an HTTP call."""

    name: str
    cli: tuple[str, ...]
    http: Callable[[TestClient, dict[str, str], str], httpx2.Response]
    """Called with the client, the person's headers and a fresh gallery name (for ``{new}``)."""


CASES = [
    Case(
        "list the people in a gallery",
        ("gallery", "show", GALLERY, "--subjects", "--json"),
        lambda c, h, n: c.get(f"{API}/galleries/{GALLERY}/subjects", headers=h),
    ),
    Case(
        "list what enrolment turned down",
        ("gallery", "show", GALLERY, "--turned-down", "--json"),
        lambda c, h, n: c.get(f"{API}/galleries/{GALLERY}/turned-down", headers=h),
    ),
    Case(
        "create a gallery",
        ("gallery", "create", "{new}", "--legal-basis", "PACE s.64A", "--source-description", "custody"),
        lambda c, h, n: c.post(
            f"{API}/galleries",
            json={"name": n, "legal_basis": "PACE s.64A", "source_description": "custody"},
            headers=h,
        ),
    ),
    Case(
        "purge a subject that is not there",
        ("gallery", "purge", GALLERY, "--subject", "nobody", *WHY, "--yes"),
        lambda c, h, n: c.delete(
            f"{API}/galleries/{GALLERY}/subjects/nobody",
            params={"reason": "court_order", "authority": "Order 2026-9"},
            headers=h,
        ),
    ),
    Case(
        "read the audit log",
        ("audit", "log", "--json"),
        lambda c, h, n: c.get(f"{API}/audit/entries", headers=h),
    ),
    Case(
        "take a checkpoint",
        ("audit", "checkpoint"),
        lambda c, h, n: c.post(f"{API}/audit/checkpoints", headers=h),
    ),
    Case("list accounts", ("user", "list", "--json"), lambda c, h, n: c.get(f"{API}/users", headers=h)),
    Case("list devices", ("device", "list", "--json"), lambda c, h, n: c.get(f"{API}/devices", headers=h)),
    Case("show the policy", ("policy", "show", "--json"), lambda c, h, n: c.get(f"{API}/policy", headers=h)),
]

_serial = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedInUnit]:
    with governed_unit(tmp_path_factory.mktemp("one-door"), PEOPLE) as built:
        yield built


@pytest.fixture(scope="module")
def client(unit: SignedInUnit) -> Iterator[TestClient]:
    with TestClient(create_app(unit.dd), raise_server_exceptions=False) as started:
        yield started


def _headers(unit: SignedInUnit, username: str) -> dict[str, str]:
    """The bearer token and device credential of ``username``'s own CLI session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACELEDGER_CONFIG_DIR", str(unit.folders[username]))
        stored = json.loads(accounts_cli.cli_file(unit.dd).read_text())
    headers = {"Authorization": f"Bearer {stored['session']['token']}"}
    if "device" in stored:  # the administrator signed in on no registered device
        headers[DEVICE_HEADER] = stored["device"]
    return headers


def _cli_answer(unit: SignedInUnit, who: str, args: tuple[str, ...]) -> tuple[bool, str | None]:
    result = unit.invoke(who, *args)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        return True, None
    rule = re.search(r"\(rule ([a-z_.+]+)", result.output)
    return False, rule.group(1) if rule else f"exit {result.exit_code}: {result.output.strip()}"


def _http_answer(answer: httpx2.Response) -> tuple[bool, str | None]:
    if answer.status_code < 300 or answer.status_code == 404:
        return True, None  # past the door (404: the subject that is not there)
    body = answer.json()["error"]
    return False, body.get("rule_id") or f"{answer.status_code}: {body['message']}"


def _cli_allowed(unit: SignedInUnit, who: str, args: tuple[str, ...]) -> tuple[bool, str | None]:
    allowed, rule = _cli_answer(unit, who, args)
    if not allowed and rule is not None and rule.startswith("exit 1:") and "no subject" in rule:
        return True, None  # past the door (the subject that is not there)
    return allowed, rule


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("who", WHO)
def test_the_cli_and_the_api_answer_alike(
    unit: SignedInUnit, client: TestClient, who: str, case: Case
) -> None:
    cli_args = tuple(arg.replace("{new}", f"door-{next(_serial)}") for arg in case.cli)
    by_cli = _cli_allowed(unit, who, cli_args)
    by_api = _http_answer(case.http(client, _headers(unit, who), f"door-{next(_serial)}"))
    assert by_cli == by_api, f"{who}: {case.name}: CLI {by_cli}, API {by_api}"


def test_a_refusal_cites_the_same_rule_both_ways(unit: SignedInUnit, client: TestClient) -> None:
    """The table above is not all allowed: an examiner listing a gallery's people is refused on both."""
    case = CASES[0]
    by_cli = _cli_allowed(unit, "eve.examiner", case.cli)
    by_api = _http_answer(case.http(client, _headers(unit, "eve.examiner"), "unused"))
    assert by_cli == by_api == (False, "role.not_permitted")
    assert _cli_allowed(unit, "gina.gallery", case.cli) == (True, None)
