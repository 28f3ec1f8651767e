"""Schemathesis against the app, every check in every phase: the document states what the server enforces.

Schemathesis (4.32) reads the OpenAPI document and runs its own engine on the ASGI app, as
``schemathesis run --checks all --phases examples,coverage,fuzzing`` would against a live
server: the **examples** phase sends the document's examples, the **coverage** phase the
boundaries of every constraint (shortest and longest strings, smallest and largest numbers,
each enum value, each one missing or broken), and the **fuzzing** phase generated requests,
schema-valid and schema-invalid (``mode = "all"``). After each answer it runs every check it
has: not a server error; the status code, content type, headers and body are the ones the
document declares; a schema-valid request is not refused for its shape
(``positive_data_acceptance``) and a schema-invalid one is refused
(``negative_data_rejection``); a required header left out is refused; auth is enforced
(``ignored_auth`` repeats a successful request without the token and with a wrong one); a
method the path does not take gets 405 with a right ``Allow`` header; created resources
exist and deleted ones are gone; one identity cannot read another's objects. The stateful
phase (chains of linked requests) is not part of this run, and ``max_response_time`` needs a
limit that says nothing about the API, so it stays off.

It runs for five people, each on an installation of their own (so that nothing one run does,
such as revoking the device or suspending an account it read in an answer, can touch
another): nobody signed in; an examiner (that role only, signed in on the registered device,
the example policy loaded); someone who holds every role that can be held together with
searching; a system administrator; an auditor. Signing out is left out (it would end the
session the run uses). Each signs in before the run, whose failed sign-ins soon trip the
per-address sign-in limit. Marked slow.

**Refusals allowed, and why.** A schema-valid request may still be refused for a reason no
schema can state, and :data:`REFUSALS` lets exactly these through (the hook is schemathesis's
own ``filter_failure``), each matched by operation, error code and message, and only for
``positive_data_acceptance``:

* ``DELETE /galleries/{name}``: ``confirm`` must repeat the gallery's name from the path; a
  schema cannot compare a query parameter with a path parameter (422).
* ``POST /tokens``: a token carries only roles its owner holds; which roles those are depends
  on who asks, not on the request (422).
* ``PUT /policy``: the body is a policy file; it must be TOML and a valid policy, which is
  what the policy loader checks, not a schema (422, ``invalid_policy``).
* ``PUT /users/{username}/expiry``: clearing the expiry with ``trial`` left out keeps the
  account's trial flag, and a trial account needs an expiry: that depends on the account (422).
  (Making an account a trial without an expiry is stated in the document, and not allowed here.)
* ``POST /galleries/{name}/images``, ``POST /searches``, ``POST /verify``: an upload must be a
  photo in a supported format; a schema says "bytes, not empty", not what they hold (422,
  ``bad_image``). And a gallery names the provenance each of its images must have: which
  fields those are depends on the gallery (422, ``missing_provenance``).
* ``GET /audit/proofs/entries/{seq}``, ``GET /audit/proofs/consistency``: an entry the log does
  not hold yet, a checkpoint that does not cover it, an older checkpoint named as the newer:
  that depends on the log as it is (422).
* ``POST /auth/bootstrap``, ``POST /auth/activate``: a new password must not be the account's
  username; a schema cannot compare one field with another (422, ``the password for ...``).
* ``POST /searches``: ``edits`` is a JSON list of edits inside a form field; the document says
  so, but a form field's schema cannot describe JSON held in a string (422, ``edits: ...``).

Everything else a schema can say, the document says (patterns, lengths, ranges, the device
header's shape, non-empty uploads, the password rules), and the statuses the server answers
(403 refused by role or policy, 404 no such thing, 409 conflicts, 429 sign-in throttle) are
documented responses, which ``positive_data_acceptance`` accepts by default.

(Schemathesis's own pytest integration does not run under pytest 9.2, so the engine is
driven directly and its events read here.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema
from web_helpers import CUSTODY, PAROLE, Agency, running, shared_pipeline, template

from faceledger.services import galleries

__all__ = ["template"]  # fixtures

pytestmark = pytest.mark.slow

#: Who runs, with their roles (``None``: nobody signed in).
PEOPLE: dict[str, tuple[str, ...] | None] = {
    "anonymous": None,
    "eve.examiner": ("examiner",),
    "power.user": ("examiner", "reviewer", "supervisor", "gallery_admin"),
    "sys.admin": ("system_admin",),
    "audrey.auditor": ("auditor",),
}
#: Generated requests per operation and mode in the fuzzing phase (the examples and coverage
#: phases send what the document implies, whatever this is). The two the issue names get more.
MAX_EXAMPLES = {"anonymous": 10, "eve.examiner": 10}
OTHERS_MAX_EXAMPLES = 5
EXCLUDED = [("POST", "/api/v1/auth/logout")]
#: Checks every person's run must have run (the others run where they apply: ``ignored_auth``
#: after a success, ``use_after_free`` after a deletion, and so on).
CHECKED = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "unsupported_method",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal of a schema-valid request that no schema can rule out (see the module docstring)."""

    operation: str
    code: str
    message: str

    def matches(self, operation: str, error: dict[str, Any]) -> bool:
        return (
            operation == self.operation
            and error.get("code") == self.code
            and str(error.get("message", "")).startswith(self.message)
        )


ENROL = "POST /api/v1/galleries/{name}/images"
REFUSALS = (
    Refusal("DELETE /api/v1/galleries/{name}", "invalid_input", "confirm must repeat the gallery's name"),
    Refusal("POST /api/v1/tokens", "invalid_input", "an API token can only carry roles its owner holds"),
    Refusal("PUT /api/v1/policy", "invalid_policy", ""),
    Refusal("PUT /api/v1/users/{username}/expiry", "invalid_input", "trial account"),
    Refusal("POST /api/v1/searches", "invalid_input", "edits"),
    Refusal(ENROL, "bad_image", ""),
    Refusal("POST /api/v1/searches", "bad_image", ""),
    Refusal("POST /api/v1/verify", "bad_image", ""),
    Refusal(ENROL, "missing_provenance", ""),
    Refusal("GET /api/v1/audit/proofs/entries/{seq}", "invalid_input", "entry "),
    Refusal("GET /api/v1/audit/proofs/entries/{seq}", "invalid_input", "checkpoint of size "),
    Refusal("GET /api/v1/audit/proofs/consistency", "invalid_input", "checkpoint "),
    Refusal("POST /api/v1/auth/bootstrap", "invalid_input", "the password for "),
    Refusal("POST /api/v1/auth/activate", "invalid_input", "the password for "),
)


def expected_refusal(context: HookContext, failure: Failure, case: Any, response: Any) -> bool:
    """``filter_failure``: False (drop it) for a positive case refused as one of :data:`REFUSALS`."""
    if "positive_data_acceptance" not in type(failure).checks or response.status_code != 422:
        return True
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return True
    label = f"{case.method.upper()} {case.operation.path}"
    return not any(refusal.matches(label, error) for refusal in REFUSALS)


def config(headers: dict[str, str], max_examples: int) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "headers": headers,
            "checks": {"enabled": True},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "generation": {"max-examples": max_examples, "mode": "all", "database": "none"},
            "suppress-health-check": ["all"],
        }
    )


@pytest.fixture(scope="module", params=sorted(PEOPLE))
def person(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, template: Path
) -> Iterator[tuple[Agency, dict[str, str]]]:
    """An installation of the person's own, and the headers they send (none when nobody signs in)."""
    who: str = request.param
    with running(tmp_path_factory.mktemp("fuzz") / "data", template, analyzer=shared_pipeline()) as agency:
        agency.load_example_policy()
        for name in (CUSTODY, PAROLE):
            galleries.create_gallery(agency.dd, name, legal_basis="PACE s.64A", source_description="LFW")
        roles = PEOPLE[who]
        headers: dict[str, str] = {}
        if roles is not None:
            agency.add(who, *roles)
            headers = agency.login(who).headers
        yield agency, headers


def report(event: events.ScenarioFinished) -> Iterator[str]:
    """Each failure a finished scenario recorded: what was sent and what came back."""
    recorder = event.recorder
    for case_id, nodes in recorder.checks.items():
        for node in nodes:
            if node.failure_info is None:
                continue
            failure = node.failure_info.failure
            case = recorder.cases[case_id].value
            response = recorder.find_response(case_id=case_id)
            answer = "no answer" if response is None else f"{response.status_code} {response.content[:300]!r}"
            sent = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            yield (
                f"[{event.phase.value}] {recorder.label}: {node.name}: {failure.title}\n"
                f"    {failure.message[:300]}\n"
                f"    sent {case.method} {case.formatted_path} query={case.query} headers={sent} "
                f"body={str(case.body)[:300]}\n    got {answer}"
            )


def test_schemathesis_finds_nothing(
    person: tuple[Agency, dict[str, str]], request: pytest.FixtureRequest
) -> None:
    agency, headers = person
    who = request.node.callspec.params["person"]
    settings = config(headers, MAX_EXAMPLES.get(who, OTHERS_MAX_EXAMPLES))
    schema: BaseSchema = schemathesis.openapi.from_asgi("/openapi.json", agency.app, config=settings)
    for method, path in EXCLUDED:
        schema = schema.exclude(method=method, path=path)
    schema.hook("filter_failure")(expected_refusal)
    assert len(schema) > 40

    found: list[str] = []
    phases: set[str] = set()
    checks: set[str] = set()
    finished: events.EngineFinished | None = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            found.extend(report(event))
            phases.add(event.phase.value)
            checks.update(node.name for nodes in event.recorder.checks.values() for node in nodes)
        elif isinstance(event, events.NonFatalError):
            found.append(f"error in {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            found.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            finished = event
            found.extend(f"after the run: {failure.title}: {failure.message}" for failure in event.failures)
    assert finished is not None
    assert finished.stop_reason is StopReason.COMPLETED, finished.stop_reason
    assert {"examples", "coverage", "fuzzing"} <= phases, phases
    assert checks >= CHECKED, CHECKED - checks
    assert not found, f"schemathesis ({who}, seed {settings.seed}) found {len(found)}:\n" + "\n".join(found)
